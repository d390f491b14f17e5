//! The `[analyzer]` section of `deepwatch.toml`: where the analyzer finds Prometheus and how it
//! talks to it, which series get a seasonal baseline, how each detector decides, and how
//! root-cause ranking looks around an incident. Durations are written as integers with their unit
//! in the key (`query_timeout_ms`, `window_secs`) and held as `Duration` (`duration.rs`).

use super::client::{validate_headers, HttpAuthConfig, TlsConfig};
use super::duration::{MAX_INTERVAL, MAX_TIMEOUT, MAX_WINDOW};
use super::{Path, Problems};
use crate::catalog::{agent, analyzer, gateway};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Default listen address of the analyzer daemon (`/metrics`, `/healthz`, webhook).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9466";

/// The detectors a configured series can run.
pub const SERIES_DETECTORS: &[&str] = &["surprise", "band", "shift", "leak", "accuracy"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyzerConfig {
    /// Address of the daemon's `/metrics`, `/healthz`, `/webhook/alertmanager`, `/reports`.
    pub listen: String,
    /// Base URL of the Prometheus HTTP API.
    pub prometheus_url: String,
    /// Headers sent with every Prometheus request (`X-Scope-OrgID` for Mimir or Cortex).
    pub prometheus_headers: BTreeMap<String, String>,
    /// Bearer token or basic auth towards Prometheus.
    pub prometheus_auth: HttpAuthConfig,
    /// TLS options of an https `prometheus_url`.
    pub prometheus_tls: TlsConfig,
    /// Timeout of one Prometheus request.
    #[serde(rename = "query_timeout_ms", with = "crate::config::duration::millis")]
    pub query_timeout: Duration,
    /// Extra attempts after a failed request (connection error, timeout, 5xx).
    pub retries: u32,
    /// Delay before the first retry; doubles on each further one.
    #[serde(rename = "retry_backoff_ms", with = "crate::config::duration::millis")]
    pub retry_backoff: Duration,
    /// One evaluation round (fetch, update baselines, run detectors) every this many seconds.
    #[serde(rename = "evaluation_interval_secs", with = "crate::config::duration::secs")]
    pub evaluation_interval: Duration,
    /// Resolution at which series are fetched and baselined.
    #[serde(rename = "step_secs", with = "crate::config::duration::secs")]
    pub step: Duration,
    /// Where root-cause reports (Markdown and JSON) are written.
    pub report_dir: String,
    pub baseline: BaselineConfig,
    /// Series with a baseline and detectors; each is one PromQL query.
    pub series: Vec<SeriesConfig>,
    pub shift: ShiftConfig,
    pub leak: LeakConfig,
    pub drift: DriftConfig,
    pub accuracy: AccuracyConfig,
    pub rca: RcaConfig,
    /// `"i/n"`: this analyzer is shard `i` of `n` sharing one fleet (`deepwatch_core::shard`);
    /// each series, alert and notification is handled by exactly one of them. `"0/1"`: alone.
    pub shard: String,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            listen: DEFAULT_LISTEN.to_string(),
            prometheus_url: "http://127.0.0.1:9090".to_string(),
            prometheus_headers: BTreeMap::new(),
            prometheus_auth: HttpAuthConfig::default(),
            prometheus_tls: TlsConfig::default(),
            query_timeout: Duration::from_millis(10_000),
            retries: 2,
            retry_backoff: Duration::from_millis(500),
            evaluation_interval: Duration::from_secs(60),
            step: Duration::from_secs(60),
            report_dir: "deepwatch-reports".to_string(),
            baseline: BaselineConfig::default(),
            series: default_series(),
            shift: ShiftConfig::default(),
            leak: LeakConfig::default(),
            drift: DriftConfig::default(),
            accuracy: AccuracyConfig::default(),
            rca: RcaConfig::default(),
            shard: "0/1".to_string(),
        }
    }
}

fn default_series() -> Vec<SeriesConfig> {
    let requests = gateway::REQUESTS.name;
    let ttft = gateway::TIME_TO_FIRST_TOKEN.name;
    let completion = gateway::COMPLETION_TOKENS.name;
    let band_shift = || vec!["band".to_string(), "shift".to_string()];
    vec![
        SeriesConfig {
            name: "request_rate".into(),
            query: format!("sum by (model, pool) (rate({requests}[5m]))"),
            detectors: band_shift(),
            min_band: 0.0,
        },
        SeriesConfig {
            name: "error_ratio".into(),
            query: format!(
                "sum by (model, pool) (rate({requests}{{outcome!=\"ok\"}}[5m])) / sum by (model, pool) (rate({requests}[5m]))"
            ),
            detectors: band_shift(),
            min_band: 0.01,
        },
        SeriesConfig {
            name: "ttft_p90".into(),
            query: format!(
                "histogram_quantile(0.9, sum by (model, pool, le) (rate({ttft}_bucket[5m])))"
            ),
            detectors: band_shift(),
            min_band: 0.05,
        },
        SeriesConfig {
            name: "completion_token_rate".into(),
            query: format!("sum by (model, pool) (rate({completion}[5m]))"),
            detectors: band_shift(),
            min_band: 0.0,
        },
        SeriesConfig {
            name: "process_rss".into(),
            query: agent::PROCESS_RSS.name.to_string(),
            detectors: vec!["leak".to_string()],
            min_band: 0.0,
        },
        SeriesConfig {
            name: "gpu_memory_used".into(),
            query: agent::GPU_MEMORY_USED.name.to_string(),
            detectors: vec!["leak".to_string()],
            min_band: 0.0,
        },
        SeriesConfig {
            name: "probe_accuracy".into(),
            query: analyzer::PROBE_ACCURACY.name.to_string(),
            detectors: vec!["accuracy".to_string()],
            min_band: 0.0,
        },
    ]
}

/// The seasonal-offset median baseline with MAD bands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Seasonal periods; empty means no seasonality (a trailing median and MAD).
    #[serde(rename = "periods_secs", with = "crate::config::duration::secs_list")]
    pub periods: Vec<Duration>,
    /// How many past periods of each length are candidates (yesterday, the day before, ...).
    pub max_cycles: u32,
    /// Half-width, in points, of the window taken around each seasonal offset.
    pub window_points: u32,
    /// Trailing window whose median aligns each candidate period's level with today's.
    #[serde(rename = "level_window_secs", with = "crate::config::duration::secs")]
    pub level_window: Duration,
    /// The level window ends this long before now, so a fresh incident is not averaged in.
    #[serde(rename = "level_gap_secs", with = "crate::config::duration::secs")]
    pub level_gap: Duration,
    /// Half-width of the normal band in robust standard deviations (1.4826 x MAD).
    pub band_width: f64,
    /// Points needed before a series without seasonality gets a band.
    pub min_points: u32,
    /// The band is never narrower than this fraction of the expected value.
    pub relative_floor: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            periods: vec![Duration::from_secs(86_400), Duration::from_secs(604_800)],
            max_cycles: 3,
            window_points: 5,
            level_window: Duration::from_secs(3_600),
            level_gap: Duration::from_secs(1_800),
            band_width: 5.0,
            min_points: 60,
            relative_floor: 0.02,
        }
    }
}

/// One baselined series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesConfig {
    /// The `series` label of the exported baseline.
    pub name: String,
    /// PromQL; every result series is baselined apart, identified by `SERIES_LABELS`.
    pub query: String,
    /// Detectors run on it: surprise, band, shift, leak, accuracy.
    pub detectors: Vec<String>,
    /// The band is never narrower than this, in the series' unit (0.01 for an error ratio).
    pub min_band: f64,
}

/// Sustained level shift: two-sided CUSUM on the residual from the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShiftConfig {
    /// Residual (in robust standard deviations) a shift must exceed to accumulate.
    pub slack_sigmas: f64,
    /// Accumulated residual that reports a shift.
    pub threshold_sigmas: f64,
    /// Residuals are clipped to this so one spike cannot report a shift alone.
    pub clip_sigmas: f64,
}

impl Default for ShiftConfig {
    fn default() -> Self {
        ShiftConfig { slack_sigmas: 1.5, threshold_sigmas: 15.0, clip_sigmas: 5.0 }
    }
}

/// Memory leak: robust slope over a trailing window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeakConfig {
    #[serde(rename = "window_secs", with = "crate::config::duration::secs")]
    pub window: Duration,
    /// Slopes below this are not leaks, whatever their significance.
    pub min_slope_mb_per_min: f64,
    /// Mann-Kendall z the growth must reach.
    pub min_trend_z: f64,
    /// PromQL for the limit of each GPU's memory (time to exhaustion); empty to skip.
    pub gpu_limit_query: String,
    /// Limit assumed for process RSS; 0 means the host's memory is unknown and no estimate.
    pub process_limit_bytes: u64,
}

impl Default for LeakConfig {
    fn default() -> Self {
        LeakConfig {
            window: Duration::from_secs(3_600),
            min_slope_mb_per_min: 1.0,
            min_trend_z: 4.0,
            gpu_limit_query: agent::GPU_MEMORY_TOTAL.name.to_string(),
            process_limit_bytes: 0,
        }
    }
}

/// Output drift of the gateway's response distributions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    pub enabled: bool,
    /// Current window.
    #[serde(rename = "window_secs", with = "crate::config::duration::secs")]
    pub window: Duration,
    /// The reference window is the current one this long ago.
    #[serde(rename = "reference_offset_secs", with = "crate::config::duration::secs")]
    pub reference_offset: Duration,
    /// Divergence (KL, smoothed) reported as drift when both windows are large.
    pub kl_threshold: f64,
    /// Chance that unchanged traffic crosses the threshold; small windows raise the threshold.
    pub false_alarm_rate: f64,
    /// Responses each window needs before drift is judged.
    pub min_samples: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            enabled: true,
            window: Duration::from_secs(3_600),
            reference_offset: Duration::from_secs(86_400),
            kl_threshold: 0.1,
            false_alarm_rate: 0.001,
            min_samples: 50,
        }
    }
}

/// Probe accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccuracyConfig {
    /// Accuracy below this is always reported.
    pub min_ratio: f64,
    /// A drop of more than this below the trailing median is reported.
    pub max_drop: f64,
    /// Probe rounds needed before a drop can be judged.
    pub min_points: u32,
}

impl Default for AccuracyConfig {
    fn default() -> Self {
        AccuracyConfig { min_ratio: 0.8, max_drop: 0.1, min_points: 5 }
    }
}

/// Root-cause ranking around an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RcaConfig {
    /// Pre-incident window the candidates are compared with.
    #[serde(rename = "lookback_secs", with = "crate::config::duration::secs")]
    pub lookback: Duration,
    /// How far after the onset the anomaly is measured.
    #[serde(rename = "after_secs", with = "crate::config::duration::secs")]
    pub after: Duration,
    /// Resolution of the fetched candidates.
    #[serde(rename = "step_secs", with = "crate::config::duration::secs")]
    pub step: Duration,
    /// Robust z a candidate must reach to count as moved.
    pub onset_sigmas: f64,
    /// The `rate()` window of the built-in candidates (a few seconds on a time-scaled lab).
    #[serde(rename = "rate_window_secs", with = "crate::config::duration::secs")]
    pub rate_window: Duration,
    /// Candidates listed in a report.
    pub top: u32,
    /// PromQL candidates added to the built-in set.
    pub extra_queries: Vec<String>,
}

impl Default for RcaConfig {
    fn default() -> Self {
        RcaConfig {
            lookback: Duration::from_secs(3_600),
            after: Duration::from_secs(600),
            step: Duration::from_secs(15),
            onset_sigmas: 4.0,
            rate_window: Duration::from_secs(60),
            top: 10,
            extra_queries: Vec::new(),
        }
    }
}

impl AnalyzerConfig {
    /// The parsed `shard` (alone, `0/1`, when it does not parse: `validate` reports that).
    pub fn shard(&self) -> crate::shard::Shard {
        crate::shard::Shard::parse(&self.shard).unwrap_or_default()
    }

    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        problems.socket_addr(&path.field("listen"), &self.listen);
        problems.http_url(&path.field("prometheus_url"), &self.prometheus_url);
        validate_headers(&path.field("prometheus_headers"), &self.prometheus_headers, problems);
        self.prometheus_auth.validate(&path.field("prometheus_auth"), problems);
        self.prometheus_tls.validate(&path.field("prometheus_tls"), problems);
        problems.positive_duration(
            &path.field("query_timeout_ms"),
            self.query_timeout,
            MAX_TIMEOUT,
        );
        problems.range(&path.field("retries"), self.retries, 0, 10);
        problems.duration(
            &path.field("retry_backoff_ms"),
            self.retry_backoff,
            Duration::ZERO,
            MAX_TIMEOUT,
        );
        problems.positive_duration(
            &path.field("evaluation_interval_secs"),
            self.evaluation_interval,
            MAX_INTERVAL,
        );
        problems.positive_duration(&path.field("step_secs"), self.step, MAX_INTERVAL);
        problems.non_empty(&path.field("report_dir"), &self.report_dir);
        if let Err(e) = crate::shard::Shard::parse(&self.shard) {
            problems.push(&path.field("shard"), e);
        }
        self.baseline.validate(&path.field("baseline"), problems);
        let mut names = HashSet::new();
        for (i, s) in self.series.iter().enumerate() {
            let at = path.field("series").index(i);
            problems.non_empty(&at.field("name"), &s.name);
            if !s.name.is_empty() && !names.insert(s.name.as_str()) {
                problems.push(&at.field("name"), format!("duplicate series name {:?}", s.name));
            }
            problems.non_empty(&at.field("query"), &s.query);
            for (j, d) in s.detectors.iter().enumerate() {
                if !SERIES_DETECTORS.contains(&d.as_str()) {
                    problems.push(
                        &at.field("detectors").index(j),
                        format!("unknown detector {d:?} (one of {})", SERIES_DETECTORS.join(", ")),
                    );
                }
            }
            if s.min_band < 0.0 || !s.min_band.is_finite() {
                problems
                    .push(&at.field("min_band"), format!("must be 0 or more, got {}", s.min_band));
            }
        }
        let shift = path.field("shift");
        problems.positive(&shift.field("slack_sigmas"), self.shift.slack_sigmas);
        problems.positive(&shift.field("threshold_sigmas"), self.shift.threshold_sigmas);
        if self.shift.clip_sigmas <= self.shift.slack_sigmas {
            problems.push(&shift.field("clip_sigmas"), "must be greater than slack_sigmas");
        }
        let leak = path.field("leak");
        problems.duration(
            &leak.field("window_secs"),
            self.leak.window,
            Duration::from_secs(300),
            Duration::from_secs(7 * 86_400),
        );
        problems.range(
            &leak.field("min_slope_mb_per_min"),
            self.leak.min_slope_mb_per_min,
            0.0,
            1e6,
        );
        problems.positive(&leak.field("min_trend_z"), self.leak.min_trend_z);
        let drift = path.field("drift");
        problems.positive_duration(&drift.field("window_secs"), self.drift.window, MAX_WINDOW);
        problems.positive_duration(
            &drift.field("reference_offset_secs"),
            self.drift.reference_offset,
            MAX_WINDOW,
        );
        if self.drift.reference_offset < self.drift.window {
            problems.push(
                &drift.field("reference_offset_secs"),
                "must be at least window_secs, or the windows overlap",
            );
        }
        problems.positive(&drift.field("kl_threshold"), self.drift.kl_threshold);
        if !(self.drift.false_alarm_rate > 0.0 && self.drift.false_alarm_rate < 0.5) {
            problems.push(
                &drift.field("false_alarm_rate"),
                format!(
                    "must be between 0 and 0.5 (exclusive), got {}",
                    self.drift.false_alarm_rate
                ),
            );
        }
        let acc = path.field("accuracy");
        problems.range(&acc.field("min_ratio"), self.accuracy.min_ratio, 0.0, 1.0);
        problems.range(&acc.field("max_drop"), self.accuracy.max_drop, 0.0, 1.0);
        let rca = path.field("rca");
        problems.duration(
            &rca.field("lookback_secs"),
            self.rca.lookback,
            Duration::from_secs(30),
            Duration::from_secs(7 * 86_400),
        );
        problems.positive_duration(&rca.field("after_secs"), self.rca.after, MAX_WINDOW);
        problems.positive_duration(&rca.field("step_secs"), self.rca.step, MAX_INTERVAL);
        problems.positive(&rca.field("onset_sigmas"), self.rca.onset_sigmas);
        problems.duration(
            &rca.field("rate_window_secs"),
            self.rca.rate_window,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
        problems.range(&rca.field("top"), self.rca.top, 1, 100);
        for (i, q) in self.rca.extra_queries.iter().enumerate() {
            let field = rca.field("extra_queries").index(i);
            problems.non_empty(&field, q);
            if let (false, Err(e)) = (q.trim().is_empty(), crate::promql::check::selectors(q)) {
                problems.push(&field, format!("not valid PromQL: {e}"));
            }
        }
    }
}

impl BaselineConfig {
    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        let mut previous = Duration::ZERO;
        for (i, p) in self.periods.iter().enumerate() {
            let at = path.field("periods_secs").index(i);
            if *p < Duration::from_secs(600) {
                problems.push(&at, format!("must be at least 600 seconds, got {}", p.as_secs()));
            } else if *p > MAX_WINDOW {
                problems.duration(&at, *p, Duration::from_secs(600), MAX_WINDOW);
            } else if *p <= previous {
                problems.push(&at, "periods must be listed shortest first, without repeats");
            }
            previous = *p;
        }
        problems.range(&path.field("max_cycles"), self.max_cycles, 1, 8);
        problems.range(&path.field("window_points"), self.window_points, 0, 60);
        problems.positive_duration(&path.field("level_window_secs"), self.level_window, MAX_WINDOW);
        problems.duration(
            &path.field("level_gap_secs"),
            self.level_gap,
            Duration::ZERO,
            MAX_WINDOW,
        );
        problems.positive(&path.field("band_width"), self.band_width);
        problems.range(&path.field("min_points"), self.min_points, 5, 100_000);
        problems.range(&path.field("relative_floor"), self.relative_floor, 0.0, 1.0);
    }
}

/// Commented default for this section, part of `deepwatch config example`.
pub const EXAMPLE: &str = r#"
[analyzer]
# The analyzer daemon: /metrics, /healthz, /webhook/alertmanager and /reports.
listen = "127.0.0.1:9466"
# Prometheus HTTP API. Unreachable means deepwatch_analyzer_degraded{reason="prometheus_unreachable"} 1;
# the analyzer keeps running and catches up on the missed range when Prometheus returns.
prometheus_url = "http://127.0.0.1:9090"
query_timeout_ms = 10000
retries = 2
retry_backoff_ms = 500
# One round (fetch, update baselines, run detectors) per interval, at step resolution.
evaluation_interval_secs = 60
step_secs = 60
# Root-cause reports (Markdown and JSON) land here.
report_dir = "deepwatch-reports"
# "i/n": this analyzer is shard i of n analyzers sharing one fleet. Series are split by a hash
# of their identity, alerts by fingerprint, notifications by group key, so none is handled
# twice; shard 0 alone runs probes, capacity plans and drift. Give every shard the same
# Alertmanager webhooks (each ignores what it does not own). "0/1" = one analyzer.
shard = "0/1"
# Headers on every Prometheus request, e.g. the tenant of Mimir or Cortex:
#   prometheus_headers = { "X-Scope-OrgID" = "team-a" }
prometheus_headers = {}

# Authentication towards Prometheus (or Thanos, Mimir, VictoriaMetrics behind a proxy): a bearer
# token or HTTP basic auth, not both. The *_file forms keep secrets out of this file.
[analyzer.prometheus_auth]
# bearer_token_file = "/etc/deepwatch/prometheus.token"
# username = "deepwatch"
# password_file = "/etc/deepwatch/prometheus.password"

# TLS of an https prometheus_url: the system roots plus ca_file; cert_file and key_file present
# a client certificate (mutual TLS). insecure_skip_verify accepts any certificate (lab only).
[analyzer.prometheus_tls]
# ca_file = "/etc/deepwatch/ca.pem"
# cert_file = "/etc/deepwatch/analyzer.pem"
# key_file = "/etc/deepwatch/analyzer.key"
insecure_skip_verify = false

# Seasonal-offset median with MAD bands: the expected value is the median of the same moment
# in past days and weeks, each aligned to today's level; the band is expected +- band_width
# robust standard deviations. Too little history means "warming up": no band, no score.
[analyzer.baseline]
periods_secs = [86400, 604800]
max_cycles = 3
window_points = 5
level_window_secs = 3600
level_gap_secs = 1800
band_width = 5.0
min_points = 60
relative_floor = 0.02

# Sustained level shift: two-sided CUSUM on the baseline residual (robust sigmas).
[analyzer.shift]
slack_sigmas = 1.5
threshold_sigmas = 15.0
clip_sigmas = 5.0

# Memory leak: Theil-Sen slope and Mann-Kendall trend over the window.
[analyzer.leak]
window_secs = 3600
min_slope_mb_per_min = 1.0
min_trend_z = 4.0
gpu_limit_query = "deepwatch_gpu_memory_total_bytes"
process_limit_bytes = 0

# Output drift: KL divergence of the current window's length, finish_reason and reasoning-share
# distributions from the same window a day earlier, per model_version and between pools. The
# threshold rises for small windows so that unchanged traffic does not cross it. The gateway
# leaves pinned requests (probes) out of these distributions; a comparison with fewer than
# min_samples responses on a side, or of reasoning share where nothing reasons, is not exported.
[analyzer.drift]
enabled = true
window_secs = 3600
reference_offset_secs = 86400
kl_threshold = 0.1
false_alarm_rate = 0.001
min_samples = 50

# Probe accuracy: below min_ratio, or max_drop below its trailing median.
[analyzer.accuracy]
min_ratio = 0.8
max_drop = 0.1
min_points = 5

# Root-cause ranking: candidates are compared with the lookback window before the onset (or
# with whatever history exists, when there is less); rate_window_secs is their rate() window.
[analyzer.rca]
lookback_secs = 3600
after_secs = 600
step_secs = 15
onset_sigmas = 4.0
rate_window_secs = 60
top = 10
extra_queries = []

# Baselined series: each PromQL result series gets its own baseline, exported as
# deepwatch_baseline_{expected,lower,upper} and deepwatch_anomaly_score with labels
# series, model, model_version, pool, instance. Detectors: surprise, band, shift, leak, accuracy.
[[analyzer.series]]
name = "request_rate"
query = "sum by (model, pool) (rate(deepwatch_requests_total[5m]))"
detectors = ["band", "shift"]
min_band = 0.0

[[analyzer.series]]
name = "error_ratio"
query = "sum by (model, pool) (rate(deepwatch_requests_total{outcome!=\"ok\"}[5m])) / sum by (model, pool) (rate(deepwatch_requests_total[5m]))"
detectors = ["band", "shift"]
min_band = 0.01

[[analyzer.series]]
name = "ttft_p90"
query = "histogram_quantile(0.9, sum by (model, pool, le) (rate(deepwatch_time_to_first_token_seconds_bucket[5m])))"
detectors = ["band", "shift"]
min_band = 0.05

[[analyzer.series]]
name = "completion_token_rate"
query = "sum by (model, pool) (rate(deepwatch_completion_tokens_total[5m]))"
detectors = ["band", "shift"]
min_band = 0.0

[[analyzer.series]]
name = "process_rss"
query = "deepwatch_process_resident_memory_bytes"
detectors = ["leak"]
min_band = 0.0

[[analyzer.series]]
name = "gpu_memory_used"
query = "deepwatch_gpu_memory_used_bytes"
detectors = ["leak"]
min_band = 0.0

[[analyzer.series]]
name = "probe_accuracy"
query = "deepwatch_probe_accuracy_ratio"
detectors = ["accuracy"]
min_band = 0.0
"#;

#[cfg(test)]
mod tests {
    use crate::config::Config;

    /// A deliberately wrong `[analyzer]` section: every mistake must be named with its path.
    const WRONG: &str = r#"
[analyzer]
listen = "9466"
prometheus_url = "prometheus:9090"
query_timeout_ms = 0
retries = 50
report_dir = ""
shard = "2/2"
prometheus_headers = { "X Scope" = "a" }
[analyzer.prometheus_auth]
bearer_token = "t0ken"
username = "admin"
password = "pw"
[analyzer.prometheus_tls]
ca_file = "/nonexistent/ca.pem"
cert_file = "/nonexistent/client.pem"
[analyzer.baseline]
periods_secs = [604800, 86400, 60]
band_width = 0.0
[analyzer.shift]
clip_sigmas = 0.5
[analyzer.drift]
window_secs = 7200
reference_offset_secs = 3600
false_alarm_rate = 0.9
[analyzer.rca]
top = 0
rate_window_secs = 0
extra_queries = ["up", "sum by (engine (up)"]
[[analyzer.series]]
name = "a"
query = ""
detectors = ["band", "prophet"]
min_band = -1.0
[[analyzer.series]]
name = "a"
query = "up"
"#;

    #[test]
    fn every_bad_field_is_named_with_its_path() {
        let config = Config::from_toml_str(WRONG).unwrap();
        let text = config.validate().unwrap_err().to_string();
        for expected in [
            "analyzer.listen: must be an address like",
            "analyzer.prometheus_url: must be an http or https URL",
            "analyzer.query_timeout_ms: must be greater than 0, got 0",
            "analyzer.retries: must be between 0 and 10, got 50",
            "analyzer.report_dir: must not be empty",
            "analyzer.shard: index must be below the count (2 is not below 2)",
            "analyzer.prometheus_headers.\"X Scope\": \"X Scope\" is not a valid header name",
            "analyzer.prometheus_auth: set either a bearer token",
            "analyzer.prometheus_tls.ca_file: cannot read /nonexistent/ca.pem",
            "analyzer.prometheus_tls.key_file: must be set when cert_file is set",
            "analyzer.baseline.periods_secs[1]: periods must be listed shortest first",
            "analyzer.baseline.periods_secs[2]: must be at least 600 seconds, got 60",
            "analyzer.baseline.band_width: must be greater than 0",
            "analyzer.shift.clip_sigmas: must be greater than slack_sigmas",
            "analyzer.drift.reference_offset_secs: must be at least window_secs",
            "analyzer.drift.false_alarm_rate: must be between 0 and 0.5 (exclusive), got 0.9",
            "analyzer.rca.top: must be between 1 and 100, got 0",
            "analyzer.rca.rate_window_secs: must be greater than 0, got 0",
            "analyzer.rca.extra_queries[1]: not valid PromQL",
            "analyzer.series[0].query: must not be empty",
            "analyzer.series[0].detectors[1]: unknown detector \"prophet\"",
            "analyzer.series[0].min_band: must be 0 or more, got -1",
            "analyzer.series[1].name: duplicate series name \"a\"",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn unknown_analyzer_keys_are_rejected() {
        let err = Config::from_toml_str("[analyzer.baseline]\nperiod_secs = [86400]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("period_secs"), "{err}");
    }

    #[test]
    fn a_series_without_seasonality_parses() {
        let config = Config::from_toml_str(
            "[analyzer.baseline]\nperiods_secs = []\n[[analyzer.series]]\nname = \"x\"\nquery = \"up\"\ndetectors = [\"band\"]\n",
        )
        .unwrap();
        config.validate().unwrap();
        assert!(config.analyzer.baseline.periods.is_empty());
        assert_eq!(config.analyzer.series.len(), 1);
    }
}
