//! The gateway's per-request and per-chunk work, without sockets: scanning one SSE chunk,
//! parsing and rewriting a request body, scanning a prompt, and looking up a request's metric
//! series. `cargo bench -p deepwatch-gateway --bench hot_path`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use deepwatch_core::config::gateway::ScannerConfig;
use deepwatch_gateway::metrics::{GatewayMetrics, RequestLabels};
use deepwatch_gateway::proxy::request;
use deepwatch_gateway::scanner::Scanner;
use deepwatch_gateway::sse::SseScanner;
use std::hint::black_box;

const CHUNK: &str = "data: {\"id\":\"chatcmpl-8f2c\",\"object\":\"chat.completion.chunk\",\"created\":1732345678,\"model\":\"deepseek-ai/DeepSeek-V3\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" token\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";

fn body() -> Vec<u8> {
    let prompt =
        "Summarise the following meeting notes for the team in three bullet points. ".repeat(24);
    serde_json::to_vec(&serde_json::json!({
        "model": "deepseek-ai/DeepSeek-V3", "stream": true, "max_tokens": 512,
        "messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": prompt}]
    }))
    .unwrap()
}

fn hot_path(c: &mut Criterion) {
    let chunk = Bytes::from_static(CHUNK.as_bytes());
    c.bench_function("sse_chunk_scan", |b| {
        let mut scanner = SseScanner::new(false);
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            scanner.push(black_box(&chunk), &mut out);
            black_box(out.drain(..).count())
        })
    });
    let body = body();
    c.bench_function("request_parse_and_usage_splice", |b| {
        b.iter(|| {
            let info = request::parse(black_box(&body)).unwrap();
            black_box(request::rewrite(&body, &info, None))
        })
    });
    let scanner = Scanner::new(&ScannerConfig::default());
    let policy = scanner.policy("anyone").clone();
    c.bench_function("prompt_scan_count_2kb", |b| {
        b.iter(|| black_box(scanner.scan_prompt(&policy, black_box(&body))))
    });
    let metrics = GatewayMetrics::new();
    let labels = RequestLabels {
        model: "deepseek-ai/DeepSeek-V3".into(),
        model_version: "v3-0324".into(),
        pool: "blue".into(),
        endpoint: "/v1/chat/completions",
        tenant: "team-a".into(),
    };
    c.bench_function("metric_series_lookup_and_observe", |b| {
        b.iter(|| {
            let s = metrics.series(black_box(&labels));
            s.ttft.observe(0.18);
            s.overhead.observe(0.00012);
        })
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
