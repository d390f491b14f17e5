//! `deepwatch push`'s batching against a real Pushgateway: batches arrive, a gauge that moved
//! < 5 % is not re-pushed, and a bad line is skipped and counted while reading goes on. The
//! binary end to end, with Prometheus scraping the Pushgateway, is in the CLI's `push` test.

use deepwatch_agent::push::batch::{self, run, Stats};
use deepwatch_core::catalog::push as cat;
use deepwatch_core::config::push::PushConfig;
use deepwatch_testkit::{http_client, Pushgateway};

async fn pushgateway_text(pg: &Pushgateway) -> String {
    http_client().get(format!("{}/metrics", pg.url())).send().await.unwrap().text().await.unwrap()
}

fn value_line<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains("job=\"batch_inference\""))
}

#[tokio::test]
async fn a_gauge_moving_less_than_the_ratio_keeps_its_pushed_value() {
    let pg = Pushgateway::start().await;
    let cfg = PushConfig { pushgateway_url: pg.url(), batch_size: 2, ..PushConfig::default() };
    // One Batcher through two batches, checking the Pushgateway between them.
    let pusher = batch::Pusher::new(&cfg).unwrap();
    let mut b = batch::Batcher::new(&cfg);
    b.add(batch::parse_line("2.0", 1).unwrap().unwrap());
    let first = b.take().unwrap();
    pusher.push(&first).await.unwrap();
    b.confirm(&first);
    b.add(batch::parse_line("2.04", 2).unwrap().unwrap());
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
async fn a_bad_line_is_skipped_and_counted_and_reading_goes_on() {
    let pg = Pushgateway::start().await;
    let cfg = PushConfig { pushgateway_url: pg.url(), batch_size: 100, ..PushConfig::default() };
    let stats = run(&cfg, "0.2\n0.3\nnot-a-number\n0.4\n".as_bytes()).await.unwrap();
    assert_eq!((stats.results, stats.malformed, stats.undelivered), (3, 1, 0));
    let text = pushgateway_text(&pg).await;
    let count = value_line(&text, &format!("{}_count", cat::BATCH_REQUEST_DURATION.name)).unwrap();
    assert!(count.ends_with(" 3"), "{count}");
    let malformed = value_line(&text, cat::BATCH_MALFORMED_LINES.name).unwrap();
    assert!(malformed.ends_with(" 1"), "{malformed}");
}

#[tokio::test]
async fn full_batches_are_pushed_at_once_and_the_rest_at_the_end() {
    let pg = Pushgateway::start().await;
    let cfg = PushConfig { pushgateway_url: pg.url(), batch_size: 3, ..PushConfig::default() };
    // Batch 1: mean 0.5. Batch 2: mean 0.51 (2 %): gauges not re-pushed. Then 2 results at EOF.
    let input = "0.5\n0.5\n0.5\n0.51\n{\"latency_seconds\": 0.51}\n{\"latency_ms\": 510, \"ok\": false}\n1.0\n1.0\n";
    let stats = run(&cfg, input.as_bytes()).await.unwrap();
    assert_eq!(stats, Stats { results: 8, pushes: 3, skipped_gauges: 3, ..Stats::default() });
    let text = pushgateway_text(&pg).await;
    let mean = value_line(&text, cat::BATCH_LATENCY_MEAN.name).unwrap_or_else(|| panic!("{text}"));
    assert!(mean.ends_with(" 1"), "final batch (mean 1.0) must be pushed: {mean}");
}
