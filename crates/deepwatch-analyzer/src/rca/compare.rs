//! Pools serving the same model (blue/green, canary/stable) compared over the incident window:
//! for each gateway symptom (latency, errors), a Mann-Whitney U test between the pools'
//! per-step values says whether one pool is worse, and by how much.

use super::candidates::Role;
use super::rank::{search_start, RankedCandidate};
use super::source::CandidateSeries;
use crate::baseline::median;
use deepwatch_core::config::analyzer::RcaConfig;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};
use std::collections::BTreeMap;

/// One pool against another on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolComparison {
    pub model: String,
    pub metric: String,
    pub pool: String,
    pub median: f64,
    pub other_pool: String,
    pub other_median: f64,
    /// Two-sided Mann-Whitney p-value.
    pub p_value: f64,
    pub verdict: String,
}

/// Two-sided Mann-Whitney U p-value (normal approximation with tie correction).
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<f64> {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.len() < 3 || b.len() < 3 {
        return None;
    }
    let mut all: Vec<(f64, usize)> =
        a.iter().map(|v| (*v, 0)).chain(b.iter().map(|v| (*v, 1))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut ranks = vec![0.0; all.len()];
    let mut ties = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        for r in &mut ranks[i..=j] {
            *r = rank;
        }
        i = j + 1;
    }
    let r1: f64 = all.iter().zip(&ranks).filter(|(x, _)| x.1 == 0).map(|(_, r)| r).sum();
    let u = r1 - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if var <= 0.0 {
        return Some(1.0);
    }
    let z = (u - n1 * n2 / 2.0).abs() / var.sqrt();
    let normal = Normal::new(0.0, 1.0).ok()?;
    Some((2.0 * (1.0 - normal.cdf(z))).min(1.0))
}

/// Compares pools of each model on every symptom candidate with a `pool` label.
pub fn compare_pools(
    series: &[CandidateSeries],
    _ranked: &[RankedCandidate],
    at: f64,
    config: &RcaConfig,
) -> Vec<PoolComparison> {
    let from = search_start(series, at, config);
    let to = at + config.after.as_secs_f64();
    // (metric, model) -> pool -> values in the incident window
    let mut groups: BTreeMap<(String, String), BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for s in series.iter().filter(|s| s.role == Role::Symptom) {
        let Some(pool) = s.labels.get("pool") else { continue };
        let model = s.labels.get("model").cloned().unwrap_or_default();
        let values: Vec<f64> = s
            .points
            .iter()
            .filter(|p| p.0 >= from && p.0 <= to && p.1.is_finite())
            .map(|p| p.1)
            .collect();
        groups.entry((s.name.clone(), model)).or_default().insert(pool.clone(), values);
    }
    let mut out = Vec::new();
    for ((metric, model), pools) in groups {
        let names: Vec<&String> = pools.keys().collect();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                let (va, vb) = (&pools[*a], &pools[*b]);
                let (Some(p), Some(ma), Some(mb)) = (mann_whitney(va, vb), median(va), median(vb))
                else {
                    continue;
                };
                let verdict = if p < 0.01 {
                    let (worse, better) = if ma > mb { (a, b) } else { (b, a) };
                    format!("{worse} is higher than {better}")
                } else {
                    "no significant difference".to_string()
                };
                out.push(PoolComparison {
                    model: model.clone(),
                    metric: metric.clone(),
                    pool: (*a).clone(),
                    median: ma,
                    other_pool: (*b).clone(),
                    other_median: mb,
                    p_value: p,
                    verdict,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mann_whitney_separates_shifted_samples_only() {
        let a: Vec<f64> = (0..30).map(|i| (i % 7) as f64).collect();
        let b: Vec<f64> = (0..30).map(|i| (i % 7) as f64 + 10.0).collect();
        assert!(mann_whitney(&a, &b).unwrap() < 1e-6);
        let c: Vec<f64> = (0..30).map(|i| ((i + 3) % 7) as f64).collect();
        assert!(mann_whitney(&a, &c).unwrap() > 0.5);
        assert!(mann_whitney(&a[..2], &b).is_none());
    }
}
