//! The daemon with a real Prometheus: Prometheus scrapes its /metrics (own families and the
//! analytics' baselines, valid in both text formats), the daemon queries Prometheus, a firing
//! alert gets a root-cause report linked by fingerprint, and when Prometheus dies the daemon
//! reports itself degraded and keeps healing.

use crate::support::mock_gateway::{pool, MockGateway};
use crate::support::*;
use axum::routing::get;
use axum::Router;
use deepwatch_core::promtext::{self, Dialect};
use deepwatch_testkit::{http_client, wait_for, Prometheus};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const DEGRADED: &str = "deepwatch_analyzer_degraded{reason=\"prometheus_unreachable\"}";

/// Wall time for the alert's startsAt (test data only; the code under test uses its clock).
fn now_rfc3339_plus(secs: u64) -> String {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now() + Duration::from_secs(secs);
    chrono::DateTime::<chrono::Utc>::from(now).to_rfc3339()
}

#[tokio::test]
async fn prometheus_scrapes_the_daemon_and_an_outage_degrades_but_never_stops_it() {
    let gw = MockGateway::start(vec![
        pool("primary", &[("http://10.0.0.1:8000", false)]),
        pool("standby", &[("http://10.0.1.1:8000", true)]),
    ])
    .await;
    let addr = deepwatch_testkit::free_addr();
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: analyzer\n    static_configs:\n      - targets: ['{addr}']\n"
    );
    let mut prom = Prometheus::start(&prom_config, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon_config(dir.path(), &gw.url);
    config.analyzer.prometheus_url = prom.url();
    let daemon = start(&config, Some(addr)).await;
    let base = format!("http://{addr}");

    let health = http_client().get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // Prometheus scrapes the daemon and sees it healthy.
    let healthy =
        "deepwatch_analyzer_degraded{job=\"analyzer\",reason=\"prometheus_unreachable\"} == 0";
    prom.wait_for_series(healthy, Duration::from_secs(30)).await;
    let up = prom.query("up{job=\"analyzer\"}").await;
    assert_eq!(up[0]["value"][1], "1");

    // Both text formats parse strictly and carry our families and the analytics' ones.
    let text = metrics(&base).await;
    let families =
        promtext::parse(&text, Dialect::Text004).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    for name in [
        "deepwatch_webhook_alerts_total",
        "deepwatch_remediation_actions_total",
        "deepwatch_notifications_total",
        "deepwatch_baseline_expected",
        "deepwatch_analyzer_degraded",
        "deepwatch_analyzer_prometheus_queries_total",
    ] {
        assert!(promtext::find(&families, name).is_some(), "no family {name} in\n{text}");
    }
    let om = http_client()
        .get(format!("{base}/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(om.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let om_text = om.text().await.unwrap();
    promtext::parse(&om_text, Dialect::OpenMetrics).unwrap_or_else(|e| panic!("{e:?}\n{om_text}"));

    // Prometheus dies: the daemon says so and still acts on alerts.
    prom.server.kill();
    wait_for("degraded gauge", Duration::from_secs(30), || async {
        let m = metrics(&base).await;
        (sample(&m, DEGRADED) == Some(1.0)).then_some(())
    })
    .await;
    let url = format!("{base}/webhook/alertmanager");
    let (status, _) =
        post(&url, &payload("firing", vec![alert("ModelUnavailable", "fp1", "firing", &[])])).await;
    assert_eq!(status, 200);
    wait_for("failover while degraded", Duration::from_secs(20), || async {
        (!gw.calls("POST", "/admin/failover").is_empty()).then_some(())
    })
    .await;
    daemon.shutdown().await;
}

/// A scrape target with one engine gauge the test moves: a built-in RCA candidate.
async fn engine_target(waiting: Arc<AtomicU64>) -> String {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let v = waiting.load(Ordering::Relaxed);
            async move {
                format!("# TYPE deepwatch_engine_requests_waiting gauge\ndeepwatch_engine_requests_waiting{{engine=\"vllm-0\",engine_kind=\"vllm\",model=\"m\"}} {v}\n")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

#[tokio::test]
async fn a_firing_alert_gets_a_root_cause_report_served_by_fingerprint() {
    let waiting = Arc::new(AtomicU64::new(2));
    let target = engine_target(waiting.clone()).await;
    let prom = Prometheus::start(
        &format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: engine\n    static_configs:\n      - targets: ['{target}']\n"),
        &[],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon_config(dir.path(), "http://127.0.0.1:9");
    config.analyzer.prometheus_url = prom.url();
    // The search for the onset starts lookback/4 = 4 s before the alert; the 8+ calm points
    // before that are the baseline.
    config.analyzer.rca.lookback = std::time::Duration::from_secs(16);
    config.analyzer.rca.after = std::time::Duration::from_secs(30);
    config.analyzer.rca.step = std::time::Duration::from_secs(1);
    config.remediation.policies.clear();
    config.remediation.actions.clear();
    // Some calm history, then the queue jumps: the incident.
    prom.wait_for_series("deepwatch_engine_requests_waiting", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    waiting.store(80, Ordering::Relaxed);
    let jumped_at = now_rfc3339_plus(1);
    prom.wait_for_series("deepwatch_engine_requests_waiting > 50", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let daemon = start(&config, None).await;
    let base = format!("http://{}", daemon.addr);

    let mut a = alert("ModelUnavailable", "abc123", "firing", &[]);
    a["startsAt"] = json!(jumped_at);
    let (status, _) =
        post(&format!("{base}/webhook/alertmanager"), &payload("firing", vec![a])).await;
    assert_eq!(status, 200);
    let report = wait_for("root-cause report", Duration::from_secs(30), || async {
        let resp = http_client().get(format!("{base}/reports/alert/abc123")).send().await.ok()?;
        if resp.status() != 200 {
            return None;
        }
        Some(resp.text().await.unwrap())
    })
    .await;
    assert!(report.contains("ModelUnavailable"), "{report}");
    // The queue that jumped is the candidate the report ranks.
    assert!(report.contains("engine_requests_waiting"), "{report}");
    let list: serde_json::Value =
        http_client().get(format!("{base}/reports")).send().await.unwrap().json().await.unwrap();
    let entry = &list["reports"][0];
    assert_eq!(entry["fingerprint"], "abc123");
    let json_report = http_client()
        .get(format!("{base}/reports/{}", entry["json"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(json_report.status(), 200);
    let m = metrics(&base).await;
    assert_eq!(
        sample(&m, "deepwatch_rca_reports_total{alertname=\"ModelUnavailable\"}"),
        Some(1.0),
        "{m}"
    );
    let missing = http_client().get(format!("{base}/reports/alert/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // The same report as an incident page: the notification link leads there, the page draws
    // its charts inline and loads nothing from elsewhere.
    let list = http_client().get(format!("{base}/incidents")).send().await.unwrap();
    assert_eq!(list.headers()["content-type"], "text/html; charset=utf-8");
    let list = list.text().await.unwrap();
    assert!(
        list.contains("ModelUnavailable") && list.contains("engine_requests_waiting"),
        "{list}"
    );
    let page = http_client().get(format!("{base}/incidents/alert/abc123")).send().await.unwrap();
    assert_eq!(page.status(), 200, "the alert link redirects to its incident page");
    let page = page.text().await.unwrap();
    for part in [
        "<h2>Symptom against its baseline</h2>",
        "<h2>Top candidates</h2>",
        "<h2>Timeline</h2>",
        "<h2>Remediation</h2>",
        "<h2>Pools serving the same model</h2>",
        "<h2>Last changes before the onset</h2>",
        "<h2>Reproduce it in the lab</h2>",
        "History: ",
    ] {
        assert!(page.contains(part), "{part} missing from the incident page");
    }
    assert!(page.matches("<svg class=\"chart").count() >= 1, "charts drawn inline");
    assert!(
        !page.contains("<script") && !page.contains("src=\"http"),
        "nothing loaded from elsewhere"
    );
    let pending = http_client().get(format!("{base}/incidents/alert/nope")).send().await.unwrap();
    assert_eq!(pending.status(), 404);
    assert!(pending.text().await.unwrap().contains("http-equiv=\"refresh\""));
    let escape =
        http_client().get(format!("{base}/reports/..%2Fstate%2Faudit.jsonl")).send().await.unwrap();
    assert_eq!(escape.status(), 404);
    daemon.shutdown().await;
}

#[tokio::test]
async fn shutdown_takes_under_five_seconds_even_inside_a_long_prometheus_backoff() {
    let gw = MockGateway::start(vec![pool("primary", &[("http://10.0.0.1:8000", true)])]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon_config(dir.path(), &gw.url);
    // Nothing listens at the Prometheus address: each query fails at once and then waits out
    // a one-minute backoff before its next try.
    config.analyzer.retries = 3;
    config.analyzer.retry_backoff = Duration::from_secs(60);
    let daemon = start(&config, None).await;
    // The first evaluation round (at once) has failed its first query and sleeps in the backoff.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = tokio::time::Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(30), daemon.shutdown()).await;
    let took = started.elapsed();
    assert!(stopped.is_ok() && took < Duration::from_secs(5), "shutdown took {took:?}");
}
