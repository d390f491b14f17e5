//! The shared admin client (`deepwatch_core::api::admin::GatewayAdmin`, used by the analyzer's
//! remediation, the lab's chaos tools and the demo) against a real gateway: every call parses
//! the gateway's own documents, and refusals keep the gateway's status and `error.code`.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use deepwatch_core::api::admin::{
    DegradeState, EjectedBy, FaultRule, GatewayAdmin, RateLimit, RolloutRequest, RolloutStatus,
};
use std::time::Duration;

fn admin_of(gw: &deepwatch_gateway::Gateway, token: &str) -> GatewayAdmin {
    GatewayAdmin::new(&admin_url(gw, ""), token, Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn every_call_of_the_shared_client_reads_the_gateways_documents() {
    let blue = Upstream::start(Knobs::default()).await;
    let green = Upstream::start(Knobs::default()).await;
    let extra = Upstream::start(Knobs::default()).await;
    let mut standby = pool("standby", &[green.url()]);
    standby.priority = 1;
    let mut canary = pool("green", &[green.url()]);
    canary.weight = 0;
    let mut cfg = config(vec![pool("blue", &[blue.url()]), canary, standby]);
    cfg.faults.enabled = true;
    let gw = start(cfg).await;
    let admin = admin_of(&gw, ADMIN_TOKEN);

    let doc = admin.pools().await.unwrap();
    let names: Vec<&str> = doc.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["blue", "green", "standby"]);
    assert_eq!(doc.active_pools, ["blue"]);
    assert_eq!((doc.pools[0].weight, doc.pools[2].priority), (100, 1));
    assert_eq!(doc.pools[0].healthy_upstreams(), 1);
    assert_eq!(doc.pools[0].upstreams[0].health.ejected_by, None::<EjectedBy>);

    let p = admin.set_weight("blue", 60).await.unwrap();
    assert_eq!((p.name.as_str(), p.weight), ("blue", 60));
    let p = admin.add_upstream("blue", &extra.url()).await.unwrap();
    assert_eq!(p.upstreams.len(), 2);
    let err = admin.add_upstream("blue", &extra.url()).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(409), Some("upstream_exists")), "{err}");
    let p = admin.remove_upstream("blue", &extra.url()).await.unwrap();
    assert_eq!(p.upstreams.len(), 1);

    let doc = admin.failover("standby", "drill").await.unwrap();
    let forced = doc.failover.forced.unwrap();
    assert_eq!((forced.pool.as_str(), forced.reason.as_str()), ("standby", "drill"));
    assert_eq!(doc.active_pools, ["standby"]);
    let doc = admin.clear_failover().await.unwrap();
    assert!(doc.failover.forced.is_none());

    let state = DegradeState {
        max_tokens_cap: Some(64),
        rate_limit: Some(RateLimit { tenants: vec!["free".into()], requests_per_second: 2.0 }),
    };
    assert_eq!(admin.set_degrade(&state).await.unwrap(), state);
    assert_eq!(admin.pools().await.unwrap().degrade, state);
    assert_eq!(admin.clear_degrade().await.unwrap(), DegradeState::default());

    let rule = FaultRule {
        endpoint: "/v1/chat/completions".into(),
        latency: std::time::Duration::from_millis(5),
        error_status: 502,
        ..FaultRule::default()
    };
    let faults = admin.set_faults(std::slice::from_ref(&rule)).await.unwrap();
    assert!(faults.enabled);
    assert_eq!(faults.rules, std::slice::from_ref(&rule));
    assert_eq!(admin.faults().await.unwrap().rules, [rule]);
    assert!(admin.clear_faults().await.unwrap().rules.is_empty());

    let request = RolloutRequest {
        pool: "green".into(),
        stable: Some("blue".into()),
        steps: Some(vec![10, 100]),
        step_secs: Some(3600),
        ..RolloutRequest::default()
    };
    let started = admin.start_rollout(&request).await.unwrap();
    assert_eq!((started.status, started.weight), (RolloutStatus::Running, 10));
    let current = admin.rollouts().await.unwrap().current.unwrap();
    assert_eq!((current.id, current.canary.as_str()), (started.id, "green"));
    let done = admin.rollback("bad canary").await.unwrap();
    assert_eq!(
        (done.status, done.reason.as_deref()),
        (RolloutStatus::RolledBack, Some("bad canary"))
    );
    let err = admin.promote("too late").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(409), Some("no_rollout")), "{err}");
    let listed = admin.rollouts().await.unwrap();
    assert!(listed.current.is_none());
    assert_eq!(listed.history[0].id, started.id);

    let events = admin.events(1000).await.unwrap().events;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    for kind in ["weight", "failover", "failback", "start", "step", "rollback"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert_eq!(admin.events(2).await.unwrap().events.len(), 2);
}

#[tokio::test]
async fn refusals_keep_the_gateways_status_and_code() {
    let up = Upstream::start(Knobs::default()).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let err = admin_of(&gw, "wrong").pools().await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(401), Some("unauthorized")), "{err}");
    let admin = admin_of(&gw, ADMIN_TOKEN);
    let err = admin.set_weight("purple", 5).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("pool_not_found")), "{err}");
    let err = admin.set_weight("blue", 101).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(400), Some("bad_request")), "{err}");
    let err = admin.faults().await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(403), Some("faults_disabled")), "{err}");
}
