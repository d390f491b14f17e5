//! Capacity planning from a real Prometheus: two models' engines are scraped while their
//! demand moves; the plan finds each model's peak, counts its replicas and recommends replicas
//! by the design rules; the daemon exports the recommendation.

use crate::support;
use axum::routing::get;
use axum::Router;
use deepwatch_analyzer::capacity::{plan, PlanInput};
use deepwatch_analyzer::prom::PromClient;
use deepwatch_core::clock::{Clock, TokioClock};
use deepwatch_core::config::remediation::ScalingConfig;
use deepwatch_testkit::{wait_for, Prometheus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Engines: chat-0..3 serve `chat` (running = `level`, waiting 10 each), code-0 serves `code`.
async fn engines(level: Arc<AtomicU64>) -> String {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let running = level.load(Ordering::Relaxed);
            async move {
                let mut out = String::from(
                    "# TYPE deepwatch_engine_requests_running gauge\n# TYPE deepwatch_engine_requests_waiting gauge\n",
                );
                for i in 0..4 {
                    out.push_str(&format!("deepwatch_engine_requests_running{{engine=\"chat-{i}\",engine_kind=\"vllm\",model=\"chat\"}} {running}\n"));
                    out.push_str(&format!("deepwatch_engine_requests_waiting{{engine=\"chat-{i}\",engine_kind=\"vllm\",model=\"chat\"}} 10\n"));
                }
                out.push_str("deepwatch_engine_requests_running{engine=\"code-0\",engine_kind=\"vllm\",model=\"code\"} 20\n");
                out.push_str("deepwatch_engine_requests_waiting{engine=\"code-0\",engine_kind=\"vllm\",model=\"code\"} 0\n");
                out
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

#[tokio::test]
async fn peaks_replicas_and_recommendations_come_from_prometheus_history() {
    let level = Arc::new(AtomicU64::new(50));
    let target = engines(level.clone()).await;
    let prom = Prometheus::start(
        &format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: engines\n    static_configs:\n      - targets: ['{target}']\n"),
        &[],
    )
    .await;
    prom.wait_for_series("deepwatch_engine_requests_running", Duration::from_secs(30)).await;
    // A surge: 4 x (240 + 10) = 1000 concurrent sequences, then back to 4 x 60 = 240.
    tokio::time::sleep(Duration::from_secs(2)).await;
    level.store(240, Ordering::Relaxed);
    prom.wait_for_series("sum(deepwatch_engine_requests_running) >= 960", Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    level.store(50, Ordering::Relaxed);
    prom.wait_for_series(
        "sum(deepwatch_engine_requests_running{model=\"chat\"}) == 200",
        Duration::from_secs(30),
    )
    .await;

    let client = PromClient::new(&prom.url(), Default::default()).unwrap();
    let config = ScalingConfig {
        history: std::time::Duration::from_secs(120),
        history_step: std::time::Duration::from_secs(1),
        ..ScalingConfig::default()
    };
    let input = PlanInput::from_config(&config, TokioClock::new().unix_seconds());
    let plans = plan(&client, &input).await.unwrap();
    let chat = plans.iter().find(|p| p.model == "chat").unwrap();
    let code = plans.iter().find(|p| p.model == "code").unwrap();
    assert_eq!(chat.peak_demand, 1000.0, "{chat:?}");
    assert_eq!(chat.current_demand, 240.0);
    assert_eq!(chat.current_replicas, Some(4));
    // 1.5 x 1000 / (256 x 0.8) = 7.3 -> 8 replicas; today's 4 are 22 % short at the peak.
    assert_eq!(chat.recommended_replicas, 8);
    assert!(chat.headroom_ratio.unwrap() < -0.2, "{chat:?}");
    assert_eq!(chat.decision_now, Some("scale_in"), "240 on 4 replicas is 23 % load");
    // A quiet model still gets the minimum of 3.
    assert_eq!(
        (code.peak_demand, code.current_replicas, code.recommended_replicas),
        (20.0, Some(1), 3)
    );
    assert_eq!(code.decision_now, Some("scale_out"), "1 replica is below the minimum of 3");

    // The daemon exports the same recommendation.
    let dir = tempfile::tempdir().unwrap();
    let mut daemon_config = support::daemon_config(dir.path(), "http://127.0.0.1:9");
    daemon_config.analyzer.prometheus_url = prom.url();
    daemon_config.remediation.scaling =
        ScalingConfig { plan_interval: std::time::Duration::from_secs(1), ..config };
    let daemon = support::start(&daemon_config, None).await;
    let base = format!("http://{}", daemon.addr);
    wait_for("recommended replicas", Duration::from_secs(20), || async {
        let m = support::metrics(&base).await;
        (support::sample(&m, "deepwatch_capacity_recommended_replicas{model=\"chat\"}")
            == Some(8.0))
        .then_some(())
    })
    .await;
    daemon.shutdown().await;
}
