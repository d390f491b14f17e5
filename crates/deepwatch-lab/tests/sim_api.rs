//! The simulator's OpenAI API, checked field by field against the wire format the `openai`
//! SDK and vLLM use, and its `/metrics` against vLLM's names, labels and bucket layouts.

use crate::support::*;
use deepwatch_core::engines::vllm;
use deepwatch_core::promtext::{self, Dialect};
use pretty_assertions::assert_eq;
use serde_json::{json, Value};

fn check_chunk_envelope(chunk: &Value, id: &str, object: &str) {
    assert_eq!(chunk["id"], id);
    assert_eq!(chunk["object"], object);
    assert!(chunk["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(chunk["model"], "sim-model");
}

#[tokio::test]
async fn chat_stream_has_role_reasoning_content_finish_usage_and_done() {
    let sim = start_sim(|c| {
        c.reasoning = true;
        c.reasoning_ratio = 0.5;
    })
    .await;
    let resp = chat(
        &sim,
        json!({"model": "sim-model", "messages": [{"role": "user", "content": "abcdefgh"}],
               "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 6}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let chunks = sse_chunks(&resp.text().await.unwrap());
    // role + 6 tokens + usage
    assert_eq!(chunks.len(), 8, "{chunks:#?}");
    let id = chunks[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("chatcmpl-"));
    for c in &chunks {
        check_chunk_envelope(c, &id, "chat.completion.chunk");
    }
    let role = &chunks[0]["choices"][0];
    assert_eq!(role["index"], 0);
    assert_eq!(role["delta"], json!({"role": "assistant", "content": ""}));
    assert_eq!(role["finish_reason"], Value::Null);
    let token_chunks = &chunks[1..7];
    for (i, c) in token_chunks.iter().enumerate() {
        let choice = &c["choices"][0];
        assert_eq!(choice["index"], 0);
        let delta = choice["delta"].as_object().unwrap();
        assert_eq!(delta.len(), 1, "one field per delta: {delta:?}");
        let key = if i < 3 { "reasoning_content" } else { "content" };
        assert!(!delta[key].as_str().unwrap().is_empty(), "chunk {i}: {delta:?}");
        let finish = if i == 5 { json!("length") } else { Value::Null };
        assert_eq!(choice["finish_reason"], finish, "chunk {i}");
    }
    let usage_chunk = &chunks[7];
    assert_eq!(usage_chunk["choices"], json!([]));
    // "abcdefgh" = 2 tokens + 4 template tokens.
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 6, "total_tokens": 12,
               "prompt_tokens_details": {"cached_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 3}})
    );
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_chunk() {
    let sim = start_sim(|_| {}).await;
    let body = json!({"model": "sim-model", "messages": [{"role": "user", "content": "hi"}],
                      "stream": true, "max_tokens": 3});
    let chunks = sse_chunks(&chat(&sim, body).await.text().await.unwrap());
    assert_eq!(chunks.len(), 4);
    assert!(chunks
        .iter()
        .all(|c| c.get("usage").is_none() && c["choices"].as_array().unwrap().len() == 1));
    assert!(chunks[1..]
        .iter()
        .all(|c| c["choices"][0]["delta"].get("reasoning_content").is_none()));
}

#[tokio::test]
async fn chat_non_streaming_body_is_a_chat_completion() {
    let sim = start_sim(|c| c.reasoning = true).await;
    let resp = chat(
        &sim,
        json!({"model": "sim-model", "max_completion_tokens": 10,
               "messages": [{"role": "system", "content": "be brief"},
                            {"role": "user", "content": [{"type": "text", "text": "abcd"}]}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-model-version"], "v1");
    let body: Value = resp.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "sim-model");
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(!choice["message"]["content"].as_str().unwrap().is_empty());
    assert!(!choice["message"]["reasoning_content"].as_str().unwrap().is_empty());
    // "be brief" 2 + 4, "abcd" 1 + 4.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 10, "total_tokens": 21,
               "prompt_tokens_details": {"cached_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 5}})
    );
}

#[tokio::test]
async fn completions_stream_and_whole() {
    let sim = start_sim(|_| {}).await;
    let url = format!("{}/v1/completions", sim.url());
    let body = json!({"model": "sim-model", "prompt": "abcdefghijkl", "max_tokens": 4,
                      "stream": true, "stream_options": {"include_usage": true}});
    let text = client().post(&url).json(&body).send().await.unwrap().text().await.unwrap();
    let chunks = sse_chunks(&text);
    assert_eq!(chunks.len(), 5);
    let id = chunks[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("cmpl-"));
    for c in &chunks {
        check_chunk_envelope(c, &id, "text_completion");
    }
    assert!(chunks[..4].iter().all(|c| !c["choices"][0]["text"].as_str().unwrap().is_empty()));
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[4]["usage"]["prompt_tokens"], 3);
    assert_eq!(chunks[4]["usage"]["completion_tokens"], 4);

    let whole: Value = client()
        .post(&url)
        .json(&json!({"model": "sim-model", "prompt": ["abcd", "efgh"], "max_tokens": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whole["object"], "text_completion");
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    assert_eq!(whole["usage"]["prompt_tokens"], 2);
    assert_eq!(whole["usage"]["total_tokens"], 4);
}

#[tokio::test]
async fn models_unknown_model_and_bad_requests() {
    let sim = start_sim(|c| c.max_model_len = 100).await;
    let models: Value = client()
        .get(format!("{}/v1/models", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "sim-model");
    assert_eq!(models["data"][0]["object"], "model");
    assert_eq!(models["data"][0]["max_model_len"], 100);

    let resp =
        chat(&sim, json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], 404);
    assert_eq!(err["error"]["type"], "NotFoundError");
    assert!(err["error"]["message"].as_str().unwrap().contains("`gpt-9` does not exist"));

    let resp = client()
        .post(format!("{}/v1/chat/completions", sim.url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], 400);

    let long = "x".repeat(400);
    let resp = chat(
        &sim,
        json!({"model": "sim-model", "max_tokens": 10, "messages": [{"role": "user", "content": long}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("maximum context length is 100"));
}

#[tokio::test]
async fn content_and_lengths_are_deterministic_from_the_seed() {
    let a = start_sim(|c| c.seed = 7).await;
    let b = start_sim(|c| c.seed = 7).await;
    let other = start_sim(|c| c.seed = 8).await;
    let body = |prompt: &str| json!({"model": "sim-model", "messages": [{"role": "user", "content": prompt}]});
    let answer = |v: Value| {
        (
            v["choices"][0]["message"]["content"].as_str().unwrap().to_string(),
            v["usage"]["completion_tokens"].as_u64().unwrap(),
        )
    };
    let first = answer(chat(&a, body("hello")).await.json().await.unwrap());
    let again = answer(chat(&a, body("hello")).await.json().await.unwrap());
    let twin = answer(chat(&b, body("hello")).await.json().await.unwrap());
    let diff = answer(chat(&other, body("hello")).await.json().await.unwrap());
    assert_eq!(first, again);
    assert_eq!(first, twin);
    assert_ne!(first, diff);
    // Without max_tokens the length follows a seeded distribution: prompts differ, lengths vary.
    let mut lengths = std::collections::BTreeSet::new();
    for i in 0..20 {
        lengths
            .insert(answer(chat(&a, body(&format!("prompt {i}"))).await.json().await.unwrap()).1);
    }
    assert!(lengths.len() > 5, "{lengths:?}");
}

#[tokio::test]
async fn metrics_use_vllm_names_labels_and_buckets() {
    let sim = start_sim(|c| c.max_model_len = 4096).await;
    let mut prompt_sum = 0;
    for i in 0..5 {
        let body: Value = chat(
            &sim,
            json!({"model": "sim-model", "max_tokens": 3 + i,
                   "messages": [{"role": "user", "content": "x".repeat(40 * i as usize)}]}),
        )
        .await
        .json()
        .await
        .unwrap();
        prompt_sum += body["usage"]["prompt_tokens"].as_u64().unwrap();
    }
    let resp = client().get(format!("{}/metrics", sim.url())).send().await.unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    let families = promtext::parse(&text, Dialect::Text004).unwrap();
    let labels = [("model_name", "sim-model"), ("engine", "0")];

    use deepwatch_core::catalog::MetricType;
    for (name, kind) in [
        (vllm::NUM_REQUESTS_RUNNING, MetricType::Gauge),
        (vllm::NUM_REQUESTS_WAITING, MetricType::Gauge),
        (vllm::KV_CACHE_USAGE_PERC, MetricType::Gauge),
        (vllm::NUM_PREEMPTIONS_TOTAL, MetricType::Counter),
        (vllm::PROMPT_TOKENS_TOTAL, MetricType::Counter),
        (vllm::GENERATION_TOKENS_TOTAL, MetricType::Counter),
        (vllm::REQUEST_SUCCESS_TOTAL, MetricType::Counter),
        (vllm::ITERATION_TOKENS_TOTAL, MetricType::Histogram),
        (vllm::TIME_TO_FIRST_TOKEN_SECONDS, MetricType::Histogram),
        (vllm::INTER_TOKEN_LATENCY_SECONDS, MetricType::Histogram),
        (vllm::REQUEST_TIME_PER_OUTPUT_TOKEN_SECONDS, MetricType::Histogram),
        (vllm::E2E_REQUEST_LATENCY_SECONDS, MetricType::Histogram),
        (vllm::REQUEST_QUEUE_TIME_SECONDS, MetricType::Histogram),
        (vllm::REQUEST_PROMPT_TOKENS, MetricType::Histogram),
        (vllm::REQUEST_GENERATION_TOKENS, MetricType::Histogram),
        (vllm::NUM_REQUESTS_WAITING_BY_REASON, MetricType::Gauge),
        (vllm::PREFIX_CACHE_QUERIES_TOTAL, MetricType::Counter),
        (vllm::PREFIX_CACHE_HITS_TOTAL, MetricType::Counter),
        ("process_resident_memory_bytes", MetricType::Gauge),
    ] {
        let family = promtext::find(&families, name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(family.kind, kind, "{name}");
        if name.starts_with("vllm:") {
            for s in &family.samples {
                assert_eq!(s.label("model_name"), Some("sim-model"), "{name}");
                assert_eq!(s.label("engine"), Some("0"), "{name}");
            }
        }
    }
    let edges = |name: &str| -> Vec<f64> {
        let family = promtext::find(&families, name).unwrap();
        family
            .samples_named(&format!("{name}_bucket"))
            .map(|s| s.label("le").unwrap())
            .filter(|le| *le != "+Inf")
            .map(|le| le.parse().unwrap())
            .collect()
    };
    assert_eq!(edges(vllm::TIME_TO_FIRST_TOKEN_SECONDS), vllm::TTFT_BUCKETS);
    assert_eq!(edges(vllm::INTER_TOKEN_LATENCY_SECONDS), vllm::ITL_BUCKETS);
    assert_eq!(edges(vllm::REQUEST_TIME_PER_OUTPUT_TOKEN_SECONDS), vllm::ITL_BUCKETS);
    assert_eq!(edges(vllm::E2E_REQUEST_LATENCY_SECONDS), vllm::REQUEST_LATENCY_BUCKETS);
    assert_eq!(edges(vllm::ITERATION_TOKENS_TOTAL), vllm::ITERATION_TOKENS_BUCKETS);
    assert_eq!(edges(vllm::REQUEST_PROMPT_TOKENS), vllm::length_buckets(4096));

    let success = |reason: &str| {
        sample(&text, vllm::REQUEST_SUCCESS_TOTAL, &[("finished_reason", reason), labels[0]])
    };
    assert_eq!(success("length"), Some(5.0));
    assert_eq!(success("stop"), Some(0.0));
    assert_eq!(success("abort"), Some(0.0));
    assert_eq!(sample(&text, vllm::PROMPT_TOKENS_TOTAL, &labels), Some(prompt_sum as f64));
    assert_eq!(
        sample(&text, vllm::GENERATION_TOKENS_TOTAL, &labels),
        Some((3 + 4 + 5 + 6 + 7) as f64)
    );
    // Prefix cache in 16-token (64-character) blocks: prompts of 80 and 120 "x" find the
    // 64-character block the 80-character prompt computed; the 160-character prompt's second
    // block is new. Queries count every prompt token.
    assert_eq!(sample(&text, vllm::PREFIX_CACHE_QUERIES_TOTAL, &labels), Some(prompt_sum as f64));
    assert_eq!(sample(&text, vllm::PREFIX_CACHE_HITS_TOTAL, &labels), Some(32.0));
    let waiting = |reason| {
        sample(&text, vllm::NUM_REQUESTS_WAITING_BY_REASON, &[("reason", reason), labels[0]])
    };
    assert_eq!((waiting("capacity"), waiting("deferred")), (Some(0.0), Some(0.0)));
    let ttft_count = format!("{}_count", vllm::TIME_TO_FIRST_TOKEN_SECONDS);
    assert_eq!(sample(&text, &ttft_count, &labels), Some(5.0));
    let gen_count = format!("{}_count", vllm::REQUEST_GENERATION_TOKENS);
    assert_eq!(sample(&text, &gen_count, &labels), Some(5.0));
    assert_eq!(sample(&text, vllm::NUM_REQUESTS_RUNNING, &labels), Some(0.0));
    assert!(sample(&text, "process_resident_memory_bytes", &[]).unwrap() > 1e6);

    // OpenMetrics when asked, as Prometheus asks.
    let om = client()
        .get(format!("{}/metrics", sim.url()))
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let om_families = promtext::parse(&om, Dialect::OpenMetrics).unwrap();
    assert!(promtext::find(&om_families, vllm::PROMPT_TOKENS_TOTAL).is_some());
}

#[tokio::test]
async fn metrics_pass_promtool_check() {
    let sim = start_sim(|_| {}).await;
    chat(&sim, json!({"model": "sim-model", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]})).await;
    let text = metrics_text(&sim).await;
    let promtool = deepwatch_testkit_promtool();
    let Some(promtool) = promtool else { return };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // promtool lints naming (vLLM's colons and missing unit suffixes are vLLM's own choices);
    // only a parse error is a failure of ours.
    assert!(!report.contains("error while linting"), "{report}");
}

fn deepwatch_testkit_promtool() -> Option<std::path::PathBuf> {
    ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

#[tokio::test]
async fn legacy_names_replace_the_renamed_metrics() {
    let sim = start_sim(|c| c.legacy_metric_names = true).await;
    chat(&sim, json!({"model": "sim-model", "max_tokens": 3, "messages": [{"role": "user", "content": "x"}]})).await;
    let text = metrics_text(&sim).await;
    let families = promtext::parse(&text, Dialect::Text004).unwrap();
    assert!(promtext::find(&families, vllm::GPU_CACHE_USAGE_PERC).is_some());
    assert!(promtext::find(&families, vllm::KV_CACHE_USAGE_PERC).is_none());
    let tpot = format!("{}_count", vllm::TIME_PER_OUTPUT_TOKEN_SECONDS);
    assert_eq!(
        sample(&text, &tpot, &[("model_name", "sim-model")]),
        Some(2.0),
        "two gaps between three tokens"
    );
    assert!(promtext::find(&families, vllm::INTER_TOKEN_LATENCY_SECONDS).is_none());
}
