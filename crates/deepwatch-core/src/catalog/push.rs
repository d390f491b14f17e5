//! Metrics `deepwatch push` sends to a Pushgateway on behalf of a batch inference job: the
//! latency histogram and result counter (cumulative, pushed with every batch) and per-batch
//! latency gauges (pushed only when they moved by more than the configured fraction).

use super::{buckets, MetricSpec, MetricType};

pub const BATCH_REQUEST_DURATION: MetricSpec = MetricSpec {
    name: "deepwatch_batch_request_duration_seconds",
    help: "Latency of each inference request of the batch job, as the job reported it.",
    kind: MetricType::Histogram,
    unit: "seconds",
    labels: &["model"],
    buckets: buckets::LATENCY_SECONDS,
};

pub const BATCH_RESULTS: MetricSpec = MetricSpec {
    name: "deepwatch_batch_results_total",
    help: "Results the batch job handed to deepwatch push, by outcome (ok, error).",
    kind: MetricType::Counter,
    unit: "",
    labels: &["model", "outcome"],
    buckets: &[],
};

pub const BATCH_LATENCY_MEAN: MetricSpec = MetricSpec {
    name: "deepwatch_batch_latency_mean_seconds",
    help: "Mean request latency of the last pushed batch.",
    kind: MetricType::Gauge,
    unit: "seconds",
    labels: &["model"],
    buckets: &[],
};

pub const BATCH_LATENCY_P99: MetricSpec = MetricSpec {
    name: "deepwatch_batch_latency_p99_seconds",
    help: "99th percentile request latency of the last pushed batch (nearest rank).",
    kind: MetricType::Gauge,
    unit: "seconds",
    labels: &["model"],
    buckets: &[],
};

pub const BATCH_LATENCY_MAX: MetricSpec = MetricSpec {
    name: "deepwatch_batch_latency_max_seconds",
    help: "Slowest request latency of the last pushed batch.",
    kind: MetricType::Gauge,
    unit: "seconds",
    labels: &["model"],
    buckets: &[],
};

pub const BATCH_MALFORMED_LINES: MetricSpec = MetricSpec {
    name: "deepwatch_batch_malformed_lines_total",
    help: "Input lines deepwatch push skipped because they were neither a latency nor a result object.",
    kind: MetricType::Counter,
    unit: "",
    labels: &[],
    buckets: &[],
};

pub const BATCH_PUSH_FAILURES: MetricSpec = MetricSpec {
    name: "deepwatch_batch_push_failures_total",
    help: "Pushes the Pushgateway refused or never answered (each retried with backoff).",
    kind: MetricType::Counter,
    unit: "",
    labels: &[],
    buckets: &[],
};

pub const ALL: &[&MetricSpec] = &[
    &BATCH_REQUEST_DURATION,
    &BATCH_RESULTS,
    &BATCH_LATENCY_MEAN,
    &BATCH_LATENCY_P99,
    &BATCH_LATENCY_MAX,
    &BATCH_MALFORMED_LINES,
    &BATCH_PUSH_FAILURES,
];
