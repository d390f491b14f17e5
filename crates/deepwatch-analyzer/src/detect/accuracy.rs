//! Probe accuracy: the share of golden-prompt probes that passed. Below the configured floor is
//! always an anomaly; a drop of more than `max_drop` below the trailing median of earlier probe
//! rounds is one too, once enough rounds are known.

use super::{Detector, PointContext, Verdict};
use crate::baseline::median;
use deepwatch_core::config::analyzer::AccuracyConfig;
use std::collections::VecDeque;

/// Earlier probe rounds kept for the trailing median.
const HISTORY: usize = 30;

#[derive(Debug, Clone)]
pub struct AccuracyDetector {
    min_ratio: f64,
    max_drop: f64,
    min_points: usize,
    history: VecDeque<f64>,
}

impl AccuracyDetector {
    pub fn from_config(config: &AccuracyConfig) -> AccuracyDetector {
        AccuracyDetector {
            min_ratio: config.min_ratio,
            max_drop: config.max_drop,
            min_points: config.min_points as usize,
            history: VecDeque::new(),
        }
    }
}

impl Detector<PointContext<'_>> for AccuracyDetector {
    fn name(&self) -> &'static str {
        "accuracy"
    }

    fn check(&mut self, ctx: &PointContext<'_>) -> Verdict {
        let value = ctx.value();
        if value.is_nan() {
            return Verdict::Normal { score: 0.0 };
        }
        let trailing = (self.history.len() >= self.min_points)
            .then(|| median(self.history.make_contiguous()))
            .flatten();
        self.history.push_back(value);
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        // Below the floor: 0.5 on the floor, 1.0 ten points under it.
        let floor_score = if value < self.min_ratio {
            0.5 + 0.5 * ((self.min_ratio - value) / 0.1).min(1.0)
        } else {
            0.0
        };
        let Some(trailing) = trailing else {
            if floor_score > 0.0 {
                return Verdict::from_score(floor_score, || {
                    format!("probe accuracy {value:.3} below the floor {:.3}", self.min_ratio)
                });
            }
            return Verdict::WarmingUp { needed: self.min_points + 1 - self.history.len() };
        };
        let drop = trailing - value;
        let drop_score =
            if self.max_drop > 0.0 { (drop / self.max_drop * 0.5).clamp(0.0, 1.0) } else { 0.0 };
        let score = floor_score.max(drop_score);
        Verdict::from_score(score, || {
            format!(
                "probe accuracy {value:.3} (floor {:.3}, trailing median {trailing:.3}, drop {drop:.3})",
                self.min_ratio
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{Expectation, Grid};

    fn run(values: &[f64]) -> Vec<Verdict> {
        let mut grid = Grid::new(0.0, 60.0);
        grid.values = values.to_vec();
        let none = Expectation::WarmingUp { needed: 1 };
        let mut d = AccuracyDetector::from_config(&AccuracyConfig::default());
        (0..values.len())
            .map(|i| d.check(&PointContext { grid: &grid, index: i, expectation: &none }))
            .collect()
    }

    #[test]
    fn warming_up_until_enough_rounds_but_the_floor_applies_at_once() {
        let v = run(&[0.95, 0.5]);
        assert!(matches!(v[0], Verdict::WarmingUp { .. }));
        assert!(v[1].is_anomalous(), "{:?}", v[1]);
    }

    #[test]
    fn a_drop_below_the_trailing_median_is_reported() {
        let v = run(&[0.98, 0.97, 0.99, 0.98, 0.98, 0.97, 0.85]);
        assert!(!v[5].is_anomalous());
        assert!(v[6].is_anomalous(), "0.98 -> 0.85 is a drop of 0.13: {:?}", v[6]);
        let steady = run(&[0.98, 0.97, 0.99, 0.98, 0.98, 0.97, 0.95]);
        assert!(!steady[6].is_anomalous(), "{:?}", steady[6]);
    }
}
