//! A small PromQL builder over the metric catalog: selectors start from a `MetricSpec` (or a
//! recording rule the rules generator defines), so no `deepwatch_` name is ever typed by hand,
//! and a handful of helpers (`rate`, `sum_by`, `quantile`) keep expressions uniform. The rules
//! generator and the analyzer's root-cause candidates both build their PromQL here, and `check`
//! parses every expression and checks its names and labels against the catalog.

pub mod check;

use crate::catalog::{MetricSpec, MetricType};
use std::fmt;

/// A vector selector: metric name plus label matchers.
#[derive(Debug, Clone, PartialEq)]
pub struct Sel {
    name: String,
    matchers: Vec<String>,
}

/// Selects a catalog metric (histograms: use `.bucket()`, `.sum()`, `.count()`).
pub fn sel(spec: &MetricSpec) -> Sel {
    Sel { name: spec.name.to_string(), matchers: Vec::new() }
}

/// Selects a series the rules generator records (or `ALERTS` / `up`).
pub fn series(name: &str) -> Sel {
    Sel { name: name.to_string(), matchers: Vec::new() }
}

impl Sel {
    pub fn name(&self) -> &str {
        &self.name
    }
    fn suffix(mut self, s: &str) -> Sel {
        self.name.push_str(s);
        self
    }
    pub fn bucket(self) -> Sel {
        self.suffix("_bucket")
    }
    pub fn sum(self) -> Sel {
        self.suffix("_sum")
    }
    pub fn count(self) -> Sel {
        self.suffix("_count")
    }
    fn matcher(mut self, label: &str, op: &str, value: &str) -> Sel {
        self.matchers.push(format!("{label}{op}{value:?}"));
        self
    }
    pub fn eq(self, label: &str, value: &str) -> Sel {
        self.matcher(label, "=", value)
    }
    pub fn ne(self, label: &str, value: &str) -> Sel {
        self.matcher(label, "!=", value)
    }
    pub fn re(self, label: &str, value: &str) -> Sel {
        self.matcher(label, "=~", value)
    }
    /// `sel[window]`.
    pub fn range(&self, window: &str) -> String {
        format!("{self}[{window}]")
    }
}

impl fmt::Display for Sel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.matchers.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}{{{}}}", self.name, self.matchers.join(", "))
        }
    }
}

/// `by (a, b)` (empty list: no clause).
pub fn by(labels: &[&str]) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!(" by ({})", labels.join(", "))
    }
}

pub fn rate(s: &Sel, window: &str) -> String {
    format!("rate({})", s.range(window))
}

pub fn sum_by(labels: &[&str], inner: &str) -> String {
    agg_by("sum", labels, inner)
}

/// Any aggregation: `max by (a) (inner)`, `min (inner)`, ...
pub fn agg_by(op: &str, labels: &[&str], inner: &str) -> String {
    format!("{op}{} ({inner})", by(labels))
}

/// A range-vector function over a selector: `increase(x[1m])`, `changes(x[1m])`, ...
pub fn over(function: &str, s: &Sel, window: &str) -> String {
    format!("{function}({})", s.range(window))
}

/// `histogram_quantile(q, sum by (labels, le) (rate(x_bucket[w])))`.
pub fn quantile(q: f64, labels: &[&str], hist: &Sel, window: &str) -> String {
    let mut with_le: Vec<&str> = labels.to_vec();
    with_le.push("le");
    format!("histogram_quantile({q}, {})", sum_by(&with_le, &rate(&hist.clone().bucket(), window)))
}

/// Mean of a histogram over `window`: `sum(rate(_sum)) / sum(rate(_count))`.
pub fn mean(labels: &[&str], hist: &Sel, window: &str) -> String {
    format!(
        "{} / {}",
        sum_by(labels, &rate(&hist.clone().sum(), window)),
        sum_by(labels, &rate(&hist.clone().count(), window))
    )
}

/// Recording-rule name `level:metric:operation`; counters drop `_total` as the convention asks.
pub fn record_name(level: &str, spec: &MetricSpec, operation: &str) -> String {
    let metric = match spec.kind {
        MetricType::Counter => spec.family_name(),
        _ => spec.name,
    };
    format!("{level}:{metric}:{operation}")
}

/// `0.99` -> `p99`, `0.5` -> `p50`, `0.995` -> `p995`.
pub fn quantile_tag(q: f64) -> String {
    let digits = format!("{q}");
    let frac = digits.trim_start_matches("0.");
    let frac = if frac.len() == 1 { format!("{frac}0") } else { frac.to_string() };
    format!("p{frac}")
}

/// Prometheus duration text for whole seconds (`5s`, `10m`, `1h`, `3d`, `1w`).
pub fn dur(secs: u64) -> String {
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// A number as PromQL and YAML print it (no trailing `.0`, no exponent for common values).
pub fn num(v: f64) -> String {
    let text = format!("{v}");
    text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::gateway;

    #[test]
    fn builds_from_the_catalog() {
        let q = quantile(0.99, &["model"], &sel(&gateway::REQUEST_DURATION), "1m");
        assert_eq!(
            q,
            "histogram_quantile(0.99, sum by (model, le) (rate(deepwatch_request_duration_seconds_bucket[1m])))"
        );
        let s = sel(&gateway::REQUESTS).eq("outcome", "ok").re("code", "5..");
        assert_eq!(s.to_string(), "deepwatch_requests_total{outcome=\"ok\", code=~\"5..\"}");
        assert_eq!(
            record_name("model", &gateway::REQUESTS, "rate1m"),
            "model:deepwatch_requests:rate1m"
        );
    }

    #[test]
    fn durations_and_tags() {
        assert_eq!(dur(10), "10s");
        assert_eq!(dur(600), "10m");
        assert_eq!(dur(259_200), "3d");
        assert_eq!(dur(90), "90s");
        assert_eq!(quantile_tag(0.99), "p99");
        assert_eq!(quantile_tag(0.5), "p50");
        assert_eq!(quantile_tag(0.995), "p995");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.18), "0.18");
    }
}
