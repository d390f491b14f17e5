//! A real Prometheus scraping the simulator: the vLLM series arrive with their labels, and the
//! stall query stall detectors use (requests running while the `iteration_tokens_total`
//! heartbeat stands still) fires only while the simulator hangs.

use crate::support::*;
use deepwatch_testkit::Prometheus;
use serde_json::json;
use std::time::Duration;

/// Streams requests back to back until dropped, so the engine always has work.
fn keep_busy(sim: &deepwatch_lab::sim::SimHandle) -> tokio::task::JoinHandle<()> {
    let url = format!("{}/v1/chat/completions", sim.url());
    tokio::spawn(async move {
        let c = client();
        loop {
            let body = json!({"model": "sim-model", "max_tokens": 200, "stream": true,
                              "messages": [{"role": "user", "content": "go"}]});
            if let Ok(resp) = c.post(&url).json(&body).send().await {
                let _ = resp.bytes().await;
            }
        }
    })
}

#[tokio::test]
async fn prometheus_sees_vllm_series_and_the_stall_query_fires_only_while_hung() {
    let sim = start_sim(|c| c.tpot_base = std::time::Duration::from_millis(10)).await;
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sim\n    static_configs:\n      - targets: ['{}']\n",
        sim.addr
    );
    let prom = Prometheus::start(&config, &[]).await;
    let busy = keep_busy(&sim);

    let running = prom
        .wait_for_series(
            r#"vllm:num_requests_running{model_name="sim-model",engine="0"} > 0"#,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(running[0]["metric"]["job"], "sim");
    let stall =
        r#"vllm:num_requests_running > 0 and changes(vllm:iteration_tokens_total_count[4s]) == 0"#;
    prom.wait_for_series("rate(vllm:generation_tokens_total[4s]) > 0", Duration::from_secs(20))
        .await;
    assert!(prom.query(stall).await.is_empty(), "a healthy engine is not stalled");

    put_faults(&sim, json!({"hang_before_first_token": true})).await;
    let stalled = prom.wait_for_series(stall, Duration::from_secs(20)).await;
    assert_eq!(stalled[0]["metric"]["model_name"], "sim-model");
    let health = client().get(format!("{}/health", sim.url())).send().await.unwrap();
    assert_eq!(health.status(), 200, "while /health still says healthy");

    reset(&sim).await;
    deepwatch_testkit::wait_for("stall to clear", Duration::from_secs(20), || async {
        prom.query(stall).await.is_empty().then_some(())
    })
    .await;
    busy.abort();
}
