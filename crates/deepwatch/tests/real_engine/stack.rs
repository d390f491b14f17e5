//! The deepwatch processes the scenarios put around vLLM (agent, gateway), as the real binary
//! with a written `deepwatch.toml`, and the traffic they send straight to vLLM.

use super::vllm::MODEL;
use crate::support::procs::{args, deepwatch};
use deepwatch_core::promtext::{self, Dialect, Family};
use deepwatch_testkit::{free_addr, Server};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// A `deepwatch` process and the config it runs with.
pub struct Proc {
    pub server: Server,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Writes `toml` and starts `deepwatch <subcommand> --config` on it, ready on `ready`.
pub async fn start(subcommand: &str, toml: &str, ready: SocketAddr, ready_path: &str) -> Proc {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("deepwatch.toml");
    std::fs::write(&config, toml).expect("write config");
    let parsed = deepwatch_core::config::Config::from_toml_str(toml).expect("test config parses");
    parsed.validate().unwrap_or_else(|e| panic!("test config invalid: {e}\n{toml}"));
    let server = deepwatch(
        subcommand,
        &args(&[subcommand, "--config", &config.display().to_string()]),
        ready,
        ready_path,
    )
    .await;
    Proc { server, addr: ready, _dir: dir }
}

/// `[[agent.engines]]` for vLLM `name` at `url`.
pub fn engine_toml(name: &str, url: &str, stall_after_secs: u64) -> String {
    format!(
        r#"
[[agent.engines]]
name = "{name}"
url = "{url}/metrics"
kind = "auto"
interval_ms = 250
timeout_ms = 1000
stall_after_secs = {stall_after_secs}
"#
    )
}

/// An agent that scrapes only the given engines (no GPU, host or process collectors).
pub async fn agent(engines: &[(&str, String)], stall_after_secs: u64) -> Proc {
    let listen = free_addr();
    let mut toml = format!(
        r#"
[agent]
listen = "{listen}"
[agent.collectors]
gpu = false
host = false
process = false
logs = false
peers = false
"#
    );
    for (name, url) in engines {
        toml.push_str(&engine_toml(name, url, stall_after_secs));
    }
    start("agent", &toml, listen, "/healthz").await
}

/// The agent's (or any) `/metrics`, parsed.
pub async fn scrape(http: &reqwest::Client, addr: SocketAddr) -> Vec<Family> {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("/metrics body");
    promtext::parse(&text, Dialect::Text004).unwrap_or_else(|e| panic!("/metrics: {e}\n{text}"))
}

/// The value of the one sample `name` whose labels include all of `labels`.
pub fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families
        .iter()
        .flat_map(|f| &f.samples)
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
}

/// A client for long generations (the testkit's has a 10 s timeout).
pub fn long_client() -> reqwest::Client {
    deepwatch_core::http::builder()
        .timeout(Duration::from_secs(180))
        .no_proxy()
        .build()
        .expect("http client")
}

/// One non-streaming completion of `max_tokens` tokens (EOS ignored, so exactly that many).
pub async fn complete(http: &reqwest::Client, base: &str, prompt: &str, max_tokens: u32) -> Value {
    let body = json!({"model": MODEL, "prompt": prompt, "max_tokens": max_tokens,
                      "ignore_eos": true, "temperature": 0});
    let resp = http
        .post(format!("{base}/v1/completions"))
        .json(&body)
        .send()
        .await
        .expect("POST /v1/completions");
    let status = resp.status();
    let v: Value = resp.json().await.expect("completion json");
    assert!(status.is_success(), "completion failed: {status} {v}");
    v
}

/// `n` completions, `concurrency` at a time, of `max_tokens` each; returns their bodies.
pub async fn burst(base: &str, n: usize, concurrency: usize, max_tokens: u32) -> Vec<Value> {
    let http = long_client();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, base, sem) = (http.clone(), base.to_string(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let prompt = format!("request {i}: {}", "tokens of a prompt ".repeat(4 + i % 8));
            complete(&http, &base, &prompt, max_tokens).await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.expect("request task"));
    }
    out
}
