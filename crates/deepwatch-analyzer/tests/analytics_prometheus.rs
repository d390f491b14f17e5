//! Against a real Prometheus (Debian package), fed by backfilling OpenMetrics with
//! `promtool tsdb create-blocks-from openmetrics`: `Analytics` reports itself degraded while
//! Prometheus is unreachable and catches up on the missed range when it answers again; root-
//! cause ranking through `PromSource` (the built-in PromQL candidates) puts the injected cause
//! first; output drift is measured per model_version and between the blue and green pools from
//! backfilled response-length histograms. Time is a manual clock set to the backfilled range.

use deepwatch_analyzer::prom::{PromClient, PromOptions};
use deepwatch_analyzer::rca::scenarios::{generate, Fault};
use deepwatch_analyzer::{rca, Analytics};
use deepwatch_core::catalog::agent::PROCESS_RSS;
use deepwatch_core::clock::{system_time_from_unix, Clock};
use deepwatch_core::config::analyzer::{AnalyzerConfig, BaselineConfig, RcaConfig, SeriesConfig};
use deepwatch_core::expo::{Format, MetricSink};
use deepwatch_core::metrics::Encode;
use deepwatch_testkit::{free_addr, require_binary, run_tool, Server};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A clock the test sets by hand.
#[derive(Debug, Default)]
struct ManualClock(AtomicU64);

impl ManualClock {
    fn set(&self, unix: f64) {
        self.0.store(unix.to_bits(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
    fn wall(&self) -> SystemTime {
        system_time_from_unix(f64::from_bits(self.0.load(Ordering::SeqCst)))
    }
}

/// Backfills `openmetrics` into a fresh TSDB directory.
fn backfill(openmetrics: &str) -> tempfile::TempDir {
    let promtool = require_binary(&["promtool"], "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.om");
    std::fs::write(&input, openmetrics).unwrap();
    let data = dir.path().join("data");
    let (ok, out) = run_tool(
        &promtool,
        &[
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            input.to_str().unwrap(),
            data.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(ok, "promtool backfill failed:\n{out}");
    dir
}

/// Prometheus on `addr` over the backfilled TSDB (kept far longer than the default retention).
async fn prometheus(tsdb: &Path, addr: SocketAddr) -> Server {
    let binary = require_binary(&["prometheus"], "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\nscrape_configs: []\n").unwrap();
    let args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", tsdb.join("data").display()),
        format!("--web.listen-address={addr}"),
        "--storage.tsdb.retention.time=100y".to_string(),
        "--log.level=warn".to_string(),
    ];
    let mut server = Server::spawn("prometheus", &binary, &args, addr, dir).unwrap();
    server.wait_ready("/-/ready", Duration::from_secs(30)).await;
    server
}

fn rendered(analytics: &Analytics) -> String {
    let mut sink = MetricSink::new(Format::Text004);
    analytics.encode(&mut sink);
    sink.render()
}

fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

const T0: f64 = 1_709_546_400.0; // 2024-03-04 10:00 UTC

#[tokio::test]
async fn analytics_degrades_while_prometheus_is_down_and_catches_up() {
    // Three hours of one process's RSS, one point a minute: flat, then +50 MB/min for the
    // last hour.
    let mut om = format!("# TYPE {} gauge\n", PROCESS_RSS.name);
    for i in 0..180 {
        let t = T0 + i as f64 * 60.0;
        let leak = if i >= 120 { 50e6 * (i - 120) as f64 } else { 0.0 };
        let wobble = ((i * 7919) % 13) as f64 * 2e6;
        om.push_str(&format!(
            "{}{{instance=\"node-a\",process=\"vllm\",pid=\"7\"}} {} {t}\n",
            PROCESS_RSS.name,
            8e9 + wobble + leak
        ));
    }
    om.push_str("# EOF\n");
    let tsdb = backfill(&om);
    let addr = free_addr();

    let mut config = AnalyzerConfig {
        prometheus_url: format!("http://{addr}"),
        query_timeout: std::time::Duration::from_millis(3000),
        retries: 1,
        retry_backoff: std::time::Duration::from_millis(10),
        series: vec![SeriesConfig {
            name: "process_rss".into(),
            query: PROCESS_RSS.name.into(),
            detectors: vec!["band".into(), "leak".into()],
            min_band: 0.0,
        }],
        ..AnalyzerConfig::default()
    };
    config.baseline.periods = vec![];
    config.drift.enabled = false;
    let clock = Arc::new(ManualClock::default());
    let prom = PromClient::from_config(&config).unwrap();
    let analytics = Analytics::new(&config, prom, clock.clone());

    // Nothing listens yet: degraded, not dead.
    clock.set(T0 + 110.0 * 60.0);
    analytics.tick().await;
    assert!(analytics.is_degraded());
    let text = rendered(&analytics);
    assert!(
        text.contains("deepwatch_analyzer_degraded{reason=\"prometheus_unreachable\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("deepwatch_analyzer_prometheus_queries_total{outcome=\"error\"} 2"),
        "{text}"
    );

    // Prometheus answers: the history is fetched, a band exists, no leak yet.
    let mut server = prometheus(tsdb.path(), addr).await;
    analytics.tick().await;
    assert!(!analytics.is_degraded());
    let text = rendered(&analytics);
    assert!(text.contains("deepwatch_analyzer_degraded{reason=\"prometheus_unreachable\"} 0"));
    let expected = sample(&text, "deepwatch_baseline_expected{series=\"process_rss\"");
    assert!(expected.is_some_and(|e| (e - 8e9).abs() < 5e7), "{text}");
    assert_eq!(sample(&text, "deepwatch_baseline_warming_up{series=\"process_rss\""), Some(0.0));
    assert!(!text.contains("deepwatch_detector_findings_total{detector=\"leak\""), "{text}");

    // Prometheus goes away while the leak starts; the analyzer keeps running, degraded.
    server.kill();
    clock.set(T0 + 150.0 * 60.0);
    analytics.tick().await;
    assert!(analytics.is_degraded());

    // Back again: the missed range is fetched and judged, the leak found with its slope.
    let _server = prometheus(tsdb.path(), addr).await;
    clock.set(T0 + 179.0 * 60.0);
    analytics.tick().await;
    assert!(!analytics.is_degraded());
    let text = rendered(&analytics);
    assert_eq!(
        sample(&text, "deepwatch_analyzer_last_evaluation_timestamp_seconds"),
        Some(T0 + 179.0 * 60.0)
    );
    assert!(
        sample(
            &text,
            "deepwatch_detector_findings_total{detector=\"leak\",series=\"process_rss\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let slope =
        sample(&text, "deepwatch_leak_slope_bytes_per_second{series=\"process_rss\"").unwrap();
    assert!((slope - 50e6 / 60.0).abs() < 0.1 * 50e6 / 60.0, "slope {slope}");
    let score = sample(&text, "deepwatch_anomaly_score{series=\"process_rss\"").unwrap();
    assert!(score > 0.5, "the leaking series scores as anomalous: {score}");

    // The process goes away: after an hour of silence its band is no longer exported.
    clock.set(T0 + 179.0 * 60.0 + 2.0 * 3600.0);
    analytics.tick().await;
    let text = rendered(&analytics);
    assert_eq!(analytics.series_count(), 0);
    assert!(!text.contains("deepwatch_baseline_expected{series=\"process_rss\""), "{text}");
    assert!(
        !text.contains("deepwatch_leak_slope_bytes_per_second{series=\"process_rss\""),
        "{text}"
    );
}

#[tokio::test]
async fn rca_from_prometheus_ranks_the_injected_cause_first() {
    for fault in [Fault::GpuSaturation, Fault::MemoryLeak, Fault::ErrorBurst] {
        let scenario = generate(fault, 3);
        let tsdb = backfill(&scenario.openmetrics());
        let _server = prometheus(tsdb.path(), free_addr()).await;
        let prom = PromClient::new(&_server.url(), PromOptions::default()).unwrap();
        let report = rca::rank(
            &prom,
            scenario.at,
            Some(scenario.alert),
            &RcaConfig::default(),
            &BaselineConfig::default(),
        )
        .await
        .unwrap();
        let top = report.top().expect("candidates");
        assert!(
            scenario.is_cause(top),
            "{}: top is {} ({:?})\n{}",
            fault.name(),
            top.display(),
            scenario.target,
            report.markdown()
        );
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        if !scenario.source.events.is_empty() {
            assert!(
                report.timeline.iter().any(|e| e.kind == rca::report::EntryKind::Event),
                "deploy event from the gauge"
            );
        }
    }
}

/// Cumulative bucket counts of `n` responses spread over `TOKEN_COUNT` buckets by `weights`.
fn buckets_for(weights: &[f64], n: f64) -> Vec<f64> {
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += (n * w / total).round();
            acc
        })
        .collect()
}

#[tokio::test]
async fn drift_is_measured_per_version_and_between_pools() {
    use deepwatch_core::catalog::buckets::TOKEN_COUNT;
    use deepwatch_core::catalog::gateway::RESPONSE_COMPLETION_TOKENS;
    let name = RESPONSE_COMPLETION_TOKENS.name;
    // Length distributions over the 16 TOKEN_COUNT buckets: long answers, and short ones.
    let long: Vec<f64> =
        (0..TOKEN_COUNT.len()).map(|i| if (6..11).contains(&i) { 4.0 } else { 0.5 }).collect();
    let short: Vec<f64> =
        (0..TOKEN_COUNT.len()).map(|i| if (2..6).contains(&i) { 4.0 } else { 0.5 }).collect();
    let step = 300.0;
    let points = (26.0 * 3600.0 / step) as usize;
    let end = T0 + (points - 1) as f64 * step;
    let mut om = format!("# TYPE {name} histogram\n");
    // (model_version, pool, responses per step, weights before, weights in the last 2 hours)
    let series = [("v1", "blue", 60.0, &long, &long), ("v2", "green", 30.0, &long, &short)];
    for (version, pool, rate, before, after) in series {
        let mut cumulative = vec![0.0; TOKEN_COUNT.len()];
        let mut count = 0.0;
        for k in 0..points {
            let t = T0 + k as f64 * step;
            let weights = if t > end - 7200.0 { after } else { before };
            for (c, add) in cumulative.iter_mut().zip(buckets_for(weights, rate)) {
                *c += add;
            }
            count = *cumulative.last().unwrap();
            let labels = format!("model=\"m\",model_version=\"{version}\",pool=\"{pool}\"");
            for (edge, c) in TOKEN_COUNT.iter().zip(&cumulative) {
                om.push_str(&format!("{name}_bucket{{{labels},le=\"{edge}\"}} {c} {t}\n"));
            }
            om.push_str(&format!("{name}_bucket{{{labels},le=\"+Inf\"}} {count} {t}\n"));
            om.push_str(&format!("{name}_count{{{labels}}} {count} {t}\n"));
            om.push_str(&format!("{name}_sum{{{labels}}} {} {t}\n", count * 300.0));
        }
        let _ = count;
    }
    om.push_str("# EOF\n");
    let tsdb = backfill(&om);
    let server = prometheus(tsdb.path(), free_addr()).await;
    let mut config = AnalyzerConfig {
        prometheus_url: server.url(),
        series: vec![],
        ..AnalyzerConfig::default()
    };
    config.drift.window = std::time::Duration::from_secs(3600);
    let clock = Arc::new(ManualClock::default());
    clock.set(end);
    let analytics = Analytics::new(&config, PromClient::from_config(&config).unwrap(), clock);
    analytics.tick().await;
    assert!(!analytics.is_degraded());
    let text = rendered(&analytics);
    let get = |metric: &str, labels: &str| {
        sample(&text, &format!("{metric}{{{labels}}}"))
            .unwrap_or_else(|| panic!("{metric}{{{labels}}} missing:\n{text}"))
    };
    let stable = "model=\"m\",model_version=\"v1\",pool=\"blue\",kind=\"length\"";
    let changed = "model=\"m\",model_version=\"v2\",pool=\"green\",kind=\"length\"";
    assert!(
        get("deepwatch_drift_divergence", stable) < get("deepwatch_drift_threshold", stable),
        "{text}"
    );
    assert!(
        get("deepwatch_drift_divergence", changed) > get("deepwatch_drift_threshold", changed),
        "{text}"
    );
    let pools = "model=\"m\",pool=\"green\",reference_pool=\"blue\",kind=\"length\"";
    assert!(
        get("deepwatch_drift_pool_divergence", pools)
            > get("deepwatch_drift_pool_threshold", pools),
        "{text}"
    );
    assert!(
        get("deepwatch_detector_findings_total", "detector=\"drift\",series=\"length\"") >= 2.0
    );
    // Never below the configured KL threshold (small windows raise it; see detect::drift).
    assert!(get("deepwatch_drift_threshold", changed) >= 0.1);
    assert!(get("deepwatch_drift_threshold", stable) >= 0.1);
}
