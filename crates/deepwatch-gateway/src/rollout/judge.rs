//! Canary against stable, judged at every look (once a second) of a step with sequential tests.
//! Each check (error ratio, stream-cut ratio, TTFT p95, TPOT p95) is a one-sided binomial test
//! of "the canary is within its limit": errors against the stable ratio plus the allowed
//! increase, latency as the share of canary samples above the latency limit (at most 5 % if the
//! canary's p95 is within it). Look k of a step may spend alpha / (k (k + 1)) of the step's
//! false-rollback budget, so however many looks a step takes, an unchanged canary is rolled back
//! with probability at most `false_rollback_rate` per step (a union bound over looks and checks).
//! A limit crossed by the point estimate but not yet significantly holds the step (inconclusive).

use deepwatch_core::api::admin::{Analysis, SideStats, Verdict};
use deepwatch_core::config::gateway::RolloutConfig;
use statrs::distribution::{Binomial, DiscreteCDF};

const MAX_LATENCY_SAMPLES: usize = 200_000;
/// The p95 comparison: at most this share of canary samples may lie above the limit.
const TAIL_SHARE: f64 = 0.05;
/// Error ratio, stream-cut ratio, TTFT, TPOT share the per-step budget equally.
const CHECKS: f64 = 4.0;

/// What one finished request tells the rollout analysis.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub ttft: Option<f64>,
    pub tpot: Option<f64>,
    pub error: bool,
    pub stream_cut: bool,
}

/// One side's requests since the step began.
#[derive(Debug, Default)]
pub struct Window {
    requests: u64,
    errors: u64,
    cuts: u64,
    ttft: Vec<f64>,
    tpot: Vec<f64>,
}

impl Window {
    pub fn add(&mut self, s: Sample) {
        self.requests += 1;
        self.errors += u64::from(s.error);
        self.cuts += u64::from(s.stream_cut);
        if let Some(v) = s.ttft.filter(|_| self.ttft.len() < MAX_LATENCY_SAMPLES) {
            self.ttft.push(v);
        }
        if let Some(v) = s.tpot.filter(|_| self.tpot.len() < MAX_LATENCY_SAMPLES) {
            self.tpot.push(v);
        }
    }

    fn stats(&self) -> SideStats {
        let ratio = |n: u64| if self.requests == 0 { 0.0 } else { n as f64 / self.requests as f64 };
        SideStats {
            requests: self.requests,
            errors: self.errors,
            stream_cuts: self.cuts,
            error_ratio: ratio(self.errors),
            stream_cut_ratio: ratio(self.cuts),
            ttft_p95_ms: p95(&self.ttft).map(|v| v * 1000.0),
            tpot_p95_ms: p95(&self.tpot).map(|v| v * 1000.0),
        }
    }
}

fn p95(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((v.len() as f64) * 0.95).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// P(X >= k) for X ~ Binomial(n, p): how likely `k` or more exceedances are within the limit.
pub fn upper_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    Binomial::new(p, n).map_or(1.0, |b| b.sf(k - 1))
}

/// The significance look `look` (1, 2, ...) of a step may spend: the looks' shares sum to less
/// than `alpha`.
pub fn spent(alpha: f64, look: u32) -> f64 {
    let k = f64::from(look.max(1));
    alpha / (k * (k + 1.0))
}

/// One check's outcome at this look.
enum Check {
    Within,
    /// The point estimate is over the limit, not yet significantly.
    Over(String),
    Failed(String),
}

/// `hits` of `n` against a limit of `share` per request.
fn binomial_check(what: String, hits: u64, n: u64, share: f64, alpha: f64) -> Check {
    if n == 0 || hits as f64 <= share * n as f64 {
        return Check::Within;
    }
    let p = upper_tail(hits, n, share);
    if p < alpha {
        Check::Failed(format!("{what}: p = {p:.1e} < {alpha:.1e}"))
    } else {
        Check::Over(format!("{what}, not yet significant (p = {p:.1e})"))
    }
}

/// Compares canary with stable at look `look` of the step.
pub fn judge(canary: &Window, stable: &Window, p: &RolloutConfig, look: u32) -> Analysis {
    let (c, s) = (canary.stats(), stable.stats());
    let alpha = spent(p.false_rollback_rate / CHECKS, look);
    let mut checks = Vec::new();
    // The stable side is the baseline: its ratios and p95 need `min_samples` to mean anything.
    if s.requests >= p.min_samples {
        let ratio_check = |name: &str, hits: u64, stable_ratio: f64, increase: f64| {
            let limit = (stable_ratio + increase).min(1.0);
            let what = format!(
                "{name} {:.4} ({hits} of {}) > stable {stable_ratio:.4} + {increase}",
                hits as f64 / c.requests.max(1) as f64,
                c.requests
            );
            binomial_check(what, hits, c.requests, limit, alpha)
        };
        checks.push(ratio_check(
            "error ratio",
            c.errors,
            s.error_ratio,
            p.max_error_ratio_increase,
        ));
        checks.push(ratio_check(
            "stream-cut ratio",
            c.stream_cuts,
            s.stream_cut_ratio,
            p.max_stream_cut_ratio_increase,
        ));
        let slack = p.latency_slack.as_secs_f64();
        let latency = [
            ("ttft", &canary.ttft, &stable.ttft, p.max_ttft_p95_ratio),
            ("tpot", &canary.tpot, &stable.tpot, p.max_tpot_p95_ratio),
        ];
        for (name, cv, sv, ratio) in latency {
            if (sv.len() as u64) < p.min_samples {
                continue;
            }
            let Some(stable_p95) = p95(sv) else { continue };
            let limit = stable_p95 * ratio + slack;
            let over = cv.iter().filter(|v| **v > limit).count() as u64;
            let what = format!(
                "{name} p95 over {ratio} x {:.1} ms + {:.0} ms ({over} of {} canary samples above {:.1} ms)",
                stable_p95 * 1000.0,
                slack * 1000.0,
                cv.len(),
                limit * 1000.0
            );
            checks.push(binomial_check(what, over, cv.len() as u64, TAIL_SHARE, alpha));
        }
    }
    let failed: Vec<String> = checks
        .iter()
        .filter_map(|c| if let Check::Failed(r) = c { Some(r.clone()) } else { None })
        .collect();
    let (verdict, reasons) = if !failed.is_empty() {
        (Verdict::Fail, failed)
    } else if c.requests < p.min_samples || s.requests < p.min_samples {
        let why = format!(
            "not enough samples: canary {} and stable {} of {} needed",
            c.requests, s.requests, p.min_samples
        );
        (Verdict::NotEnoughSamples, vec![why])
    } else {
        let over: Vec<String> = checks
            .into_iter()
            .filter_map(|c| if let Check::Over(r) = c { Some(r) } else { None })
            .collect();
        if over.is_empty() {
            (Verdict::Pass, over)
        } else {
            (Verdict::Inconclusive, over)
        }
    };
    Analysis { verdict, reasons, canary: c, stable: s }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator (xorshift), so the false-rollback count is reproducible.
    struct Rng(u64);

    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Log-normal latency around 200 ms with sigma 0.5: a wide, realistic tail.
        fn latency(&mut self) -> f64 {
            let (u, v) = (self.unit().max(1e-12), self.unit());
            let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            0.2 * (0.5 * normal).exp()
        }
    }

    fn sample(rng: &mut Rng, slow: f64, error_rate: f64) -> Sample {
        Sample {
            ttft: Some(rng.latency() * slow),
            tpot: Some(rng.latency() / 10.0),
            error: rng.unit() < error_rate,
            stream_cut: false,
        }
    }

    /// Runs one step: each look adds `per_look` requests to each side; the first decisive verdict.
    fn step(rng: &mut Rng, p: &RolloutConfig, slow: f64, errors: f64, per_look: usize) -> Verdict {
        let (mut canary, mut stable) = (Window::default(), Window::default());
        for look in 1..=600 {
            for _ in 0..per_look {
                canary.add(sample(rng, slow, errors));
                stable.add(sample(rng, 1.0, 0.005));
                stable.add(sample(rng, 1.0, 0.005));
            }
            let verdict = judge(&canary, &stable, p, look).verdict;
            if matches!(verdict, Verdict::Pass | Verdict::Fail) {
                return verdict;
            }
        }
        Verdict::Inconclusive
    }

    #[test]
    fn the_binomial_tail_is_exact_at_the_edges() {
        assert_eq!(upper_tail(0, 10, 0.05), 1.0);
        assert_eq!(upper_tail(11, 10, 0.05), 0.0);
        assert!((upper_tail(10, 10, 0.5) - 0.5f64.powi(10)).abs() < 1e-12);
        assert!((upper_tail(1, 3, 0.1) - (1.0 - 0.9f64.powi(3))).abs() < 1e-12);
        let total: f64 = (1..10_000).map(|k| spent(0.01, k)).sum();
        assert!(total < 0.01, "{total}");
    }

    #[test]
    fn an_unchanged_canary_is_rarely_rolled_back_although_looked_at_every_second() {
        let p = RolloutConfig::default();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut rolled_back = 0;
        for _ in 0..300 {
            // One request per look on the canary: the p95 of small windows is noisy.
            rolled_back += usize::from(step(&mut rng, &p, 1.0, 0.005, 1) == Verdict::Fail);
        }
        // The bound is false_rollback_rate (1 %) per step: 3 in 300.
        assert!(rolled_back <= 3, "{rolled_back} of 300 unchanged canaries rolled back");
    }

    #[test]
    fn a_point_estimate_judged_every_second_would_roll_back_unchanged_canaries() {
        // Why the sequential bound: the same windows judged on the p95 estimate alone.
        let p = RolloutConfig::default();
        let mut rng = Rng(7);
        let mut rolled_back = 0;
        for _ in 0..300 {
            let (mut canary, mut stable) = (Window::default(), Window::default());
            for _ in 0..p.min_samples {
                canary.add(sample(&mut rng, 1.0, 0.0));
                stable.add(sample(&mut rng, 1.0, 0.0));
                let (c, s) = (canary.stats(), stable.stats());
                if let (Some(cv), Some(sv)) = (c.ttft_p95_ms, s.ttft_p95_ms) {
                    if canary.requests >= 20 && cv > sv * p.max_ttft_p95_ratio + 10.0 {
                        rolled_back += 1;
                        break;
                    }
                }
            }
        }
        assert!(rolled_back > 15, "only {rolled_back} of 300");
    }

    #[test]
    fn slow_and_erroring_canaries_fail_within_a_few_looks() {
        let p = RolloutConfig::default();
        let mut rng = Rng(42);
        for _ in 0..20 {
            assert_eq!(step(&mut rng, &p, 2.0, 0.005, 2), Verdict::Fail);
            assert_eq!(step(&mut rng, &p, 1.0, 0.3, 2), Verdict::Fail);
        }
        // A canary slightly over its limit holds the step rather than passing it.
        let (mut canary, mut stable) = (Window::default(), Window::default());
        for i in 0..100 {
            stable.add(Sample { ttft: Some(0.2), ..Sample::default() });
            let ttft = if i % 10 == 0 { 0.4 } else { 0.2 };
            canary.add(Sample { ttft: Some(ttft), ..Sample::default() });
        }
        let a = judge(&canary, &stable, &RolloutConfig { min_samples: 50, ..p.clone() }, 30);
        assert_eq!(a.verdict, Verdict::Inconclusive, "{a:?}");
        assert!(a.reasons[0].contains("10 of 100 canary samples"), "{:?}", a.reasons);
    }
}
