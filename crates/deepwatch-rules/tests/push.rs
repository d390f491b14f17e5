//! `deepwatch push` against a real Pushgateway scraped by a real Prometheus (using the
//! generated prometheus.yml): values arrive, and a gauge that moved < 5 % is not re-pushed.

use deepwatch_core::catalog::push as cat;
use deepwatch_core::config::push::PushConfig;
use deepwatch_core::config::rules::RulesConfig;
use deepwatch_rules::push::{run, Stats};
use deepwatch_testkit::{http_client, Prometheus, Pushgateway};
use std::time::Duration;

async fn pushgateway_text(pg: &Pushgateway) -> String {
    http_client().get(format!("{}/metrics", pg.url())).send().await.unwrap().text().await.unwrap()
}

fn value_line<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains("job=\"batch_inference\""))
}

async fn scalar(prom: &Prometheus, q: &str) -> Option<f64> {
    let r = prom.query(q).await;
    r.first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn pushes_batches_that_prometheus_scrapes_and_skips_small_gauge_changes() {
    let pg = Pushgateway::start().await;
    let mut spec = RulesConfig::default();
    spec.targets.agents.clear();
    spec.targets.gateways.clear();
    spec.targets.analyzer.clear();
    spec.targets.node_exporter.clear();
    spec.targets.pushgateway = vec![pg.server.addr.to_string()];
    let generated =
        deepwatch_rules::generate(&spec, deepwatch_rules::Options { time_scale: 5 }).unwrap();
    let prom_yml = &generated.files["prometheus/prometheus.yml"];
    let prom = Prometheus::start(prom_yml, &[]).await;

    let cfg = PushConfig { pushgateway_url: pg.url(), batch_size: 3, ..PushConfig::default() };
    // Batch 1: mean 0.5. Batch 2: mean 0.51 (2 %): gauge not re-pushed. Then 2 results flushed at EOF.
    let input = "0.5\n0.5\n0.5\n0.51\n{\"latency_seconds\": 0.51}\n{\"latency_ms\": 510, \"ok\": false}\n1.0\n1.0\n";
    let stats = run(&cfg, input.as_bytes()).await.unwrap();
    assert_eq!(stats, Stats { results: 8, pushes: 3, skipped_gauges: 3 });

    let text = pushgateway_text(&pg).await;
    let mean = value_line(&text, cat::BATCH_LATENCY_MEAN.name).unwrap_or_else(|| panic!("{text}"));
    assert!(mean.ends_with(" 1"), "final batch (mean 1.0) must be pushed: {mean}");
    let count = value_line(&text, &format!("{}_count", cat::BATCH_REQUEST_DURATION.name)).unwrap();
    assert!(count.ends_with(" 8"), "{count}");

    // Prometheus scrapes the Pushgateway and sees the job's own labels (honor_labels).
    let q = format!(
        "{}_count{{job=\"batch_inference\", instance=\"batch-1\"}}",
        cat::BATCH_REQUEST_DURATION.name
    );
    prom.wait_for_series(&q, Duration::from_secs(30)).await;
    assert_eq!(scalar(&prom, &q).await, Some(8.0));
    let errors = format!("{}{{outcome=\"error\"}}", cat::BATCH_RESULTS.name);
    assert_eq!(scalar(&prom, &errors).await, Some(1.0));
}

#[tokio::test]
async fn a_gauge_moving_less_than_the_ratio_keeps_its_pushed_value() {
    let pg = Pushgateway::start().await;
    let cfg = PushConfig { pushgateway_url: pg.url(), batch_size: 2, ..PushConfig::default() };
    // One Batcher through two batches, checking the Pushgateway between them.
    let pusher = deepwatch_rules::push::Pusher::new(&cfg).unwrap();
    let mut b = deepwatch_rules::push::Batcher::new(&cfg);
    b.add(deepwatch_rules::push::parse_line("2.0", 1).unwrap().unwrap());
    pusher.push(&b.take().unwrap()).await.unwrap();
    b.add(deepwatch_rules::push::parse_line("2.04", 2).unwrap().unwrap());
    let second = b.take().unwrap();
    assert!(second.skipped.contains(&cat::BATCH_LATENCY_MEAN.name));
    pusher.push(&second).await.unwrap();
    let text = pushgateway_text(&pg).await;
    let mean = value_line(&text, cat::BATCH_LATENCY_MEAN.name).unwrap();
    assert!(mean.ends_with(" 2"), "2 % change must not be pushed: {mean}");
    let count = value_line(&text, &format!("{}_count", cat::BATCH_REQUEST_DURATION.name)).unwrap();
    assert!(count.ends_with(" 2"), "{count}");
}

#[tokio::test]
async fn bad_line_is_named_and_earlier_results_are_still_pushed() {
    let pg = Pushgateway::start().await;
    let cfg = PushConfig { pushgateway_url: pg.url(), batch_size: 100, ..PushConfig::default() };
    let err = run(&cfg, "0.2\n0.3\nnot-a-number\n".as_bytes()).await.unwrap_err().to_string();
    assert!(err.starts_with("line 3:"), "{err}");
    let text = pushgateway_text(&pg).await;
    let count = value_line(&text, &format!("{}_count", cat::BATCH_REQUEST_DURATION.name)).unwrap();
    assert!(count.ends_with(" 2"), "{count}");
}
