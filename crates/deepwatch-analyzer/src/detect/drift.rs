//! Output drift: how far the current window's output distribution (completion length buckets,
//! finish reasons, reasoning-share buckets) has moved from a reference window (the same window a
//! day earlier, or the other pool serving the same model). The divergence is KL(current ||
//! reference) with a half-count added to every bin (so empty reference bins do not explode it).
//!
//! A fixed threshold trips on small windows: with n and m responses and B bins, unchanged
//! traffic gives 2 * KL * nm/(n+m) ~ chi-square(B-1). The threshold is therefore the larger of
//! the configured one (0.1) and that chi-square's (1 - false_alarm_rate) quantile scaled back.

use super::{squash, Detector, Verdict};
use deepwatch_core::config::analyzer::DriftConfig;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Counts per bin of the two windows, bins in the same order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DriftInput {
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

/// The divergence, the threshold it is judged against, and the window sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Divergence {
    pub kl: f64,
    pub threshold: f64,
    pub reference_samples: f64,
    pub current_samples: f64,
}

/// Pseudo-count added to every bin of both windows (Jeffreys prior).
const PSEUDO_COUNT: f64 = 0.5;

/// KL(current || reference) in nats, both smoothed with `PSEUDO_COUNT` per bin.
pub fn kl_divergence(current: &[f64], reference: &[f64]) -> f64 {
    let bins = current.len().min(reference.len());
    let n: f64 =
        current[..bins].iter().map(|c| c.max(0.0)).sum::<f64>() + PSEUDO_COUNT * bins as f64;
    let m: f64 =
        reference[..bins].iter().map(|c| c.max(0.0)).sum::<f64>() + PSEUDO_COUNT * bins as f64;
    let mut kl = 0.0;
    for i in 0..bins {
        let p = (current[i].max(0.0) + PSEUDO_COUNT) / n;
        let q = (reference[i].max(0.0) + PSEUDO_COUNT) / m;
        kl += p * (p / q).ln();
    }
    kl.max(0.0)
}

/// The threshold for windows of `n` and `m` samples over `bins` occupied bins.
pub fn threshold(base: f64, false_alarm_rate: f64, n: f64, m: f64, bins: usize) -> f64 {
    if bins < 2 || n <= 0.0 || m <= 0.0 {
        return base;
    }
    let effective = n * m / (n + m);
    let quantile = ChiSquared::new((bins - 1) as f64)
        .map(|chi| chi.inverse_cdf(1.0 - false_alarm_rate))
        .unwrap_or(f64::INFINITY);
    base.max(quantile / (2.0 * effective))
}

#[derive(Debug, Clone)]
pub struct DriftDetector {
    base_threshold: f64,
    false_alarm_rate: f64,
    min_samples: f64,
    /// Last divergence computed, for export.
    pub last: Option<Divergence>,
}

impl DriftDetector {
    pub fn from_config(config: &DriftConfig) -> DriftDetector {
        DriftDetector {
            base_threshold: config.kl_threshold,
            false_alarm_rate: config.false_alarm_rate,
            min_samples: config.min_samples as f64,
            last: None,
        }
    }

    pub fn divergence(&self, input: &DriftInput) -> Divergence {
        let n: f64 = input.current.iter().map(|c| c.max(0.0)).sum();
        let m: f64 = input.reference.iter().map(|c| c.max(0.0)).sum();
        let occupied = input
            .current
            .iter()
            .zip(&input.reference)
            .filter(|(c, r)| **c > 0.0 || **r > 0.0)
            .count();
        Divergence {
            kl: kl_divergence(&input.current, &input.reference),
            threshold: threshold(self.base_threshold, self.false_alarm_rate, n, m, occupied),
            reference_samples: m,
            current_samples: n,
        }
    }
}

impl Detector<DriftInput> for DriftDetector {
    fn name(&self) -> &'static str {
        "drift"
    }

    fn check(&mut self, input: &DriftInput) -> Verdict {
        let d = self.divergence(input);
        self.last = Some(d);
        let fewest = d.current_samples.min(d.reference_samples);
        if fewest < self.min_samples {
            return Verdict::WarmingUp { needed: (self.min_samples - fewest).ceil() as usize };
        }
        Verdict::from_score(squash(d.kl, d.threshold, d.threshold / 4.0), || {
            format!(
                "output distribution drifted: KL {:.3} over threshold {:.3} ({} vs {} responses)",
                d.kl, d.threshold, d.current_samples, d.reference_samples
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn sample(probs: &[f64], n: usize, rng: &mut rand::rngs::StdRng) -> Vec<f64> {
        let mut counts = vec![0.0; probs.len()];
        for _ in 0..n {
            let mut u: f64 = rng.random();
            for (i, p) in probs.iter().enumerate() {
                if u < *p || i == probs.len() - 1 {
                    counts[i] += 1.0;
                    break;
                }
                u -= p;
            }
        }
        counts
    }

    const LENGTHS: [f64; 8] = [0.02, 0.05, 0.13, 0.25, 0.25, 0.18, 0.09, 0.03];

    #[test]
    fn unchanged_traffic_does_not_trip_at_any_sample_size() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut detector = DriftDetector::from_config(&DriftConfig::default());
        for n in [50, 100, 300, 1000, 10_000] {
            let mut alarms = 0;
            for _ in 0..200 {
                let input = DriftInput {
                    reference: sample(&LENGTHS, n, &mut rng),
                    current: sample(&LENGTHS, n, &mut rng),
                };
                alarms += usize::from(detector.check(&input).is_anomalous());
            }
            assert!(alarms <= 2, "{alarms} false alarms in 200 at n = {n}");
        }
    }

    #[test]
    fn a_fixed_kl_threshold_would_trip_on_small_windows() {
        // Why the threshold scales: at 50 responses a window's KL often exceeds 0.1 by chance.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let over = (0..200)
            .filter(|_| {
                kl_divergence(&sample(&LENGTHS, 50, &mut rng), &sample(&LENGTHS, 50, &mut rng))
                    > 0.1
            })
            .count();
        assert!(over > 20, "only {over} of 200 over 0.1");
    }

    #[test]
    fn shorter_answers_are_drift() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let shorter = [0.10, 0.20, 0.30, 0.20, 0.10, 0.06, 0.03, 0.01];
        let mut detector = DriftDetector::from_config(&DriftConfig::default());
        let input = DriftInput {
            reference: sample(&LENGTHS, 2000, &mut rng),
            current: sample(&shorter, 2000, &mut rng),
        };
        let v = detector.check(&input);
        assert!(v.is_anomalous(), "{v:?} {:?}", detector.last);
        let few = DriftInput { reference: vec![3.0, 2.0], current: vec![1.0, 1.0] };
        assert!(matches!(detector.check(&few), Verdict::WarmingUp { .. }));
    }
}
