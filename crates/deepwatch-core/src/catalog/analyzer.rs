//! Metrics emitted by the analyzer: baselines and anomaly scores (so Grafana draws bands and
//! Prometheus can alert on them), detector findings, probes, remediation and its own health.

use super::{buckets, MetricSpec, MetricType};

/// A baselined series is identified by its configured name plus the identity labels the
/// analyzer keeps from the PromQL result (others fold away).
pub const SERIES_LABELS: &[&str] = &["series", "model", "model_version", "pool", "instance"];

// === baselines ===

pub const BASELINE_EXPECTED: MetricSpec = spec!(
    "deepwatch_baseline_expected",
    Gauge,
    "",
    SERIES_LABELS,
    "Value the seasonal baseline expects now for the series."
);
pub const BASELINE_LOWER: MetricSpec = spec!(
    "deepwatch_baseline_lower",
    Gauge,
    "",
    SERIES_LABELS,
    "Lower edge of the baseline's normal band now."
);
pub const BASELINE_UPPER: MetricSpec = spec!(
    "deepwatch_baseline_upper",
    Gauge,
    "",
    SERIES_LABELS,
    "Upper edge of the baseline's normal band now."
);
pub const ANOMALY_SCORE: MetricSpec = spec!("deepwatch_anomaly_score", Gauge, "", SERIES_LABELS,
    "How anomalous the series is now, 0 (normal) to 1 (far outside the band). Absent while warming up.");
pub const BASELINE_WARMING_UP: MetricSpec = spec!(
    "deepwatch_baseline_warming_up",
    Gauge,
    "",
    SERIES_LABELS,
    "1 while the series has too little history for a baseline (no band is exported then)."
);

// === detectors ===

pub const DETECTOR_FINDINGS: MetricSpec = spec!(
    "deepwatch_detector_findings_total",
    Counter,
    "",
    &["detector", "series"],
    "Anomalies a detector reported."
);
pub const LEAK_SLOPE: MetricSpec = spec!(
    "deepwatch_leak_slope_bytes_per_second",
    Gauge,
    "",
    &["series", "instance", "process", "gpu"],
    "Robust (Theil-Sen) slope of a memory series: the leak rate."
);
pub const LEAK_TIME_TO_EXHAUSTION: MetricSpec = spec!(
    "deepwatch_leak_time_to_exhaustion_seconds",
    Gauge,
    "seconds",
    &["series", "instance", "process", "gpu"],
    "Estimated time until the leaking memory reaches its limit at the current slope."
);
pub const DRIFT_DIVERGENCE: MetricSpec = spec!("deepwatch_drift_divergence", Gauge, "",
    &["model", "model_version", "pool", "kind"],
    "Divergence (KL, smoothed) of the current output distribution from its reference, by kind (length, finish_reason, reasoning_share).");
pub const DRIFT_THRESHOLD: MetricSpec = spec!(
    "deepwatch_drift_threshold",
    Gauge,
    "",
    &["model", "model_version", "pool", "kind"],
    "Divergence above which drift is reported, adjusted for the sample size of both windows."
);

pub const DRIFT_POOL_DIVERGENCE: MetricSpec = spec!("deepwatch_drift_pool_divergence", Gauge, "",
    &["model", "pool", "reference_pool", "kind"],
    "Divergence (KL, smoothed) of a pool's current output distribution from another pool serving the same model (blue/green), by kind.");
pub const DRIFT_POOL_THRESHOLD: MetricSpec = spec!(
    "deepwatch_drift_pool_threshold",
    Gauge,
    "",
    &["model", "pool", "reference_pool", "kind"],
    "Pool-to-pool divergence above which drift is reported, adjusted for both pools' sample sizes."
);

// === probes ===

pub const PROBE_ACCURACY: MetricSpec = spec!(
    "deepwatch_probe_accuracy_ratio",
    Gauge,
    "ratio",
    &["model", "model_version"],
    "Share of answered golden-prompt probes whose answer passed its check, over the last probe round (unanswered probes are not scored; absent when none was answered)."
);
pub const PROBE_RESULTS: MetricSpec = spec!(
    "deepwatch_probe_results_total",
    Counter,
    "",
    &["model", "model_version", "probe", "outcome"],
    "Probe results by outcome: correct, wrong (answered but failed its check), unavailable (no usable answer: timeout, error, misrouted; not scored)."
);
pub const PROBE_DURATION: MetricSpec = MetricSpec {
    name: "deepwatch_probe_duration_seconds",
    help: "End-to-end latency of golden-prompt probes through the gateway.",
    kind: MetricType::Histogram,
    unit: "seconds",
    labels: &["model", "model_version"],
    buckets: buckets::LATENCY_SECONDS,
};

// === remediation, webhook, notifications ===

pub const REMEDIATION_ACTIONS: MetricSpec = spec!("deepwatch_remediation_actions_total", Counter, "", &["action", "outcome"],
    "Remediation actions by outcome (ok, failed, dry_run, skipped_cooldown, skipped_rate_limit, skipped_precondition; reverted, revert_failed when undone on resolve).");
pub const WEBHOOK_ALERTS: MetricSpec = spec!(
    "deepwatch_webhook_alerts_total",
    Counter,
    "",
    &["alertname", "status"],
    "Alerts received from Alertmanager's webhook (status firing or resolved), duplicates included."
);
pub const SHARD_SKIPPED: MetricSpec = spec!(
    "deepwatch_analyzer_shard_skipped_total",
    Counter,
    "",
    &["kind"],
    "Alerts (kind=alert) and notification groups (kind=notification) this analyzer left to another shard of analyzer.shard."
);
pub const WEBHOOK_DUPLICATES: MetricSpec =
    spec!("deepwatch_webhook_duplicates_total", Counter, "", &[],
    "Webhook alerts dropped as duplicates of one already handled (same fingerprint and status).");
pub const WEBHOOK_REFUSED: MetricSpec = spec!(
    "deepwatch_webhook_refused_total",
    Counter,
    "",
    &["reason"],
    "Webhook calls answered with an error (unauthorized, bad_request, queue_full, journal_failed, shutting_down); Alertmanager retries or gives up, self-healing stops."
);
pub const WEBHOOK_REPLAYED: MetricSpec = spec!(
    "deepwatch_webhook_replayed_total",
    Counter,
    "",
    &[],
    "Alerts accepted (journaled, answered 200) by an earlier run but never started, queued again at start."
);
pub const NOTIFICATIONS: MetricSpec = spec!(
    "deepwatch_notifications_total",
    Counter,
    "",
    &["channel", "outcome"],
    "Messages the notification bridge handled, by configured channel and outcome (ok, failed, rate_limited, skipped)."
);
pub const RCA_REPORTS: MetricSpec = spec!(
    "deepwatch_rca_reports_total",
    Counter,
    "",
    &["alertname"],
    "Root-cause reports written."
);

// === own health and capacity ===

pub const ANALYZER_DEGRADED: MetricSpec = spec!(
    "deepwatch_analyzer_degraded",
    Gauge,
    "",
    &["reason"],
    "1 while the analyzer cannot do its job fully (for example prometheus_unreachable)."
);
pub const PROMETHEUS_QUERIES: MetricSpec = spec!(
    "deepwatch_analyzer_prometheus_queries_total",
    Counter,
    "",
    &["outcome"],
    "Queries the analyzer sent to Prometheus, by outcome (ok, error, timeout)."
);
pub const ANALYZER_LAST_EVALUATION: MetricSpec = spec!(
    "deepwatch_analyzer_last_evaluation_timestamp_seconds",
    Gauge,
    "seconds",
    &[],
    "Unix time up to which the analyzer has fetched and judged its series (it catches up after an outage)."
);
pub const CAPACITY_RECOMMENDED_REPLICAS: MetricSpec = spec!("deepwatch_capacity_recommended_replicas", Gauge, "", &["model"],
    "Replicas needed for 1.5x the observed peak at the target load per replica, within min and max.");

pub const ALL: &[&MetricSpec] = &[
    &BASELINE_EXPECTED,
    &BASELINE_LOWER,
    &BASELINE_UPPER,
    &ANOMALY_SCORE,
    &BASELINE_WARMING_UP,
    &DETECTOR_FINDINGS,
    &LEAK_SLOPE,
    &LEAK_TIME_TO_EXHAUSTION,
    &DRIFT_DIVERGENCE,
    &DRIFT_THRESHOLD,
    &DRIFT_POOL_DIVERGENCE,
    &DRIFT_POOL_THRESHOLD,
    &PROBE_ACCURACY,
    &PROBE_RESULTS,
    &PROBE_DURATION,
    &REMEDIATION_ACTIONS,
    &WEBHOOK_ALERTS,
    &SHARD_SKIPPED,
    &WEBHOOK_DUPLICATES,
    &WEBHOOK_REFUSED,
    &WEBHOOK_REPLAYED,
    &NOTIFICATIONS,
    &RCA_REPORTS,
    &ANALYZER_DEGRADED,
    &PROMETHEUS_QUERIES,
    &ANALYZER_LAST_EVALUATION,
    &CAPACITY_RECOMMENDED_REPLICAS,
];
