//! The default detector: how surprising a point is *now*, from the series' own history alone.
//! Each point gets a robust z-score against a trailing window (median and MAD) of its values
//! and of its first differences; that z is judged against the fifth-largest z the series
//! itself produced over a long trailing window, so a series that is spiky by nature (tweet
//! counts, bursty request rates) needs a larger excursion than a calm one, and bursts that keep
//! coming back stop being surprising once a few of them are remembered. A point only scores
//! fully when it is more surprising than everything in the last hundred points (the onset); the
//! rest of an episode is damped, so one anomaly gives one onset, and a new level becomes the
//! normal once the trailing windows have filled with it. Everything is updated per point: no
//! refits. Window lengths are in points (tuned at five-minute steps on NAB's labelled series).
//!
//! A series that repeats itself daily (its values correlate with those one period earlier)
//! is also judged against the same time of the previous days: the robust z-score of the value
//! minus the median of the values one, two and three periods back. That catches what the two
//! views above cannot, a day whose shape is wrong while every value stays in the usual range
//! (a missing peak, a flat afternoon). That z-score has its own memory of extremes, as
//! calendar surprises and sudden ones differ in size, and it takes part only while the series
//! is periodic and once a period of it has been remembered. It is on by default (a day);
//! `season_secs = 0` turns it off.

use super::extremes::{Extremes, SlidingMax};
use super::{Detector, PointContext, Verdict};
use crate::baseline::{Band, OrderedWindow, MAD_TO_SIGMA};
use std::collections::VecDeque;

/// Tunables of the surprise detector, in points of the series.
#[derive(Debug, Clone, PartialEq)]
pub struct SurpriseParams {
    /// Trailing window of the robust z-score of values (median, MAD): about a week of
    /// five-minute points.
    pub value_window: usize,
    /// Trailing window of the robust z-score of first differences.
    pub difference_window: usize,
    /// Values needed in that window before a z-score exists.
    pub min_window: usize,
    /// Trailing window of z-scores a point is compared with.
    pub memory: usize,
    /// A point is judged against the `rank`-th largest z-score of the memory (1 to 16).
    pub rank: usize,
    /// Z-scores needed in the memory before anything is judged (the warm-up).
    pub min_memory: usize,
    /// A z-score below this is never surprising, however calm the series was.
    pub min_z: f64,
    /// Points after a surprising one during which only a larger surprise scores fully.
    pub onset_hold: usize,
    /// Factor applied to scores that are not an onset.
    pub damping: f64,
    /// Ratio of z to the remembered `rank`-th largest z at which the score is 0.5.
    pub edge: f64,
    /// Steepness of the score around the edge.
    pub slope: f64,
    /// Changes smaller than this (in the series' unit) never score 0.5 on their own: the
    /// robust sigma is at least `min_change / (edge * min_z)` (an error ratio flat at 0 that
    /// sees one error is not an incident). 0 for none.
    pub min_change: f64,
    /// Period of the seasonal view in seconds (86,400, the default: a day); 0 turns it off.
    /// It raises NAB standard on nab-dev from 65.0 to 69.0 (docs/benchmarks.md).
    pub season_secs: f64,
    /// The seasonal view compares a value with the median of this many past periods (1-7).
    pub season_cycles: usize,
    /// Correlation of values with those one period earlier (over `value_window` points) from
    /// which the series counts as periodic.
    pub season_correlation: f64,
}

impl Default for SurpriseParams {
    fn default() -> Self {
        SurpriseParams {
            value_window: 2000,
            difference_window: 1000,
            min_window: 10,
            memory: 5000,
            rank: 5,
            min_memory: 50,
            min_z: 5.0,
            onset_hold: 100,
            damping: 0.3,
            edge: 1.15,
            slope: 4.0,
            min_change: 0.0,
            season_secs: 86_400.0,
            season_cycles: 3,
            season_correlation: 0.7,
        }
    }
}

/// Robust z-scores of a stream against its trailing window, updated per point.
#[derive(Debug, Default)]
struct RobustStream {
    window: usize,
    min_window: usize,
    min_scale: f64,
    values: VecDeque<f64>,
    sorted: OrderedWindow,
    /// |value - median before it| of the same points, for the MAD.
    deviations: VecDeque<f64>,
    sorted_deviations: OrderedWindow,
    sum: f64,
    sum_sq: f64,
    /// Median and scale the last value was judged against.
    last_center: f64,
    last_scale: f64,
}

impl RobustStream {
    fn new(window: usize, min_window: usize, min_scale: f64) -> RobustStream {
        RobustStream { window, min_window, min_scale, ..RobustStream::default() }
    }

    /// The z-score of `x` against the window before it (`None` while too few values), then
    /// takes `x` into the window.
    fn observe(&mut self, x: f64) -> Option<f64> {
        let median = self.sorted.median().filter(|_| self.values.len() >= self.min_window);
        let z = median.map(|m| {
            let mad = self.sorted_deviations.median().unwrap_or(0.0);
            let n = self.values.len() as f64;
            let mean = self.sum / n;
            let var = ((self.sum_sq - n * mean * mean) / (n - 1.0).max(1.0)).max(0.0);
            // The standard deviation keeps a series that is flat most of the time (MAD 0)
            // from reading every small wiggle as infinitely surprising.
            let scale = (MAD_TO_SIGMA * mad).max(0.1 * var.sqrt()).max(self.min_scale) + 1e-9;
            self.last_center = m;
            self.last_scale = scale;
            (x - m) / scale
        });
        let deviation = median.map_or(f64::NAN, |m| (x - m).abs());
        self.push(x, deviation);
        z
    }

    fn push(&mut self, x: f64, deviation: f64) {
        self.values.push_back(x);
        self.sorted.insert(x);
        self.sum += x;
        self.sum_sq += x * x;
        self.deviations.push_back(deviation);
        self.sorted_deviations.insert(deviation);
        if self.values.len() > self.window {
            if let Some(old) = self.values.pop_front() {
                self.sorted.remove(old);
                self.sum -= old;
                self.sum_sq -= old * old;
            }
            if let Some(old) = self.deviations.pop_front() {
                self.sorted_deviations.remove(old);
            }
        }
    }
}

/// The seasonal view: values against the same time of the previous periods.
#[derive(Debug)]
struct Season {
    period: usize,
    cycles: usize,
    /// Correlation from which the series counts as periodic.
    threshold: f64,
    /// Correlation window, in pairs (value, value one period earlier).
    window: usize,
    /// The last `max(cycles * period, window + period)` values.
    history: VecDeque<f64>,
    /// Running sums over the last `window` pairs, of values less `offset` (the first value),
    /// recomputed from `history` once per `window` pairs against rounding drift.
    offset: f64,
    pairs: usize,
    since_exact: usize,
    sums: [f64; 5],
    /// Mean absolute residual (exponential, over about `window` residuals) and how many.
    mean_abs: f64,
    residuals: usize,
    min_window: usize,
    min_scale: f64,
    extremes: Extremes,
}

impl Season {
    fn new(period: usize, p: &SurpriseParams, min_scale: f64) -> Season {
        let keep = (p.season_cycles.clamp(1, MAX_CYCLES) * period).max(p.value_window + period);
        Season {
            period,
            cycles: p.season_cycles.clamp(1, MAX_CYCLES),
            threshold: p.season_correlation,
            window: p.value_window,
            history: VecDeque::with_capacity(keep + 1),
            offset: f64::NAN,
            pairs: 0,
            since_exact: 0,
            sums: [0.0; 5],
            mean_abs: 0.0,
            residuals: 0,
            min_window: p.min_window,
            min_scale,
            extremes: Extremes::new(p.memory, p.rank),
        }
    }

    fn capacity(&self) -> usize {
        (self.cycles * self.period).max(self.window + self.period)
    }

    /// The value `back` points before the next one (1 = the last value), if kept.
    fn back(&self, back: usize) -> Option<f64> {
        self.history.len().checked_sub(back).map(|i| self.history[i])
    }

    fn add_pair(&mut self, x: f64, y: f64, sign: f64) {
        let (x, y) = (x - self.offset, y - self.offset);
        for (sum, term) in self.sums.iter_mut().zip([x, y, x * x, y * y, x * y]) {
            *sum += sign * term;
        }
    }

    /// Pearson correlation of the kept pairs; 0 while it has too few or one side is flat.
    fn correlation(&self) -> f64 {
        let n = self.pairs as f64;
        if self.pairs < 10 {
            return 0.0;
        }
        let [sx, sy, sxx, syy, sxy] = self.sums;
        let vx = sxx - sx * sx / n;
        let vy = syy - sy * sy / n;
        if vx <= 1e-12 * sxx.abs().max(1.0) || vy <= 1e-12 * syy.abs().max(1.0) {
            return 0.0;
        }
        (sxy - sx * sy / n) / (vx * vy).sqrt()
    }

    /// The seasonal z-score of `x` while the series is periodic (`None` otherwise or while
    /// too few periods are known), then takes `x` in.
    fn observe(&mut self, x: f64) -> Option<f64> {
        if self.offset.is_nan() {
            self.offset = x;
        }
        let p = self.period;
        let mut z = None;
        if let Some(before) = self.back(p) {
            self.add_pair(x, before, 1.0);
            self.pairs += 1;
            if self.pairs > self.window {
                // The pair leaving the window: the value `window` points back and its own
                // previous period.
                let (old, older) = (self.back(self.window), self.back(self.window + p));
                if let (Some(old), Some(older)) = (old, older) {
                    self.add_pair(old, older, -1.0);
                }
                self.pairs -= 1;
            }
        }
        if self.history.len() >= self.cycles * p {
            let residual = x - self.past_median();
            // The residual is already centred (a median of past values is subtracted), so a
            // running mean absolute residual is its scale: O(1) per point, no sorted window.
            if self.residuals >= self.min_window && self.correlation() >= self.threshold {
                let scale = (MEAN_ABS_TO_SIGMA * self.mean_abs).max(self.min_scale) + 1e-9;
                z = Some(residual / scale);
            }
            self.residuals += 1;
            self.mean_abs +=
                (residual.abs() - self.mean_abs) / self.residuals.min(self.window) as f64;
        }
        self.history.push_back(x);
        if self.history.len() > self.capacity() {
            self.history.pop_front();
        }
        self.since_exact += 1;
        if self.since_exact >= self.window {
            self.exact_sums();
        }
        z
    }

    /// Median of the values at the same time of the last `cycles` periods (all kept).
    fn past_median(&self) -> f64 {
        let mut past = [0.0; MAX_CYCLES];
        let n = self.cycles;
        for (c, slot) in past[..n].iter_mut().enumerate() {
            *slot = self.back((c + 1) * self.period).unwrap_or(f64::NAN);
        }
        past[..n].sort_by(f64::total_cmp);
        past[n / 2]
    }

    /// Recomputes the correlation sums from the kept values.
    fn exact_sums(&mut self) {
        self.since_exact = 0;
        self.sums = [0.0; 5];
        let n = self.history.len();
        let p = self.period;
        let count = self.pairs.min(n.saturating_sub(p));
        for i in n - count..n {
            let (x, y) = (self.history[i], self.history[i - p]);
            self.add_pair(x, y, 1.0);
        }
        self.pairs = count;
    }
}

/// Most points per period the seasonal view keeps (a week of minutes); shorter steps skip it.
const MAX_PERIOD_POINTS: usize = 10_080;
/// Most past periods the seasonal view takes the median of.
const MAX_CYCLES: usize = 7;
/// Mean absolute deviation of a normal variable to its sigma (sqrt(pi / 2)).
const MEAN_ABS_TO_SIGMA: f64 = 1.2533;
/// Fewest points per period for the seasonal view to mean anything.
const MIN_PERIOD_POINTS: usize = 10;

/// See the module doc.
#[derive(Debug)]
pub struct SurpriseDetector {
    params: SurpriseParams,
    min_scale: f64,
    values: RobustStream,
    differences: RobustStream,
    last: Option<f64>,
    /// Z-scores of values and differences over the long memory.
    extremes: Extremes,
    /// The seasonal view, once the step is known and gives a usable period.
    season: Option<Season>,
    step_known: bool,
    /// Largest raw scores of the last `onset_hold` points.
    recent: SlidingMax,
    /// Last z-score and what it was compared with, and whether it was the seasonal one, for
    /// the reason.
    last_z: f64,
    last_reference: f64,
    last_seasonal: bool,
    /// The reference of values and differences, for the band.
    last_band_reference: f64,
}

impl SurpriseDetector {
    pub fn new(params: SurpriseParams) -> SurpriseDetector {
        let min_scale = params.min_change / (params.edge * params.min_z).max(f64::MIN_POSITIVE);
        SurpriseDetector {
            values: RobustStream::new(params.value_window, params.min_window, min_scale),
            differences: RobustStream::new(params.difference_window, params.min_window, min_scale),
            extremes: Extremes::new(params.memory, params.rank),
            season: None,
            step_known: false,
            recent: SlidingMax::new(params.onset_hold),
            last: None,
            last_z: 0.0,
            last_reference: 0.0,
            last_seasonal: false,
            last_band_reference: 0.0,
            min_scale,
            params,
        }
    }

    /// Tells the detector the series' step (seconds), which sets the seasonal period in
    /// points; only the first call counts. Without it there is no seasonal view.
    pub fn set_step(&mut self, step_secs: f64) {
        if self.step_known {
            return;
        }
        self.step_known = true;
        let p = &self.params;
        if p.season_secs <= 0.0 {
            return;
        }
        let period = (p.season_secs / step_secs).round();
        if period >= MIN_PERIOD_POINTS as f64 && period <= MAX_PERIOD_POINTS as f64 {
            self.season = Some(Season::new(period as usize, p, self.min_scale));
        }
    }

    /// Takes the next value in time order; `None` while warming up, else the score in 0..1.
    pub fn observe(&mut self, x: f64) -> Option<f64> {
        let difference = self.last.map_or(0.0, |last| x - last);
        self.last = Some(x);
        let z_value = self.values.observe(x);
        let z_difference = self.differences.observe(difference);
        let z_season = self.season.as_mut().and_then(|s| s.observe(x)).map(f64::abs);
        let z = match (z_value, z_difference) {
            (Some(a), Some(b)) => a.abs().max(b.abs()),
            (Some(a), None) | (None, Some(a)) => a.abs(),
            (None, None) => return None,
        };
        let p = &self.params;
        let warmed = self.extremes.len() >= p.min_memory;
        let reference = self.extremes.reference().max(p.min_z);
        self.extremes.remember(z);
        let (mut z_used, mut reference_used, mut seasonal) = (z, reference, false);
        if let (Some(zs), Some(season)) = (z_season, self.season.as_mut()) {
            // Judged only once a whole period of seasonal z-scores is remembered.
            let known = season.extremes.len() >= season.period;
            let season_reference = season.extremes.reference().max(p.min_z);
            season.extremes.remember(zs);
            if known && zs / season_reference > z_used / reference_used {
                (z_used, reference_used, seasonal) = (zs, season_reference, true);
            }
        }
        if !warmed {
            return None;
        }
        let raw = 1.0 / (1.0 + (-(z_used / reference_used - p.edge) * p.slope).exp());
        let onset = self.recent.max().is_none_or(|m| raw > m);
        self.recent.push(raw);
        self.last_z = z_used;
        self.last_reference = reference_used;
        self.last_seasonal = seasonal;
        self.last_band_reference = reference;
        Some(if onset { raw } else { raw * p.damping })
    }

    /// Points still needed before the first score.
    fn needed(&self) -> usize {
        let p = &self.params;
        let have = self.extremes.len() + self.values.values.len().min(p.min_window);
        (p.min_window + p.min_memory).saturating_sub(have).max(1)
    }
}

impl Detector<PointContext<'_>> for SurpriseDetector {
    fn name(&self) -> &'static str {
        "surprise"
    }

    fn uses_baseline(&self) -> bool {
        false
    }

    fn history_points(&self) -> usize {
        self.params.memory.max(self.params.value_window)
    }

    /// Values whose own z-score would score 0.5 against the same history: the trailing
    /// median +- edge x (remembered z) x robust sigma.
    fn band(&self) -> Option<Band> {
        if self.last_band_reference <= 0.0 {
            return None;
        }
        let expected = self.values.last_center;
        let sigma = self.values.last_scale;
        let half = self.params.edge * self.last_band_reference * sigma;
        Some(Band { expected, lower: expected - half, upper: expected + half, sigma })
    }

    fn check(&mut self, ctx: &PointContext<'_>) -> Verdict {
        let value = ctx.value();
        if value.is_nan() {
            return Verdict::Normal { score: 0.0 };
        }
        self.set_step(ctx.grid.step);
        match self.observe(value) {
            None => Verdict::WarmingUp { needed: self.needed() },
            Some(score) => Verdict::from_score(score, || {
                let against = if self.last_seasonal {
                    "the same time of the previous days"
                } else {
                    "its recent normal"
                };
                format!(
                    "value {value:.4} is {:.1} robust sigmas from {against}, against at most {:.1} before",
                    self.last_z, self.last_reference
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise, roughly normal (a sum of three hashed uniforms), sigma about 0.5.
    fn noise(i: usize) -> f64 {
        let u = |k: f64| ((i as f64 * 12.9898 + k * 78.233).sin() * 43_758.545).fract().abs();
        u(1.0) + u(2.0) + u(3.0) - 1.5
    }

    fn scores(values: &[f64]) -> Vec<Option<f64>> {
        let mut d = SurpriseDetector::new(SurpriseParams::default());
        values.iter().map(|v| d.observe(*v)).collect()
    }

    #[test]
    fn warms_up_then_scores_every_point() {
        let values: Vec<f64> = (0..300).map(|i| 10.0 + noise(i)).collect();
        let s = scores(&values);
        assert!(s[..50].iter().all(Option::is_none));
        assert!(s[100..].iter().all(|s| s.is_some_and(|s| s < 0.5)), "noise is not surprising");
    }

    #[test]
    fn a_spike_scores_high_once() {
        let mut values: Vec<f64> = (0..600).map(|i| 10.0 + noise(i)).collect();
        values[400] = 30.0;
        let s = scores(&values);
        assert!(s[400].unwrap() > 0.9, "{:?}", s[400]);
        let flagged = s.iter().filter(|s| s.is_some_and(|s| s >= 0.5)).count();
        assert_eq!(flagged, 1, "one spike, one flagged point");
    }

    #[test]
    fn a_level_shift_has_one_onset_then_becomes_normal() {
        let mut values: Vec<f64> = (0..1500).map(|i| 10.0 + noise(i)).collect();
        for v in &mut values[600..] {
            *v += 20.0;
        }
        let s = scores(&values);
        let flagged: Vec<usize> =
            (0..values.len()).filter(|&i| s[i].is_some_and(|s| s >= 0.5)).collect();
        assert_eq!(flagged.first(), Some(&600), "found at the onset");
        assert!(flagged.iter().all(|&i| i < 620), "not sticky: {flagged:?}");
        assert!(s[1400].unwrap() < 0.1, "the new level is normal: {:?}", s[1400]);
    }

    #[test]
    fn a_spiky_series_needs_a_bigger_spike() {
        // Regular bursts of 8 sigma are the series' normal; another one is not an anomaly.
        let values: Vec<f64> =
            (0..2000).map(|i| if i % 97 == 0 { 18.0 } else { 10.0 + noise(i) }).collect();
        let s = scores(&values);
        let late = s[1000..].iter().filter(|s| s.is_some_and(|s| s >= 0.5)).count();
        assert_eq!(late, 0);
    }

    #[test]
    fn a_change_below_min_change_is_not_an_anomaly() {
        // An error ratio at 0 that sees a single error (0.4 %): not worth an alert with a
        // 1 % minimum change, an alert without one.
        let mut values = vec![0.0; 300];
        values[250] = 0.004;
        let flagged = |min_change: f64| {
            let mut d = SurpriseDetector::new(SurpriseParams { min_change, ..Default::default() });
            values.iter().filter(|v| d.observe(**v).is_some_and(|s| s >= 0.5)).count()
        };
        assert_eq!(flagged(0.0), 1);
        assert_eq!(flagged(0.01), 0);
    }

    /// Eight days of a daily wave at five-minute steps; day 6 keeps the shape at a fifth of
    /// the amplitude, every value inside the usual range and every step smaller than usual.
    fn flat_day() -> Vec<f64> {
        (0..8 * 288)
            .map(|i| {
                let amplitude = if i / 288 == 6 { 1.0 } else { 5.0 };
                let phase = 2.0 * std::f64::consts::PI * (i % 288) as f64 / 288.0;
                10.0 + amplitude * phase.sin() + 0.2 * noise(i)
            })
            .collect()
    }

    fn flagged_with_step(values: &[f64], params: SurpriseParams) -> Vec<usize> {
        let mut d = SurpriseDetector::new(params);
        d.set_step(300.0);
        (0..values.len()).filter(|&i| d.observe(values[i]).is_some_and(|s| s >= 0.5)).collect()
    }

    #[test]
    fn a_day_of_the_wrong_shape_is_found_against_the_previous_days() {
        let values = flat_day();
        let day6 = 6 * 288..7 * 288;
        let seasonal = flagged_with_step(&values, SurpriseParams::default());
        assert!(seasonal.iter().any(|i| day6.contains(i)), "{seasonal:?}");
        assert!(seasonal.iter().all(|&i| i < 3 * 288 || day6.contains(&i)), "{seasonal:?}");
        let plain = flagged_with_step(
            &values,
            SurpriseParams { season_secs: 0.0, ..SurpriseParams::default() },
        );
        assert!(!plain.iter().any(|i| day6.contains(i)), "{plain:?}");
    }

    #[test]
    fn a_series_that_does_not_repeat_gets_no_seasonal_view() {
        // The same noise without the wave: the lag-one-day correlation is near 0.
        let values: Vec<f64> = (0..6 * 288).map(|i| 10.0 + noise(i)).collect();
        let mut d = SurpriseDetector::new(SurpriseParams::default());
        d.set_step(300.0);
        for v in &values {
            d.observe(*v);
        }
        let season = d.season.as_ref().expect("a day is 288 points");
        assert!(season.correlation().abs() < 0.3, "{}", season.correlation());
        assert_eq!(season.extremes.len(), 0);
    }

    #[test]
    fn the_running_correlation_equals_the_exact_one() {
        let mut d = SurpriseDetector::new(SurpriseParams::default());
        d.set_step(300.0);
        for (i, v) in flat_day().iter().enumerate() {
            d.observe(*v);
            let season = d.season.as_mut().unwrap();
            if i % 97 == 0 {
                let running = season.correlation();
                season.exact_sums();
                assert!((running - season.correlation()).abs() < 1e-9, "at {i}");
            }
        }
    }
}
