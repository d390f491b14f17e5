//! The gateway in front of vLLM: the official openai SDK through it (streams with and without
//! usage, n=2, stop sequences, tool calls, a client cancel, an unknown model), and its
//! time-to-first-token against vLLM's own `time_to_first_token_seconds`.

use super::stack::{self, Proc};
use super::vllm::{self, Hist, MODEL};
use deepwatch_testkit::free_addr;
use serde_json::Value;
use std::path::Path;

pub const GATEWAY_TOKEN: &str = "real-engine-gateway-token";

/// A gateway with one pool `vllm` in front of `upstreams`, logging every request to `log`.
/// Its generation probes are off: they would be requests vLLM counts that the test never sent.
pub async fn gateway(upstreams: &[String], log: &Path, extra: &str) -> (Proc, String) {
    let (listen, admin) = (free_addr(), free_addr());
    let list: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    let toml = format!(
        r#"
[gateway]
listen = "{listen}"
admin_listen = "{admin}"
admin_token = "{GATEWAY_TOKEN}"
upstream_connect_timeout_ms = 500
{extra}
[gateway.request_log]
path = "{log}"
[[gateway.pools]]
name = "vllm"
weight = 100
priority = 0
model_version = "v1"
upstreams = [{list}]
[gateway.pools.health]
generation_probe = false
"#,
        log = log.display(),
        list = list.join(", "),
    );
    (stack::start("gateway", &toml, admin, "/healthz").await, format!("http://{listen}"))
}

/// Lines of a gateway request log.
pub fn request_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("request log line {l}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs vLLM: scripts/real-engine.sh test"]
async fn openai_sdk_through_the_gateway() {
    let ctx = &super::ctx().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("requests.jsonl");
    let (gw, url) = gateway(&[ctx.vllm.url()], &log, "").await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real_engine/sdk_vllm.py");
    let out = tokio::process::Command::new(ctx.python)
        .arg(&script)
        .args([&url, &ctx.vllm.url(), MODEL])
        .output()
        .await
        .expect("run sdk_vllm.py");
    assert!(
        out.status.success(),
        "sdk_vllm.py failed:\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.server.log()
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("sdk_vllm.py prints JSON");
    eprintln!("openai SDK {} through the gateway", r["openai_version"]);

    // Streams: one id, 16 content tokens, finish_reason length; usage only when asked, in a
    // final chunk without choices.
    for case in ["stream", "stream_usage"] {
        let s = &r[case];
        assert_eq!(s["ids"], 1, "{case}: {s}");
        assert_eq!(s["finish"], serde_json::json!(["length"]), "{case}: {s}");
        assert!(s["text_chars"].as_u64().unwrap_or(0) > 0, "{case}: {s}");
    }
    assert_eq!(r["stream"]["usage"], serde_json::json!([]), "no usage unless asked");
    let usage = &r["stream_usage"]["usage"];
    assert_eq!(usage.as_array().map(Vec::len), Some(1), "one usage chunk: {usage}");
    assert_eq!(usage[0]["completion_tokens"], 16);
    assert!(usage[0]["prompt_tokens"].as_u64().unwrap_or(0) > 0);
    assert_eq!(r["stream_usage"]["usage_chunk_choices"], serde_json::json!([0]));

    // n=2: two choices, each with its finish reason, usage for both.
    let n2 = &r["n2"];
    assert_eq!(n2["whole_indexes"], serde_json::json!([0, 1]), "{n2}");
    assert_eq!(n2["whole_finish"], serde_json::json!(["length", "length"]), "{n2}");
    assert_eq!(n2["whole_usage"]["completion_tokens"], 16, "2 x 8 tokens: {n2}");
    assert_eq!(n2["stream_indexes"], serde_json::json!([0, 1]), "{n2}");
    assert_eq!(n2["stream_finish"], serde_json::json!({"0": "length", "1": "length"}), "{n2}");
    assert_eq!(n2["stream_usage"][0]["completion_tokens"], 16, "{n2}");

    // Stop sequences end the output before any of them, streamed or not.
    let stop = &r["stop"];
    assert_eq!(stop["finish"], "stop", "{stop}");
    assert_eq!(stop["stream_finish"], serde_json::json!(["stop"]), "{stop}");
    for key in ["text", "stream_text"] {
        let text = stop[key].as_str().unwrap_or_default();
        assert!(!text.contains(['e', 'a', 'o']), "{key} holds a stop sequence: {stop}");
    }
    assert_eq!(stop["text"], stop["stream_text"], "temperature 0: same text both ways");

    // Tool fields reach vLLM: a named tool choice comes back as a tool call of that function,
    // and a tool choice naming no given tool is vLLM's own 400.
    let tools = &r["tools"];
    assert_eq!(tools["named_tool_calls"], serde_json::json!([["function", "get_city"]]), "{tools}");
    // The arguments follow the schema the client sent (an enum only the request names).
    let city = &tools["named_arguments"][0]["city"];
    assert!(city == "Paris" || city == "Rome", "{tools}");
    assert_eq!(tools["bad_tool"]["status"], 400, "{tools}");
    assert!(
        tools["bad_tool"]["message"].as_str().unwrap_or_default().contains("tool_choice"),
        "vLLM's message reaches the client: {tools}"
    );

    // A client that cancels after 5 tokens: vLLM stops generating (the gateway closed its
    // upstream connection) well before max_tokens and, in 0.32, counts no finished request at
    // all, not even an abort; the gateway logs the request as client_cancelled. How far vLLM
    // got depends on how far its engine ran ahead of its API server's writes.
    let cancel = &r["cancel"];
    let generated = cancel["generated_by_vllm"].as_f64().unwrap_or(f64::MAX);
    let max_tokens = cancel["max_tokens"].as_f64().unwrap_or(0.0);
    eprintln!(
        "client cancel after {} chunks: vLLM generated {generated} of {max_tokens} tokens, idle {:.2}s after the close, finished counters moved by {}",
        cancel["received_chunks"], cancel["idle_after_secs"].as_f64().unwrap_or(-1.0), cancel["finished_delta"]
    );
    assert!(generated >= 5.0 && generated < max_tokens, "generation stopped early: {cancel}");
    assert!(cancel["idle_after_secs"].as_f64().is_some_and(|s| s < 5.0), "{cancel}");
    let finished_moved: f64 = cancel["finished_delta"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_f64).sum())
        .unwrap_or(-1.0);
    assert_eq!(finished_moved, 0.0, "vLLM 0.32 counts a cancelled request nowhere: {cancel}");

    // Unknown model: vLLM's 404 and its error body, unchanged.
    let unknown = &r["unknown_model"];
    assert_eq!(unknown["status"], 404, "{unknown}");
    assert_eq!(unknown["type"], "NotFoundError", "{unknown}");
    assert_eq!(unknown["body"]["param"], "model", "{unknown}");
    assert!(unknown["message"].as_str().unwrap_or_default().contains("no-such-model"), "{unknown}");

    // The gateway's own record of the same requests.
    let lines = stack_wait_log(&log, 11).await;
    let outcome = |o: &str| lines.iter().filter(|l| l["outcome"] == o).count();
    assert_eq!(outcome("client_cancelled"), 1, "{lines:#?}");
    assert!(lines.iter().any(|l| l["status"] == 404), "{lines:#?}");
    let with_usage = lines.iter().find(|l| l["stream"] == true && l["completion_tokens"] == 16);
    assert!(with_usage.is_some(), "streamed usage counted: {lines:#?}");
}

/// The request log once it has at least `n` lines (it is written by a background thread).
async fn stack_wait_log(path: &Path, n: usize) -> Vec<Value> {
    super::wait_for("the gateway request log", std::time::Duration::from_secs(10), || async {
        let lines = request_log(path);
        (lines.len() >= n).then_some(lines)
    })
    .await
}

/// One row of the TTFT agreement table.
#[derive(Debug, Clone)]
pub struct Agreement {
    pub what: String,
    pub median_exact: f64,
    pub median_bucketed: f64,
    pub mean: f64,
}

/// Exact median, median estimated with vLLM's bucket edges, and mean of `values` (seconds).
pub fn summarize(what: &str, values: &[f64], edges: &[f64]) -> Agreement {
    let h = Hist::from_values(edges, values);
    Agreement {
        what: what.to_string(),
        median_exact: vllm::median(values).expect("values"),
        median_bucketed: h.quantile(0.5).expect("values"),
        mean: h.mean().expect("values"),
    }
}
