//! Spike and level anomalies against the baseline band: a point outside expected +- k robust
//! standard deviations is anomalous at once. Catches spikes and large level changes with no
//! delay; small sustained shifts are the shift detector's job.

use super::{squash, Detector, PointContext, Verdict};
use crate::baseline::Expectation;

#[derive(Debug, Clone)]
pub struct BandDetector {
    /// Half-width of the band in robust standard deviations (the score is 0.5 on its edge).
    band_width: f64,
}

impl BandDetector {
    pub fn new(band_width: f64) -> BandDetector {
        BandDetector { band_width }
    }
}

impl Detector<PointContext<'_>> for BandDetector {
    fn name(&self) -> &'static str {
        "band"
    }

    fn check(&mut self, ctx: &PointContext<'_>) -> Verdict {
        let band = match ctx.expectation {
            Expectation::WarmingUp { needed } => return Verdict::WarmingUp { needed: *needed },
            Expectation::Band(b) => b,
        };
        let value = ctx.value();
        if value.is_nan() {
            return Verdict::Normal { score: 0.0 };
        }
        let z = band.z(value);
        Verdict::from_score(squash(z.abs(), self.band_width, 1.0), || {
            let side = if z > 0.0 { "above" } else { "below" };
            format!(
                "value {value:.4} {side} the band [{:.4}, {:.4}] (expected {:.4}, z {z:.1})",
                band.lower, band.upper, band.expected
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{Band, Grid};

    #[test]
    fn outside_the_band_is_anomalous_inside_is_not() {
        let band = Expectation::Band(Band { expected: 10.0, lower: 6.0, upper: 14.0, sigma: 1.0 });
        let mut grid = Grid::new(0.0, 60.0);
        grid.values = vec![11.0, 20.0, 5.0];
        let mut d = BandDetector::new(4.0);
        let at = |i| PointContext { grid: &grid, index: i, expectation: &band };
        assert!(!d.check(&at(0)).is_anomalous());
        let spike = d.check(&at(1));
        assert!(spike.score().unwrap() > 0.99, "{spike:?}");
        assert!(matches!(spike, Verdict::Anomalous { ref reason, .. } if reason.contains("above")));
        assert!(d.check(&at(2)).is_anomalous(), "below the band too");
        let warming = Expectation::WarmingUp { needed: 7 };
        let v = d.check(&PointContext { grid: &grid, index: 0, expectation: &warming });
        assert_eq!(v, Verdict::WarmingUp { needed: 7 });
    }
}
