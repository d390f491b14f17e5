//! Drift inputs from Prometheus: the gateway's output distributions (completion length and
//! reasoning-share histograms, finish-reason counters) as counts per bin over the current
//! window and the reference window, per (model, model_version, pool), and per pool of a model
//! for the blue/green comparison. A comparison is exported only while both sides have
//! `min_samples` responses (a pool that a rollout or failover left without traffic is not
//! "drifting") and, for reasoning share, while either side reasons at all.

use super::{Analytics, DriftDetector, DriftInput};
use crate::detect::Detector;
use crate::prom::{InstantSample, PromError};
use deepwatch_core::catalog::gateway;
use std::collections::{BTreeMap, BTreeSet};

/// Counts per bin label, per (model, model_version, pool).
type Distributions = BTreeMap<(String, String, String), BTreeMap<String, f64>>;

/// The distributions compared, as (kind, PromQL template with `{w}` for the window, bin label).
fn kinds() -> [(&'static str, String, &'static str); 3] {
    let by = "model, model_version, pool";
    [
        (
            "length",
            format!(
                "sum by ({by}, le) (increase({}_bucket[{{w}}]))",
                gateway::RESPONSE_COMPLETION_TOKENS.name
            ),
            "le",
        ),
        (
            "reasoning_share",
            format!(
                "sum by ({by}, le) (increase({}_bucket[{{w}}]))",
                gateway::RESPONSE_REASONING_SHARE.name
            ),
            "le",
        ),
        (
            "finish_reason",
            format!(
                "sum by ({by}, finish_reason) (increase({}[{{w}}]))",
                gateway::RESPONSE_FINISH_REASON.name
            ),
            "finish_reason",
        ),
    ]
}

fn group(samples: Vec<InstantSample>, bin: &str) -> Distributions {
    let mut out: Distributions = BTreeMap::new();
    for s in samples {
        if !s.value.is_finite() {
            continue;
        }
        let get = |l: &str| s.labels.get(l).cloned().unwrap_or_default();
        let key = (get("model"), get("model_version"), get("pool"));
        out.entry(key).or_default().insert(get(bin), s.value);
    }
    out
}

/// Per-bin counts from cumulative histogram buckets (`le` labels), in bucket order.
fn bins(counts: &BTreeMap<String, f64>, cumulative: bool) -> Vec<(String, f64)> {
    if !cumulative {
        return counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
    }
    let mut edges: Vec<(f64, &String, f64)> = counts
        .iter()
        .map(|(le, v)| (crate::prom::parse_value(le), le, *v))
        .filter(|e| !e.0.is_nan())
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut previous = 0.0;
    edges
        .into_iter()
        .map(|(_, le, c)| {
            let own = (c - previous).max(0.0);
            previous = previous.max(c);
            (le.clone(), own)
        })
        .collect()
}

/// Aligns two bin maps on the union of their bins.
fn align(current: &[(String, f64)], reference: &[(String, f64)]) -> DriftInput {
    let mut names: Vec<&String> = current.iter().chain(reference).map(|b| &b.0).collect();
    names.dedup();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(*n));
    let find =
        |side: &[(String, f64)], n: &String| side.iter().find(|b| &b.0 == n).map_or(0.0, |b| b.1);
    DriftInput {
        current: names.iter().map(|n| find(current, n)).collect(),
        reference: names.iter().map(|n| find(reference, n)).collect(),
    }
}

/// Whether any response of these reasoning-share bins had reasoning tokens (a bin above 0).
fn reasons(bins: &[(String, f64)]) -> bool {
    bins.iter().any(|(le, c)| *c > 0.0 && crate::prom::parse_value(le) > 0.0)
}

/// Whether a comparison of `kind` between these two sides means anything: a model version
/// that never reasons has nothing to compare in its reasoning share.
fn comparable(kind: &str, current: &[(String, f64)], reference: &[(String, f64)]) -> bool {
    kind != "reasoning_share" || reasons(current) || reasons(reference)
}

impl Analytics {
    pub(super) async fn update_drift(&self, now: f64) -> Result<(), PromError> {
        let cfg = &self.config.drift;
        let window = format!("{}s", cfg.window.as_secs());
        let mut exported = BTreeSet::new();
        let mut pool_exported = BTreeSet::new();
        for (kind, template, bin) in kinds() {
            let query = template.replace("{w}", &window);
            let current = group(self.prom.query(&query, Some(now)).await?, bin);
            let reference = group(
                self.prom.query(&query, Some(now - cfg.reference_offset.as_secs_f64())).await?,
                bin,
            );
            let cumulative = bin == "le";
            let mut state = self.state.lock();
            for (key, counts) in &current {
                let cur = bins(counts, cumulative);
                let reference_bins =
                    reference.get(key).map(|r| bins(r, cumulative)).unwrap_or_default();
                if !comparable(kind, &cur, &reference_bins) {
                    continue;
                }
                let input = align(&cur, &reference_bins);
                let detector_key = (key.0.clone(), key.1.clone(), key.2.clone(), kind.to_string());
                let detector = state
                    .drift
                    .entry(detector_key)
                    .or_insert_with(|| DriftDetector::from_config(cfg));
                let verdict = detector.check(&input);
                let ids = [key.0.as_str(), key.1.as_str(), key.2.as_str(), kind];
                if let (Some(d), Some(_)) = (detector.last, verdict.score()) {
                    self.metrics.drift.set(&ids, d.kl);
                    self.metrics.drift_threshold.set(&ids, d.threshold);
                    exported.insert(ids.map(str::to_string));
                }
                if verdict.is_anomalous() {
                    self.metrics.findings.inc(&["drift", kind]);
                }
            }
            // Blue/green: each pool of a model against the pool with the most responses.
            let mut by_pool: BTreeMap<(String, String), BTreeMap<String, f64>> = BTreeMap::new();
            for ((model, _, pool), counts) in &current {
                let entry = by_pool.entry((model.clone(), pool.clone())).or_default();
                for (b, c) in counts {
                    *entry.entry(b.clone()).or_default() += c;
                }
            }
            let models: std::collections::BTreeSet<&String> =
                by_pool.keys().map(|k| &k.0).collect();
            for model in models {
                let pools: Vec<(&String, Vec<(String, f64)>)> = by_pool
                    .iter()
                    .filter(|(k, _)| &k.0 == model)
                    .map(|(k, counts)| (&k.1, bins(counts, cumulative)))
                    .collect();
                if pools.len() < 2 {
                    continue;
                }
                let total = |b: &[(String, f64)]| b.iter().map(|x| x.1).sum::<f64>();
                let Some((reference_pool, reference_bins)) =
                    pools.iter().max_by(|a, b| total(&a.1).total_cmp(&total(&b.1)))
                else {
                    continue;
                };
                for (pool, pool_bins) in &pools {
                    if pool == reference_pool || !comparable(kind, pool_bins, reference_bins) {
                        continue;
                    }
                    let mut detector = DriftDetector::from_config(cfg);
                    let verdict = detector.check(&align(pool_bins, reference_bins));
                    let ids = [model.as_str(), pool.as_str(), reference_pool.as_str(), kind];
                    if let (Some(d), Some(_)) = (detector.last, verdict.score()) {
                        self.metrics.pool_drift.set(&ids, d.kl);
                        self.metrics.pool_drift_threshold.set(&ids, d.threshold);
                        pool_exported.insert(ids.map(str::to_string));
                    }
                    if verdict.is_anomalous() {
                        self.metrics.findings.inc(&["drift", kind]);
                    }
                }
            }
        }
        let mut state = self.state.lock();
        let gone = |before: &BTreeSet<[String; 4]>, now: &BTreeSet<[String; 4]>| {
            before.difference(now).cloned().collect::<Vec<_>>()
        };
        for ids in gone(&state.drift_exported, &exported) {
            let ids = ids.each_ref().map(String::as_str);
            self.metrics.drift.remove(&ids);
            self.metrics.drift_threshold.remove(&ids);
        }
        for ids in gone(&state.pool_drift_exported, &pool_exported) {
            let ids = ids.each_ref().map(String::as_str);
            self.metrics.pool_drift.remove(&ids);
            self.metrics.pool_drift_threshold.remove(&ids);
        }
        state.drift_exported = exported;
        state.pool_drift_exported = pool_exported;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_buckets_become_bin_counts() {
        let counts: BTreeMap<String, f64> = [("10", 5.0), ("100", 12.0), ("+Inf", 13.0)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let b = bins(&counts, true);
        assert_eq!(b.iter().map(|x| x.1).collect::<Vec<_>>(), vec![5.0, 7.0, 1.0]);
        let input = align(&b, &[("100".to_string(), 4.0)]);
        assert_eq!(input.reference, vec![0.0, 4.0, 0.0]);
    }

    #[test]
    fn reasoning_share_is_compared_only_where_some_response_reasons() {
        let none: Vec<(String, f64)> = vec![("0".into(), 40.0), ("0.05".into(), 0.0)];
        let some: Vec<(String, f64)> = vec![("0".into(), 30.0), ("0.5".into(), 10.0)];
        assert!(!comparable("reasoning_share", &none, &none));
        assert!(comparable("reasoning_share", &none, &some));
        assert!(comparable("length", &none, &none));
    }
}
