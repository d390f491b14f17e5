//! Golden-prompt probes against a small OpenAI-format server: one model version answers
//! correctly, one answers wrong, one errors; accuracy, results and latency are exported per
//! model_version, and requests carry the configured model, headers, key and limits.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use deepwatch_analyzer::probe::{Outcome, Prober};
use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::probes::{Check, GoldenPrompt, ProbeTarget, ProbesConfig};
use deepwatch_core::expo::{Format, MetricSink};
use deepwatch_core::metrics::Encode;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::sync::Arc;

type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// Answers by the `x-version` header: v1 right, v2 wrong, v3 a 503 error.
async fn chat(State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    seen.lock().push((headers.clone(), body.clone()));
    let version = headers.get("x-version").and_then(|v| v.to_str().ok()).unwrap_or("");
    let question = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let answer = match (version, question.contains("17 + 25")) {
        ("v1", true) => "42",
        ("v1", false) => "The capital of France is Paris.",
        ("v2", true) => "41",
        ("v2", false) => "I think it is Lyon.",
        _ => {
            let err = json!({"error": {"message": "no healthy upstream", "type": "api_error", "code": "unavailable"}});
            return (StatusCode::SERVICE_UNAVAILABLE, Json(err)).into_response();
        }
    };
    let pool = [("x-deepwatch-pool", format!("pool-{version}"))];
    (pool, Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    })))
    .into_response()
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

fn target(version: &str) -> ProbeTarget {
    ProbeTarget {
        model: "deepseek-chat".into(),
        model_version: version.into(),
        headers: [("x-version".to_string(), version.to_string())].into_iter().collect(),
        prompts: prompts(),
    }
}

#[tokio::test]
async fn accuracy_and_latency_are_exported_per_model_version() {
    let seen: Seen = Arc::default();
    let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = ProbesConfig {
        enabled: true,
        gateway_url: url,
        api_key: "probe-key".into(),
        max_tokens: 16,
        targets: vec![target("v1"), target("v2"), target("v3")],
        ..ProbesConfig::default()
    };
    let prober = Prober::new(&config, TokioClock::shared()).unwrap();
    let results = prober.round().await;
    let outcome = |v: &str, p: &str| {
        results.iter().find(|r| r.model_version == v && r.probe == p).map(|r| r.outcome).unwrap()
    };
    assert_eq!(outcome("v1", "arithmetic"), Outcome::Pass);
    assert!(results.iter().filter(|r| r.model_version == "v2").all(|r| r.served_by == "pool-v2"));
    assert_eq!(outcome("v1", "capital"), Outcome::Pass);
    assert_eq!(outcome("v2", "arithmetic"), Outcome::Fail);
    assert_eq!(outcome("v2", "capital"), Outcome::Fail);
    assert_eq!(outcome("v3", "arithmetic"), Outcome::Error);
    let v3 = results.iter().find(|r| r.model_version == "v3").unwrap();
    assert!(
        v3.detail.contains("503") && v3.detail.contains("no healthy upstream"),
        "{}",
        v3.detail
    );

    // A second round: counters accumulate, the ratio is the last round's.
    prober.round().await;
    let mut sink = MetricSink::new(Format::Text004);
    prober.encode(&mut sink);
    let text = sink.render();
    for line in [
        "deepwatch_probe_accuracy_ratio{model=\"deepseek-chat\",model_version=\"v1\"} 1",
        "deepwatch_probe_accuracy_ratio{model=\"deepseek-chat\",model_version=\"v2\"} 0",
        "deepwatch_probe_accuracy_ratio{model=\"deepseek-chat\",model_version=\"v3\"} 0",
        "deepwatch_probe_results_total{model=\"deepseek-chat\",model_version=\"v1\",probe=\"arithmetic\",outcome=\"pass\"} 2",
        "deepwatch_probe_results_total{model=\"deepseek-chat\",model_version=\"v2\",probe=\"capital\",outcome=\"fail\"} 2",
        "deepwatch_probe_results_total{model=\"deepseek-chat\",model_version=\"v3\",probe=\"capital\",outcome=\"error\"} 2",
        // Latency of answered probes only: 2 rounds x 2 prompts.
        "deepwatch_probe_duration_seconds_count{model=\"deepseek-chat\",model_version=\"v1\"} 4",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    assert!(!text.contains(
        "deepwatch_probe_duration_seconds_count{model=\"deepseek-chat\",model_version=\"v3\"}"
    ));

    // What the gateway saw: model, key, limits, temperature 0, the system message.
    let seen = seen.lock();
    let (headers, body) = &seen[0];
    assert_eq!(headers.get("authorization").unwrap(), "Bearer probe-key");
    assert_eq!(body["model"], "deepseek-chat");
    assert_eq!(body["max_tokens"], 16);
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["stream"], false);
    let capital = seen.iter().find(|(_, b)| b["messages"][0]["role"] == "system").unwrap();
    assert_eq!(capital.1["messages"][0]["content"], "Answer briefly.");
}

#[tokio::test]
async fn an_unreachable_gateway_counts_errors_and_zero_accuracy() {
    let config = ProbesConfig {
        enabled: true,
        gateway_url: format!("http://{}", deepwatch_testkit::free_addr()),
        timeout_secs: 2,
        targets: vec![target("v1")],
        ..ProbesConfig::default()
    };
    let prober = Prober::new(&config, TokioClock::shared()).unwrap();
    let results = prober.round().await;
    assert!(results.iter().all(|r| r.outcome == Outcome::Error), "{results:?}");
    let mut sink = MetricSink::new(Format::Text004);
    prober.encode(&mut sink);
    let text = sink.render();
    assert!(
        text.contains(
            "deepwatch_probe_accuracy_ratio{model=\"deepseek-chat\",model_version=\"v1\"} 0"
        ),
        "{text}"
    );
}
