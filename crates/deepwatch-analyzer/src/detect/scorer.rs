//! Runs a baseline and a set of series detectors over a grid, point by point in time order, so
//! the online analyzer and offline scoring judge a series through the very same code. The
//! combined score of a point is the highest score of its detectors; `None` while all of them
//! are warming up. When no detector judges against the seasonal baseline (the default
//! `surprise` detector keeps its own per-point state), the baseline is not fitted at all and
//! the band comes from the detectors: each tick costs only its new points.

use super::{Detector, PointContext, Verdict};
use crate::baseline::{Baseline, Expectation, Grid, Prepared, SeasonalMedian};

/// The verdicts on one point.
#[derive(Debug, Clone)]
pub struct SeriesVerdict {
    pub index: usize,
    pub time: f64,
    pub value: f64,
    pub expectation: Expectation,
    /// One verdict per detector, in the scorer's order.
    pub verdicts: Vec<(&'static str, Verdict)>,
}

impl SeriesVerdict {
    /// Highest detector score; `None` while every detector is warming up.
    pub fn score(&self) -> Option<f64> {
        self.verdicts.iter().filter_map(|(_, v)| v.score()).reduce(f64::max)
    }

    pub fn anomalous(&self) -> impl Iterator<Item = &(&'static str, Verdict)> {
        self.verdicts.iter().filter(|(_, v)| v.is_anomalous())
    }
}

/// Detector type used for series.
pub type SeriesDetector = Box<dyn for<'a> Detector<PointContext<'a>>>;

/// A baseline plus detectors for one series, keeping the detectors' memory between calls.
pub struct SeriesScorer {
    pub baseline: SeasonalMedian,
    pub detectors: Vec<SeriesDetector>,
}

impl SeriesScorer {
    pub fn new(baseline: SeasonalMedian, detectors: Vec<SeriesDetector>) -> SeriesScorer {
        SeriesScorer { baseline, detectors }
    }

    /// Points of history the baseline and the detectors can use; older points may be dropped.
    pub fn history_points(&self, step: f64, leak_window_secs: f64) -> usize {
        let own = self.detectors.iter().map(|d| d.history_points()).max().unwrap_or(0);
        if !self.uses_baseline() {
            return own.max((leak_window_secs / step).ceil() as usize) + 2;
        }
        let b = &self.baseline;
        let longest = b.periods_secs.last().copied().unwrap_or(0.0) * b.max_cycles as f64;
        let level = b.level_window_secs + b.level_gap_secs;
        let secs = (longest + level).max(leak_window_secs);
        (secs / step).ceil() as usize + b.window_points + b.min_points + 2
    }

    /// Whether any detector judges against the seasonal baseline.
    pub fn uses_baseline(&self) -> bool {
        self.detectors.iter().any(|d| d.uses_baseline())
    }

    /// Judges points `from..grid.len()` (present values only), in order.
    pub fn score_from(&mut self, grid: &Grid, from: usize) -> Vec<SeriesVerdict> {
        let prepared =
            if self.uses_baseline() { self.baseline.prepare(grid) } else { Prepared::default() };
        self.score_prepared(grid, &prepared, from)
    }

    /// Like `score_from`, with the baseline already fitted on `grid`.
    pub fn score_prepared(
        &mut self,
        grid: &Grid,
        prepared: &Prepared,
        from: usize,
    ) -> Vec<SeriesVerdict> {
        let mut out = Vec::with_capacity(grid.len().saturating_sub(from));
        let seasonal = self.uses_baseline();
        for index in from..grid.len() {
            let value = grid.values[index];
            if value.is_nan() {
                continue;
            }
            let mut expectation = if seasonal {
                self.baseline.expect(grid, prepared, index)
            } else {
                Expectation::WarmingUp { needed: 1 }
            };
            let ctx = PointContext { grid, index, expectation: &expectation };
            let verdicts: Vec<_> =
                self.detectors.iter_mut().map(|d| (d.name(), d.check(&ctx))).collect();
            if !seasonal {
                if let Some(band) = self.detectors.iter().find_map(|d| d.band()) {
                    expectation = Expectation::Band(band);
                }
            }
            out.push(SeriesVerdict {
                index,
                time: grid.time_of(index),
                value,
                expectation,
                verdicts,
            });
        }
        out
    }
}
