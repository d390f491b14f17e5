//! Watchers that turn the stack's state into timeline events: Prometheus's alerts (pending,
//! firing, resolved, polled every half second), the gateway's deploy-event log (failover and
//! failback, whoever asked for them) and the analyzer's root-cause reports.

use super::timeline::Timeline;
use deepwatch_core::api::admin::GatewayAdmin;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

fn client() -> reqwest::Client {
    deepwatch_core::http::builder().timeout(Duration::from_secs(3)).build().unwrap_or_default()
}

async fn get_json(client: &reqwest::Client, url: &str, token: Option<&str>) -> Option<Value> {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// `alertname (severity, pool=.., instance=..)`.
pub fn describe(labels: &Value) -> String {
    let name = labels["alertname"].as_str().unwrap_or("?");
    let mut parts = Vec::new();
    for key in ["severity", "priority", "pool", "instance", "gpu", "slo", "job", "reason"] {
        if let Some(v) = labels[key].as_str() {
            parts.push(format!("{key}={v}"));
        }
    }
    format!("{name} ({})", parts.join(", "))
}

/// Polls `GET /api/v1/alerts` and reports every state change. Alerts already present at the
/// first poll are reported too (as their current state).
pub async fn alerts(prometheus: String, timeline: Timeline) {
    let client = client();
    let url = format!("{prometheus}/api/v1/alerts");
    let mut known: BTreeMap<String, (String, Value)> = BTreeMap::new();
    loop {
        if let Some(doc) = get_json(&client, &url, None).await {
            let mut now: BTreeMap<String, (String, Value)> = BTreeMap::new();
            for a in doc["data"]["alerts"].as_array().into_iter().flatten() {
                let key = a["labels"].to_string();
                let state = a["state"].as_str().unwrap_or("?").to_string();
                now.insert(key, (state, a["labels"].clone()));
            }
            for (key, (state, labels)) in &now {
                let before = known.get(key).map(|k| k.0.as_str());
                if before != Some(state.as_str()) {
                    emit_alert(&timeline, labels, state);
                }
            }
            for (key, (_, labels)) in &known {
                if !now.contains_key(key) {
                    emit_alert(&timeline, labels, "resolved");
                }
            }
            known = now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn emit_alert(timeline: &Timeline, labels: &Value, state: &str) {
    let name = labels["alertname"].as_str().unwrap_or("?");
    timeline.emit(
        "alert",
        format!("{} {state}", describe(labels)),
        json!({"alert": name, "state": state, "labels": labels}),
    );
}

/// Polls the gateway's `GET /admin/events` and reports new events (failover, failback, ...).
pub async fn gateway_events(admin: String, token: String, timeline: Timeline) {
    let Ok(client) = GatewayAdmin::new(&admin, &token, Duration::from_secs(3)) else {
        timeline.info(format!("gateway admin url {admin:?} is not usable; no gateway events"));
        return;
    };
    let mut seen = None::<usize>;
    loop {
        if let Ok(doc) = client.events(1000).await {
            let events = doc.events;
            for e in events.iter().skip(seen.unwrap_or(events.len())) {
                let event = e.event.as_str();
                let kind = if matches!(event, "failover" | "failback" | "rollback") {
                    "remediation"
                } else {
                    "gateway"
                };
                timeline.emit(
                    kind,
                    format!("gateway {event} pool={} {}", e.pool, e.detail),
                    json!({"event": event, "pool": e.pool, "detail": e.detail}),
                );
            }
            seen = Some(events.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Polls the analyzer's `GET /reports` and reports each new root-cause report.
pub async fn reports(analyzer: String, timeline: Timeline) {
    let client = client();
    let mut seen = std::collections::HashSet::new();
    loop {
        if let Some(doc) = get_json(&client, &format!("{analyzer}/reports"), None).await {
            for r in doc["reports"].as_array().into_iter().flatten() {
                let file = r["markdown"].as_str().unwrap_or_default().to_string();
                if file.is_empty() || !seen.insert(file.clone()) {
                    continue;
                }
                let alert = r["alertname"].as_str().unwrap_or("?");
                let json_file = r["json"].as_str().unwrap_or_default();
                let report =
                    get_json(&client, &format!("{analyzer}/reports/{json_file}"), None).await;
                let ranked = report.as_ref().map(ranked_names).unwrap_or_default();
                let top1 = ranked.first().cloned();
                let id = file.trim_end_matches(".md");
                let incident = format!("{analyzer}/incidents/{id}");
                let cause = top1.as_deref().unwrap_or("no candidate moved clearly");
                timeline.emit(
                    "report",
                    format!("root-cause report for {alert}: top-1 {cause}; {incident}"),
                    json!({"alert": alert, "markdown": file, "json": r["json"], "top1": top1,
                           "ranked": ranked, "incident": incident, "starts_at": r["starts_at"]}),
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The ranked candidates of a report's JSON, best first, as `name{label="value",...}`.
pub fn ranked_names(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for c in report["candidates"].as_array().into_iter().flatten() {
        let labels: Vec<String> = c["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != "__name__")
            .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
            .collect();
        out.push(format!("{}{{{}}}", c["name"].as_str().unwrap_or("?"), labels.join(",")));
    }
    out
}

/// Polls Alertmanager's `GET /api/v2/alerts` and reports alerts it inhibits (a critical muting
/// the warning of the same alert and instance) or that a silence mutes.
pub async fn inhibitions(alertmanager: String, timeline: Timeline) {
    let client = client();
    let url = format!("{alertmanager}/api/v2/alerts");
    let mut muted = std::collections::HashSet::new();
    loop {
        if let Some(doc) = get_json(&client, &url, None).await {
            let alerts = doc.as_array().cloned().unwrap_or_default();
            let by_fp: BTreeMap<&str, &Value> = alerts
                .iter()
                .filter_map(|a| Some((a["fingerprint"].as_str()?, &a["labels"])))
                .collect();
            let mut now = std::collections::HashSet::new();
            for a in &alerts {
                let fp = a["fingerprint"].as_str().unwrap_or_default().to_string();
                if a["status"]["state"] != "suppressed" {
                    continue;
                }
                now.insert(fp.clone());
                if muted.contains(&fp) {
                    continue;
                }
                let by: Vec<String> = a["status"]["inhibitedBy"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| by_fp.get(f.as_str()?).map(|l| describe(l)))
                    .collect();
                let why = if by.is_empty() {
                    "silenced".to_string()
                } else {
                    format!("inhibited by {}", by.join(", "))
                };
                let name = a["labels"]["alertname"].as_str().unwrap_or("?");
                timeline.emit(
                    "inhibited",
                    format!("Alertmanager holds back {}: {why}", describe(&a["labels"])),
                    json!({"alert": name, "labels": a["labels"], "inhibited_by": by}),
                );
            }
            muted = now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits (at most `timeout`) until Prometheus has scraped every target successfully and no
/// `TargetAbsent` alert is left from the moments before its first scrapes; returns how many
/// targets it has.
pub async fn targets_up(prometheus: &str, timeout: Duration) -> Option<usize> {
    let client = client();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let targets = get_json(&client, &format!("{prometheus}/api/v1/targets"), None).await;
        let alerts = get_json(&client, &format!("{prometheus}/api/v1/alerts"), None).await;
        if let (Some(targets), Some(alerts)) = (targets, alerts) {
            let targets = targets["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
            let absent = alerts["data"]["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["labels"]["alertname"] == "TargetAbsent");
            if !targets.is_empty() && targets.iter().all(|t| t["health"] == "up") && !absent {
                return Some(targets.len());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
