//! Metrics every deepwatch process exports about itself.

use super::{buckets, MetricSpec, MetricType};

pub const BUILD_INFO: MetricSpec = MetricSpec {
    name: "deepwatch_build_info",
    help: "Always 1; labels carry the deepwatch version and the component that runs.",
    kind: MetricType::Info,
    unit: "",
    labels: &["version", "component"],
    buckets: &[],
};

pub const COLLECTOR_UP: MetricSpec = MetricSpec {
    name: "deepwatch_collector_up",
    help: "1 when the collector's last run succeeded, 0 when its source was unavailable or failed.",
    kind: MetricType::Gauge,
    unit: "",
    labels: &["collector"],
    buckets: &[],
};

pub const COLLECTOR_DURATION: MetricSpec = MetricSpec {
    name: "deepwatch_collector_duration_seconds",
    help: "Time one collector run took, observed at every scrape.",
    kind: MetricType::Histogram,
    unit: "seconds",
    labels: &["collector"],
    buckets: buckets::FAST_SECONDS,
};

pub const ALL: &[&MetricSpec] = &[&BUILD_INFO, &COLLECTOR_UP, &COLLECTOR_DURATION];
