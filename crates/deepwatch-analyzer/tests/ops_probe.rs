//! Golden-prompt probes against a small server speaking the deepwatch gateway's pinning contract
//! (pin headers honoured for one key, `x-deepwatch-pool` / `x-deepwatch-model-version` on every
//! answer): one model version answers correctly, one answers wrong, one errors, and answers from
//! the wrong pool or version count as unavailable; accuracy (of answered probes only), results
//! and latency are exported per model_version, and requests carry the configured model, pin,
//! headers, key and limits. Probes that time out count as unavailable, never as wrong.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use deepwatch_analyzer::probe::{Outcome, ProbeResult, Prober};
use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::probes::{Check, GoldenPrompt, ProbeTarget, ProbesConfig};
use deepwatch_core::expo::{Format, MetricSink};
use deepwatch_core::metrics::Encode;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::sync::Arc;

type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

const PIN_KEY: &str = "probe-key";

/// The gateway's pools: name, model_version.
const POOLS: &[(&str, &str)] = &[("blue", "v1"), ("green", "v2"), ("gray", "v3")];

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let err = json!({"error": {"message": message, "type": "api_error", "code": code}});
    (status, Json(err)).into_response()
}

/// Routes like the gateway: a pin header (only with `PIN_KEY`) picks the pool, else blue (the
/// 90 % of a split). blue answers right, green wrong, gray has no healthy upstream. The pool
/// "sticky" stands for a broken router: it ignores its pin and answers from blue.
async fn chat(State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    seen.lock().push((headers.clone(), body.clone()));
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (pool_pin, version_pin) = (header("x-deepwatch-pool"), header("x-deepwatch-model-version"));
    let pinned = pool_pin.is_some() || version_pin.is_some();
    if pinned && header("authorization").as_deref() != Some(&format!("Bearer {PIN_KEY}")) {
        let message = "x-deepwatch-pool is honoured only for API keys listed in gateway.pin_keys";
        return error(StatusCode::FORBIDDEN, "pin_not_allowed", message);
    }
    let pool = match (pool_pin.as_deref(), version_pin.as_deref()) {
        (Some("sticky"), _) | (None, None) => "blue",
        (Some(p), _) => match POOLS.iter().find(|(name, _)| *name == p) {
            Some((name, _)) => name,
            None => return error(StatusCode::NOT_FOUND, "pool_not_found", "unknown pool"),
        },
        (None, Some(v)) => match POOLS.iter().find(|(_, version)| *version == v) {
            Some((name, _)) => name,
            None => return error(StatusCode::NOT_FOUND, "model_version_not_found", "no pool"),
        },
    };
    let version = POOLS.iter().find(|(name, _)| *name == pool).map(|(_, v)| *v).unwrap_or("");
    let question = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let answer = match (pool, question.contains("17 + 25")) {
        ("blue", true) => "42",
        ("blue", false) => "The capital of France is Paris.",
        ("green", true) => "41",
        ("green", false) => "I think it is Lyon.",
        _ => {
            let message = format!("pinned pool {pool:?} has no healthy upstream");
            return error(StatusCode::SERVICE_UNAVAILABLE, "pool_unavailable", &message);
        }
    };
    let served = [
        ("x-deepwatch-pool", pool.to_string()),
        ("x-deepwatch-model-version", version.to_string()),
    ];
    (served, Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    })))
    .into_response()
}

async fn gateway() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn prompts() -> Vec<GoldenPrompt> {
    vec![
        GoldenPrompt {
            name: "arithmetic".into(),
            prompt: "What is 17 + 25? Answer with the number only.".into(),
            check: Check::Exact,
            expect: "42".into(),
            ..GoldenPrompt::default()
        },
        GoldenPrompt {
            name: "capital".into(),
            system: "Answer briefly.".into(),
            prompt: "What is the capital of France?".into(),
            check: Check::Regex,
            expect: r"(?i)\bparis\b".into(),
            ..GoldenPrompt::default()
        },
    ]
}

/// A target pinned to `model_version`, or to `pool` when one is given.
fn target(version: &str, pool: &str) -> ProbeTarget {
    ProbeTarget {
        model: "deepseek-chat".into(),
        model_version: version.into(),
        pool: pool.into(),
        headers: [("x-probe".to_string(), "golden".to_string())].into_iter().collect(),
        prompts: prompts(),
    }
}

fn outcome(results: &[ProbeResult], version: &str, probe: &str) -> Outcome {
    results.iter().find(|r| r.model_version == version && r.probe == probe).unwrap().outcome
}

#[tokio::test]
async fn accuracy_and_latency_are_exported_per_pinned_model_version() {
    let (url, seen) = gateway().await;
    let config = ProbesConfig {
        enabled: true,
        gateway_url: url,
        api_key: PIN_KEY.into(),
        max_tokens: 16,
        targets: vec![
            target("v1", ""),
            target("v2", ""),
            target("v3", ""),
            // Pinned to a pool the router ignores: blue's right answers must not count.
            target("v4", "sticky"),
            // Pinned to blue, but the config says blue serves v5: the gateway says v1.
            target("v5", "blue"),
        ],
        ..ProbesConfig::default()
    };
    let prober = Prober::new(&config, TokioClock::shared()).unwrap();
    let results = prober.round().await;
    assert_eq!(outcome(&results, "v1", "arithmetic"), Outcome::Correct);
    assert_eq!(outcome(&results, "v1", "capital"), Outcome::Correct);
    assert_eq!(outcome(&results, "v2", "arithmetic"), Outcome::Wrong);
    assert_eq!(outcome(&results, "v2", "capital"), Outcome::Wrong);
    for r in &results {
        let want = match r.model_version.as_str() {
            "v1" | "v4" | "v5" => ("blue", "v1"),
            "v2" => ("green", "v2"),
            _ => ("", ""),
        };
        assert_eq!((r.served_by.as_str(), r.served_version.as_str()), want, "{r:?}");
    }
    let v3 = results.iter().find(|r| r.model_version == "v3").unwrap();
    assert_eq!(v3.outcome, Outcome::Unavailable);
    assert!(v3.detail.contains("503") && v3.detail.contains("\"gray\" has no healthy"), "{v3:?}");
    for r in results.iter().filter(|r| r.model_version == "v4") {
        assert_eq!(r.outcome, Outcome::Unavailable, "{r:?}");
        assert!(
            r.detail.contains("answered by pool \"blue\", not the pinned pool \"sticky\""),
            "{r:?}"
        );
    }
    for r in results.iter().filter(|r| r.model_version == "v5") {
        assert_eq!(r.outcome, Outcome::Unavailable, "{r:?}");
        assert!(
            r.detail.contains("answered by model_version \"v1\" (pool \"blue\"), not \"v5\""),
            "{r:?}"
        );
    }

    // A second round: counters accumulate, the ratio is the last round's.
    prober.round().await;
    let mut sink = MetricSink::new(Format::Text004);
    prober.encode(&mut sink);
    let text = sink.render();
    for line in [
        "deepwatch_probe_accuracy_ratio{model=\"deepseek-chat\",model_version=\"v1\"} 1",
        "deepwatch_probe_accuracy_ratio{model=\"deepseek-chat\",model_version=\"v2\"} 0",
        "deepwatch_probe_results_total{model=\"deepseek-chat\",model_version=\"v1\",probe=\"arithmetic\",outcome=\"correct\"} 2",
        "deepwatch_probe_results_total{model=\"deepseek-chat\",model_version=\"v2\",probe=\"capital\",outcome=\"wrong\"} 2",
        "deepwatch_probe_results_total{model=\"deepseek-chat\",model_version=\"v3\",probe=\"capital\",outcome=\"unavailable\"} 2",
        "deepwatch_probe_results_total{model=\"deepseek-chat\",model_version=\"v4\",probe=\"arithmetic\",outcome=\"unavailable\"} 2",
        // Latency of answered probes only: 2 rounds x 2 prompts.
        "deepwatch_probe_duration_seconds_count{model=\"deepseek-chat\",model_version=\"v1\"} 4",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    for version in ["v3", "v4", "v5"] {
        // Unanswered (errors, misrouted): neither latency nor accuracy is attributed to them.
        for family in ["deepwatch_probe_duration_seconds_count", "deepwatch_probe_accuracy_ratio"] {
            let misattributed =
                format!("{family}{{model=\"deepseek-chat\",model_version=\"{version}\"}}");
            assert!(!text.contains(&misattributed), "{text}");
        }
    }

    // What the gateway saw: the pin, model, key, extra headers, limits, temperature 0, the
    // system message.
    let seen = seen.lock();
    let pinned = |name: &str, value: &str| {
        seen.iter().filter(|(h, _)| h.get(name).is_some_and(|v| v == value)).count()
    };
    assert_eq!(pinned("x-deepwatch-model-version", "v1"), 4);
    assert_eq!(pinned("x-deepwatch-model-version", "v2"), 4);
    assert_eq!(pinned("x-deepwatch-pool", "sticky"), 4);
    let pool_pinned: Vec<_> = seen
        .iter()
        .filter(|(h, _)| h.get("x-deepwatch-pool").is_some_and(|p| p == "blue"))
        .collect();
    assert_eq!(pool_pinned.len(), 4, "target v5 pins pool blue");
    assert!(pool_pinned.iter().all(|(h, _)| h.get("x-deepwatch-model-version").is_none()));
    let (headers, body) = &seen[0];
    assert_eq!(headers.get("authorization").unwrap(), "Bearer probe-key");
    assert_eq!(headers.get("x-probe").unwrap(), "golden");
    assert_eq!(body["model"], "deepseek-chat");
    assert_eq!(body["max_tokens"], 16);
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["stream"], false);
    let capital = seen.iter().find(|(_, b)| b["messages"][0]["role"] == "system").unwrap();
    assert_eq!(capital.1["messages"][0]["content"], "Answer briefly.");
}

#[tokio::test]
async fn a_key_the_gateway_does_not_trust_makes_every_probe_an_error() {
    let (url, _) = gateway().await;
    let config = ProbesConfig {
        enabled: true,
        gateway_url: url,
        api_key: "tenant-key".into(),
        targets: vec![target("v1", "")],
        ..ProbesConfig::default()
    };
    let results = Prober::new(&config, TokioClock::shared()).unwrap().round().await;
    for r in &results {
        assert_eq!(r.outcome, Outcome::Unavailable, "{r:?}");
        assert!(r.detail.contains("403") && r.detail.contains("gateway.pin_keys"), "{r:?}");
    }
}

#[tokio::test]
async fn without_pinning_no_pin_header_goes_out_and_any_pool_may_answer() {
    let (url, seen) = gateway().await;
    let config = ProbesConfig {
        enabled: true,
        gateway_url: url,
        pin: false,
        targets: vec![target("v2", "")],
        ..ProbesConfig::default()
    };
    let results = Prober::new(&config, TokioClock::shared()).unwrap().round().await;
    // Unpinned, the v2 probe is answered by blue (v1) and scored as v2: what pinning prevents.
    assert!(results.iter().all(|r| r.outcome == Outcome::Correct && r.served_by == "blue"));
    let seen = seen.lock();
    assert!(seen.iter().all(|(h, _)| {
        !h.contains_key("x-deepwatch-pool") && !h.contains_key("x-deepwatch-model-version")
    }));
}

#[tokio::test]
async fn an_unreachable_gateway_counts_unavailable_and_leaves_no_accuracy() {
    let config = ProbesConfig {
        enabled: true,
        gateway_url: format!("http://{}", deepwatch_testkit::free_addr()),
        timeout: std::time::Duration::from_secs(2),
        targets: vec![target("v1", "")],
        ..ProbesConfig::default()
    };
    let prober = Prober::new(&config, TokioClock::shared()).unwrap();
    let results = prober.round().await;
    assert!(results.iter().all(|r| r.outcome == Outcome::Unavailable), "{results:?}");
    let mut sink = MetricSink::new(Format::Text004);
    prober.encode(&mut sink);
    let text = sink.render();
    assert!(!text.contains("deepwatch_probe_accuracy_ratio{"), "{text}");
    assert!(text.contains("outcome=\"unavailable\"} 1"), "{text}");
}

/// A model that answers right but too slowly (a latency fault): its probes time out, count as
/// unavailable, and the accuracy it had before is not lowered; once it answers in time again,
/// accuracy is measured again. What keeps AccuracyDrop quiet during latency-only faults.
#[tokio::test]
async fn probes_that_time_out_are_unavailable_not_wrong() {
    let delay = Arc::new(Mutex::new(std::time::Duration::ZERO));
    let slow = delay.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let slow = slow.clone();
            async move {
                let wait = *slow.lock();
                tokio::time::sleep(wait).await;
                let mut resp =
                    Json(json!({"choices": [{"message": {"content": "4"}}]})).into_response();
                resp.headers_mut().insert("x-deepwatch-pool", "blue".parse().unwrap());
                resp.headers_mut().insert("x-deepwatch-model-version", "v1".parse().unwrap());
                resp
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = ProbesConfig {
        enabled: true,
        gateway_url: url,
        timeout: std::time::Duration::from_secs(1),
        pin: false,
        targets: vec![ProbeTarget {
            model: "deepseek-chat".into(),
            model_version: "v1".into(),
            prompts: vec![GoldenPrompt {
                name: "arithmetic".into(),
                prompt: "2 + 2?".into(),
                check: Check::Exact,
                expect: "4".into(),
                ..GoldenPrompt::default()
            }],
            ..ProbeTarget::default()
        }],
        ..ProbesConfig::default()
    };
    let prober = Prober::new(&config, TokioClock::shared()).unwrap();
    let accuracy = |prober: &Prober| {
        let mut sink = MetricSink::new(Format::Text004);
        prober.encode(&mut sink);
        sink.render()
            .lines()
            .find(|l| l.starts_with("deepwatch_probe_accuracy_ratio{"))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    assert_eq!(prober.round().await[0].outcome, Outcome::Correct);
    assert_eq!(accuracy(&prober).as_deref(), Some("1"));
    *delay.lock() = std::time::Duration::from_millis(1500);
    let slow_round = prober.round().await;
    assert_eq!(slow_round[0].outcome, Outcome::Unavailable, "{slow_round:?}");
    assert_eq!(accuracy(&prober), None, "a timed-out round scores nothing");
    *delay.lock() = std::time::Duration::ZERO;
    assert_eq!(prober.round().await[0].outcome, Outcome::Correct);
    assert_eq!(accuracy(&prober).as_deref(), Some("1"));
}
