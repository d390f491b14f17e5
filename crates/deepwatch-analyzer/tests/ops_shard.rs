//! Two analyzers sharing one fleet (`analyzer.shard = "0/2"` and `"1/2"`) against a real
//! Prometheus and a real Alertmanager that sends every alert to both: every series is
//! baselined by exactly one of them, and every alert's remediation runs exactly once.

use crate::support::{daemon_config, metrics, start};
use deepwatch_core::catalog::agent::PROCESS_RSS;
use deepwatch_core::catalog::analyzer::BASELINE_WARMING_UP;
use deepwatch_core::clock::{Clock, TokioClock};
use deepwatch_core::config::analyzer::SeriesConfig;
use deepwatch_core::config::remediation::{ActionConfig, ActionKind, PolicyConfig};
use deepwatch_core::config::Config;
use deepwatch_core::remote_write::{Label, Sample, TimeSeries, WriteRequest};
use deepwatch_testkit::{wait_for, Alertmanager, Prometheus};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const NODES: usize = 24;

/// Ten minutes of RSS for `NODES` nodes, 10 s apart, written through Prometheus' receiver.
async fn write_fleet(prom: &Prometheus) {
    let now = TokioClock::new().unix_millis();
    let mut request = WriteRequest::default();
    for node in 0..NODES {
        let labels = [
            ("__name__", PROCESS_RSS.name.to_string()),
            ("instance", format!("gpu-node-{node}:9844")),
            ("job", "deepwatch-agent".to_string()),
            ("process", "vllm".to_string()),
        ];
        let samples = (0..60)
            .map(|i| Sample {
                value: 4e9 + (node as f64) * 1e6 + (i % 3) as f64 * 1e3,
                timestamp: now - (60 - i) * 10_000,
            })
            .collect();
        request.timeseries.push(TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label { name: n.to_string(), value: v.clone() })
                .collect(),
            samples,
        });
    }
    let resp = deepwatch_testkit::http_client()
        .post(format!("{}/api/v1/write", prom.url()))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(request.to_body())
        .send()
        .await
        .expect("remote write");
    assert!(resp.status().is_success(), "prometheus refused the write: {}", resp.status());
}

fn shard_config(dir: &Path, prom: &str, shard: &str, actions_log: &Path) -> Config {
    let mut c = daemon_config(dir, "http://127.0.0.1:9");
    c.analyzer.prometheus_url = prom.to_string();
    c.analyzer.step = std::time::Duration::from_secs(10);
    c.analyzer.shard = shard.to_string();
    c.analyzer.drift.enabled = false;
    c.analyzer.series = vec![SeriesConfig {
        name: "rss".into(),
        query: PROCESS_RSS.name.into(),
        detectors: vec!["leak".into()],
        min_band: 0.0,
    }];
    c.remediation.policies = vec![PolicyConfig {
        name: "leak".into(),
        matchers: vec!["alertname=\"ProcessMemoryLeak\"".into()],
        actions: vec!["restart_engine".into()],
        revert_on_resolve: false,
    }];
    c.remediation.actions = vec![ActionConfig {
        name: "restart_engine".into(),
        kind: ActionKind::RestartHook,
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            format!("echo \"{shard} $DEEPWATCH_LABEL_INSTANCE\" >> {}", actions_log.display()),
        ]),
        timeout: Some(std::time::Duration::from_secs(10)),
        cooldown: std::time::Duration::from_secs(0),
        max_per_hour: 0,
        ..ActionConfig::default()
    }];
    c.validate().unwrap_or_else(|e| panic!("shard config: {e}"));
    c
}

/// Instances (`instance` label values) an analyzer exports a baseline state for.
fn baselined(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{}{{", BASELINE_WARMING_UP.name)))
        .filter_map(|l| l.split("instance=\"").nth(1)?.split('"').next().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_split_the_series_and_act_once_per_alert() {
    let prom = Prometheus::start_with_flags(
        "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
        &[],
        &["--web.enable-remote-write-receiver"],
    )
    .await;
    write_fleet(&prom).await;
    let dir = tempfile::tempdir().unwrap();
    let actions_log = dir.path().join("actions.log");
    let (a_addr, b_addr) = (deepwatch_testkit::free_addr(), deepwatch_testkit::free_addr());
    let a_config = shard_config(&dir.path().join("a"), &prom.url(), "0/2", &actions_log);
    let b_config = shard_config(&dir.path().join("b"), &prom.url(), "1/2", &actions_log);
    let webhook = |addr| format!("http://{addr}/webhook/alertmanager");
    // One receiver, both analyzers: what an operator configures for a sharded pair.
    let am = Alertmanager::start(&format!(
        "route:\n  receiver: selfheal\n  group_by: ['instance']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: selfheal\n    webhook_configs:\n      - url: {}\n      - url: {}\n",
        webhook(a_addr),
        webhook(b_addr)
    ))
    .await;
    let a = start(&a_config, Some(a_addr)).await;
    let b = start(&b_config, Some(b_addr)).await;

    // Series: each node baselined by exactly one analyzer.
    let all: BTreeSet<String> = (0..NODES).map(|n| format!("gpu-node-{n}:9844/vllm")).collect();
    let (a_series, b_series) =
        wait_for("both shards to baseline the fleet", Duration::from_secs(30), || async {
            let a_series = baselined(&metrics(&format!("http://{a_addr}")).await);
            let b_series = baselined(&metrics(&format!("http://{b_addr}")).await);
            let union: BTreeSet<String> = a_series.union(&b_series).cloned().collect();
            (union == all).then_some((a_series, b_series))
        })
        .await;
    assert!(a_series.is_disjoint(&b_series), "baselined twice: {a_series:?} {b_series:?}");
    assert!(!a_series.is_empty() && !b_series.is_empty(), "one shard took everything");

    // Alerts: Alertmanager delivers each to both; the restart runs once per node.
    let alerts: Vec<_> = (0..8)
        .map(|n| {
            json!({"labels": {"alertname": "ProcessMemoryLeak", "severity": "warning",
                              "instance": format!("gpu-node-{n}:9844"), "process": "vllm"},
                   "annotations": {"summary": "vllm grows"}})
        })
        .collect();
    let resp = deepwatch_testkit::http_client()
        .post(format!("{}/api/v2/alerts", am.url()))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let ran = || std::fs::read_to_string(&actions_log).unwrap_or_default();
    wait_for("eight restarts", Duration::from_secs(30), || async {
        (ran().lines().count() >= 8).then_some(())
    })
    .await;
    // Both analyzers saw every alert by now (skipped counters), and no second run came.
    wait_for("both shards to see every alert", Duration::from_secs(20), || async {
        let skipped = |t: &str| {
            crate::support::sample(t, "deepwatch_analyzer_shard_skipped_total{kind=\"alert\"}")
                .unwrap_or(0.0)
        };
        let total = skipped(&metrics(&format!("http://{a_addr}")).await)
            + skipped(&metrics(&format!("http://{b_addr}")).await);
        (total >= 8.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lines: Vec<String> = ran().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 8, "each alert acted on once: {lines:?}");
    let nodes: BTreeSet<&str> = lines.iter().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(nodes.len(), 8, "{lines:?}");
    let by = |s: &str| lines.iter().filter(|l| l.starts_with(s)).count();
    assert!(by("0/2") > 0 && by("1/2") > 0, "both shards acted: {lines:?}");
    a.shutdown().await;
    b.shutdown().await;
}
