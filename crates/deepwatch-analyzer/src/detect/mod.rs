//! Detectors: one trait, one file each. A detector judges its input (one point of a baselined
//! series, or a pair of output distributions) and answers a `Verdict` with a score in 0..1,
//! or "warming up" when it has too little data to judge. Scores are calibrated so that 0.5 is
//! the decision boundary: above it the detector reports an anomaly.
//!
//! The same detectors serve the online analyzer (`online.rs`, `Analytics`) and offline scoring
//! of CSV files (`crate::offline`), through `SeriesScorer`.

pub mod accuracy;
pub mod band;
pub mod drift;
mod extremes;
pub mod leak;
pub mod online;
pub mod scorer;
pub mod shift;
pub mod surprise;

pub use scorer::{SeriesScorer, SeriesVerdict};

use crate::baseline::{Expectation, Grid};

/// What a detector says.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Within normal behaviour; `score` < 0.5.
    Normal { score: f64 },
    /// An anomaly; `score` >= 0.5 and a human-readable reason.
    Anomalous { score: f64, reason: String },
    /// Not enough data to judge yet: `needed` more points or samples.
    WarmingUp { needed: usize },
}

impl Verdict {
    /// The score, `None` while warming up.
    pub fn score(&self) -> Option<f64> {
        match self {
            Verdict::Normal { score } | Verdict::Anomalous { score, .. } => Some(*score),
            Verdict::WarmingUp { .. } => None,
        }
    }

    pub fn is_anomalous(&self) -> bool {
        matches!(self, Verdict::Anomalous { .. })
    }

    /// Builds the verdict for a score: anomalous from 0.5 up, with the reason made lazily.
    pub fn from_score(score: f64, reason: impl FnOnce() -> String) -> Verdict {
        let score = if score.is_nan() { 0.0 } else { score.clamp(0.0, 1.0) };
        if score >= 0.5 {
            Verdict::Anomalous { score, reason: reason() }
        } else {
            Verdict::Normal { score }
        }
    }
}

/// One detector. `Input` is what it judges: a `PointContext` for series detectors, a
/// `drift::DriftInput` for the drift detector.
pub trait Detector<Input: ?Sized>: Send {
    /// Stable snake_case name, used as the `detector` label.
    fn name(&self) -> &'static str;
    /// Judges the input; detectors with memory (CUSUM, trailing medians) update it, so points
    /// of one series are fed in time order.
    fn check(&mut self, input: &Input) -> Verdict;
    /// Figures the detector measured on its last check, for export (the leak slope, ...).
    fn figures(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// Tells the detector the limit of what it watches (memory size), where it has a use.
    fn set_limit(&mut self, _limit: Option<f64>) {}
    /// Whether it judges against the seasonal baseline's band (`PointContext::expectation`).
    /// A scorer whose detectors all keep their own per-point state skips fitting it.
    fn uses_baseline(&self) -> bool {
        true
    }
    /// The normal band this detector judged its last point against, where it keeps one (the
    /// exported band of a series scored without the seasonal baseline).
    fn band(&self) -> Option<crate::baseline::Band> {
        None
    }
    /// Points of history this detector wants on a fresh start (its warm-up), where it keeps
    /// its own state.
    fn history_points(&self) -> usize {
        0
    }
}

/// One point of a baselined series, with what came before it.
#[derive(Debug, Clone, Copy)]
pub struct PointContext<'a> {
    pub grid: &'a Grid,
    pub index: usize,
    pub expectation: &'a Expectation,
}

impl PointContext<'_> {
    pub fn value(&self) -> f64 {
        self.grid.values[self.index]
    }
    pub fn time(&self) -> f64 {
        self.grid.time_of(self.index)
    }
}

/// Logistic squashing used by every detector: 0.5 at `edge`, ~0.95 two `width`s beyond it.
pub fn squash(x: f64, edge: f64, width: f64) -> f64 {
    let width = width.max(f64::MIN_POSITIVE);
    1.0 / (1.0 + (-(x - edge) * 1.5 / width).exp())
}

/// The series detectors by name, built from the analyzer config; `min_band` is the series'
/// smallest change worth a look, in its unit (0 for none).
pub fn series_detector(
    name: &str,
    config: &deepwatch_core::config::analyzer::AnalyzerConfig,
    min_band: f64,
) -> Option<Box<dyn for<'a> Detector<PointContext<'a>>>> {
    match name {
        "band" => Some(Box::new(band::BandDetector::new(config.baseline.band_width))),
        "shift" => Some(Box::new(shift::ShiftDetector::from_config(&config.shift))),
        "leak" => Some(Box::new(leak::LeakDetector::from_config(&config.leak))),
        "accuracy" => Some(Box::new(accuracy::AccuracyDetector::from_config(&config.accuracy))),
        "surprise" => Some(Box::new(surprise::SurpriseDetector::new(surprise::SurpriseParams {
            min_change: min_band,
            ..surprise::SurpriseParams::default()
        }))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_is_half_at_the_edge() {
        assert!((squash(4.0, 4.0, 1.0) - 0.5).abs() < 1e-12);
        assert!(squash(6.0, 4.0, 1.0) > 0.95);
        assert!(squash(0.0, 4.0, 1.0) < 0.01);
    }

    #[test]
    fn verdict_from_score_clamps_and_decides() {
        assert!(Verdict::from_score(0.7, || "x".into()).is_anomalous());
        assert_eq!(Verdict::from_score(f64::NAN, String::new).score(), Some(0.0));
        assert_eq!(Verdict::from_score(3.0, String::new).score(), Some(1.0));
    }
}
