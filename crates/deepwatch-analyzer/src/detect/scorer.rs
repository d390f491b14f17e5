//! Runs a baseline and a set of series detectors over a grid, point by point in time order, so
//! the online analyzer and offline scoring judge a series through the very same code. The
//! combined score of a point is the highest score of its detectors; `None` while all of them
//! are warming up.

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
        let b = &self.baseline;
        let longest = b.periods_secs.last().copied().unwrap_or(0.0) * b.max_cycles as f64;
        let level = b.level_window_secs + b.level_gap_secs;
        let secs = (longest + level).max(leak_window_secs);
        (secs / step).ceil() as usize + b.window_points + b.min_points + 2
    }

    /// Judges points `from..grid.len()` (present values only), in order.
    pub fn score_from(&mut self, grid: &Grid, from: usize) -> Vec<SeriesVerdict> {
        let prepared = self.baseline.prepare(grid);
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
        for index in from..grid.len() {
            let value = grid.values[index];
            if value.is_nan() {
                continue;
            }
            let expectation = self.baseline.expect(grid, prepared, index);
            let ctx = PointContext { grid, index, expectation: &expectation };
            let verdicts = self.detectors.iter_mut().map(|d| (d.name(), d.check(&ctx))).collect();
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
