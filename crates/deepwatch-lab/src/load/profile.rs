//! What the load generator sends and when: arrival-rate profiles over time (constant, ramp,
//! steps, surge), the open-loop Poisson arrival schedule they drive, and the distributions of
//! prompt and output lengths. Pure functions of a seed, so arrivals can be checked by counting.

use crate::rng::Rng;
use std::time::Duration;

/// How the arrival rate changes over a run (open loop).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Profile {
    /// The base rate throughout.
    Constant,
    /// Linear from the base rate at the start to `to_rate` at the duration bound.
    Ramp { to_rate: f64 },
    /// `rates[i]` during the i-th step of `step_secs`; the last rate holds afterwards.
    Steps { rates: Vec<f64>, step_secs: f64 },
    /// The base rate, times `factor` from `at_secs` for `for_secs`.
    Surge { factor: f64, at_secs: f64, for_secs: f64 },
}

impl Profile {
    /// Requests per second at `t` into a run bounded by `total`.
    pub fn rate_at(&self, base: f64, t: Duration, total: Duration) -> f64 {
        let t = t.as_secs_f64();
        match self {
            Profile::Constant => base,
            Profile::Ramp { to_rate } => {
                let total = total.as_secs_f64();
                if total <= 0.0 {
                    return base;
                }
                base + (to_rate - base) * (t / total).min(1.0)
            }
            Profile::Steps { rates, step_secs } => {
                let i = if *step_secs > 0.0 { (t / step_secs) as usize } else { 0 };
                rates.get(i).or(rates.last()).copied().unwrap_or(base)
            }
            Profile::Surge { factor, at_secs, for_secs } => {
                if t >= *at_secs && t < at_secs + for_secs {
                    base * factor
                } else {
                    base
                }
            }
        }
    }
}

/// Open-loop Poisson arrivals: offsets from the start, exponential gaps at the profile's current
/// rate, until `duration` or `max` arrivals. A zero rate pauses arrivals (checked every 100 ms).
pub struct Arrivals {
    rng: Rng,
    profile: Profile,
    base: f64,
    duration: Duration,
    max: u64,
    t: f64,
    n: u64,
}

impl Arrivals {
    pub fn new(profile: Profile, base_rate: f64, duration: Duration, max: u64, seed: u64) -> Self {
        Arrivals { rng: Rng::new(seed), profile, base: base_rate, duration, max, t: 0.0, n: 0 }
    }
}

impl Iterator for Arrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let end = self.duration.as_secs_f64();
        loop {
            if self.n >= self.max || self.t >= end {
                return None;
            }
            let rate =
                self.profile.rate_at(self.base, Duration::from_secs_f64(self.t), self.duration);
            if rate <= 0.0 {
                self.t += 0.1;
                continue;
            }
            self.t += self.rng.exp(1.0 / rate);
            if self.t >= end {
                return None;
            }
            self.n += 1;
            return Some(Duration::from_secs_f64(self.t));
        }
    }
}

/// A distribution of token counts (prompt or output length).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Dist {
    Fixed { value: u64 },
    Uniform { min: u64, max: u64 },
    Normal { mean: f64, stddev: f64 },
    Lognormal { median: f64, sigma: f64 },
    Exponential { mean: f64 },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid length distribution {input:?}: {reason} (examples: 256, uniform:128,512, normal:512,64, lognormal:512,0.5, exp:200)")]
pub struct DistError {
    pub input: String,
    pub reason: &'static str,
}

impl std::str::FromStr for Dist {
    type Err = DistError;

    fn from_str(s: &str) -> Result<Dist, DistError> {
        let err = |reason| DistError { input: s.to_string(), reason };
        let (kind, args) = s.split_once(':').unwrap_or(("fixed", s));
        let nums: Vec<f64> = args
            .split(',')
            .map(|a| a.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| err("parameters must be numbers"))?;
        if nums.iter().any(|n| !n.is_finite() || *n < 0.0) {
            return Err(err("parameters must be non-negative"));
        }
        let dist = match (kind, nums.as_slice()) {
            ("fixed", [v]) if *v >= 1.0 => Dist::Fixed { value: *v as u64 },
            ("uniform", [a, b]) if *a >= 1.0 && a <= b => {
                Dist::Uniform { min: *a as u64, max: *b as u64 }
            }
            ("normal", [m, sd]) if *m >= 1.0 => Dist::Normal { mean: *m, stddev: *sd },
            ("lognormal", [m, s]) if *m >= 1.0 => Dist::Lognormal { median: *m, sigma: *s },
            ("exp", [m]) if *m >= 1.0 => Dist::Exponential { mean: *m },
            ("fixed" | "uniform" | "normal" | "lognormal" | "exp", _) => {
                return Err(err("wrong number of parameters or a value below 1"))
            }
            _ => return Err(err("unknown distribution")),
        };
        Ok(dist)
    }
}

impl Dist {
    /// One sample, at least 1.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let v = match self {
            Dist::Fixed { value } => *value as f64,
            Dist::Uniform { min, max } => (*min + rng.below(max - min + 1)) as f64,
            Dist::Normal { mean, stddev } => mean + stddev * rng.normal(),
            Dist::Lognormal { median, sigma } => rng.lognormal(*median, *sigma),
            Dist::Exponential { mean } => rng.exp(*mean),
        };
        v.round().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_arrivals_are_poisson_at_the_rate() {
        let rate = 200.0;
        let arrivals: Vec<Duration> =
            Arrivals::new(Profile::Constant, rate, Duration::from_secs(100), u64::MAX, 3).collect();
        let n = arrivals.len() as f64;
        assert!((n - 20_000.0).abs() < 20_000.0 * 0.03, "{n} arrivals, expected ~20000");
        let gaps: Vec<f64> = std::iter::once(arrivals[0].as_secs_f64())
            .chain(arrivals.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()))
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((cv - 1.0).abs() < 0.05, "exponential gaps have CV 1, got {cv}");
        // Counts per 1 s window: Poisson, so variance ~ mean.
        let mut windows = vec![0u32; 100];
        for a in &arrivals {
            windows[a.as_secs() as usize] += 1;
        }
        let wm = windows.iter().map(|c| *c as f64).sum::<f64>() / 100.0;
        let wv = windows.iter().map(|c| (*c as f64 - wm).powi(2)).sum::<f64>() / 100.0;
        assert!(wv / wm > 0.6 && wv / wm < 1.5, "dispersion {}", wv / wm);
    }

    #[test]
    fn arrivals_respect_count_and_duration_bounds() {
        let capped = Arrivals::new(Profile::Constant, 1000.0, Duration::from_secs(10), 50, 1);
        assert_eq!(capped.count(), 50);
        let timed: Vec<_> =
            Arrivals::new(Profile::Constant, 1000.0, Duration::from_secs(1), u64::MAX, 1).collect();
        assert!(timed.iter().all(|t| *t < Duration::from_secs(1)));
    }

    #[test]
    fn surge_triples_the_rate_inside_its_window() {
        let surge = Profile::Surge { factor: 3.0, at_secs: 20.0, for_secs: 20.0 };
        let arrivals: Vec<Duration> =
            Arrivals::new(surge, 100.0, Duration::from_secs(60), u64::MAX, 9).collect();
        let inside = arrivals.iter().filter(|t| (20.0..40.0).contains(&t.as_secs_f64())).count();
        let before = arrivals.iter().filter(|t| t.as_secs_f64() < 20.0).count();
        let ratio = inside as f64 / before as f64;
        assert!((ratio - 3.0).abs() < 0.25, "{inside} vs {before}");
    }

    #[test]
    fn ramp_and_steps_rates() {
        let total = Duration::from_secs(100);
        let ramp = Profile::Ramp { to_rate: 30.0 };
        assert_eq!(ramp.rate_at(10.0, Duration::from_secs(50), total), 20.0);
        let steps = Profile::Steps { rates: vec![1.0, 2.0, 4.0], step_secs: 10.0 };
        assert_eq!(steps.rate_at(0.0, Duration::from_secs(5), total), 1.0);
        assert_eq!(steps.rate_at(0.0, Duration::from_secs(25), total), 4.0);
        assert_eq!(steps.rate_at(0.0, Duration::from_secs(99), total), 4.0);
    }

    #[test]
    fn distributions_parse_sample_and_reject_nonsense() {
        let mut rng = Rng::new(1);
        assert_eq!("256".parse::<Dist>().unwrap().sample(&mut rng), 256);
        let u: Dist = "uniform:10,20".parse().unwrap();
        assert!((0..1000).map(|_| u.sample(&mut rng)).all(|v| (10..=20).contains(&v)));
        let l: Dist = "lognormal:100,0.5".parse().unwrap();
        assert!((0..100).all(|_| l.sample(&mut rng) >= 1));
        for bad in ["", "zipf:3", "uniform:5", "uniform:9,2", "normal:x,1", "0", "exp:-3"] {
            let err = bad.parse::<Dist>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
