//! The series a report shows as charts: the symptom against its baseline band (from the
//! analyzer's baseline model, `crate::baseline`), and each top candidate against the
//! pre-incident band the ranking scaled it by, with its onset. Kept in the report's JSON so the
//! incident page, and any tool, can draw them without asking Prometheus again.

use super::candidates::Role;
use super::rank::{RankedCandidate, Window};
use super::source::CandidateSeries;
use crate::baseline::{Baseline, Grid, SeasonalMedian};
use deepwatch_core::config::analyzer::BaselineConfig;
use serde::{Deserialize, Serialize};

/// Most points a chart keeps (every n-th point beyond that).
pub const MAX_POINTS: usize = 400;
/// Candidates drawn besides the symptom.
pub const CANDIDATE_CHARTS: usize = 4;

/// Where a chart's band comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BandSource {
    /// The analyzer's baseline model, each point's band from the points before it; held at
    /// its last pre-onset value once the anomaly starts.
    Baseline,
    /// The pre-incident median plus and minus `onset_sigmas` robust standard deviations: the
    /// band the ranking judged the candidate by.
    PreIncident,
}

/// One chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// `name{labels}` as the ranking shows it.
    pub title: String,
    pub name: String,
    pub role: Role,
    /// Rank among the candidates (0 for the symptom when it is not itself ranked).
    pub rank: usize,
    /// `(unix seconds, value)`.
    pub points: Vec<(f64, f64)>,
    /// `(unix seconds, lower, upper)`, where a band exists.
    pub band: Vec<(f64, f64, f64)>,
    pub band_source: BandSource,
    pub onset: Option<f64>,
    /// Time and value of the largest deviation.
    pub peak: Option<(f64, f64)>,
}

fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let every = points.len().div_ceil(MAX_POINTS).max(1);
    points.iter().copied().step_by(every).collect()
}

fn series_of<'a>(
    series: &'a [CandidateSeries],
    c: &RankedCandidate,
) -> Option<&'a CandidateSeries> {
    series.iter().find(|s| s.name == c.name && s.labels == c.labels)
}

/// A candidate's chart with the band it was judged by.
pub fn candidate_chart(
    series: &[CandidateSeries],
    c: &RankedCandidate,
    onset_sigmas: f64,
) -> Option<Chart> {
    let s = series_of(series, c)?;
    let points = thin(&s.points);
    let half = onset_sigmas * c.sigma;
    let band = points.iter().map(|p| (p.0, c.pre_median - half, c.pre_median + half)).collect();
    let peak = s
        .points
        .iter()
        .copied()
        .filter(|p| p.1 == c.peak_value)
        .find(|p| c.onset.is_none_or(|o| p.0 >= o));
    Some(Chart {
        title: c.display(),
        name: c.name.clone(),
        role: c.role,
        rank: c.rank,
        points,
        band,
        band_source: BandSource::PreIncident,
        onset: c.onset,
        peak,
    })
}

/// The symptom: the ranked symptom that moved most (with an onset when one did), drawn
/// against the baseline model's band.
/// The symptom candidates an alert is about, from its name.
fn symptom_family(alert: &str) -> &'static [&'static str] {
    let a = alert.to_ascii_lowercase();
    if a.contains("timetofirsttoken") || a.contains("ttft") {
        &["ttft_p90"]
    } else if a.contains("latency") {
        &["request_duration_p90", "ttft_p90"]
    } else if a.contains("error") || a.contains("unavailable") || a.contains("availability") {
        &["error_ratio"]
    } else {
        &[]
    }
}

pub fn symptom_chart(
    alert: Option<&str>,
    series: &[CandidateSeries],
    ranked: &[RankedCandidate],
    window: &Window,
    step: f64,
    baseline: &BaselineConfig,
    onset_sigmas: f64,
) -> Option<Chart> {
    // The symptom the alert is about (latency for a latency alert), when it was ranked.
    let family = alert.map(symptom_family).unwrap_or(&[]);
    let all = ranked.iter().filter(|c| c.role == Role::Symptom);
    let about: Vec<&RankedCandidate> =
        all.clone().filter(|c| family.contains(&c.name.as_str())).collect();
    let symptoms: Vec<&RankedCandidate> = if about.is_empty() { all.collect() } else { about };
    let symptoms = symptoms.into_iter();
    let chosen = symptoms
        .clone()
        .filter(|c| c.onset.is_some())
        .max_by(|a, b| a.max_z.abs().total_cmp(&b.max_z.abs()))
        .or_else(|| symptoms.max_by(|a, b| a.max_z.abs().total_cmp(&b.max_z.abs())))?;
    let mut chart = candidate_chart(series, chosen, onset_sigmas)?;
    let s = series_of(series, chosen)?;
    let model = SeasonalMedian::from_config(baseline, 0.0);
    let grid = Grid::from_points(&s.points, step);
    let prepared = model.prepare(&grid);
    // Hold the band at its last value before the anomaly: a baseline that follows the
    // anomaly would hide it.
    let hold_from = chosen.onset.unwrap_or(window.search_from);
    let mut held: Option<(f64, f64)> = None;
    let mut band = Vec::new();
    for i in 0..grid.len() {
        let t = grid.time_of(i);
        if t >= hold_from {
            if let Some((lower, upper)) = held {
                band.push((t, lower, upper));
            }
            continue;
        }
        if let Some(b) = model.expect(&grid, &prepared, i).band() {
            held = Some((b.lower, b.upper));
            band.push((t, b.lower, b.upper));
        }
    }
    if !band.is_empty() {
        let every = band.len().div_ceil(MAX_POINTS).max(1);
        chart.band = band.into_iter().step_by(every).collect();
        chart.band_source = BandSource::Baseline;
    }
    Some(chart)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rca::rank::{rank_series, window};
    use deepwatch_core::config::analyzer::RcaConfig;

    #[test]
    fn the_symptom_band_comes_from_the_baseline_and_holds_after_the_onset() {
        let config = RcaConfig {
            lookback: std::time::Duration::from_secs(300),
            step: std::time::Duration::from_secs(1),
            ..RcaConfig::default()
        };
        let baseline = BaselineConfig { periods: vec![], min_points: 5, ..Default::default() };
        let wobble = |t: f64| 0.02 * ((t * 0.7).sin() + (t * 0.31).cos());
        let points: Vec<(f64, f64)> = (0..120)
            .map(|i| {
                let t = 1000.0 + i as f64;
                (t, 0.3 + wobble(t) + if t >= 1100.0 { 2.0 } else { 0.0 })
            })
            .collect();
        let s = CandidateSeries {
            name: "ttft_p90".into(),
            query: String::new(),
            role: Role::Symptom,
            labels: [("pool".to_string(), "blue".to_string())].into_iter().collect(),
            points,
            smoothing_secs: 0.0,
            absent_is_zero: false,
        };
        let at = 1105.0;
        let series = vec![s];
        let ranked = rank_series(&series, at, &config);
        let win = window(&series, at, &config);
        let chart = symptom_chart(None, &series, &ranked, &win, 1.0, &baseline, 4.0).unwrap();
        assert_eq!(chart.band_source, BandSource::Baseline);
        assert_eq!(chart.onset, Some(1100.0));
        let before: Vec<_> = chart.band.iter().filter(|b| b.0 < 1100.0).collect();
        let after: Vec<_> = chart.band.iter().filter(|b| b.0 >= 1100.0).collect();
        assert!(!before.is_empty() && !after.is_empty());
        // Every point before the onset lies in or near its band; after it, far above the
        // held band, which stays where it was.
        let last = before.last().unwrap();
        assert!(last.2 < 0.6, "band before the onset {last:?}");
        assert!(after.iter().all(|b| (b.1, b.2) == (last.1, last.2)));
        assert!(chart.points.iter().filter(|p| p.0 >= 1100.0).all(|p| p.1 > last.2));
    }
}
