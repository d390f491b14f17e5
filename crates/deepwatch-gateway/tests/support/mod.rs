//! Helpers shared by the gateway's integration tests: a gateway on loopback ports, its URLs, and
//! readers for its metrics text and SSE output.

pub mod upstream;

use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::gateway::{GatewayConfig, HealthConfig, PoolConfig};
use deepwatch_gateway::Gateway;
use std::sync::Arc;
use tokio::net::TcpListener;

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub fn pool(name: &str, upstreams: &[String]) -> PoolConfig {
    PoolConfig {
        name: name.into(),
        model_version: format!("{name}-v1"),
        upstreams: upstreams.to_vec(),
        health: HealthConfig {
            probe_interval: std::time::Duration::from_millis(50),
            probe_timeout: std::time::Duration::from_millis(200),
            healthy_after: 2,
            unhealthy_after: 2,
            ..HealthConfig::default()
        },
        ..PoolConfig::default()
    }
}

pub fn config(pools: Vec<PoolConfig>) -> GatewayConfig {
    GatewayConfig {
        admin_token: ADMIN_TOKEN.into(),
        pools,
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:1".into(),
        ..GatewayConfig::default()
    }
}

pub async fn start(cfg: GatewayConfig) -> Gateway {
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Gateway::start_on(cfg, Arc::new(TokioClock::new()), proxy, admin).await.unwrap()
}

pub fn client() -> reqwest::Client {
    deepwatch_core::http::builder().build().unwrap()
}

pub fn chat_url(gw: &Gateway) -> String {
    format!("http://{}/v1/chat/completions", gw.proxy_addr())
}

pub fn admin_url(gw: &Gateway, path: &str) -> String {
    format!("http://{}{path}", gw.admin_addr())
}

pub async fn metrics(gw: &Gateway) -> String {
    client().get(admin_url(gw, "/metrics")).send().await.unwrap().text().await.unwrap()
}

/// Value of the first sample named `name` whose labels include every pair.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric != name {
            return None;
        }
        let ok = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        ok.then(|| value.parse().ok()).flatten()
    })
}

/// Sum of every sample named `name` whose labels include every pair.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

pub fn chat_body(stream: bool) -> serde_json::Value {
    serde_json::json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// The SSE events of a finished stream (`data:` payloads and comments), in order.
pub fn events(text: &str) -> Vec<String> {
    text.split("\n\n").filter(|e| !e.is_empty()).map(|e| e.to_string()).collect()
}

/// Polls `f` until it is true or 5 s passed.
pub async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..250 {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}
