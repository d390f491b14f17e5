//! The metric catalog: every metric deepwatch emits is declared here exactly once, with its
//! help text, type, unit, label names and bucket layout. Code, generated rules and dashboards
//! refer to these constants; nothing else spells a `deepwatch_` name by hand.
//!
//! Each component owns one file (`agent.rs`, `gateway.rs`, ...) with an `ALL` list; `all()`
//! chains them and the tests below check naming, units and label rules for every entry.

/// A non-histogram catalog entry: `spec!(name, Kind, unit, labels, help)`.
macro_rules! spec {
    ($name:literal, $kind:ident, $unit:literal, $labels:expr, $help:literal) => {
        $crate::catalog::MetricSpec {
            name: $name,
            help: $help,
            kind: $crate::catalog::MetricType::$kind,
            unit: $unit,
            labels: $labels,
            buckets: &[],
        }
    };
}

/// A histogram catalog entry: `hist!(name, unit, labels, buckets, help)`.
macro_rules! hist {
    ($name:literal, $unit:literal, $labels:expr, $buckets:expr, $help:literal) => {
        $crate::catalog::MetricSpec {
            name: $name,
            help: $help,
            kind: $crate::catalog::MetricType::Histogram,
            unit: $unit,
            labels: $labels,
            buckets: $buckets,
        }
    };
}

pub mod agent;
pub mod analyzer;
pub mod buckets;
pub mod common;
pub mod gateway;
pub mod lab;
pub mod push;

/// The metric types of the Prometheus data model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// A gauge whose value is always 1 and whose labels carry the information.
    Info,
    Untyped,
}

impl MetricType {
    /// The word used on `# TYPE` lines of the Prometheus 0.0.4 text format.
    pub fn text_004(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge | MetricType::Info => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
        }
    }

    /// The word used on `# TYPE` lines of OpenMetrics text.
    pub fn openmetrics(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            // Info families must end in `_info` and have samples named `<family>_info` in
            // OpenMetrics; we keep the plain gauge form so both formats carry the same names.
            MetricType::Gauge | MetricType::Info => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "unknown",
        }
    }
}

/// One metric family that deepwatch emits.
#[derive(Debug, PartialEq)]
pub struct MetricSpec {
    /// Full exposed name. Counters end in `_total`; histogram sample suffixes are not included.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    /// Base unit as it appears at the end of the name (`seconds`, `bytes`, `ratio`, ...), or "".
    pub unit: &'static str,
    /// Label names, in the order callers pass their values.
    pub labels: &'static [&'static str],
    /// Upper bucket bounds for histograms (without `+Inf`); empty for other types.
    pub buckets: &'static [f64],
}

impl MetricSpec {
    /// Name of the family as written on OpenMetrics `# TYPE` lines (counters drop `_total`).
    pub fn family_name(&self) -> &'static str {
        match self.kind {
            MetricType::Counter => self.name.strip_suffix("_total").unwrap_or(self.name),
            _ => self.name,
        }
    }

    /// Position of a label in `labels`, for callers that build label values by name.
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| *l == label)
    }

    /// Names of the series this family produces (`_bucket`, `_sum`, `_count` for histograms).
    pub fn series_names(&self) -> Vec<String> {
        match self.kind {
            MetricType::Histogram => {
                ["_bucket", "_sum", "_count"].iter().map(|s| format!("{}{s}", self.name)).collect()
            }
            MetricType::Summary => vec![
                self.name.to_string(),
                format!("{}_sum", self.name),
                format!("{}_count", self.name),
            ],
            _ => vec![self.name.to_string()],
        }
    }
}

/// Every label name a catalog metric may carry. Keeping this list closed keeps dashboards,
/// rules and the cardinality budget honest.
pub const LABELS: &[&str] = &[
    // request identity (bounded by allow-lists in the gateway config)
    "model",
    "model_version",
    "endpoint",
    "pool",
    "upstream",
    "tenant",
    "region",
    "code",
    "outcome",
    "finish_reason",
    "direction",
    "kind",
    "action",
    "policy",
    "event",
    "stage",
    "reason",
    "reference_pool",
    // GPU identity
    "gpu",
    "gpu_uuid",
    "gpu_name",
    "driver_version",
    "cuda_version",
    "xid",
    "pid",
    "process_name",
    "error_type",
    "counter_type",
    "link",
    // engines, hosts, processes, logs, peers
    "engine",
    "engine_kind",
    "url",
    "collector",
    "mode",
    "resource",
    "device",
    "mountpoint",
    "fstype",
    "interface",
    "process",
    "file",
    "level",
    "pattern",
    "peer",
    "target",
    // analyzer
    "series",
    "detector",
    "probe",
    "receiver",
    "channel",
    "alertname",
    "severity",
    "status",
    "component",
    "version",
    "job",
    "instance",
    "window",
    "le",
    "quantile",
];

/// Every metric in the catalog, component by component.
pub fn all() -> impl Iterator<Item = &'static MetricSpec> {
    [common::ALL, agent::ALL, gateway::ALL, analyzer::ALL, lab::ALL, push::ALL]
        .into_iter()
        .flatten()
        .copied()
}

/// Finds the catalog entry for a series name, accepting histogram and summary suffixes
/// (`_bucket`, `_sum`, `_count`) and the family name of counters.
pub fn lookup(series: &str) -> Option<&'static MetricSpec> {
    if let Some(spec) = all().find(|m| m.name == series) {
        return Some(spec);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix) {
            if let Some(spec) = all().find(|m| {
                m.name == base && matches!(m.kind, MetricType::Histogram | MetricType::Summary)
            }) {
                return Some(spec);
            }
        }
    }
    all().find(|m| m.kind == MetricType::Counter && m.family_name() == series)
}

/// Whether `label` is declared on the catalog metric behind `series` (or is `le`/`quantile`
/// on a histogram/summary series).
pub fn has_label(series: &str, label: &str) -> bool {
    let Some(spec) = lookup(series) else {
        return false;
    };
    if spec.labels.contains(&label) {
        return true;
    }
    match spec.kind {
        MetricType::Histogram => label == "le" && series.ends_with("_bucket"),
        MetricType::Summary => label == "quantile" && series == spec.name,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const UNITS: &[&str] =
        &["", "seconds", "bytes", "ratio", "celsius", "watts", "hertz", "joules", "info"];

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut seen = HashSet::new();
        for m in all() {
            assert!(m.name.starts_with("deepwatch_"), "{} lacks the prefix", m.name);
            assert!(seen.insert(m.name), "{} declared twice", m.name);
            assert!(
                m.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{} is not snake_case",
                m.name
            );
            assert!(!m.help.is_empty(), "{} has no help", m.name);
        }
    }

    #[test]
    fn counters_end_in_total_and_others_do_not() {
        for m in all() {
            let ends_total = m.name.ends_with("_total");
            match m.kind {
                MetricType::Counter => assert!(ends_total, "counter {} must end in _total", m.name),
                _ => assert!(!ends_total, "{} is not a counter but ends in _total", m.name),
            }
        }
    }

    #[test]
    fn units_are_base_units_and_appear_in_the_name() {
        for m in all() {
            assert!(UNITS.contains(&m.unit), "{} has unit {:?}", m.name, m.unit);
            if !m.unit.is_empty() {
                let family = m.family_name();
                assert!(
                    family.ends_with(&format!("_{}", m.unit)),
                    "{} does not end in its unit {}",
                    m.name,
                    m.unit
                );
            }
            for bad in ["_milliseconds", "_ms", "_percent", "_kb", "_mb", "_mib"] {
                assert!(!m.name.contains(bad), "{} uses a non-base unit", m.name);
            }
        }
    }

    #[test]
    fn labels_are_declared_and_histograms_have_buckets() {
        for m in all() {
            let mut seen = HashSet::new();
            for l in m.labels {
                assert!(LABELS.contains(l), "{} uses undeclared label {l}", m.name);
                assert!(seen.insert(l), "{} repeats label {l}", m.name);
                assert!(*l != "le" && *l != "quantile", "{} uses reserved label {l}", m.name);
            }
            match m.kind {
                MetricType::Histogram => {
                    assert!(!m.buckets.is_empty(), "histogram {} has no buckets", m.name);
                    assert!(
                        m.buckets.windows(2).all(|w| w[0] < w[1]),
                        "buckets of {} are not increasing",
                        m.name
                    );
                    assert!(m.buckets.iter().all(|b| b.is_finite()));
                }
                _ => assert!(m.buckets.is_empty(), "{} is not a histogram", m.name),
            }
        }
    }

    #[test]
    fn lookup_accepts_series_suffixes() {
        let up = &common::COLLECTOR_UP;
        assert_eq!(lookup(up.name), Some(up));
        let dur = &common::COLLECTOR_DURATION;
        assert_eq!(lookup(&format!("{}_bucket", dur.name)), Some(dur));
        assert!(has_label(&format!("{}_bucket", dur.name), "le"));
        assert!(!has_label(dur.name, "le"));
        assert!(lookup("deepwatch_no_such_metric").is_none());
    }
}
