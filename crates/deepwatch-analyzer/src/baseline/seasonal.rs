//! The seasonal-offset median baseline with MAD bands. For a point at time t, each past period
//! (t - 1 day, t - 2 days, ..., t - 1 week, ...) proposes a candidate: the median of a small
//! window around that moment, shifted by the difference between today's recent level and that
//! day's level at the same time of day (so a quieter Saturday or a busier month does not read as
//! an anomaly). The expected value is the weighted median of the candidates, longer periods
//! weighing more (the same weekday knows the weekly shape). The band is expected +- k robust
//! standard deviations of the model's own past errors: the median absolute residual around the
//! same moments of earlier periods, so the band is wide where the model was wrong before (busy
//! hours, noisy series, smoothed counters) and narrow where it was right. Until such residuals
//! exist, local noise and the candidates' disagreement stand in. Without seasonality, the
//! median of the last quarter hour predicts, and the band comes from that prediction's own
//! past errors (and the window's MAD), so slow drifts and cycles widen it instead of alarming.

use super::rolling::{median, rolling_mad, rolling_median, weighted_median};
use super::{Band, Baseline, Expectation, Grid, MAD_TO_SIGMA};
use deepwatch_core::config::analyzer::BaselineConfig;
use std::time::Duration;

/// Seasonal-offset median with MAD bands.
#[derive(Debug, Clone, PartialEq)]
pub struct SeasonalMedian {
    /// Seasonal periods in seconds, shortest first; empty means none.
    pub periods_secs: Vec<f64>,
    pub max_cycles: usize,
    pub window_points: usize,
    pub level_window_secs: f64,
    pub level_gap_secs: f64,
    pub band_width: f64,
    pub min_points: usize,
    pub relative_floor: f64,
    /// Absolute floor of the band's half-width, in the series' unit.
    pub min_band: f64,
}

impl SeasonalMedian {
    pub fn from_config(config: &BaselineConfig, min_band: f64) -> SeasonalMedian {
        SeasonalMedian {
            periods_secs: config.periods.iter().map(Duration::as_secs_f64).collect(),
            max_cycles: config.max_cycles as usize,
            window_points: config.window_points as usize,
            level_window_secs: config.level_window.as_secs_f64(),
            level_gap_secs: config.level_gap.as_secs_f64(),
            band_width: config.band_width,
            min_points: config.min_points as usize,
            relative_floor: config.relative_floor,
            min_band,
        }
    }

    /// The same model with other periods (offline `--period`).
    pub fn with_periods(mut self, periods_secs: Vec<f64>) -> SeasonalMedian {
        self.periods_secs = periods_secs;
        self
    }

    fn steps(&self, secs: f64, step: f64) -> usize {
        (secs / step).round().max(1.0) as usize
    }

    /// Points of the trailing level window. Without seasonality the level is the prediction
    /// itself, so it must follow the series closely: a short recent window.
    fn level_points(&self, step: f64) -> usize {
        if self.periods_secs.is_empty() {
            NONSEASONAL_WINDOW
        } else {
            self.steps(self.level_window_secs, step)
        }
    }

    /// Points between the level window and now.
    fn gap_points(&self, step: f64) -> usize {
        if self.periods_secs.is_empty() {
            0
        } else {
            self.steps(self.level_gap_secs, step)
        }
    }

    fn band(&self, expected: f64, sigma: f64, non_negative: bool) -> Band {
        let half = (self.band_width * sigma)
            .max(self.relative_floor * expected.abs())
            .max(self.min_band)
            .max(f64::MIN_POSITIVE);
        let lower = expected - half;
        Band {
            expected,
            lower: if non_negative { lower.max(0.0) } else { lower },
            upper: expected + half,
            sigma: half / self.band_width,
        }
    }
}

/// What scoring needs, computed once per grid (the "fit").
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Median of the centred window around each point.
    window_median: Vec<f64>,
    /// MAD of the same window.
    window_mad: Vec<f64>,
    /// Median of the trailing level window ending `gap` before each point.
    level: Vec<f64>,
    /// MAD of the level window (used without seasonality).
    level_mad: Vec<f64>,
    /// Robust scale of the model's residuals in a centred window (1.4826 x median |residual|).
    residual_scale: Vec<f64>,
    non_negative: bool,
}

/// Trailing points whose median predicts a series without seasonality (the last quarter hour
/// at one point a minute): short enough to follow slow drifts and cycles, long enough that a
/// spike does not move it.
const NONSEASONAL_WINDOW: usize = 15;

/// Half-width, in points, of the window of residuals that sets the band's scale.
const RESIDUAL_WINDOW: usize = 30;
/// Residuals needed in that window before they set the scale.
const MIN_RESIDUALS: usize = 20;

impl Baseline for SeasonalMedian {
    fn name(&self) -> &'static str {
        "seasonal_median"
    }

    fn prepare(&self, grid: &Grid) -> Prepared {
        let values = &grid.values;
        let w = self.window_points;
        let h = self.level_points(grid.step);
        let gap = self.gap_points(grid.step);
        let trailing = rolling_median(values, h - 1, 0);
        let shift = |series: &[f64]| -> Vec<f64> {
            (0..values.len())
                .map(|i| if i > gap { series[i - gap - 1] } else { f64::NAN })
                .collect()
        };
        let seasonal = !self.periods_secs.is_empty();
        let mut prepared = Prepared {
            window_median: if seasonal { rolling_median(values, w, w) } else { Vec::new() },
            window_mad: if seasonal { rolling_mad(values, w, w) } else { Vec::new() },
            level: shift(&trailing),
            level_mad: if seasonal { Vec::new() } else { shift(&rolling_mad(values, h - 1, 0)) },
            residual_scale: Vec::new(),
            non_negative: values.iter().all(|v| v.is_nan() || *v >= 0.0),
        };
        if !seasonal {
            // The trailing median's own past errors (it lags trends and slow cycles), from a
            // window twice the level window ending `gap` back, so a fresh incident does not widen
            // the band it is judged by.
            let residuals: Vec<f64> =
                values.iter().zip(&prepared.level).map(|(v, l)| (v - l).abs()).collect();
            let trailing = rolling_median_counted_trailing(&residuals, 8 * h);
            prepared.residual_scale =
                shift(&trailing).into_iter().map(|m| MAD_TO_SIGMA * m).collect();
        }
        if seasonal {
            // First pass: the model's error at every point it could have predicted.
            let residuals: Vec<f64> = (0..values.len())
                .map(|i| match self.center(grid, &prepared, i) {
                    Some(c) => (values[i] - c.expected).abs(),
                    None => f64::NAN,
                })
                .collect();
            prepared.residual_scale = rolling_median_counted(&residuals, RESIDUAL_WINDOW)
                .into_iter()
                .map(|m| MAD_TO_SIGMA * m)
                .collect();
        }
        prepared
    }

    fn expect(&self, grid: &Grid, prepared: &Prepared, index: usize) -> Expectation {
        let step = grid.step;
        let h = self.level_points(step);
        let gap = self.gap_points(step);
        let level_ready = gap + h;
        if self.periods_secs.is_empty() {
            let ready = (gap + h).max(self.min_points);
            if index < ready || prepared.level[index].is_nan() {
                return Expectation::WarmingUp { needed: ready.saturating_sub(index).max(1) };
            }
            let spread = MAD_TO_SIGMA * prepared.level_mad[index];
            let past_errors = prepared.residual_scale.get(index).copied().unwrap_or(f64::NAN);
            let sigma = if past_errors.is_nan() { spread } else { spread.max(past_errors) };
            return Expectation::Band(self.band(
                prepared.level[index],
                sigma,
                prepared.non_negative,
            ));
        }
        // Every configured period needs a past cycle: a weekly series judged from days alone
        // would read every weekend as an anomaly, which is a guess, not a baseline.
        let longest = self.steps(self.periods_secs[self.periods_secs.len() - 1], step);
        let ready = longest + self.window_points.max(level_ready);
        let center = self.center(grid, prepared, index);
        let Some(c) = center.filter(|c| c.offsets.iter().any(|o| o % longest == 0)) else {
            return Expectation::WarmingUp { needed: ready.saturating_sub(index).max(1) };
        };
        // The model's past errors around the same moments, where known.
        let past: Vec<f64> = c
            .offsets
            .iter()
            .filter_map(|o| prepared.residual_scale.get(index - o).copied())
            .filter(|v| !v.is_nan())
            .collect();
        let sigma = match median(&past) {
            Some(s) => s,
            None => c.fallback_sigma,
        };
        Expectation::Band(self.band(c.expected, sigma, prepared.non_negative))
    }
}

/// The expected value of one point and what it was made from.
struct Center {
    expected: f64,
    /// Local noise and candidate disagreement, for when no past residuals exist yet.
    fallback_sigma: f64,
    /// Offsets (points back) of the candidates used.
    offsets: Vec<usize>,
}

impl SeasonalMedian {
    /// The weighted median of level-aligned seasonal candidates; `None` without candidates.
    fn center(&self, grid: &Grid, prepared: &Prepared, index: usize) -> Option<Center> {
        let step = grid.step;
        let level_ready = self.gap_points(step) + self.level_points(step);
        let w = self.window_points;
        let now_level = prepared.level.get(index).copied().unwrap_or(f64::NAN);
        if now_level.is_nan() {
            return None;
        }
        let mut candidates: Vec<(f64, f64)> = Vec::new();
        let mut noise: Vec<f64> = Vec::new();
        let mut offsets = Vec::new();
        for (j, period) in self.periods_secs.iter().enumerate() {
            let p = self.steps(*period, step);
            // A longer period outweighs every candidate of the shorter ones together: the same
            // weekday knows the weekly shape that level alignment cannot supply.
            let weight = ((self.max_cycles + 1) as f64).powi(j as i32);
            for k in 1..=self.max_cycles {
                let offset = k * p;
                if offset > index || index - offset < w.max(level_ready) {
                    break;
                }
                let then = index - offset;
                let value = prepared.window_median[then];
                let then_level = prepared.level[then];
                if value.is_nan() || then_level.is_nan() {
                    continue;
                }
                candidates.push((value + (now_level - then_level), weight));
                noise.push(prepared.window_mad[then]);
                offsets.push(offset);
            }
        }
        if candidates.is_empty() {
            return None;
        }
        let values: Vec<f64> = candidates.iter().map(|c| c.0).collect();
        let expected = weighted_median(&mut candidates)?;
        let local_noise = MAD_TO_SIGMA * median(&noise).unwrap_or(0.0);
        let disagreement = MAD_TO_SIGMA * super::rolling::mad(&values, expected).unwrap_or(0.0);
        let fallback_sigma = (local_noise * local_noise + disagreement * disagreement).sqrt();
        Some(Center { expected, fallback_sigma, offsets })
    }
}

/// Rolling median over the `window` points ending at each index, NaN where fewer than
/// `MIN_RESIDUALS` exist.
fn rolling_median_counted_trailing(values: &[f64], window: usize) -> Vec<f64> {
    let medians = rolling_median(values, window.saturating_sub(1), 0);
    let mut present = 0usize;
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        present += usize::from(!v.is_nan());
        if i >= window {
            present -= usize::from(!values[i - window].is_nan());
        }
        out.push(if present >= MIN_RESIDUALS { medians[i] } else { f64::NAN });
    }
    out
}

/// Centred rolling median over `+-half` points, NaN where fewer than `MIN_RESIDUALS` exist.
fn rolling_median_counted(values: &[f64], half: usize) -> Vec<f64> {
    let medians = rolling_median(values, half, half);
    let mut present = vec![0usize; values.len() + 1];
    for (i, v) in values.iter().enumerate() {
        present[i + 1] = present[i] + usize::from(!v.is_nan());
    }
    (0..values.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(values.len());
            if present[hi] - present[lo] >= MIN_RESIDUALS {
                medians[i]
            } else {
                f64::NAN
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(periods: Vec<f64>) -> SeasonalMedian {
        SeasonalMedian::from_config(&BaselineConfig::default(), 0.0).with_periods(periods)
    }

    /// Daily sine with deterministic pseudo-noise, one point per minute.
    fn daily(days: usize) -> Grid {
        let mut g = Grid::new(0.0, 60.0);
        for i in 0..days * 1440 {
            let phase = (i % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
            let noise = ((i * 7919) % 101) as f64 / 101.0 - 0.5;
            g.values.push(100.0 + 40.0 * phase.sin() + 4.0 * noise);
        }
        g
    }

    #[test]
    fn too_little_history_is_warming_up_not_a_guess() {
        let m = model(vec![86_400.0]);
        let g = daily(1);
        let p = m.prepare(&g);
        assert!(matches!(m.expect(&g, &p, 1000), Expectation::WarmingUp { .. }));
        let needed = match m.expect(&g, &p, 1439) {
            Expectation::WarmingUp { needed } => needed,
            other => panic!("{other:?}"),
        };
        assert!(needed > 1, "a full day plus the level window is needed, {needed} more");
    }

    #[test]
    fn a_weekly_model_warms_up_until_a_week_has_passed() {
        let m = model(vec![86_400.0, 604_800.0]);
        let g = daily(3);
        let p = m.prepare(&g);
        let needed = match m.expect(&g, &p, 3 * 1440 - 1) {
            Expectation::WarmingUp { needed } => needed,
            other => panic!("days alone are not a weekly baseline: {other:?}"),
        };
        assert!(needed > 4 * 1440, "{needed}");
    }

    #[test]
    fn the_band_follows_the_daily_shape() {
        let m = model(vec![86_400.0]);
        let g = daily(3);
        let p = m.prepare(&g);
        for i in [2 * 1440 + 360, 2 * 1440 + 1080] {
            let band = *m.expect(&g, &p, i).band().expect("band after two days");
            assert!((band.expected - g.values[i]).abs() < 4.0, "{band:?} vs {}", g.values[i]);
            assert!(band.lower < g.values[i] && g.values[i] < band.upper);
            assert!(band.upper - band.lower < 30.0, "band stays narrow: {band:?}");
        }
    }

    #[test]
    fn a_quieter_day_is_aligned_by_its_level() {
        let m = model(vec![86_400.0]);
        let mut g = daily(3);
        // Day 3 runs at 70 % of the earlier days.
        for v in &mut g.values[2 * 1440..] {
            *v *= 0.7;
        }
        let p = m.prepare(&g);
        let i = 2 * 1440 + 600;
        let band = *m.expect(&g, &p, i).band().unwrap();
        assert!(band.lower < g.values[i] && g.values[i] < band.upper, "{band:?} {}", g.values[i]);
    }

    #[test]
    fn without_seasonality_a_trailing_median_is_used() {
        let m = model(vec![]);
        let mut g = Grid::new(0.0, 60.0);
        g.values = (0..200).map(|i| 10.0 + (i % 3) as f64).collect();
        let p = m.prepare(&g);
        assert!(matches!(m.expect(&g, &p, 50), Expectation::WarmingUp { .. }));
        let band = *m.expect(&g, &p, 150).band().unwrap();
        assert_eq!(band.expected, 11.0);
        assert!(band.z(40.0) > 4.0);
    }
}
