//! Every fault knob of the admin API, exercised over HTTP against a running simulator and read
//! back through `GET /admin/faults`.

use crate::support::*;
use deepwatch_core::engines::vllm;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

fn stream_body(max_tokens: u64) -> Value {
    json!({"model": "sim-model", "messages": [{"role": "user", "content": "hello"}],
           "stream": true, "max_tokens": max_tokens})
}

async fn get_faults(sim: &deepwatch_lab::sim::SimHandle) -> Value {
    client()
        .get(format!("{}/admin/faults", sim.admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_requires_the_token_and_names_unknown_fields() {
    let sim = start_sim(|_| {}).await;
    let url = format!("{}/admin/faults", sim.admin_url());
    assert_eq!(client().get(&url).send().await.unwrap().status(), 401);
    assert_eq!(client().get(&url).bearer_auth("wrong").send().await.unwrap().status(), 401);
    let put = client().put(&url).json(&json!({"down": true})).send().await.unwrap();
    assert_eq!(put.status(), 401);
    let reset = client().post(format!("{}/admin/reset", sim.admin_url())).send().await.unwrap();
    assert_eq!(reset.status(), 401);
    assert_eq!(get_faults(&sim).await["down"], false, "unauthenticated PUT changed nothing");

    let resp = put_faults(&sim, json!({"error_rate": 0.2, "latency_ms": 5})).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("`latency_ms`"), "{err}");
    assert_eq!(get_faults(&sim).await["error_rate"], 0.0, "a rejected update sets nothing");

    let faults = get_faults(&sim).await;
    assert_eq!(
        faults,
        json!({"ttft_added_ms": 0, "per_token_added_ms": 0, "error_rate": 0.0, "error_status": 500,
               "cut_after_tokens": null, "hang_before_first_token": false,
               "leak_mb_per_min": 0.0, "down": false, "wrong_answers": false})
    );
}

#[tokio::test]
async fn wrong_answers_come_back_fast_and_well_formed_but_without_a_word() {
    let sim = start_sim(|_| {}).await;
    let body = json!({"model": "sim-model", "messages": [{"role": "user", "content": "2+2?"}],
                      "max_tokens": 6});
    let right: Value = chat(&sim, body.clone()).await.json().await.unwrap();
    let right = right["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(right.chars().any(char::is_alphanumeric), "{right:?}");
    assert_eq!(put_faults(&sim, json!({"wrong_answers": true})).await.status(), 200);
    let wrong: Value = chat(&sim, body.clone()).await.json().await.unwrap();
    let text = wrong["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(text, " ??".repeat(6), "{wrong}");
    assert_eq!(wrong["usage"]["completion_tokens"], 6);
    let streamed = chat(&sim, stream_body(3)).await.text().await.unwrap();
    assert!(streamed.contains("\" ??\"") && streamed.contains("[DONE]"), "{streamed}");
    client()
        .post(format!("{}/admin/reset", sim.admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let healed: Value = chat(&sim, body).await.json().await.unwrap();
    assert_eq!(healed["choices"][0]["message"]["content"].as_str().unwrap(), right);
}

#[tokio::test]
async fn latency_fault_adds_to_ttft_and_every_token() {
    let sim = start_sim(|_| {}).await;
    let resp = put_faults(&sim, json!({"ttft_added_ms": 600, "per_token_added_ms": 50})).await;
    assert_eq!(resp.status(), 200);
    let set: Value = resp.json().await.unwrap();
    assert_eq!(
        (set["ttft_added_ms"].as_u64(), set["per_token_added_ms"].as_u64()),
        (Some(600), Some(50))
    );
    let start = Instant::now();
    let text = chat(&sim, stream_body(5)).await.text().await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(sse_chunks(&text).len(), 6);
    assert!(elapsed >= Duration::from_millis(600 + 4 * 50), "{elapsed:?}");
    let metrics = metrics_text(&sim).await;
    let labels = [("model_name", "sim-model")];
    let ttft_sum = sample(&metrics, &format!("{}_sum", vllm::TIME_TO_FIRST_TOKEN_SECONDS), &labels);
    assert!(ttft_sum.unwrap() >= 0.6, "{ttft_sum:?}");
    let itl_sum = sample(&metrics, &format!("{}_sum", vllm::INTER_TOKEN_LATENCY_SECONDS), &labels);
    assert!(itl_sum.unwrap() >= 0.2, "{itl_sum:?}");

    reset(&sim).await;
    let start = Instant::now();
    chat(&sim, stream_body(5)).await.text().await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(500), "reset removes the latency");
}

#[tokio::test]
async fn error_fault_answers_with_the_status_then_reset_heals() {
    let sim = start_sim(|_| {}).await;
    put_faults(&sim, json!({"error_rate": 1.0, "error_status": 503})).await;
    for _ in 0..5 {
        let resp = chat(&sim, stream_body(3)).await;
        assert_eq!(resp.status(), 503);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], 503);
        assert!(err["error"]["message"].is_string() && err["error"]["type"].is_string());
    }
    let metrics = metrics_text(&sim).await;
    let errors = sample(&metrics, vllm::REQUEST_SUCCESS_TOTAL, &[("finished_reason", "error")]);
    assert_eq!(errors, Some(5.0));
    // A partial rate with a fixed seed errs on some requests, not all.
    put_faults(&sim, json!({"error_rate": 0.5, "error_status": 429})).await;
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(chat(&sim, stream_body(1)).await.status().as_u16());
    }
    let errors = statuses.iter().filter(|s| **s == 429).count();
    assert!((8..=32).contains(&errors), "{errors} of 40 at rate 0.5");
    assert!(statuses.iter().all(|s| *s == 429 || *s == 200));
    reset(&sim).await;
    assert_eq!(chat(&sim, stream_body(3)).await.status(), 200);
}

#[tokio::test]
async fn cut_fault_aborts_the_stream_after_n_tokens() {
    let sim = start_sim(|_| {}).await;
    put_faults(&sim, json!({"cut_after_tokens": 3})).await;
    let mut resp = chat(&sim, stream_body(10)).await;
    assert_eq!(resp.status(), 200);
    let mut received = String::new();
    let error = loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => received.push_str(std::str::from_utf8(&bytes).unwrap()),
            Ok(None) => panic!("stream ended cleanly: {received}"),
            Err(e) => break e,
        }
    };
    assert!(error.is_body() || error.is_decode() || error.is_request(), "{error:?}");
    assert!(!received.contains("[DONE]"));
    let content_chunks = received.matches("\"content\":\"").count() - 1; // minus the role chunk
    assert_eq!(content_chunks, 3, "{received}");
    let metrics = metrics_text(&sim).await;
    assert_eq!(
        sample(&metrics, vllm::REQUEST_SUCCESS_TOTAL, &[("finished_reason", "abort")]),
        Some(1.0)
    );

    // Non-streaming responses are cut too: the body never completes.
    let whole = client()
        .post(format!("{}/v1/chat/completions", sim.url()))
        .json(&json!({"model": "sim-model", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await;
    match whole {
        Ok(resp) => assert!(resp.bytes().await.is_err(), "body must not complete"),
        Err(e) => assert!(e.is_request(), "{e:?}"),
    }
    put_faults(&sim, json!({"cut_after_tokens": null})).await;
    assert!(chat(&sim, stream_body(10)).await.text().await.unwrap().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn hang_fault_stops_tokens_and_the_heartbeat_but_not_health() {
    let sim = start_sim(|_| {}).await;
    put_faults(&sim, json!({"hang_before_first_token": true})).await;
    let mut resp = chat(&sim, stream_body(5)).await;
    assert_eq!(resp.status(), 200, "headers go out; the first token never comes");
    let first = tokio::time::timeout(Duration::from_millis(400), resp.chunk()).await;
    assert!(first.is_err(), "no chunk while hung: {first:?}");
    let health = client().get(format!("{}/health", sim.url())).send().await.unwrap();
    assert_eq!(health.status(), 200, "/health lies, as vLLM's does");
    let labels = [("model_name", "sim-model")];
    let beat = format!("{}_count", vllm::ITERATION_TOKENS_TOTAL);
    let running = sample(&metrics_text(&sim).await, vllm::NUM_REQUESTS_RUNNING, &labels);
    assert_eq!(running, Some(1.0));
    let before = sample(&metrics_text(&sim).await, &beat, &labels);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sample(&metrics_text(&sim).await, &beat, &labels),
        before,
        "heartbeat flat while hung"
    );

    reset(&sim).await;
    let mut body = String::new();
    while let Some(bytes) = resp.chunk().await.unwrap() {
        body.push_str(std::str::from_utf8(&bytes).unwrap());
    }
    assert_eq!(sse_chunks(&body).len(), 6, "the stream finishes after reset");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = sample(&metrics_text(&sim).await, &beat, &labels);
    assert!(after > before, "{after:?} > {before:?}");
}

#[tokio::test]
async fn down_refuses_connections_while_admin_answers_and_reset_brings_it_back() {
    let sim = start_sim(|_| {}).await;
    assert_eq!(chat(&sim, stream_body(2)).await.status(), 200);
    put_faults(&sim, json!({"down": true})).await;
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tokio::net::TcpStream::connect(sim.addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    assert!(refused.is_ok(), "connections must be refused while down");
    let err = client().get(format!("{}/health", sim.url())).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(get_faults(&sim).await["down"], true, "admin API still answers");

    reset(&sim).await;
    let back = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(r) = client().get(format!("{}/health", sim.url())).send().await {
                break r.status();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("listener comes back on the same address");
    assert_eq!(back, 200);
    assert_eq!(chat(&sim, stream_body(2)).await.status(), 200);
}

#[tokio::test]
async fn down_cuts_open_keep_alive_connections() {
    let sim = start_sim(|c| c.tpot_base = std::time::Duration::from_millis(50)).await;
    let c = client();
    let mut resp = c
        .post(format!("{}/v1/chat/completions", sim.url()))
        .json(&stream_body(100))
        .send()
        .await
        .unwrap();
    assert!(resp.chunk().await.unwrap().is_some());
    put_faults(&sim, json!({"down": true})).await;
    let end = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match resp.chunk().await {
                Ok(Some(_)) => continue,
                other => break other.is_err(),
            }
        }
    })
    .await
    .expect("open stream is cut promptly");
    assert!(end, "the stream ends with an error, not cleanly");
}
