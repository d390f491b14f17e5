//! Do our latency figures agree with vLLM's own? `deepwatch load` (the real CLI) drives
//! streaming chat requests, once through the gateway and once straight at vLLM; the gateway's
//! request log, the load generator's per-request records and the increase of vLLM's histograms
//! over the run describe the same requests. Agreement: medians within 20 % + 5 ms (means printed).
//!
//! vLLM keeps histograms only, with coarse buckets (TTFT ... 0.02, 0.04, 0.06 ...; ITL from
//! 10 ms), so its median is Prometheus's `histogram_quantile` estimate; our figures are put
//! through the same estimator with vLLM's edges (the bucketed median) and compared with that;
//! the means (vLLM's `_sum / _count` is exact) and the exact medians are printed beside them.

use super::gateway::{self, summarize, Agreement};
use super::vllm::{agrees, Hist, MODEL};
use super::Ctx;
use crate::support::procs::binary;
use deepwatch_core::engines::vllm as names;
use serde_json::Value;
use std::path::Path;

/// Requests per run and their shape: long enough prompts and outputs that TTFT and TPOT are
/// well above timer noise, short enough for a 2-core machine. One at a time: vLLM's API server
/// is one Python process on the core its engine leaves free, and whatever else runs on that
/// core delays its HTTP parsing and SSE writes, which its own TTFT does not include.
const REQUESTS: u32 = 60;
const CONCURRENCY: u32 = 1;
const PROMPT_TOKENS: u32 = 96;
const OUTPUT_TOKENS: u32 = 48;

/// vLLM's histograms of interest, read now.
async fn snapshot(ctx: &Ctx) -> [Hist; 3] {
    let (f, _) = ctx.vllm.metrics(&ctx.http).await;
    [
        Hist::read(&f, names::TIME_TO_FIRST_TOKEN_SECONDS),
        Hist::read(&f, names::REQUEST_TIME_PER_OUTPUT_TOKEN_SECONDS),
        Hist::read(&f, names::INTER_TOKEN_LATENCY_SECONDS),
    ]
}

/// Runs `deepwatch load` at `target`; returns its per-request records.
async fn load(target: &str, json: &Path) -> Vec<Value> {
    let out = tokio::process::Command::new(binary())
        .args(["load", "--target", target, "--model", MODEL, "--endpoint", "chat"])
        .args(["--concurrency", &CONCURRENCY.to_string(), "-n", &REQUESTS.to_string()])
        .args(["--prompt-tokens", &PROMPT_TOKENS.to_string()])
        .args(["--output-tokens", &OUTPUT_TOKENS.to_string(), "--no-progress", "--json"])
        .arg(json)
        .output()
        .await
        .expect("run deepwatch load");
    assert!(
        out.status.success(),
        "deepwatch load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(json).expect("load json")).expect("json");
    let records = report["requests"].as_array().cloned().expect("requests");
    assert_eq!(records.len(), REQUESTS as usize);
    let failed: Vec<&Value> = records.iter().filter(|r| !r["error"].is_null()).collect();
    assert!(failed.is_empty(), "failed load requests: {failed:#?}");
    records
}

fn secs(records: &[Value], key: &str) -> Vec<f64> {
    records.iter().filter_map(|r| r[key].as_f64()).collect()
}

/// vLLM's row from the increase of one histogram.
fn engine_row(what: &str, h: &Hist) -> Agreement {
    Agreement {
        what: what.to_string(),
        median_exact: f64::NAN,
        median_bucketed: h.quantile(0.5).expect("vLLM observed the run"),
        mean: h.mean().expect("vLLM observed the run"),
    }
}

fn table(title: &str, rows: &[Agreement]) {
    eprintln!(
        "\n{title}\n| source | median (vLLM buckets) | median (exact) | mean |\n|---|---|---|---|"
    );
    for r in rows {
        let exact = if r.median_exact.is_nan() {
            "-".into()
        } else {
            format!("{:.1} ms", r.median_exact * 1e3)
        };
        eprintln!(
            "| {} | {:.1} ms | {exact} | {:.1} ms |",
            r.what,
            r.median_bucketed * 1e3,
            r.mean * 1e3
        );
    }
}

/// `ours` agrees with `engine` on the bucketed median (the criterion: medians within
/// 20 % + 5 ms). vLLM's own TTFT starts when its API server has parsed the request and stops
/// when the first token reaches it, so an API server short of CPU (other work on the core vLLM
/// leaves it) widens the gap; the load average is in the message for that reason. The means
/// are printed in the table, not asserted: on 2 cores one request delayed by a second of
/// scheduling moves a 60-request mean by 17 ms, whatever the gateway does.
fn assert_agree(ours: &Agreement, engine: &Agreement) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    assert!(
        agrees(ours.median_bucketed, engine.median_bucketed),
        "{} median {:.4}s vs {} {:.4}s: beyond 20 % + 5 ms (load average {})",
        ours.what,
        ours.median_bucketed,
        engine.what,
        engine.median_bucketed,
        load.trim()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs vLLM: scripts/real-engine.sh test"]
async fn gateway_and_load_ttft_agree_with_vllm() {
    let ctx = &super::ctx().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("requests.jsonl");
    let (_gw, url) = gateway::gateway(&[ctx.vllm.url()], &log, "").await;
    let [ttft_before, ..] = snapshot(ctx).await;
    let records = load(&url, &dir.path().join("load.json")).await;
    let [ttft_after, ..] = snapshot(ctx).await;
    let engine = ttft_after.since(&ttft_before);
    assert_eq!(engine.count, REQUESTS as f64, "vLLM saw exactly the load's requests");
    let lines = super::wait_for("the request log", std::time::Duration::from_secs(10), || async {
        let lines = gateway::request_log(&log);
        (lines.len() >= REQUESTS as usize).then_some(lines)
    })
    .await;
    let gateway_ttft: Vec<f64> =
        lines.iter().filter_map(|l| l["ttft_ms"].as_f64()).map(|ms| ms / 1e3).collect();
    assert_eq!(gateway_ttft.len(), REQUESTS as usize, "every request has a gateway TTFT");
    let edges = &engine.edges;
    let rows = [
        engine_row("vLLM time_to_first_token_seconds", &engine),
        summarize("gateway (request log ttft_ms)", &gateway_ttft, edges),
        summarize("deepwatch load (client)", &secs(&records, "ttft_secs"), edges),
    ];
    table(
        &format!("TTFT, {REQUESTS} streamed chats through the gateway, {CONCURRENCY} at a time"),
        &rows,
    );
    // Each layer against the one below it: the gateway against vLLM's own histogram, the
    // client against the gateway it went through (the client straight at vLLM is
    // `load_generator_agrees_with_vllm`). Through the gateway the client adds the gateway's
    // hop to vLLM's API-server time, two gaps that each fit the bound but not always together.
    assert_agree(&rows[1], &rows[0]);
    assert_agree(&rows[2], &rows[1]);
    // The client sees the first token after the gateway does.
    assert!(rows[2].mean >= rows[1].mean, "client TTFT below the gateway's: {rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs vLLM: scripts/real-engine.sh test"]
async fn load_generator_agrees_with_vllm() {
    let ctx = &super::ctx().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let before = snapshot(ctx).await;
    let records = load(&ctx.vllm.url(), &dir.path().join("load.json")).await;
    let after = snapshot(ctx).await;
    let [ttft, tpot, itl] = [0, 1, 2].map(|i| after[i].since(&before[i]));
    assert_eq!(ttft.count, REQUESTS as f64);
    let itl_values: Vec<f64> = records
        .iter()
        .flat_map(|r| r["itl_secs"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_f64())
        .collect();
    let rows = [
        engine_row("vLLM time_to_first_token_seconds", &ttft),
        summarize("deepwatch load TTFT", &secs(&records, "ttft_secs"), &ttft.edges),
        engine_row("vLLM request_time_per_output_token_seconds", &tpot),
        summarize("deepwatch load TPOT", &secs(&records, "tpot_secs"), &tpot.edges),
        engine_row("vLLM inter_token_latency_seconds", &itl),
        summarize("deepwatch load ITL", &itl_values, &itl.edges),
    ];
    table(
        &format!(
            "deepwatch load straight at vLLM: {REQUESTS} streamed chats, {CONCURRENCY} at a time"
        ),
        &rows,
    );
    // vLLM times every token; an SSE chunk carries one token or, when its API server falls
    // behind, several (and a token that ends inside a UTF-8 character carries no text), so the
    // client sees at most as many gaps.
    assert!(
        itl_values.len() as f64 <= itl.count && itl_values.len() as f64 >= 0.5 * itl.count,
        "ITL observations: client {} vs vLLM {}",
        itl_values.len(),
        itl.count
    );
    assert_agree(&rows[1], &rows[0]);
    assert_agree(&rows[3], &rows[2]);
    assert_agree(&rows[5], &rows[4]);
}
