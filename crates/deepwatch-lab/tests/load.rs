//! The load generator against a real simulator on loopback: counts, bounds, percentiles,
//! tokens from `usage`, goodput against SLOs, errors by class and the JSON document.

use crate::support::*;
use deepwatch_lab::load::{self, Dist, Endpoint, LoadOptions, Mode, Profile, Silent, Slo};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn options(sim: &deepwatch_lab::sim::SimHandle) -> LoadOptions {
    LoadOptions {
        target: sim.url(),
        model: "sim-model".into(),
        mode: Mode::Open { rate: 400.0, profile: Profile::Constant },
        max_requests: 60,
        duration: Duration::from_secs(10),
        prompt_tokens: Dist::Fixed { value: 40 },
        output_tokens: Dist::Fixed { value: 8 },
        timeout: Duration::from_secs(10),
        ..LoadOptions::default()
    }
}

async fn run(options: LoadOptions) -> load::Report {
    load::run(options, Arc::new(Silent)).await.unwrap()
}

#[tokio::test]
async fn measures_every_request_with_sane_percentiles_and_usage_tokens() {
    let sim = start_sim(|c| {
        c.ttft_base = std::time::Duration::from_millis(20);
        c.tpot_base = std::time::Duration::from_millis(3);
    })
    .await;
    let report = run(options(&sim)).await;
    let s = &report.summary;
    assert_eq!((s.sent, s.succeeded, s.failed), (60, 60, 0), "{}", s.table());
    assert_eq!(s.output_tokens, 60 * 8, "tokens come from usage");
    assert_eq!(s.input_tokens, 60 * (40 + 4), "prompt tokens from usage (4 template tokens)");
    let ttft = s.ttft_ms.as_ref().unwrap();
    let tpot = s.tpot_ms.as_ref().unwrap();
    let itl = s.itl_ms.as_ref().unwrap();
    let e2e = s.e2e_ms.as_ref().unwrap();
    assert!(ttft.min >= 20.0, "TTFT includes the modelled 20 ms: {ttft:?}");
    assert!(tpot.p50 >= 2.5 && tpot.p50 < 50.0, "TPOT near the modelled 3 ms: {tpot:?}");
    assert_eq!(itl.count, 60 * 7, "one gap between each pair of the 8 content chunks");
    for st in [ttft, tpot, itl, e2e] {
        assert!(st.min <= st.p50 && st.p50 <= st.p90 && st.p90 <= st.p99, "{st:?}");
        assert!(st.p99 <= st.p999 && st.p999 <= st.max, "{st:?}");
    }
    assert!(e2e.p50 >= ttft.p50 + 7.0 * 2.5, "e2e covers decode: {e2e:?} {ttft:?}");
    assert!(s.goodput.is_none());
    for r in &report.requests {
        assert_eq!(
            (r.status, r.completion_tokens, r.tokens_from_usage),
            (Some(200), Some(8), true)
        );
        assert_eq!(r.itl_secs.len(), 7);
        assert!(r.ttft_secs.unwrap() <= r.e2e_secs);
    }
    assert!(s.table().contains("TTFT"));
}

#[tokio::test]
async fn goodput_counts_requests_meeting_every_slo() {
    // TTFT = 10 ms + 1 ms per prompt token: prompts of 4..=200 tokens straddle a 100 ms SLO.
    let sim = start_sim(|c| {
        c.ttft_base = std::time::Duration::from_millis(10);
        c.prefill_us_per_token = 1000;
    })
    .await;
    let mut o = options(&sim);
    o.prompt_tokens = Dist::Uniform { min: 4, max: 200 };
    o.slo = Slo { ttft_ms: Some(100.0), tpot_ms: None, e2e_ms: Some(10_000.0) };
    let report = run(o).await;
    let g = report.summary.goodput.clone().unwrap();
    let expected =
        report.requests.iter().filter(|r| r.ok() && r.ttft_secs.unwrap() * 1000.0 <= 100.0).count()
            as u64;
    assert_eq!(g.good_requests, expected);
    assert!(g.good_requests > 5 && g.good_requests < 55, "some meet it, some not: {g:?}");
    let long_prompts_good =
        report.requests.iter().filter(|r| r.prompt_tokens.unwrap() > 150).any(|r| r.good);
    assert!(!long_prompts_good, "prompts over 150 tokens cannot meet a 100 ms TTFT");
    let rate = g.good_requests as f64 / report.summary.duration_secs;
    assert!((g.requests_per_second - rate).abs() < 1e-9);
    assert!(report.summary.table().contains("goodput (ttft<=100ms, e2e<=10000ms)"));
}

#[tokio::test]
async fn count_and_duration_bounds_hold() {
    let sim = start_sim(|_| {}).await;
    let mut o = options(&sim);
    o.max_requests = 25;
    let report = run(o).await;
    assert_eq!(report.summary.sent, 25, "count bound");

    let mut o = options(&sim);
    o.mode = Mode::Open { rate: 100.0, profile: Profile::Constant };
    o.max_requests = 100_000;
    o.duration = Duration::from_millis(500);
    let report = run(o).await;
    let sent = report.summary.sent;
    assert!((20..=90).contains(&sent), "about 50 arrivals in 0.5 s at 100/s, got {sent}");
    assert!(
        report.requests.iter().all(|r| r.start_secs < 0.55),
        "no request starts after the bound"
    );

    let mut o = options(&sim);
    o.mode = Mode::Closed { concurrency: 3 };
    o.max_requests = 31;
    let report = run(o).await;
    assert_eq!(report.summary.sent, 31, "closed loop stops at the count bound too");
}

#[tokio::test]
async fn closed_loop_keeps_concurrency_requests_in_flight() {
    let sim = start_sim(|c| c.tpot_base = std::time::Duration::from_millis(5)).await;
    let mut o = options(&sim);
    o.mode = Mode::Closed { concurrency: 4 };
    o.max_requests = 1000;
    o.duration = Duration::from_millis(600);
    o.output_tokens = Dist::Fixed { value: 20 };
    let engine = sim.engine.clone();
    let watcher = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..40 {
            peak = peak.max(engine.gauges().running);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peak
    });
    let report = run(o).await;
    assert_eq!(watcher.await.unwrap(), 4, "exactly the concurrency is in flight");
    // Each request takes ~100 ms: 4 workers over 0.6 s make roughly 24, and stop there.
    assert!((4..=40).contains(&report.summary.sent), "{}", report.summary.sent);
}

#[tokio::test]
async fn errors_are_classified() {
    let sim = start_sim(|_| {}).await;
    put_faults(&sim, json!({"error_rate": 1.0, "error_status": 503})).await;
    let report = run(options(&sim)).await;
    assert_eq!(report.summary.failed, 60);
    assert_eq!(report.summary.errors.get("http_503"), Some(&60));
    assert!(report.summary.ttft_ms.is_none());

    put_faults(&sim, json!({"error_rate": 0.0, "cut_after_tokens": 2})).await;
    let report = run(options(&sim)).await;
    assert_eq!(report.summary.errors.get("incomplete"), Some(&60), "{:?}", report.summary.errors);

    reset(&sim).await;
    put_faults(&sim, json!({"down": true})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut o = options(&sim);
    o.max_requests = 5;
    let report = run(o).await;
    assert_eq!(report.summary.errors.get("connect"), Some(&5), "{:?}", report.summary.errors);

    reset(&sim).await;
    put_faults(&sim, json!({"hang_before_first_token": true})).await;
    let mut o = options(&sim);
    o.max_requests = 3;
    o.timeout = Duration::from_millis(300);
    let report = run(o).await;
    assert_eq!(report.summary.errors.get("timeout"), Some(&3), "{:?}", report.summary.errors);
}

#[tokio::test]
async fn non_streaming_and_completions_endpoints() {
    let sim = start_sim(|c| c.reasoning = true).await;
    let mut o = options(&sim);
    o.stream = false;
    o.max_requests = 10;
    let report = run(o).await;
    assert_eq!(report.summary.succeeded, 10);
    assert!(report.summary.tpot_ms.is_none(), "no TPOT without a stream");
    assert_eq!(report.summary.reasoning_tokens, 10 * 4);
    for r in &report.requests {
        assert!(r.ttft_secs.unwrap() <= r.e2e_secs);
    }
    let mut o = options(&sim);
    o.endpoint = Endpoint::Completions;
    o.max_requests = 10;
    let report = run(o).await;
    assert_eq!(report.summary.succeeded, 10);
    assert_eq!(report.summary.output_tokens, 80);
    assert_eq!(report.summary.itl_ms.as_ref().unwrap().count, 70);
}

#[tokio::test]
async fn json_document_has_options_summary_and_every_request() {
    let sim = start_sim(|_| {}).await;
    let mut o = options(&sim);
    o.max_requests = 5;
    o.slo = Slo { ttft_ms: Some(1000.0), tpot_ms: Some(1000.0), e2e_ms: None };
    let report = run(o).await;
    let doc: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(doc["options"]["model"], "sim-model");
    assert_eq!(doc["options"]["duration_secs"], 10.0);
    assert_eq!(doc["options"]["mode"]["kind"], "open");
    assert!(doc["options"].get("api_key").is_none(), "secrets stay out of the report");
    assert!(doc["started_unix_secs"].as_f64().unwrap() > 1.6e9);
    let summary = &doc["summary"];
    for key in [
        "sent",
        "succeeded",
        "failed",
        "errors",
        "duration_secs",
        "request_throughput",
        "output_token_throughput",
        "ttft_ms",
        "tpot_ms",
        "itl_ms",
        "e2e_ms",
        "goodput",
    ] {
        assert!(summary.get(key).is_some(), "summary.{key} missing: {summary}");
    }
    for key in ["p50", "p90", "p99", "p999", "mean", "max"] {
        assert!(summary["ttft_ms"][key].is_f64(), "ttft_ms.{key}");
    }
    assert_eq!(summary["goodput"]["good_requests"], 5);
    let requests = doc["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 5);
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r["index"], i as u64);
        for key in [
            "start_secs",
            "status",
            "error",
            "ttft_secs",
            "tpot_secs",
            "e2e_secs",
            "itl_secs",
            "prompt_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "good",
        ] {
            assert!(r.get(key).is_some(), "request.{key} missing: {r}");
        }
        assert_eq!(r["good"], true);
    }
}
