//! Rollouts: the step logic under paused time with synthetic samples (a step passes as soon as
//! its samples allow, slow and erroring canaries roll back within seconds, too few samples
//! extend a step), and one rollout driven through the admin API against real upstreams.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use deepwatch_core::clock::SharedClock;
use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::gateway::RolloutConfig;
use deepwatch_gateway::events::EventLog;
use deepwatch_gateway::metrics::labels::{PoolEventIds, PoolIds};
use deepwatch_gateway::metrics::GatewayMetrics;
use deepwatch_gateway::pools::{PoolSetup, Pools};
use deepwatch_gateway::rollout::{RolloutRequest, RolloutStatus, Rollouts, Sample, Verdict};
use std::sync::Arc;
use std::time::Duration;

struct Bench {
    pools: Arc<Pools>,
    rollouts: Arc<Rollouts>,
    events: Arc<EventLog>,
    metrics: Arc<GatewayMetrics>,
}

fn bench() -> Bench {
    let clock: SharedClock = Arc::new(TokioClock::new());
    let metrics = GatewayMetrics::new();
    let events = Arc::new(EventLog::new("", metrics.clone(), clock.clone()).unwrap());
    let mut green = pool("green", &["http://127.0.0.1:9".to_string()]);
    green.weight = 0;
    let setups = [pool("blue", &["http://127.0.0.1:8".to_string()]), green]
        .map(|p| PoolSetup::new(p).unwrap());
    let pools = Arc::new(Pools::new(&setups, metrics.clone(), events.clone(), clock.clone()));
    let rollouts = Rollouts::new(
        RolloutConfig {
            step: std::time::Duration::from_secs(60),
            min_samples: 50,
            ..RolloutConfig::default()
        },
        pools.clone(),
        events.clone(),
        metrics.clone(),
        clock,
    );
    Bench { pools, rollouts, events, metrics }
}

fn feed(b: &Bench, pool: &str, n: usize, ttft: f64, error_every: usize) {
    for i in 0..n {
        let error = error_every > 0 && i % error_every == 0;
        b.rollouts
            .observe(pool, Sample { ttft: Some(ttft), tpot: Some(0.02), error, stream_cut: false });
    }
}

fn weights(b: &Bench) -> (u32, u32) {
    (b.pools.get("blue").unwrap().weight(), b.pools.get("green").unwrap().weight())
}

fn start_green(b: &Bench) {
    b.rollouts.start(RolloutRequest { pool: "green".into(), ..RolloutRequest::default() }).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_healthy_canary_passes_each_step_once_it_has_the_samples() {
    let b = bench();
    start_green(&b);
    for (step, w) in [5u32, 20, 50].into_iter().enumerate() {
        assert_eq!(weights(&b), (100 - w, w), "step {step}");
        assert_eq!(b.metrics.rollout_step.get(&PoolIds { pool: "green" }), (step + 1) as f64);
        feed(&b, "green", 49, 0.20, 0);
        feed(&b, "blue", 60, 0.20, 0);
        // One canary sample short: the step waits, whatever the time.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(weights(&b), (100 - w, w), "step {step} passed without its samples");
        feed(&b, "green", 1, 0.20, 0);
        // The next look (once a second) passes the step; no window to wait out.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(weights(&b), (0, 100));
    let done = &b.rollouts.history()[0];
    assert_eq!(done.status, RolloutStatus::Promoted);
    assert_eq!(done.extensions, 0);
    assert!(b.rollouts.current().is_none());
    let kinds: Vec<String> = b.events.last(100).into_iter().map(|e| e.event).collect();
    assert_eq!(kinds, ["start", "step", "step", "step", "promote"]);
    assert_eq!(b.metrics.deploy_events.get(&PoolEventIds { pool: "green", event: "promote" }), 1.0);
    assert_eq!(b.metrics.rollout_step.get(&PoolIds { pool: "green" }), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_canary_is_rolled_back_within_seconds_not_at_a_window_end() {
    let b = bench();
    start_green(&b);
    feed(&b, "blue", 60, 0.20, 0);
    // Ten canary samples, each 2.5 x stable's TTFT: far fewer than min_samples.
    feed(&b, "green", 10, 0.50, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(weights(&b), (100, 0));
    let done = &b.rollouts.history()[0];
    assert_eq!(done.status, RolloutStatus::RolledBack);
    let reason = done.reason.as_deref().unwrap();
    assert!(reason.contains("ttft p95 over 1.25 x 200.0 ms"), "{reason}");
    assert!(reason.contains("10 of 10 canary samples"), "{reason}");
    let analysis = done.last_analysis.as_ref().unwrap();
    assert_eq!(analysis.verdict, Verdict::Fail);
    assert_eq!(analysis.canary.requests, 10);
    assert_eq!(
        b.metrics.deploy_events.get(&PoolEventIds { pool: "green", event: "rollback" }),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn too_few_samples_extend_the_step_and_never_pass_it() {
    let b = bench();
    start_green(&b);
    feed(&b, "green", 10, 0.20, 0);
    feed(&b, "blue", 500, 0.20, 0);
    tokio::time::sleep(Duration::from_secs(61 * 3)).await;
    let cur = b.rollouts.current().unwrap();
    assert_eq!((cur.step_index, cur.weight), (0, 5));
    assert!(cur.extensions >= 2, "{cur:?}");
    assert_eq!(cur.last_analysis.unwrap().verdict, Verdict::NotEnoughSamples);
    // Enough samples now: the next look passes the step.
    feed(&b, "green", 45, 0.20, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(b.rollouts.current().unwrap().weight, 20);
}

#[tokio::test(start_paused = true)]
async fn an_erroring_canary_is_rolled_back_within_seconds() {
    let b = bench();
    start_green(&b);
    feed(&b, "blue", 200, 0.20, 0);
    feed(&b, "green", 60, 0.20, 2);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(weights(&b), (100, 0));
    let done = &b.rollouts.history()[0];
    assert!(done.reason.as_deref().unwrap().contains("error ratio"), "{:?}", done.reason);
}

#[tokio::test(start_paused = true)]
async fn forced_outcomes_and_conflicts() {
    let b = bench();
    start_green(&b);
    let err = b
        .rollouts
        .start(RolloutRequest { pool: "green".into(), ..RolloutRequest::default() })
        .unwrap_err();
    assert_eq!(err.status(), 409);
    let done = b.rollouts.force(true, Some("looks good".into())).unwrap();
    assert_eq!((done.status, done.weight), (RolloutStatus::Promoted, 100));
    assert_eq!(b.rollouts.force(false, None).unwrap_err().status(), 409);
    let err = b
        .rollouts
        .start(RolloutRequest {
            pool: "green".into(),
            steps: Some(vec![5, 1]),
            ..RolloutRequest::default()
        })
        .unwrap_err();
    assert!(err.message.contains("steps: must increase strictly"), "{}", err.message);
}

#[tokio::test]
async fn a_rollout_through_the_admin_api_rolls_back_a_failing_canary() {
    let blue = Upstream::start(Knobs::default()).await;
    let green = Upstream::start(Knobs { fail_status: Some(500), ..Knobs::default() }).await;
    let mut g = pool("green", &[green.url()]);
    g.weight = 0;
    g.health.probe_path = String::new();
    g.health.consecutive_failures = 0;
    g.health.min_requests = 1000;
    let gw = start(config(vec![pool("blue", &[blue.url()]), g])).await;
    let c = client();
    let resp = c
        .post(admin_url(&gw, "/admin/rollouts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"pool": "green", "steps": [50, 100], "step_secs": 30, "min_samples": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!((doc["weight"].as_u64(), doc["stable"].as_str()), (Some(50), Some("blue")));
    for _ in 0..30 {
        // Failed canary attempts are retried on blue: clients never see the errors.
        let resp = c.post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    eventually("rollback", async || {
        let v: serde_json::Value = c
            .get(admin_url(&gw, "/admin/rollouts"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["current"].is_null() && v["history"][0]["status"] == "rolled_back"
    })
    .await;
    let m = metrics(&gw).await;
    assert_eq!(
        sample(&m, "deepwatch_deploy_events_total", &[("pool", "green"), ("event", "rollback")]),
        Some(1.0)
    );
    assert_eq!(sample(&m, "deepwatch_pool_traffic_weight_ratio", &[("pool", "green")]), Some(0.0));
    assert_eq!(sample(&m, "deepwatch_pool_traffic_weight_ratio", &[("pool", "blue")]), Some(1.0));
    let before = green.requests();
    for _ in 0..5 {
        c.post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    }
    assert_eq!(green.requests(), before, "rolled-back canary still gets traffic");
}
