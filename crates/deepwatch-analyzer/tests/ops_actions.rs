//! Every remediation action against a mock gateway admin API speaking the documented format:
//! preconditions read the pools/rollouts documents, actions send the documented requests, and
//! the audit log holds what was planned and what came of it.

use crate::support::mock_gateway::{pool, MockGateway, TOKEN};
use deepwatch_analyzer::remediate::{self, scaling::ScalingRules, Deps, LoadSource, Remediator};
use deepwatch_analyzer::webhook::{Alert, AlertStatus};
use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::remediation::{
    ActionConfig, ActionKind, PolicyConfig, RemediationConfig, ScaleTarget,
};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn policy(name: &str, alertname: &str, actions: &[&str], revert: bool) -> PolicyConfig {
    PolicyConfig {
        name: name.into(),
        matchers: vec![format!("alertname=\"{alertname}\"")],
        actions: actions.iter().map(|s| s.to_string()).collect(),
        revert_on_resolve: revert,
    }
}

fn config(dir: &std::path::Path, gw: &MockGateway) -> RemediationConfig {
    let mut c = RemediationConfig {
        state_dir: dir.display().to_string(),
        max_actions_per_hour: 0,
        ..RemediationConfig::default()
    };
    c.gateway.url = gw.url.clone();
    c.gateway.token = TOKEN.into();
    c.policies = vec![
        policy("p1", "ModelUnavailable", &["failover_to_standby"], true),
        policy("p2", "PerformanceDrop", &["scale_primary", "degrade_free"], false),
        policy("canary", "CanaryFailing", &["rollback_canary"], false),
    ];
    c.actions = vec![
        ActionConfig {
            name: "failover_to_standby".into(),
            kind: ActionKind::Failover,
            pool: Some("standby".into()),
            cooldown: std::time::Duration::from_secs(0),
            ..ActionConfig::default()
        },
        ActionConfig {
            name: "scale_primary".into(),
            kind: ActionKind::Scale,
            target: Some(ScaleTarget::GatewayPool),
            pool: Some("primary".into()),
            spare_upstreams: Some(vec![
                "http://10.0.0.3:8000".into(),
                "http://10.0.0.4:8000".into(),
                "http://10.0.0.5:8000".into(),
            ]),
            load_query: Some("avg(load)".into()),
            cooldown: std::time::Duration::from_secs(0),
            max_per_hour: 0,
            ..ActionConfig::default()
        },
        ActionConfig {
            name: "degrade_free".into(),
            kind: ActionKind::Degrade,
            max_tokens_cap: Some(256),
            tenants: Some(vec!["free".into()]),
            requests_per_second: Some(1.0),
            cooldown: std::time::Duration::from_secs(0),
            ..ActionConfig::default()
        },
        ActionConfig {
            name: "rollback_canary".into(),
            kind: ActionKind::Rollback,
            cooldown: std::time::Duration::from_secs(0),
            ..ActionConfig::default()
        },
    ];
    c
}

/// Load per replica as the test sets it.
struct Load(parking_lot::Mutex<Option<f64>>);

impl LoadSource for Load {
    fn load<'a>(&'a self, _q: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>> {
        let v = *self.0.lock();
        async move { Ok(v) }.boxed()
    }
}

fn engine(cfg: &RemediationConfig, load: Arc<Load>) -> Remediator {
    let admin = deepwatch_core::api::admin::GatewayAdmin::new(
        &cfg.gateway.url,
        &cfg.gateway.token,
        Duration::from_secs(5),
    )
    .unwrap();
    let deps = Deps {
        admin: Arc::new(admin),
        load: Some(load),
        scaling: ScalingRules::from(&cfg.scaling),
    };
    let actions = remediate::build_actions(cfg, &deps).unwrap();
    Remediator::new(cfg, actions, TokioClock::shared()).unwrap()
}

fn alert(name: &str, fp: &str, status: AlertStatus, labels: &[(&str, &str)]) -> Alert {
    let mut a = Alert {
        status,
        fingerprint: fp.into(),
        starts_at: "2026-11-23T06:40:00Z".into(),
        ..Alert::default()
    };
    a.labels.insert("alertname".into(), name.into());
    for (k, v) in labels {
        a.labels.insert(k.to_string(), v.to_string());
    }
    a.annotations.insert("summary".into(), "model deepseek-chat has no healthy upstream".into());
    a
}

fn outcomes(r: &[remediate::engine::ActionReport]) -> Vec<(String, &'static str)> {
    r.iter().map(|r| (r.action.clone(), r.outcome)).collect()
}

#[tokio::test]
async fn failover_checks_the_standby_pool_fails_over_and_fails_back_on_resolve() {
    let gw = MockGateway::start(vec![
        pool("primary", &[("http://10.0.0.1:8000", false)]),
        pool("standby", &[("http://10.0.1.1:8000", true)]),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &gw);
    let e = engine(&cfg, Arc::new(Load(parking_lot::Mutex::new(None))));

    let r = e.handle(&alert("ModelUnavailable", "a", AlertStatus::Firing, &[])).await;
    assert_eq!(outcomes(&r), vec![("failover_to_standby".into(), "ok")], "{r:?}");
    let calls = gw.calls("POST", "/admin/failover");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["pool"], "standby");
    assert!(calls[0]["reason"].as_str().unwrap().contains("ModelUnavailable"));

    // A second P1 alert while failed over: precondition, no second call.
    let r = e.handle(&alert("ModelUnavailable", "b", AlertStatus::Firing, &[])).await;
    assert_eq!(r[0].outcome, "skipped_precondition");
    assert!(r[0].detail.contains("already failed over"), "{}", r[0].detail);
    assert_eq!(gw.calls("POST", "/admin/failover").len(), 1);

    // The first alert resolves: the policy reverts (DELETE /admin/failover), the second's
    // resolution has nothing to undo.
    let r = e.handle(&alert("ModelUnavailable", "a", AlertStatus::Resolved, &[])).await;
    assert_eq!(outcomes(&r), vec![("failover_to_standby".into(), "reverted")]);
    let r = e.handle(&alert("ModelUnavailable", "b", AlertStatus::Resolved, &[])).await;
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(gw.calls("DELETE", "/admin/failover").len(), 1);

    // The audit log: intent before result for the run and the revert, and the skip.
    let records = e.audit().read_all().unwrap();
    let summary: Vec<String> = records
        .iter()
        .map(|r| format!("{:?}/{:?}/{}", r.record, r.op, r.outcome.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        summary,
        vec![
            "Intent/Run/",
            "Result/Run/ok",
            "Skipped/Run/skipped_precondition",
            "Intent/Revert/",
            "Result/Revert/reverted"
        ]
    );
    assert!(records[0]
        .plan
        .as_ref()
        .unwrap()
        .summary
        .contains("fail over all traffic to pool standby"));
}

#[tokio::test]
async fn failover_refuses_a_standby_without_healthy_upstreams_and_a_wrong_token() {
    let gw = MockGateway::start(vec![
        pool("primary", &[("http://10.0.0.1:8000", false)]),
        pool("standby", &[("http://10.0.1.1:8000", false)]),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &gw);
    let e = engine(&cfg, Arc::new(Load(parking_lot::Mutex::new(None))));
    let r = e.handle(&alert("ModelUnavailable", "a", AlertStatus::Firing, &[])).await;
    assert_eq!(r[0].outcome, "skipped_precondition");
    assert!(r[0].detail.contains("no healthy upstream"), "{}", r[0].detail);

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &gw);
    cfg.gateway.token = "wrong".into();
    let e = engine(&cfg, Arc::new(Load(parking_lot::Mutex::new(None))));
    let r = e.handle(&alert("ModelUnavailable", "a", AlertStatus::Firing, &[])).await;
    assert_eq!(r[0].outcome, "failed");
    assert!(r[0].detail.contains("401") && r[0].detail.contains("unauthorized"), "{}", r[0].detail);
    assert!(gw.calls("POST", "/admin/failover").is_empty());
}

#[tokio::test]
async fn performance_drop_scales_out_by_load_then_degrades_when_spares_run_out() {
    let gw = MockGateway::start(vec![
        pool(
            "primary",
            &[
                ("http://10.0.0.1:8000", true),
                ("http://10.0.0.2:8000", true),
                ("http://10.0.0.6:8000", true),
            ],
        ),
        pool("standby", &[]),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &gw);
    let load = Arc::new(Load(parking_lot::Mutex::new(Some(1.2))));
    let e = engine(&cfg, load.clone());

    // 3 replicas at 120 % = 3.6 replica-loads; at 80 % that needs 5: add two spares.
    let r = e.handle(&alert("PerformanceDrop", "a", AlertStatus::Firing, &[])).await;
    assert_eq!(outcomes(&r), vec![("scale_primary".into(), "ok"), ("degrade_free".into(), "ok")]);
    let added: Vec<_> = gw
        .calls("POST", "/admin/pools/primary/upstreams")
        .iter()
        .map(|b| b["url"].clone())
        .collect();
    assert_eq!(added, vec![json!("http://10.0.0.3:8000"), json!("http://10.0.0.4:8000")]);
    let degrade = gw.calls("PUT", "/admin/degrade");
    assert_eq!(
        degrade[0],
        json!({"max_tokens_cap": 256, "rate_limit": {"tenants": ["free"], "requests_per_second": 1.0}})
    );

    // Load within the target band: no scale-out; degrade already in force.
    *load.0.lock() = Some(0.7);
    let r = e.handle(&alert("PerformanceDrop", "b", AlertStatus::Firing, &[])).await;
    assert_eq!(r[0].outcome, "skipped_precondition");
    assert!(r[0].detail.contains("needs no more than 5 replicas"), "{}", r[0].detail);
    assert!(r[1].detail.contains("already degraded"), "{}", r[1].detail);

    // Overloaded again: one spare left, it is added; then none are left.
    *load.0.lock() = Some(2.0);
    let r = e.handle(&alert("PerformanceDrop", "c", AlertStatus::Firing, &[])).await;
    assert_eq!(r[0].outcome, "ok", "{r:?}");
    let r = e.handle(&alert("PerformanceDrop", "d", AlertStatus::Firing, &[])).await;
    assert_eq!(r[0].outcome, "skipped_precondition");
    assert!(r[0].detail.contains("no spare upstream left"), "{}", r[0].detail);
    assert_eq!(gw.calls("POST", "/admin/pools/primary/upstreams").len(), 3);
    assert_eq!(e.counter().get(&["scale_primary", "ok"]), 2.0);
}

#[tokio::test]
async fn a_failing_canary_is_rolled_back_only_while_its_rollout_runs() {
    let gw = MockGateway::start(vec![
        pool("blue", &[("http://b:1", true)]),
        pool("green", &[("http://g:1", true)]),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &gw);
    let e = engine(&cfg, Arc::new(Load(parking_lot::Mutex::new(None))));
    let r = e.handle(&alert("CanaryFailing", "a", AlertStatus::Firing, &[("pool", "green")])).await;
    assert_eq!(r[0].outcome, "skipped_precondition");
    assert!(r[0].detail.contains("no rollout is running"));

    gw.start_rollout("green", "blue");
    // An alert about another pool does not roll back this rollout.
    let r = e.handle(&alert("CanaryFailing", "b", AlertStatus::Firing, &[("pool", "blue")])).await;
    assert_eq!(r[0].outcome, "skipped_precondition");
    let r = e.handle(&alert("CanaryFailing", "c", AlertStatus::Firing, &[("pool", "green")])).await;
    assert_eq!(r[0].outcome, "ok", "{r:?}");
    assert!(r[0].detail.contains("rolled_back"), "{}", r[0].detail);
    assert_eq!(gw.calls("POST", "/admin/rollouts/rollback").len(), 1);
}

#[tokio::test]
async fn an_unreachable_gateway_fails_the_action_without_an_intent() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RemediationConfig {
        state_dir: dir.path().display().to_string(),
        ..RemediationConfig::default()
    };
    cfg.gateway.url = format!("http://{}", deepwatch_testkit::free_addr());
    let e = {
        let admin = deepwatch_core::api::admin::GatewayAdmin::new(
            &cfg.gateway.url,
            "",
            Duration::from_secs(2),
        )
        .unwrap();
        let deps = Deps { admin: Arc::new(admin), load: None, scaling: ScalingRules::default() };
        Remediator::new(&cfg, remediate::build_actions(&cfg, &deps).unwrap(), TokioClock::shared())
            .unwrap()
    };
    // The default config maps ModelUnavailable to failover_to_standby.
    let r = e.handle(&alert("ModelUnavailable", "a", AlertStatus::Firing, &[])).await;
    assert_eq!(r[0].outcome, "failed");
    assert!(r[0].detail.contains("precondition check failed"), "{}", r[0].detail);
    let records = e.audit().read_all().unwrap();
    assert!(records.iter().all(|r| r.record != remediate::audit::RecordKind::Intent));
}
