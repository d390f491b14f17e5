//! Memory leaks: a steady climb of process RSS or GPU memory. Over a trailing window the
//! Theil-Sen slope (median of pairwise slopes, robust to allocation spikes) gives the leak rate
//! and the Mann-Kendall statistic its significance; both halves of the window must climb too,
//! so one step up (a cache warming, a model load) is not a leak. With a known limit, the
//! time to exhaustion is (limit - now) / slope.

use super::{squash, Detector, PointContext, Verdict};
use crate::baseline::{median, MAD_TO_SIGMA};
use deepwatch_core::config::analyzer::LeakConfig;

/// Name of the slope figure (units per second).
pub const FIGURE_SLOPE: &str = "slope_per_second";
/// Name of the time-to-exhaustion figure (seconds).
pub const FIGURE_TIME_TO_EXHAUSTION: &str = "time_to_exhaustion_seconds";

/// Points used at most for the pairwise statistics (longer windows are thinned evenly).
const MAX_POINTS: usize = 120;

/// The slope and trend of a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Theil-Sen slope, units per second.
    pub slope: f64,
    /// Mann-Kendall z (positive = rising).
    pub mk_z: f64,
    /// Theil-Sen slopes of the first and second half.
    pub halves: (f64, f64),
    /// Robust standard deviation of point-to-point noise.
    pub noise: f64,
    /// Squared error of the best single step (two flat segments) over that of the least-squares
    /// line: above 1 the window is a ramp, below 1 a step explains it better.
    pub ramp_over_step: f64,
    pub points: usize,
}

/// Squared error of the best fit of `values` by two constant segments, over that of the
/// least-squares line through `points`. An allocation step that noise hides from the jump
/// removal still fits a step far better than a line; a leak (a ramp, or growth in many blocks)
/// fits a line better.
pub fn ramp_over_step(points: &[(f64, f64)]) -> f64 {
    let n = points.len();
    if n < 4 {
        return 1.0;
    }
    let nf = n as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let (mut stt, mut stv, mut svv) = (0.0, 0.0, 0.0);
    for (t, v) in points {
        stt += (t - mean_t) * (t - mean_t);
        stv += (t - mean_t) * (v - mean_v);
        svv += (v - mean_v) * (v - mean_v);
    }
    let line_sse = if stt > 0.0 { svv - stv * stv / stt } else { svv };
    // Best split: total SSE minus the between-segment sum of squares, maximised over splits.
    let mut left_sum = 0.0;
    let mut best_between: f64 = 0.0;
    for (k, p) in points[..n - 1].iter().enumerate() {
        left_sum += p.1 - mean_v;
        let left_n = (k + 1) as f64;
        let right_n = nf - left_n;
        // Between-segment sum of squares of a split after point k (deviations sum to zero).
        let between = left_sum * left_sum * (1.0 / left_n + 1.0 / right_n);
        best_between = best_between.max(between);
    }
    let step_sse = svv - best_between;
    if line_sse <= 0.0 {
        return if step_sse <= 0.0 { 1.0 } else { f64::INFINITY };
    }
    step_sse / line_sse
}

/// Theil-Sen slope of `(t, v)` points; `None` for fewer than two distinct times.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<f64> {
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 != a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    median(&slopes)
}

/// Mann-Kendall z statistic (continuity-corrected, ties ignored in the variance).
pub fn mann_kendall_z(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    if n < 3.0 {
        return 0.0;
    }
    let mut s = 0.0;
    for (i, a) in values.iter().enumerate() {
        for b in &values[i + 1..] {
            s += (b - a).signum() * f64::from(u8::from(b != a));
        }
    }
    let var = n * (n - 1.0) * (2.0 * n + 5.0) / 18.0;
    (s - s.signum()) / var.sqrt()
}

/// Jumps this many robust sigmas of the point-to-point noise away from the typical step are
/// allocation steps, not drift.
const STEP_SIGMAS: f64 = 6.0;
/// More jumps than this in one window are growth in chunks (a leak that allocates in blocks),
/// not a couple of unrelated steps, and are kept.
const MAX_STEPS: usize = 2;

/// The window with up to `MAX_STEPS` sudden jumps taken out (each replaced by the typical
/// point-to-point change): a cache that grew twice within the hour is not a leak, but memory
/// that keeps climbing between the jumps still is.
fn without_rare_steps(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let diffs: Vec<f64> = points.windows(2).map(|w| w[1].1 - w[0].1).collect();
    let Some(center) = median(&diffs) else { return points.to_vec() };
    let scale = MAD_TO_SIGMA * crate::baseline::mad(&diffs, center).unwrap_or(0.0);
    if scale <= 0.0 {
        return points.to_vec();
    }
    let jumps = diffs.iter().filter(|d| (*d - center).abs() > STEP_SIGMAS * scale).count();
    if jumps == 0 || jumps > MAX_STEPS {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(points.len());
    let mut level = points[0].1;
    out.push(points[0]);
    for (p, d) in points[1..].iter().zip(&diffs) {
        level += if (d - center).abs() > STEP_SIGMAS * scale { center } else { *d };
        out.push((p.0, level));
    }
    out
}

/// Slope, significance and noise of a window of `(t, v)` points (NaN values dropped).
pub fn trend(points: &[(f64, f64)]) -> Option<Trend> {
    let present: Vec<(f64, f64)> = points.iter().copied().filter(|p| !p.1.is_nan()).collect();
    if present.len() < 6 {
        return None;
    }
    let present = without_rare_steps(&present);
    let stride = present.len().div_ceil(MAX_POINTS);
    let thin: Vec<(f64, f64)> = present.iter().copied().step_by(stride).collect();
    let slope = theil_sen(&thin)?;
    let values: Vec<f64> = thin.iter().map(|p| p.1).collect();
    let half = thin.len() / 2;
    let halves = (theil_sen(&thin[..half])?, theil_sen(&thin[half..])?);
    let diffs: Vec<f64> = present.windows(2).map(|w| w[1].1 - w[0].1).collect();
    let center = median(&diffs).unwrap_or(0.0);
    let noise = MAD_TO_SIGMA * crate::baseline::mad(&diffs, center).unwrap_or(0.0)
        / std::f64::consts::SQRT_2;
    Some(Trend {
        slope,
        mk_z: mann_kendall_z(&values),
        halves,
        noise,
        ramp_over_step: ramp_over_step(&present),
        points: present.len(),
    })
}

#[derive(Debug, Clone)]
pub struct LeakDetector {
    window_secs: f64,
    /// Slopes below this (units per second) are never leaks.
    min_slope: f64,
    min_trend_z: f64,
    /// The memory limit, for time to exhaustion.
    pub limit: Option<f64>,
    /// Last computed slope (units per second), for export.
    pub last_slope: Option<f64>,
    /// Last time to exhaustion in seconds, while leaking toward a known limit.
    pub last_time_to_exhaustion: Option<f64>,
}

impl LeakDetector {
    pub fn from_config(config: &LeakConfig) -> LeakDetector {
        LeakDetector::new(
            config.window.as_secs_f64(),
            config.min_slope_mb_per_min * 1e6 / 60.0,
            config.min_trend_z,
        )
    }

    /// `min_slope` in the series' units per second.
    pub fn new(window_secs: f64, min_slope: f64, min_trend_z: f64) -> LeakDetector {
        LeakDetector {
            window_secs,
            min_slope,
            min_trend_z,
            limit: None,
            last_slope: None,
            last_time_to_exhaustion: None,
        }
    }
}

impl Detector<PointContext<'_>> for LeakDetector {
    fn name(&self) -> &'static str {
        "leak"
    }

    fn figures(&self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        if let Some(slope) = self.last_slope {
            out.push((FIGURE_SLOPE, slope));
        }
        if let Some(tte) = self.last_time_to_exhaustion {
            out.push((FIGURE_TIME_TO_EXHAUSTION, tte));
        }
        out
    }

    fn set_limit(&mut self, limit: Option<f64>) {
        self.limit = limit;
    }

    fn check(&mut self, ctx: &PointContext<'_>) -> Verdict {
        let grid = ctx.grid;
        let window = (self.window_secs / grid.step).round().max(6.0) as usize;
        if ctx.index + 1 < window {
            return Verdict::WarmingUp { needed: window - ctx.index - 1 };
        }
        let from = ctx.index + 1 - window;
        let points: Vec<(f64, f64)> =
            (from..=ctx.index).map(|i| (grid.time_of(i), grid.values[i])).collect();
        let Some(t) = trend(&points).filter(|t| t.points * 2 >= window) else {
            return Verdict::WarmingUp { needed: 1 };
        };
        self.last_slope = Some(t.slope);
        let current = ctx.value();
        self.last_time_to_exhaustion = match self.limit {
            Some(limit) if t.slope > 0.0 && current.is_finite() => {
                Some(((limit - current) / t.slope).max(0.0))
            }
            _ => None,
        };
        let growth = t.slope * self.window_secs;
        // Every condition as a ratio that reaches 1 when it is just met; the weakest decides.
        let significance = t.mk_z / self.min_trend_z;
        let rate = if self.min_slope > 0.0 { t.slope / self.min_slope } else { f64::INFINITY };
        let above_noise = if t.noise > 0.0 { growth / (3.0 * t.noise) } else { f64::INFINITY };
        let steady = if t.slope > 0.0 { t.halves.0.min(t.halves.1) / (0.4 * t.slope) } else { 0.0 };
        // A step that stays (a cache, a bigger batch) is not a leak however it tilts the line.
        let ramp = t.ramp_over_step;
        let strength = significance.min(rate).min(above_noise).min(steady).min(ramp);
        let tte = self.last_time_to_exhaustion;
        Verdict::from_score(squash(strength, 1.0, 0.25), || {
            let per_min = t.slope * 60.0;
            match tte {
                Some(secs) => format!(
                    "memory climbing {per_min:.4}/min (Mann-Kendall z {:.1}); limit reached in {:.0} min",
                    t.mk_z,
                    secs / 60.0
                ),
                None => format!("memory climbing {per_min:.4}/min (Mann-Kendall z {:.1})", t.mk_z),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{Expectation, Grid};

    /// Deterministic noise in -0.5..0.5 whose differences are not a lattice.
    fn noise(i: usize) -> f64 {
        ((i as f64 * 12.9898).sin() * 43_758.545).fract().abs() - 0.5
    }

    fn last_verdict(values: Vec<f64>, detector: &mut LeakDetector) -> Verdict {
        let mut grid = Grid::new(0.0, 60.0);
        grid.values = values;
        let none = Expectation::WarmingUp { needed: 1 };
        let index = grid.len() - 1;
        detector.check(&PointContext { grid: &grid, index, expectation: &none })
    }

    #[test]
    fn theil_sen_ignores_an_outlier() {
        let mut pts: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 2.0 * i as f64)).collect();
        pts[10].1 = 1000.0;
        assert_eq!(theil_sen(&pts), Some(2.0));
    }

    #[test]
    fn a_steady_climb_is_a_leak_with_time_to_exhaustion() {
        // 8 GB process, +20 MB/min, 30 MB noise; limit 16 GB.
        let values: Vec<f64> = (0..120).map(|i| 8e9 + 20e6 * i as f64 + 30e6 * noise(i)).collect();
        let mut d = LeakDetector::new(3600.0, 1e6 / 60.0, 4.0);
        d.limit = Some(16e9);
        let v = last_verdict(values, &mut d);
        assert!(v.is_anomalous(), "{v:?}");
        let per_min = d.last_slope.unwrap() * 60.0;
        assert!((per_min - 20e6).abs() < 2e6, "slope {per_min}");
        let tte_min = d.last_time_to_exhaustion.unwrap() / 60.0;
        assert!((tte_min - (16e9 - 8e9 - 20e6 * 119.0) / 20e6).abs() < 40.0, "{tte_min}");
    }

    #[test]
    fn flat_noisy_memory_and_a_single_step_are_not_leaks() {
        let flat: Vec<f64> = (0..120).map(|i| 8e9 + 50e6 * noise(i)).collect();
        let mut d = LeakDetector::new(3600.0, 1e6 / 60.0, 4.0);
        assert!(!last_verdict(flat, &mut d).is_anomalous());
        let step: Vec<f64> =
            (0..120).map(|i| 8e9 + if i > 70 { 2e9 } else { 0.0 } + 20e6 * noise(i)).collect();
        let v = last_verdict(step, &mut d);
        assert!(!v.is_anomalous(), "one step up is not a leak: {v:?}");
    }

    #[test]
    fn two_allocation_steps_in_an_hour_are_not_a_leak_but_chunked_growth_is() {
        let mut d = LeakDetector::new(3600.0, 1e6 / 60.0, 4.0);
        let two_steps: Vec<f64> = (0..120)
            .map(|i| {
                8e9 + if i > 75 { 5e8 } else { 0.0 }
                    + if i > 100 { 5e8 } else { 0.0 }
                    + 20e6 * noise(i)
            })
            .collect();
        let v = last_verdict(two_steps, &mut d);
        assert!(!v.is_anomalous(), "{v:?}");
        let chunks: Vec<f64> =
            (0..120).map(|i| 8e9 + 3e8 * (i / 10) as f64 + 20e6 * noise(i)).collect();
        let v = last_verdict(chunks, &mut d);
        assert!(v.is_anomalous(), "a block every ten minutes is a leak: {v:?}");
    }

    #[test]
    fn a_step_hidden_in_noise_is_not_a_leak_but_a_ramp_of_the_same_height_is() {
        // 100 MB noise hides a 400 MB step from the jump removal (6 sigma of the differences is
        // 850 MB); the step still fits two flat segments better than a line.
        let noisy = |i: usize| 100e6 * (noise(i) + noise(i + 1000) + noise(i + 2000));
        let step: Vec<f64> =
            (0..60).map(|i| 8e9 + if i >= 35 { 4e8 } else { 0.0 } + noisy(i)).collect();
        let t =
            trend(&step.iter().enumerate().map(|(i, v)| (i as f64 * 60.0, *v)).collect::<Vec<_>>())
                .unwrap();
        assert!(t.ramp_over_step < 1.0, "{t:?}");
        let mut d = LeakDetector::new(3600.0, 1e6 / 60.0, 4.0);
        assert!(!last_verdict(step, &mut d).is_anomalous());
        let ramp: Vec<f64> = (0..60).map(|i| 8e9 + 4e8 * i as f64 / 59.0 + noisy(i)).collect();
        let v = last_verdict(ramp, &mut d);
        assert!(v.is_anomalous(), "{v:?}");
    }

    #[test]
    fn too_short_a_window_is_warming_up() {
        let mut d = LeakDetector::new(3600.0, 0.0, 4.0);
        assert!(matches!(last_verdict(vec![1.0; 10], &mut d), Verdict::WarmingUp { .. }));
    }
}
