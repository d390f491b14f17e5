//! Shared helpers of the operations integration tests: a daemon config pointing at temp dirs
//! and a mock gateway, starting the daemon on a free port, payload builders.

pub mod mock_gateway;

use deepwatch_analyzer::server::{self, Running};
use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::Config;
use serde_json::{json, Value};
use std::path::Path;

/// A config whose Prometheus does not exist (analytics degraded, the rest works), whose
/// state and reports live in `dir`, acting on the gateway at `gateway_url`.
pub fn daemon_config(dir: &Path, gateway_url: &str) -> Config {
    let mut c = Config::default();
    c.analyzer.prometheus_url = format!("http://{}", deepwatch_testkit::free_addr());
    c.analyzer.query_timeout = std::time::Duration::from_millis(500);
    c.analyzer.retries = 0;
    c.analyzer.evaluation_interval = std::time::Duration::from_secs(1);
    c.analyzer.report_dir = dir.join("reports").display().to_string();
    c.remediation.state_dir = dir.join("state").display().to_string();
    c.remediation.gateway.url = gateway_url.to_string();
    c.remediation.gateway.token = "admin-secret".to_string();
    c
}

pub async fn start(config: &Config, addr: Option<std::net::SocketAddr>) -> Running {
    let listener = tokio::net::TcpListener::bind(addr.unwrap_or(([127, 0, 0, 1], 0).into()))
        .await
        .expect("bind daemon");
    server::start(config, TokioClock::shared(), listener).await.expect("daemon starts")
}

/// An Alertmanager v4 webhook body with the given alerts.
pub fn payload(status: &str, alerts: Vec<Value>) -> Value {
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"X\"}", "truncatedAlerts": 0,
        "status": status, "receiver": "selfheal", "groupLabels": {},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am.example:9093",
        "alerts": alerts
    })
}

pub fn alert(alertname: &str, fingerprint: &str, status: &str, extra: &[(&str, &str)]) -> Value {
    let mut labels = json!({"alertname": alertname, "severity": "critical"});
    for (k, v) in extra {
        labels[*k] = json!(v);
    }
    json!({
        "status": status, "labels": labels,
        "annotations": {"summary": "model deepseek-chat unavailable"},
        "startsAt": "2026-11-23T06:40:00Z",
        "endsAt": if status == "resolved" { "2026-11-23T06:50:00Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": "http://prometheus.example/graph", "fingerprint": fingerprint
    })
}

pub async fn post(url: &str, body: &Value) -> (u16, Value) {
    let resp = deepwatch_testkit::http_client().post(url).json(body).send().await.expect("post");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub async fn metrics(base: &str) -> String {
    deepwatch_testkit::http_client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of one sample line `name{labels} value` in a text exposition, if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// Lines of the audit log with `"record":"intent"` and `"op":"run"`.
pub fn intents(audit: &Path) -> Vec<Value> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["record"] == "intent" && r["op"] == "run")
        .collect()
}
