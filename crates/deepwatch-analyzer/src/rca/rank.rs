//! The ranking. Each candidate is scaled by its own pre-incident window (median and MAD, as
//! BARO's robust scaler does); after that it is judged by
//! - magnitude: the largest robust z after the onset search starts, saturating at `Z_SATURATE`
//!   (beyond it every candidate is "clearly anomalous" and the others decide);
//! - timing: against the moment the symptoms moved (or the alert, when none did), moving more
//!   than one sample later costs `exp(-lag / EARLINESS_SECS)` (effects follow causes) and
//!   moving long before costs `exp(-lead / LEAD_SECS)` (unrelated earlier changes);
//! - persistence: the share of points after its onset that stay anomalous;
//! - role: a prior along the causal chain (`role_weight`): traffic in, then resources, then
//!   components, then what users see, which the alert already says. It decides between
//!   candidates that moved together.

use super::source::{CandidateSeries, Role};
use crate::baseline::{mad, median, MAD_TO_SIGMA};
use crate::prom::Labels;
use deepwatch_core::config::analyzer::RcaConfig;
use serde::Serialize;

/// Robust z beyond which magnitude no longer adds to the score.
pub const Z_SATURATE: f64 = 20.0;
/// Time constant of the penalty for moving after the symptoms (effects follow causes).
pub const EARLINESS_SECS: f64 = 120.0;
/// Time constant of the gentler penalty for moving long before the symptoms (an unrelated
/// change a quarter of an hour earlier is less likely the cause than one just before).
pub const LEAD_SECS: f64 = 900.0;
/// Prior weight of each role. Symptoms are what the alert already says; among simultaneous
/// movers, arriving traffic explains resources, and resources explain components.
pub fn role_weight(role: Role) -> f64 {
    match role {
        Role::Input => 1.0,
        Role::Resource => 0.95,
        Role::Component => 0.9,
        Role::Log => 0.85,
        Role::Symptom => 0.7,
    }
}

/// One ranked candidate.
#[derive(Debug, Clone, Serialize)]
pub struct RankedCandidate {
    pub rank: usize,
    pub name: String,
    pub query: String,
    pub role: Role,
    pub labels: Labels,
    pub score: f64,
    /// Largest robust z after the search start (signed by `direction`).
    pub max_z: f64,
    pub direction: &'static str,
    /// When it first stayed beyond `onset_sigmas` (Unix seconds).
    pub onset: Option<f64>,
    pub pre_median: f64,
    /// Value at the largest deviation.
    pub peak_value: f64,
    /// Share of points after its onset that stayed anomalous.
    pub persistence: f64,
}

impl RankedCandidate {
    /// `name{label="value",...}` for reports.
    pub fn display(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "__name__")
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }

    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// Start of the window searched for the onset: the alert usually fires minutes after it.
pub fn search_start(at: f64, config: &RcaConfig) -> f64 {
    at - (config.lookback_secs as f64 / 4.0).min(900.0)
}

/// Ranks candidates for an incident at `at`; highest score first.
pub fn rank_series(
    series: &[CandidateSeries],
    at: f64,
    config: &RcaConfig,
) -> Vec<RankedCandidate> {
    let search_from = search_start(at, config);
    let sigmas = config.onset_sigmas;
    let mut judged: Vec<RankedCandidate> =
        series.iter().filter_map(|s| judge(s, search_from, sigmas)).collect();
    // The reference moment: when what users see first moved for good (the earliest strong,
    // lasting symptom), or the alert itself when no symptom moved (a leak before it bites).
    // A stray blip elsewhere must not move it.
    let reference = judged
        .iter()
        .filter(|c| {
            c.role == Role::Symptom && c.max_z.abs() >= 2.0 * sigmas && c.persistence >= 0.5
        })
        .filter_map(|c| c.onset)
        .reduce(f64::min)
        .unwrap_or(at);
    let step = config.step_secs as f64;
    for c in &mut judged {
        let Some(onset) = c.onset else {
            c.score = 0.1 * magnitude(c.max_z.abs());
            continue;
        };
        // Onsets one sample apart are not ordered: the sampling (and a rate() window over a
        // strong change) can put either first.
        let lag = (onset - reference - step).max(0.0);
        let lead = (reference - onset - step).max(0.0);
        let timing = (-lag / EARLINESS_SECS).exp() * (-lead / LEAD_SECS).exp();
        c.score =
            magnitude(c.max_z.abs()) * timing * (0.5 + 0.5 * c.persistence) * role_weight(c.role);
    }
    judged.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.display().cmp(&b.display())));
    for (i, c) in judged.iter_mut().enumerate() {
        c.rank = i + 1;
    }
    judged
}

fn magnitude(z: f64) -> f64 {
    ((1.0 + z).ln() / (1.0 + Z_SATURATE).ln()).min(1.0)
}

/// Start of the longest run of points beyond `sigmas` (one calm point inside a run is
/// tolerated): where the series started to stay moved. A blip before the real change does not
/// become the onset. `None` when no two consecutive points are beyond.
fn longest_run_start(z: &[f64], sigmas: f64) -> Option<usize> {
    let beyond: Vec<bool> = z.iter().map(|v| v.abs() > sigmas).collect();
    let mut best: Option<(usize, usize)> = None; // (start, anomalous points)
    let mut i = 0;
    while i < beyond.len() {
        if !beyond[i] {
            i += 1;
            continue;
        }
        let start = i;
        let mut count = 0;
        let mut j = i;
        while j < beyond.len() && (beyond[j] || beyond.get(j + 1).copied().unwrap_or(false)) {
            count += usize::from(beyond[j]);
            j += 1;
        }
        if count >= 2 && best.is_none_or(|(_, c)| count > c) {
            best = Some((start, count));
        }
        i = j.max(i + 1);
    }
    best.map(|(start, _)| start)
}

/// Scales one candidate by its pre-incident window; `None` without enough points on either side.
fn judge(s: &CandidateSeries, search_from: f64, sigmas: f64) -> Option<RankedCandidate> {
    let pre: Vec<f64> = s.points.iter().filter(|p| p.0 < search_from).map(|p| p.1).collect();
    let post: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| p.0 >= search_from).collect();
    if pre.len() < 8 || post.is_empty() {
        return None;
    }
    let center = median(&pre)?;
    let spread = MAD_TO_SIGMA * mad(&pre, center).unwrap_or(0.0);
    let largest = s.points.iter().map(|p| p.1.abs()).fold(0.0, f64::max);
    let widest_before = pre.iter().map(|v| (v - center).abs()).fold(0.0, f64::max);
    // Floors: a flat pre-window (an idle queue, zero errors) must not divide by zero, wobble
    // of a large gauge below 0.2 % is not an anomaly, and nothing counts as having moved
    // unless it went beyond the widest excursion of the pre-incident window (sparse series
    // such as stray errors have a MAD of zero but blips all the time).
    let sigma =
        spread.max(0.002 * center.abs()).max(1e-3 * largest).max(widest_before / sigmas).max(1e-12);
    let z: Vec<f64> = post.iter().map(|p| (p.1 - center) / sigma).collect();
    let (peak_at, peak_z) =
        z.iter().copied().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))?;
    let onset_index = longest_run_start(&z, sigmas);
    let persistence = onset_index.map_or(0.0, |i| {
        let after = &z[i..];
        after.iter().filter(|v| v.abs() > sigmas).count() as f64 / after.len() as f64
    });
    Some(RankedCandidate {
        rank: 0,
        name: s.name.clone(),
        query: s.query.clone(),
        role: s.role,
        labels: s.labels.clone(),
        score: 0.0,
        max_z: peak_z,
        direction: if peak_z >= 0.0 { "up" } else { "down" },
        onset: onset_index.map(|i| post[i].0),
        pre_median: center,
        peak_value: post[peak_at].1,
        persistence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, role: Role, f: impl Fn(f64) -> f64) -> CandidateSeries {
        CandidateSeries {
            name: name.into(),
            query: String::new(),
            role,
            labels: Labels::new(),
            smoothing_secs: 0.0,
            points: (0..240).map(|i| (i as f64 * 15.0, f(i as f64 * 15.0))).collect(),
        }
    }

    fn wobble(t: f64) -> f64 {
        ((t * 0.37).sin() + (t * 0.11).cos()) * 0.5
    }

    #[test]
    fn the_earlier_mover_ranks_above_a_bigger_later_symptom() {
        let at = 3000.0;
        let cause = series("gpu_utilization", Role::Resource, |t| {
            0.5 + 0.02 * wobble(t) + if t >= 2700.0 { 0.4 } else { 0.0 }
        });
        let effect = series("ttft_p90", Role::Symptom, |t| {
            0.3 + 0.01 * wobble(t) + if t >= 2760.0 { 3.0 } else { 0.0 }
        });
        let calm = series("process_rss", Role::Resource, |t| 8e9 + 1e6 * wobble(t));
        let ranked = rank_series(&[effect, calm, cause], at, &RcaConfig::default());
        assert_eq!(ranked[0].name, "gpu_utilization", "{ranked:#?}");
        assert_eq!(ranked[0].onset, Some(2700.0));
        assert_eq!(ranked[2].name, "process_rss");
        assert!(ranked[2].onset.is_none());
    }

    #[test]
    fn too_short_a_history_is_skipped() {
        let mut s = series("x", Role::Component, |_| 1.0);
        s.points.truncate(3);
        assert!(rank_series(&[s], 3000.0, &RcaConfig::default()).is_empty());
    }
}
