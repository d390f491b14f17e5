//! Push mode over remote_write against the real receivers: VictoriaMetrics (killed and
//! restarted mid-run: nothing collected during the outage is lost) and Prometheus'
//! `--web.enable-remote-write-receiver` (stopped while more than the buffer is collected: the
//! oldest batches are dropped and counted, the rest arrive).

use crate::support::start_agent;
use deepwatch_agent::push::RemoteWriter;
use deepwatch_agent::Agent;
use deepwatch_core::clock::{Clock, TokioClock};
use deepwatch_core::config::agent::{AgentConfig, AgentPushConfig, PushProtocol};
use deepwatch_testkit::{wait_for, Prometheus, VictoriaMetrics};
use std::sync::Arc;
use std::time::Duration;

const INTERVAL_MS: u64 = 200;

fn now_ms() -> i64 {
    TokioClock::new().unix_millis()
}

/// Timestamps (ms) of the host collector's `up` series of `instance` in VictoriaMetrics.
async fn stored_timestamps(vm: &VictoriaMetrics, instance: &str) -> Vec<i64> {
    let selector = format!("deepwatch_collector_up{{collector=\"host\",instance=\"{instance}\"}}");
    let mut out: Vec<i64> = vm
        .export(&selector)
        .await
        .iter()
        .flat_map(|s| s["timestamps"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_i64())
        .collect();
    out.sort_unstable();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_to_victoria_metrics_loses_nothing_while_the_receiver_restarts() {
    let mut vm = VictoriaMetrics::start().await;
    let mut c = AgentConfig::default();
    c.collectors.gpu = false;
    c.push = AgentPushConfig {
        url: vm.write_url(),
        protocol: PushProtocol::RemoteWrite,
        interval: std::time::Duration::from_millis(INTERVAL_MS),
        timeout: std::time::Duration::from_millis(1000),
        instance: "edge-node-1".into(),
        labels: [("cluster".to_string(), "b".to_string())].into(),
        ..AgentPushConfig::default()
    };
    let _agent = start_agent(&c).await;
    let selector = "deepwatch_host_memory_total_bytes{job=\"deepwatch_agent\",instance=\"edge-node-1\",cluster=\"b\"}";
    vm.server.wait_ready("/health", Duration::from_secs(5)).await;
    deepwatch_testkit::wait_for_series(&vm.url(), selector, Duration::from_secs(15)).await;

    // A hard outage: SIGKILL, two seconds (ten collections) down, then the same port and data.
    vm.server.kill();
    let down_at = now_ms();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let up_at = now_ms();
    vm.restart().await;

    let stamps = wait_for("samples after the restart", Duration::from_secs(20), || async {
        let stamps = stored_timestamps(&vm, "edge-node-1").await;
        (stamps.last().copied().unwrap_or(0) > up_at + 1000).then_some(stamps)
    })
    .await;
    let outage: Vec<i64> =
        stamps.iter().copied().filter(|t| *t >= down_at && *t <= up_at + 1000).collect();
    // Every collection during the outage arrived: about one per 200 ms, no hole.
    assert!(outage.len() >= 10, "only {} samples from the outage: {outage:?}", outage.len());
    let mut window = vec![down_at];
    window.extend(&outage);
    let widest = window.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(widest < 1000, "a {widest} ms hole in the outage window: {outage:?}");

    // The agent's own counters, as pushed: failed attempts, nothing dropped, labels attached.
    let errors = wait_for("the error count pushed", Duration::from_secs(10), || async {
        let r = vm
            .query("deepwatch_agent_pushes_total{outcome=\"error\",instance=\"edge-node-1\",cluster=\"b\"}")
            .await;
        let v: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
        (v > 0.0).then_some(v)
    })
    .await;
    assert!(errors >= 1.0);
    let dropped = vm.query("deepwatch_agent_push_samples_total{outcome=\"dropped\"}").await;
    assert_eq!(dropped[0]["value"][1], "0", "{dropped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_beyond_the_buffer_drops_the_oldest_and_counts_them() {
    let mut prom = Prometheus::start_with_flags(
        "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
        &[],
        &["--web.enable-remote-write-receiver"],
    )
    .await;
    let mut c = AgentConfig::default();
    c.collectors.gpu = false;
    let agent = Agent::start(&c).expect("agent");
    let collectors = agent.collectors().clone();

    // How many samples one collection holds (against a receiver that is never there).
    let push = |max: u64| AgentPushConfig {
        url: format!("{}/api/v1/write", prom.url()),
        protocol: PushProtocol::RemoteWrite,
        interval: std::time::Duration::from_millis(500),
        timeout: std::time::Duration::from_millis(1000),
        instance: "nat-node-3".into(),
        max_buffer_samples: max,
        ..AgentPushConfig::default()
    };
    let probe = RemoteWriter::new(&push(u64::MAX), TokioClock::shared()).unwrap();
    let per_collection = probe.collect_once(&collectors).await;
    assert!(per_collection > 20, "{per_collection} samples in a collection");

    // Room for three and a half collections; the receiver is down for six.
    let max = per_collection * 7 / 2;
    let writer = Arc::new(RemoteWriter::new(&push(max), TokioClock::shared()).unwrap());
    prom.server.terminate().await;
    let sender = writer.clone().spawn_sender();
    let mut sizes = Vec::new();
    for _ in 0..6 {
        sizes.push(writer.collect_once(&collectors).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The newest collections that fit stay; the rest were dropped and counted.
    let mut kept = 0;
    let mut kept_samples = 0;
    for size in sizes.iter().rev() {
        if kept_samples + size > max {
            break;
        }
        kept += 1;
        kept_samples += size;
    }
    let total: u64 = sizes.iter().sum();
    assert!(kept < sizes.len(), "the buffer should overflow: {sizes:?} max {max}");
    assert_eq!(writer.buffered_samples(), kept_samples);
    assert_eq!(writer.samples("dropped"), (total - kept_samples) as f64);
    assert_eq!(writer.samples("sent"), 0.0);

    prom.server.restart("/-/ready", Duration::from_secs(30)).await;
    wait_for("the buffer to drain", Duration::from_secs(20), || async {
        (writer.buffered_samples() == 0).then_some(())
    })
    .await;
    sender.abort();
    assert_eq!(writer.samples("sent"), kept_samples as f64);
    assert_eq!(writer.samples("rejected"), 0.0);
    let stored = prom
        .query("count_over_time(deepwatch_collector_up{collector=\"host\",instance=\"nat-node-3\",job=\"deepwatch_agent\"}[1h])")
        .await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["value"][1], kept.to_string(), "kept {kept} of {sizes:?}");
}
