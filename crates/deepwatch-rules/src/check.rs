//! Checks on what the generator produces: every PromQL expression parses and selects only
//! catalog metrics and labels, series this generator records, `ALERTS` or `up` (the check
//! itself is `deepwatch_core::promql::check`, shared with the analyzer); and latency thresholds
//! sit on real bucket edges of the histogram they are computed from.

use crate::model::RuleFile;
use deepwatch_core::catalog::{agent, gateway, MetricSpec};
use deepwatch_core::config::rules::{RulesConfig, SloKind};
use std::collections::BTreeMap;

pub use deepwatch_core::promql::check::{check_expr, selectors, Selector};

/// Recorded series of all files: name -> labels it carries.
pub fn recorded_series(files: &[RuleFile]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in files {
        for r in f.records() {
            let entry = out.entry(r.name.clone()).or_default();
            for l in r.output_labels.iter().chain(r.labels.iter().map(|(k, _)| k)) {
                if !entry.contains(l) {
                    entry.push(l.clone());
                }
            }
        }
    }
    out
}

/// Every rule expression of every file passes `check_expr`.
pub fn check_rule_files(files: &[RuleFile]) -> Result<(), String> {
    let recorded = recorded_series(files);
    for f in files {
        for r in f.records() {
            check_expr(&r.expr, &recorded).map_err(|e| format!("record {}: {e}", r.name))?;
        }
        for a in f.alerts() {
            check_expr(&a.expr, &recorded).map_err(|e| format!("alert {}: {e}", a.name))?;
        }
    }
    Ok(())
}

/// The bucket edges just below and above `value` (either may be missing at the ends).
pub fn nearest_edges(buckets: &[f64], value: f64) -> (Option<f64>, Option<f64>) {
    let below = buckets.iter().copied().rfind(|b| *b < value);
    let above = buckets.iter().copied().find(|b| *b > value);
    (below, above)
}

/// A warning when `value` is not an edge of `buckets`: `histogram_quantile` would interpolate
/// and a `le` selector would match nothing.
pub fn edge_warning(rule: &str, metric: &str, buckets: &[f64], value: f64) -> Option<String> {
    if buckets.iter().any(|b| (b - value).abs() <= 1e-9 * value.abs().max(1.0)) {
        return None;
    }
    let show = |v: Option<f64>| v.map_or("none".to_string(), crate::promql::num);
    let (below, above) = nearest_edges(buckets, value);
    Some(format!(
        "{rule}: threshold {} is not a bucket edge of {metric} (nearest edges {} and {}); results there are interpolated",
        crate::promql::num(value),
        show(below),
        show(above)
    ))
}

/// Warnings for every latency threshold of the spec that is off its histogram's edges.
pub fn bucket_warnings(cfg: &RulesConfig) -> Vec<String> {
    let t = &cfg.thresholds;
    let mut checks: Vec<(String, &MetricSpec, f64)> = vec![
        (
            "rules.thresholds.latency.enter_secs".into(),
            &gateway::REQUEST_DURATION,
            t.latency.enter_secs,
        ),
        (
            "rules.thresholds.latency.recover_secs".into(),
            &gateway::REQUEST_DURATION,
            t.latency.recover_secs,
        ),
    ];
    for (name, spec, level) in [
        ("inference_latency", &gateway::REQUEST_DURATION, &t.inference_latency),
        ("ttft", &gateway::TIME_TO_FIRST_TOKEN, &t.ttft),
        ("inter_node_latency", &agent::PEER_CONNECT_LATENCY, &t.inter_node_latency),
        ("queue_time", &agent::ENGINE_QUEUE_TIME, &t.queue_time),
    ] {
        for (field, v) in
            [("warning", level.warning), ("critical", level.critical), ("recover", level.recover)]
        {
            checks.push((format!("rules.thresholds.{name}.{field}"), spec, v));
        }
    }
    for (i, slo) in cfg.slos.iter().enumerate() {
        if slo.kind == SloKind::Latency {
            checks.push((
                format!("rules.slos[{i}].threshold_secs ({})", slo.name),
                &gateway::REQUEST_DURATION,
                slo.threshold_secs,
            ));
        }
    }
    checks
        .into_iter()
        .filter_map(|(rule, spec, v)| edge_warning(&rule, spec.name, spec.buckets, v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepwatch_core::engines::vllm;

    #[test]
    fn unknown_metric_and_label_are_rejected() {
        let recorded = BTreeMap::new();
        let ok = format!("rate({}[1m])", gateway::REQUESTS.name);
        assert!(check_expr(&ok, &recorded).is_ok());
        let bad_label = format!("{}{{colour=\"red\"}}", gateway::REQUESTS.name);
        assert!(check_expr(&bad_label, &recorded).unwrap_err().contains("colour"));
        let bad_name = "rate(no_such_metric_total[1m])";
        assert!(check_expr(bad_name, &recorded).unwrap_err().contains("no_such_metric_total"));
        assert!(check_expr("sum by (colour) (up)", &recorded).is_err());
        assert!(
            check_expr("rate(x[1m]", &recorded).is_err(),
            "unbalanced parenthesis must not parse"
        );
    }

    #[test]
    fn vllm_ttft_has_no_two_second_edge() {
        let w =
            edge_warning("engine ttft", vllm::TIME_TO_FIRST_TOKEN_SECONDS, vllm::TTFT_BUCKETS, 2.0)
                .unwrap();
        assert!(w.contains("nearest edges 1 and 2.5"), "{w}");
        assert!(edge_warning(
            "gateway",
            gateway::REQUEST_DURATION.name,
            gateway::REQUEST_DURATION.buckets,
            2.0
        )
        .is_none());
    }

    #[test]
    fn default_spec_is_on_edges_and_an_off_edge_threshold_warns() {
        let mut cfg = RulesConfig::default();
        assert!(bucket_warnings(&cfg).is_empty(), "{:?}", bucket_warnings(&cfg));
        cfg.thresholds.ttft.warning = 0.3 + 0.01;
        let w = bucket_warnings(&cfg);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("rules.thresholds.ttft.warning") && w[0].contains("0.3 and 0.4"),
            "{w:?}"
        );
    }
}
