//! Chaos against a real simulator (state read back through `GET /admin/faults`), the gateway
//! fault client against a stand-in speaking the documented gateway admin contract, and the named
//! scenarios with load running through them.

use crate::support::*;
use deepwatch_core::api::admin::FaultRule;
use deepwatch_lab::chaos::scenario::{Scenario, ScenarioRun};
use deepwatch_lab::chaos::{GatewayFaults, SimAdmin};
use deepwatch_lab::load::{Dist, LoadOptions, Mode, Profile};
use serde_json::{json, Map, Value};
use std::future::pending;
use std::time::Duration;

fn patch(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn every_sim_fault_is_set_and_read_back() {
    let sim = start_sim(|_| {}).await;
    let admin = SimAdmin::new(&sim.admin_url(), TOKEN).unwrap();
    let cases = [
        json!({"ttft_added_ms": 250, "per_token_added_ms": 20}),
        json!({"error_rate": 0.25, "error_status": 429}),
        json!({"cut_after_tokens": 7}),
        json!({"hang_before_first_token": true}),
        json!({"leak_mb_per_min": 12.5}),
        json!({"down": true}),
    ];
    for case in cases {
        admin.inject(&patch(case.clone()), None, pending()).await.unwrap();
        let now = serde_json::to_value(admin.faults().await.unwrap()).unwrap();
        for (k, v) in case.as_object().unwrap() {
            assert_eq!(&now[k], v, "{k} after {case}");
        }
    }
    let healthy = admin.reset().await.unwrap();
    assert!(!healthy.any(), "{healthy:?}");
    assert!(!admin.faults().await.unwrap().any());

    let wrong = SimAdmin::new(&sim.admin_url(), "nope").unwrap();
    let err = wrong.faults().await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    assert!(SimAdmin::new("ftp://x", TOKEN).is_err());
}

#[tokio::test]
async fn hold_reverts_only_the_fields_it_set() {
    let sim = start_sim(|_| {}).await;
    let admin = SimAdmin::new(&sim.admin_url(), TOKEN).unwrap();
    admin.set(&patch(json!({"ttft_added_ms": 100}))).await.unwrap();
    let errors = patch(json!({"error_rate": 1.0, "error_status": 503}));
    let task = {
        let admin = admin.clone();
        tokio::spawn(async move {
            admin.inject(&errors, Some(Duration::from_millis(300)), pending()).await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = admin.faults().await.unwrap();
    assert_eq!((during.error_rate, during.error_status), (1.0, 503));
    let after = task.await.unwrap();
    assert_eq!((after.error_rate, after.error_status), (0.0, 500), "errors reverted");
    assert_eq!(after.ttft_added_ms, 100, "the fault set before is kept");
    assert_eq!(admin.faults().await.unwrap(), after);
}

#[tokio::test]
async fn interrupt_ends_the_hold_and_still_reverts() {
    let sim = start_sim(|_| {}).await;
    let admin = SimAdmin::new(&sim.admin_url(), TOKEN).unwrap();
    let interrupt = tokio::time::sleep(Duration::from_millis(100));
    let started = tokio::time::Instant::now();
    let after = admin
        .inject(&patch(json!({"down": true})), Some(Duration::from_secs(60)), interrupt)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!after.down);
    assert!(!admin.faults().await.unwrap().down);
}

/// A stand-in for the gateway's fault endpoints, as docs/gateway-admin-api.md specifies them
/// (the gateway crate is not a dependency of the lab).
async fn fake_gateway() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use std::sync::{Arc, Mutex};
    let rules: Arc<Mutex<Value>> = Arc::new(Mutex::new(json!([])));
    let authorized = |h: &HeaderMap| h.get("authorization").is_some_and(|v| v == "Bearer gw-token");
    let (r1, r2, r3) = (rules.clone(), rules.clone(), rules.clone());
    let app = axum::Router::new().route(
        "/admin/faults",
        get(move |h: HeaderMap| async move {
            if !authorized(&h) {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"error": {"code": "unauthorized"}})),
                );
            }
            (
                StatusCode::OK,
                axum::Json(json!({"enabled": true, "rules": r1.lock().unwrap().clone()})),
            )
        })
        .put(move |h: HeaderMap, axum::Json(body): axum::Json<Value>| async move {
            if !authorized(&h) {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"error": {"code": "unauthorized"}})),
                );
            }
            *r2.lock().unwrap() = body;
            (
                StatusCode::OK,
                axum::Json(json!({"enabled": true, "rules": r2.lock().unwrap().clone()})),
            )
        })
        .delete(move |h: HeaderMap| async move {
            if !authorized(&h) {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"error": {"code": "unauthorized"}})),
                );
            }
            *r3.lock().unwrap() = json!([]);
            (StatusCode::OK, axum::Json(json!({"enabled": true, "rules": []})))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (url, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

#[tokio::test]
async fn gateway_faults_merge_by_endpoint_hold_and_clear() {
    let (url, _server) = fake_gateway().await;
    let gw = GatewayFaults::new(&url, "gw-token").unwrap();
    let chat = FaultRule {
        endpoint: "/v1/chat/completions".into(),
        latency: std::time::Duration::from_millis(200),
        error_rate: 0.1,
        error_status: 503,
        stream_cut_after_chunks: Some(5),
    };
    gw.inject(chat.clone(), None, pending()).await.unwrap();
    let completions =
        FaultRule { endpoint: "/v1/completions".into(), error_rate: 1.0, ..FaultRule::default() };
    let after =
        gw.inject(completions.clone(), Some(Duration::from_millis(150)), pending()).await.unwrap();
    assert_eq!(after.rules, vec![chat.clone()], "the held rule is removed, the other kept");
    let replaced = FaultRule { latency: std::time::Duration::from_millis(50), ..chat.clone() };
    let now = gw.inject(replaced.clone(), None, pending()).await.unwrap();
    assert_eq!(now.rules, vec![replaced], "one rule per endpoint");
    let cleared = gw.clear().await.unwrap();
    assert!(cleared.rules.is_empty());
    assert!(gw.faults().await.unwrap().rules.is_empty());
    let denied = GatewayFaults::new(&url, "bad").unwrap().faults().await.unwrap_err();
    assert!(denied.to_string().contains("401"), "{denied}");
}

fn scenario_load(sim: &deepwatch_lab::sim::SimHandle, rate: f64) -> LoadOptions {
    LoadOptions {
        target: sim.url(),
        model: "sim-model".into(),
        mode: Mode::Open { rate, profile: Profile::Constant },
        max_requests: 100_000,
        prompt_tokens: Dist::Fixed { value: 8 },
        output_tokens: Dist::Fixed { value: 4 },
        timeout: Duration::from_secs(5),
        ..LoadOptions::default()
    }
}

#[tokio::test]
async fn outage_scenario_fails_requests_only_while_it_holds() {
    let sim = start_sim(|_| {}).await;
    let run = ScenarioRun {
        scenario: Scenario::Outage,
        sims: vec![SimAdmin::new(&sim.admin_url(), TOKEN).unwrap()],
        hold: Duration::from_millis(600),
        lead: Duration::from_millis(600),
        load: Some(scenario_load(&sim, 100.0)),
    };
    let outcome = run.run(pending()).await.unwrap();
    assert!(outcome.during[0].down);
    assert!(!outcome.after[0].down);
    let report = outcome.load.unwrap();
    let failed_in = |from: f64, to: f64| {
        report
            .requests
            .iter()
            .filter(|r| r.start_secs >= from && r.start_secs < to && !r.ok())
            .count()
    };
    assert_eq!(failed_in(0.0, 0.5), 0, "healthy before the fault");
    assert!(failed_in(0.7, 1.15) > 10, "refused while down: {:?}", report.summary.errors);
    assert!(report.summary.errors.contains_key("connect"), "{:?}", report.summary.errors);
    assert_eq!(failed_in(1.45, 1.8), 0, "healthy after the revert");
}

#[tokio::test]
async fn latency_error_and_leak_scenarios_set_and_revert_their_fields() {
    let sim = start_sim(|_| {}).await;
    let admin = SimAdmin::new(&sim.admin_url(), TOKEN).unwrap();
    let base = |scenario| ScenarioRun {
        scenario,
        sims: vec![admin.clone()],
        hold: Duration::from_millis(300),
        lead: Duration::from_millis(100),
        load: None,
    };
    let spike = base(Scenario::LatencySpike { ttft_ms: 400, per_token_ms: 30 })
        .run(pending())
        .await
        .unwrap();
    assert_eq!((spike.during[0].ttft_added_ms, spike.during[0].per_token_added_ms), (400, 30));
    assert_eq!((spike.after[0].ttft_added_ms, spike.after[0].per_token_added_ms), (0, 0));

    let burst = base(Scenario::ErrorBurst { rate: 0.5, status: 502 }).run(pending()).await.unwrap();
    assert_eq!((burst.during[0].error_rate, burst.during[0].error_status), (0.5, 502));
    assert_eq!(burst.after[0].error_rate, 0.0);

    let leak = base(Scenario::MemoryLeak { mb_per_min: 600.0, release: true })
        .run(pending())
        .await
        .unwrap();
    assert_eq!(leak.during[0].leak_mb_per_min, 600.0);
    assert_eq!(leak.after[0].leak_mb_per_min, 0.0);
    assert_eq!(sim.engine.leak.held_bytes(), 0, "release frees the leaked memory");
}

#[tokio::test]
async fn surge_scenario_multiplies_the_arrival_rate_during_the_hold() {
    let sim = start_sim(|_| {}).await;
    let run = ScenarioRun {
        scenario: Scenario::Surge { factor: 3.0 },
        sims: Vec::new(),
        hold: Duration::from_secs(1),
        lead: Duration::from_secs(1),
        load: Some(scenario_load(&sim, 60.0)),
    };
    let report = run.run(pending()).await.unwrap().load.unwrap();
    let started_in = |from: f64, to: f64| {
        report.requests.iter().filter(|r| r.start_secs >= from && r.start_secs < to).count() as f64
    };
    let before = started_in(0.0, 1.0);
    let during = started_in(1.0, 2.0);
    assert!(before > 30.0 && during > 2.0 * before, "before {before}, during {during}");
    assert_eq!(report.summary.failed, 0);

    let no_target = ScenarioRun {
        scenario: Scenario::Surge { factor: 3.0 },
        sims: Vec::new(),
        hold: Duration::from_millis(10),
        lead: Duration::from_millis(10),
        load: None,
    };
    assert!(no_target.run(pending()).await.unwrap_err().to_string().contains("load target"));
}

#[test]
fn fault_patch_serializes_only_what_it_sets() {
    use deepwatch_lab::chaos::FaultPatch;
    let p =
        FaultPatch { error_rate: Some(0.5), cut_after_tokens: Some(None), ..FaultPatch::default() };
    assert_eq!(Value::Object(p.to_map()), json!({"error_rate": 0.5, "cut_after_tokens": null}));
    assert!(FaultPatch::default().to_map().is_empty());
}
