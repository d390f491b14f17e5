//! Sustained level shifts (changepoints): a two-sided CUSUM on the residual from the baseline,
//! in robust standard deviations. Each residual is clipped so a single spike cannot report a
//! shift, and the slack ignores the baseline's own small errors; a shift of a few sigmas
//! accumulates past the threshold within minutes and is reported while it lasts.

use super::{squash, Detector, PointContext, Verdict};
use crate::baseline::Expectation;
use deepwatch_core::config::analyzer::ShiftConfig;

#[derive(Debug, Clone)]
pub struct ShiftDetector {
    slack: f64,
    threshold: f64,
    clip: f64,
    up: f64,
    down: f64,
}

impl ShiftDetector {
    pub fn from_config(config: &ShiftConfig) -> ShiftDetector {
        ShiftDetector {
            slack: config.slack_sigmas,
            threshold: config.threshold_sigmas,
            clip: config.clip_sigmas,
            up: 0.0,
            down: 0.0,
        }
    }
}

impl Detector<PointContext<'_>> for ShiftDetector {
    fn name(&self) -> &'static str {
        "shift"
    }

    fn check(&mut self, ctx: &PointContext<'_>) -> Verdict {
        let band = match ctx.expectation {
            Expectation::WarmingUp { needed } => {
                self.up = 0.0;
                self.down = 0.0;
                return Verdict::WarmingUp { needed: *needed };
            }
            Expectation::Band(b) => b,
        };
        let value = ctx.value();
        if value.is_nan() {
            return Verdict::Normal { score: 0.0 };
        }
        let r = band.z(value).clamp(-self.clip, self.clip);
        // Capped so a long shift is forgotten within a few dozen points once it ends.
        let cap = 2.0 * self.threshold;
        self.up = (self.up + r - self.slack).clamp(0.0, cap);
        self.down = (self.down - r - self.slack).clamp(0.0, cap);
        let evidence = self.up.max(self.down);
        Verdict::from_score(squash(evidence, self.threshold, self.threshold / 4.0), || {
            let dir = if self.up >= self.down { "up" } else { "down" };
            format!(
                "sustained level shift {dir}: cumulative residual {evidence:.1} sigma over {:.1} (expected {:.4}, now {value:.4})",
                self.threshold, band.expected
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{Band, Grid};

    fn run(values: &[f64]) -> Vec<Verdict> {
        let band = Expectation::Band(Band { expected: 0.0, lower: -4.0, upper: 4.0, sigma: 1.0 });
        let mut grid = Grid::new(0.0, 60.0);
        grid.values = values.to_vec();
        let mut d = ShiftDetector::from_config(&ShiftConfig::default());
        (0..values.len())
            .map(|i| d.check(&PointContext { grid: &grid, index: i, expectation: &band }))
            .collect()
    }

    #[test]
    fn a_single_spike_is_not_a_shift() {
        let mut values = vec![0.0; 30];
        values[10] = 100.0;
        assert!(run(&values).iter().all(|v| !v.is_anomalous()));
    }

    #[test]
    fn a_three_sigma_shift_is_found_within_minutes_and_forgotten_after() {
        let mut values = vec![0.0; 20];
        values.extend(vec![3.0; 30]);
        values.extend(vec![0.0; 60]);
        let verdicts = run(&values);
        let first = verdicts.iter().position(Verdict::is_anomalous).expect("shift found");
        assert!((20..32).contains(&first), "found at {first}");
        assert!(!verdicts.last().unwrap().is_anomalous(), "forgotten once it ended");
    }

    #[test]
    fn a_shift_down_is_found_too() {
        let mut values = vec![0.0; 10];
        values.extend(vec![-2.5; 40]);
        let v = run(&values);
        assert!(
            matches!(v.last().unwrap(), Verdict::Anomalous { reason, .. } if reason.contains("down"))
        );
    }
}
