//! Streaming and non-streaming relay: chunk-by-chunk forwarding, usage handling, keep-alives,
//! metrics, headers, retries, stream cuts, client cancellation, the request log.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use deepwatch_core::clock::TokioClock;
use deepwatch_gateway::Gateway;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn stream_is_relayed_and_the_injected_usage_chunk_is_hidden() {
    let up = Upstream::start(Knobs { reasoning_words: 2, ..Knobs::default() }).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let resp = client().post(chat_url(&gw)).json(&chat_body(true)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream; charset=utf-8");
    assert_eq!(resp.headers()["x-deepwatch-pool"], "blue");
    assert!(resp.headers().contains_key("x-deepwatch-overhead-ms"));
    let text = resp.text().await.unwrap();
    let ev = events(&text);
    assert_eq!(ev.last().unwrap(), "data: [DONE]");
    assert!(
        !text.contains("\"usage\""),
        "usage chunk leaked to a client that did not ask:\n{text}"
    );
    assert!(text.contains("Hello") && text.contains("think1"));
    // The upstream was asked for usage.
    let sent = up.seen.bodies.lock()[0].clone();
    assert_eq!(sent["stream_options"]["include_usage"], true);

    let m = metrics(&gw).await;
    let id = [("model", "m"), ("pool", "blue"), ("model_version", "blue-v1")];
    assert_eq!(sample(&m, "deepwatch_completion_tokens_total", &id), Some(7.0));
    assert_eq!(sample(&m, "deepwatch_reasoning_tokens_total", &id), Some(2.0));
    assert_eq!(sample(&m, "deepwatch_prompt_tokens_total", &id), Some(7.0));
    assert_eq!(sample(&m, "deepwatch_time_to_first_token_seconds_count", &id), Some(1.0));
    assert_eq!(sample(&m, "deepwatch_time_per_output_token_seconds_count", &id), Some(1.0));
    // 7 content chunks (2 reasoning + 5 answer) → 6 gaps.
    assert_eq!(sample(&m, "deepwatch_inter_token_latency_seconds_count", &id), Some(6.0));
    assert_eq!(
        sample(
            &m,
            "deepwatch_requests_total",
            &[("outcome", "ok"), ("code", "200"), ("pool", "blue")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "deepwatch_gateway_overhead_seconds_count", &[("pool", "blue")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "deepwatch_response_finish_reason_total", &[("finish_reason", "stop")]),
        Some(1.0)
    );
    assert_eq!(sample(&m, "deepwatch_requests_in_flight", &[("pool", "blue")]), Some(0.0));
}

#[tokio::test]
async fn a_client_that_asked_for_usage_gets_the_usage_chunk() {
    let up = Upstream::start(Knobs::default()).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let mut body = chat_body(true);
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let text = client().post(chat_url(&gw)).json(&body).send().await.unwrap().text().await.unwrap();
    let usage: Vec<_> = events(&text).into_iter().filter(|e| e.contains("\"usage\"")).collect();
    assert_eq!(usage.len(), 1, "{text}");
    assert!(usage[0].contains("\"completion_tokens\":5"));
}

#[tokio::test]
async fn chunks_reach_the_client_as_they_arrive() {
    let up = Upstream::start(Knobs { token_delay_ms: 150, ..Knobs::default() }).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let started = Instant::now();
    let resp = client().post(chat_url(&gw)).json(&chat_body(true)).send().await.unwrap();
    let mut body = resp.bytes_stream();
    let mut first_content = None;
    let mut seen = String::new();
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if first_content.is_none() && seen.contains("Hello") {
            first_content = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let first = first_content.unwrap();
    // 4 gaps of 150 ms: the whole stream takes >= 600 ms, the first word must not wait for it.
    assert!(total >= Duration::from_millis(600), "{total:?}");
    assert!(first < total / 2, "first content after {first:?} of {total:?}");
}

#[tokio::test]
async fn keepalive_comments_flow_while_waiting_for_the_first_token() {
    let up = Upstream::start(Knobs { ttft_ms: 400, ..Knobs::default() }).await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.keepalive_interval = std::time::Duration::from_millis(60);
    let gw = start(cfg).await;
    let text = client()
        .post(chat_url(&gw))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ev = events(&text);
    let first_content = ev.iter().position(|e| e.contains("Hello")).unwrap();
    let keepalives = ev[..first_content].iter().filter(|e| e.as_str() == ": keep-alive").count();
    assert!(keepalives >= 3, "{keepalives} keep-alives before the first token:\n{text}");
    let m = metrics(&gw).await;
    assert!(sample(&m, "deepwatch_sse_keepalives_total", &[("pool", "blue")]).unwrap() >= 3.0);
    assert_eq!(ev.last().unwrap(), "data: [DONE]");
}

#[tokio::test]
async fn non_streamed_request_is_measured_and_relayed() {
    let up = Upstream::start(Knobs::default()).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let resp = client()
        .post(chat_url(&gw))
        .header("x-request-id", "req-42")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let overhead: f64 =
        resp.headers()["x-deepwatch-overhead-ms"].to_str().unwrap().parse().unwrap();
    assert!((0.0..50.0).contains(&overhead), "{overhead}");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello there, friend.");
    // The request id went upstream too; non-streams are not rewritten.
    assert_eq!(up.seen.headers.lock()[0]["x-request-id"], "req-42");
    assert!(up.seen.bodies.lock()[0].get("stream_options").is_none());
    let m = metrics(&gw).await;
    assert_eq!(sample(&m, "deepwatch_completion_tokens_total", &[("pool", "blue")]), Some(5.0));
    // No TTFT for a non-streamed answer.
    assert_eq!(
        sample(&m, "deepwatch_time_to_first_token_seconds_count", &[("pool", "blue")])
            .unwrap_or(0.0),
        0.0
    );
    assert_eq!(
        sample(&m, "deepwatch_response_completion_tokens_count", &[("pool", "blue")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn failed_attempt_is_retried_once_on_another_upstream() {
    let bad = Upstream::start(Knobs { fail_status: Some(503), ..Knobs::default() }).await;
    let good = Upstream::start(Knobs::default()).await;
    let mut p = pool("blue", &[bad.url(), good.url()]);
    p.health.probe_path = String::new();
    let gw = start(config(vec![p])).await;
    for stream in [false, true, false, true] {
        let resp = client().post(chat_url(&gw)).json(&chat_body(stream)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await.unwrap().contains("Hello"));
    }
    assert!(bad.requests() >= 1, "the failing upstream was never tried");
    let m = metrics(&gw).await;
    assert!(sum(&m, "deepwatch_retries_total", &[("pool", "blue"), ("reason", "status")]) >= 1.0);
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "ok")]), 4.0);
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "upstream_error")]), 0.0);
}

#[tokio::test]
async fn upstream_error_is_answered_with_its_status_when_no_retry_helps() {
    let bad = Upstream::start(Knobs { fail_status: Some(500), ..Knobs::default() }).await;
    let gw = start(config(vec![pool("blue", &[bad.url()])])).await;
    let resp = client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "engine failed with 500");
    let m = metrics(&gw).await;
    assert_eq!(
        sum(&m, "deepwatch_requests_total", &[("outcome", "upstream_error"), ("code", "500")]),
        1.0
    );
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_an_error_event_and_is_counted() {
    let up = Upstream::start(Knobs { cut_after: Some(2), ..Knobs::default() }).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let text = client()
        .post(chat_url(&gw))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ev = events(&text);
    assert!(text.contains("Hello") && text.contains("there"));
    let last: serde_json::Value =
        serde_json::from_str(ev.last().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_cut", "{text}");
    assert!(!text.contains("[DONE]"));
    let m = metrics(&gw).await;
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "stream_cut")]), 1.0);
    // The gateway keeps serving.
    up.set(|k| k.cut_after = None);
    let text = client()
        .post(chat_url(&gw))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_client_that_goes_away_midway_is_counted_as_cancelled() {
    let up = Upstream::start(Knobs { token_delay_ms: 100, ..Knobs::default() }).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let resp = client().post(chat_url(&gw)).json(&chat_body(true)).send().await.unwrap();
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("Hello") {
        seen.push_str(&String::from_utf8_lossy(&body.next().await.unwrap().unwrap()));
    }
    drop(body);
    eventually("client_cancelled counted", async || {
        let m = metrics(&gw).await;
        sum(&m, "deepwatch_requests_total", &[("outcome", "client_cancelled")]) == 1.0
    })
    .await;
    let m = metrics(&gw).await;
    assert_eq!(sample(&m, "deepwatch_requests_in_flight", &[("pool", "blue")]), Some(0.0));
}

#[tokio::test]
async fn a_client_that_leaves_right_after_done_got_a_whole_answer() {
    // The upstream keeps its body open after `[DONE]`; the client (as the openai SDK does after
    // a stop sequence) closes as soon as `[DONE]` arrives.
    let up = Upstream::start(Knobs { linger_after_done_ms: 2_000, ..Knobs::default() }).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let resp = client().post(chat_url(&gw)).json(&chat_body(true)).send().await.unwrap();
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("[DONE]") {
        seen.push_str(&String::from_utf8_lossy(&body.next().await.unwrap().unwrap()));
    }
    drop(body);
    eventually("the request counted", async || {
        let m = metrics(&gw).await;
        sum(&m, "deepwatch_requests_total", &[]) == 1.0
    })
    .await;
    let m = metrics(&gw).await;
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "ok")]), 1.0, "{m}");
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "client_cancelled")]), 0.0);
}

#[tokio::test]
async fn the_request_log_has_one_line_per_request_without_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    let up = Upstream::start(Knobs::default()).await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.request_log.path = path.to_str().unwrap().into();
    let gw = start(cfg).await;
    client().post(chat_url(&gw)).json(&chat_body(true)).send().await.unwrap().text().await.unwrap();
    client()
        .post(chat_url(&gw))
        .json(&chat_body(false))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    eventually("two log lines", async || {
        std::fs::read_to_string(&path).unwrap_or_default().lines().count() == 2
    })
    .await;
    let text = std::fs::read_to_string(&path).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["outcome"], "ok");
    assert_eq!(first["pool"], "blue");
    assert_eq!(first["upstream"], up.url());
    assert_eq!(first["stream"], true);
    assert_eq!(first["completion_tokens"], 5);
    assert!(first["ttft_ms"].as_f64().is_some() && first["duration_ms"].as_f64().is_some());
    assert!(first["request_id"].as_str().unwrap().len() >= 8);
    assert!(!text.contains("hi\"") && !text.contains("Hello"), "text leaked into the log:\n{text}");
}

#[tokio::test]
async fn keepalives_also_cover_an_upstream_that_is_slow_to_send_headers() {
    let up = Upstream::start(Knobs { header_delay_ms: 300, ..Knobs::default() }).await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.keepalive_interval = std::time::Duration::from_millis(60);
    let gw = start(cfg).await;
    let resp = client().post(chat_url(&gw)).json(&chat_body(true)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let ev = events(&text);
    assert!(ev.iter().take_while(|e| e.as_str() == ": keep-alive").count() >= 3, "{text}");
    assert_eq!(ev.last().unwrap(), "data: [DONE]");
    assert!(text.contains("Hello"));
    // A late error status becomes an error event: the 200 already went out.
    up.set(|k| k.fail_status = Some(503));
    let text = client()
        .post(chat_url(&gw))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last = events(&text).pop().unwrap();
    assert!(last.contains("upstream answered 503"), "{text}");
    let m = metrics(&gw).await;
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "ok")]), 1.0);
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "upstream_error")]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_threads_share_one_port_and_one_state() {
    let up = Upstream::start(Knobs::default()).await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.workers = 3;
    cfg.admin_listen = "127.0.0.1:0".into();
    let gw = Gateway::start(cfg, Arc::new(TokioClock::new())).await.unwrap();
    let mut handles = Vec::new();
    for i in 0..12 {
        // A fresh client per request opens a new connection, spread over the workers' sockets.
        let url = chat_url(&gw);
        handles.push(tokio::spawn(async move {
            let resp = deepwatch_core::http::builder()
                .build()
                .unwrap()
                .post(url)
                .json(&chat_body(i % 2 == 0))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }));
    }
    for h in handles {
        assert!(h.await.unwrap().contains("Hello"));
    }
    let m = metrics(&gw).await;
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "ok")]), 12.0);
    gw.shutdown().await;
}
