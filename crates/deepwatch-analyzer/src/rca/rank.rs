//! The ranking. Each candidate is scaled by its own pre-incident window (median and MAD, as
//! BARO's robust scaler does); after that it is judged by
//! - magnitude: the largest robust z after the onset search starts, saturating at `Z_SATURATE`
//!   (beyond it every candidate is "clearly anomalous" and the others decide);
//! - timing: against the moment the symptoms moved (or the alert, when none did), moving more
//!   than one sample later costs `exp(-lag / earliness)` (effects follow causes) and moving long
//!   before costs `exp(-lead / lead)` (unrelated earlier changes); both time constants are
//!   counted in samples, so a time-scaled lab ranks like production;
//! - persistence: the share of points after its onset that stay anomalous;
//! - role: a prior along the causal chain (`role_weight`): changes, health and traffic in, then
//!   resources, then components, then what users see, which the alert already says. It decides
//!   between candidates that moved together.
//!
//! History may be short (a stack that started minutes ago): `window` then shortens the onset
//! search and ranks against whatever came before it, and says so.

use super::candidates::Role;
use super::source::CandidateSeries;
use crate::baseline::{mad, median, MAD_TO_SIGMA};
use crate::prom::Labels;
use deepwatch_core::config::analyzer::RcaConfig;
use serde::{Deserialize, Serialize};

/// Robust z beyond which magnitude no longer adds to the score.
pub const Z_SATURATE: f64 = 20.0;
/// Samples of the penalty's time constant for moving after the symptoms (effects follow
/// causes): 120 s at the default 15 s step.
pub const EARLINESS_STEPS: f64 = 8.0;
/// Samples of the gentler penalty for moving long before the symptoms (an unrelated change a
/// quarter of an hour earlier is less likely the cause than one just before): 900 s at 15 s.
pub const LEAD_STEPS: f64 = 60.0;
/// Onsets this many samples apart are not ordered. The sampling and a `rate()` window over a
/// strong change can put either of two simultaneous movers first by one sample, and what the
/// agent collects (engine histograms, process and GPU figures) reaches Prometheus through two
/// scrapes (engine -> agent -> Prometheus) where the gateway's own series take one: an engine
/// signal that moved with the symptoms can look one more sample late.
pub const UNORDERED_STEPS: f64 = 2.0;
/// Longest onset search, in samples (15 minutes at the default step).
pub const SEARCH_STEPS: f64 = 60.0;
/// Fewest pre-incident points a candidate needs to be judged.
pub const MIN_BASELINE_POINTS: usize = 5;
/// Shortest onset search, in samples, when history is short.
pub const MIN_SEARCH_STEPS: f64 = 4.0;

/// Prior weight of each role. Symptoms are what the alert already says; among simultaneous
/// movers, a change or a thing that went away explains the rest, arriving traffic explains
/// resources, and resources explain components.
pub fn role_weight(role: Role) -> f64 {
    match role {
        Role::Change | Role::Health | Role::Input => 1.0,
        Role::Resource => 0.95,
        Role::Component => 0.9,
        Role::Log => 0.85,
        Role::Symptom => 0.7,
    }
}

/// How much history the ranking had, and where it looked for the onset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// First sample of any candidate (Unix seconds).
    pub data_from: f64,
    /// Seconds of data before the incident time.
    pub history_secs: f64,
    /// Start of the onset search (Unix seconds); every point before it is the baseline.
    pub search_from: f64,
    /// The onset search the config asks for, in seconds.
    pub wanted_search_secs: f64,
    /// True when the search (and so the baseline) was shortened for lack of history.
    pub shortened: bool,
}

impl Window {
    pub fn search_secs(&self, at: f64) -> f64 {
        at - self.search_from
    }

    /// Seconds of baseline before the onset search.
    pub fn baseline_secs(&self) -> f64 {
        (self.search_from - self.data_from).max(0.0)
    }
}

/// Where to search for the onset given the data there is: the configured span (a quarter of
/// the lookback, at most `SEARCH_STEPS` samples) when a baseline at least as long comes before
/// it, else half of the history (never below `MIN_SEARCH_STEPS` samples).
pub fn window(series: &[CandidateSeries], at: f64, config: &RcaConfig) -> Window {
    let step = config.step.as_secs_f64();
    let wanted = (config.lookback.as_secs_f64() / 4.0).min(SEARCH_STEPS * step);
    let first = series
        .iter()
        .filter_map(|s| s.points.first().map(|p| p.0))
        .filter(|t| *t <= at)
        .fold(f64::INFINITY, f64::min);
    let data_from = if first.is_finite() { first } else { at };
    let history = (at - data_from).max(0.0);
    let full = history >= wanted + wanted.max(MIN_BASELINE_POINTS as f64 * step);
    let search = if full {
        wanted
    } else {
        (history / 2.0).max(MIN_SEARCH_STEPS * step).min(wanted.max(MIN_SEARCH_STEPS * step))
    };
    Window {
        data_from,
        history_secs: history,
        search_from: at - search,
        wanted_search_secs: wanted,
        shortened: !full,
    }
}

/// Which way a candidate moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// One ranked candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedCandidate {
    pub rank: usize,
    pub name: String,
    pub query: String,
    pub role: Role,
    pub labels: Labels,
    pub score: f64,
    /// Largest robust z after the search start (signed by `direction`).
    pub max_z: f64,
    pub direction: Direction,
    /// When it first stayed beyond `onset_sigmas` (Unix seconds).
    pub onset: Option<f64>,
    pub pre_median: f64,
    /// One robust standard deviation of the pre-incident window (after the floors).
    pub sigma: f64,
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

/// Start of the window searched for the onset (see `window`).
pub fn search_start(series: &[CandidateSeries], at: f64, config: &RcaConfig) -> f64 {
    window(series, at, config).search_from
}

/// Ranks candidates for an incident at `at`; highest score first.
pub fn rank_series(
    series: &[CandidateSeries],
    at: f64,
    config: &RcaConfig,
) -> Vec<RankedCandidate> {
    let win = window(series, at, config);
    let step = config.step.as_secs_f64();
    let sigmas = config.onset_sigmas;
    let mut judged: Vec<RankedCandidate> =
        series.iter().filter_map(|s| judge(s, &win, step, sigmas)).collect();
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
    for c in &mut judged {
        let Some(onset) = c.onset else {
            c.score = 0.1 * magnitude(c.max_z.abs());
            continue;
        };
        // Onsets up to `UNORDERED_STEPS` samples apart are not ordered (see there).
        let slack = UNORDERED_STEPS * step;
        let lag = (onset - reference - slack).max(0.0);
        let lead = (reference - onset - slack).max(0.0);
        let timing = (-lag / (EARLINESS_STEPS * step)).exp() * (-lead / (LEAD_STEPS * step)).exp();
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

/// The points of a candidate, with the zeros a counter that appeared later stands for.
fn filled(s: &CandidateSeries, win: &Window, step: f64) -> Vec<(f64, f64)> {
    let Some(first) = s.points.first().map(|p| p.0) else { return Vec::new() };
    if !s.absent_is_zero || first <= win.data_from + step {
        return s.points.clone();
    }
    let missing = ((first - win.data_from) / step).floor() as usize;
    let mut out: Vec<(f64, f64)> =
        (0..missing).map(|i| (first - (missing - i) as f64 * step, 0.0)).collect();
    out.extend_from_slice(&s.points);
    out
}

/// Scales one candidate by its pre-incident window; `None` without enough points on either side.
fn judge(s: &CandidateSeries, win: &Window, step: f64, sigmas: f64) -> Option<RankedCandidate> {
    let points = filled(s, win, step);
    let search_from = win.search_from;
    let pre: Vec<f64> = points.iter().filter(|p| p.0 < search_from).map(|p| p.1).collect();
    let post: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0 >= search_from).collect();
    if pre.len() < MIN_BASELINE_POINTS || post.is_empty() {
        return None;
    }
    let center = median(&pre)?;
    let spread = MAD_TO_SIGMA * mad(&pre, center).unwrap_or(0.0);
    let largest = points.iter().map(|p| p.1.abs()).fold(0.0, f64::max);
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
        direction: if peak_z >= 0.0 { Direction::Up } else { Direction::Down },
        onset: onset_index.map(|i| post[i].0),
        pre_median: center,
        sigma,
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
            absent_is_zero: false,
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

    fn short_config() -> RcaConfig {
        RcaConfig {
            lookback: std::time::Duration::from_secs(300),
            step: std::time::Duration::from_secs(1),
            ..RcaConfig::default()
        }
    }

    /// One-second samples from `from` to `to` (inclusive).
    fn seconds(
        name: &str,
        role: Role,
        from: f64,
        to: f64,
        f: impl Fn(f64) -> f64,
    ) -> CandidateSeries {
        let mut s = series(name, role, |_| 0.0);
        s.points =
            (0..=(to - from) as usize).map(|i| (from + i as f64, f(from + i as f64))).collect();
        s
    }

    #[test]
    fn forty_seconds_of_history_still_rank_with_a_shortened_search() {
        let at = 1000.0;
        let cause =
            seconds(
                "engine_up",
                Role::Health,
                960.0,
                1005.0,
                |t| {
                    if t >= 992.0 {
                        0.0
                    } else {
                        1.0
                    }
                },
            );
        let effect = seconds("error_ratio", Role::Symptom, 960.0, 1005.0, |t| {
            0.01 * wobble(t).abs() + if t >= 994.0 { 0.9 } else { 0.0 }
        });
        let calm = seconds("request_rate", Role::Input, 960.0, 1005.0, |t| 8.0 + 0.3 * wobble(t));
        let config = short_config();
        let win = window(std::slice::from_ref(&cause), at, &config);
        assert!(win.shortened);
        assert_eq!(win.history_secs, 40.0);
        assert_eq!(win.search_secs(at), 20.0);
        let ranked = rank_series(&[calm, effect, cause], at, &config);
        assert_eq!(ranked[0].name, "engine_up", "{ranked:#?}");
        assert_eq!(ranked[0].onset, Some(992.0));
        assert_eq!(ranked[0].direction, Direction::Down);
        // With the full history the same data is ranked without shortening.
        let long = seconds("x", Role::Input, 0.0, 1005.0, |_| 1.0);
        assert!(!window(&[long], at, &config).shortened);
    }

    #[test]
    fn a_counter_that_appears_with_the_incident_counts_as_zero_before() {
        let at = 1000.0;
        let mut appears = seconds("engine_scrape_errors", Role::Health, 990.0, 1005.0, |_| 2.0);
        appears.absent_is_zero = true;
        let always = seconds("request_rate", Role::Input, 900.0, 1005.0, |t| 8.0 + 0.3 * wobble(t));
        let ranked = rank_series(&[always, appears.clone()], at, &short_config());
        assert_eq!(ranked[0].name, "engine_scrape_errors", "{ranked:#?}");
        assert_eq!(ranked[0].onset, Some(990.0));
        // Without the flag it has no baseline and is not judged at all.
        appears.absent_is_zero = false;
        let always = seconds("request_rate", Role::Input, 900.0, 1005.0, |t| 8.0 + 0.3 * wobble(t));
        let ranked = rank_series(&[always, appears], at, &short_config());
        assert!(ranked.iter().all(|c| c.name != "engine_scrape_errors"));
    }
}
