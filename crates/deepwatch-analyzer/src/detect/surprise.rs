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
    /// A point is judged against the `rank`-th largest z-score of the memory.
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

/// Maximum over a sliding window of the last `len` pushed values (monotonic deque).
#[derive(Debug, Default)]
struct SlidingMax {
    len: usize,
    pushed: usize,
    /// (position, value), values decreasing.
    queue: VecDeque<(usize, f64)>,
}

impl SlidingMax {
    fn new(len: usize) -> SlidingMax {
        SlidingMax { len, ..SlidingMax::default() }
    }

    fn max(&self) -> Option<f64> {
        self.queue.front().map(|e| e.1)
    }

    fn push(&mut self, value: f64) {
        while self.queue.back().is_some_and(|e| e.1 <= value) {
            self.queue.pop_back();
        }
        self.queue.push_back((self.pushed, value));
        self.pushed += 1;
        while self.queue.front().is_some_and(|e| e.0 + self.len < self.pushed) {
            self.queue.pop_front();
        }
    }
}

/// See the module doc.
#[derive(Debug)]
pub struct SurpriseDetector {
    params: SurpriseParams,
    values: RobustStream,
    differences: RobustStream,
    last: Option<f64>,
    /// Z-scores of the long memory, in time order and sorted.
    memory: VecDeque<f64>,
    ranked: OrderedWindow,
    /// Largest raw scores of the last `onset_hold` points.
    recent: SlidingMax,
    /// Last z-score and what it was compared with, for the reason.
    last_z: f64,
    last_reference: f64,
}

impl SurpriseDetector {
    pub fn new(params: SurpriseParams) -> SurpriseDetector {
        let min_scale = params.min_change / (params.edge * params.min_z).max(f64::MIN_POSITIVE);
        SurpriseDetector {
            values: RobustStream::new(params.value_window, params.min_window, min_scale),
            differences: RobustStream::new(params.difference_window, params.min_window, min_scale),
            memory: VecDeque::with_capacity(params.memory + 1),
            ranked: OrderedWindow::default(),
            recent: SlidingMax::new(params.onset_hold),
            last: None,
            last_z: 0.0,
            last_reference: 0.0,
            params,
        }
    }

    /// Takes the next value in time order; `None` while warming up, else the score in 0..1.
    pub fn observe(&mut self, x: f64) -> Option<f64> {
        let difference = self.last.map_or(0.0, |last| x - last);
        self.last = Some(x);
        let z_value = self.values.observe(x);
        let z_difference = self.differences.observe(difference);
        let z = match (z_value, z_difference) {
            (Some(a), Some(b)) => a.abs().max(b.abs()),
            (Some(a), None) | (None, Some(a)) => a.abs(),
            (None, None) => return None,
        };
        let warmed = self.memory.len() >= self.params.min_memory;
        let reference = self.remembered().max(self.params.min_z);
        self.remember(z);
        if !warmed {
            return None;
        }
        let p = &self.params;
        let raw = 1.0 / (1.0 + (-(z / reference - p.edge) * p.slope).exp());
        let onset = self.recent.max().is_none_or(|m| raw > m);
        self.recent.push(raw);
        self.last_z = z;
        self.last_reference = reference;
        Some(if onset { raw } else { raw * p.damping })
    }

    /// The `rank`-th largest remembered z-score (the smallest one while fewer are known).
    fn remembered(&self) -> f64 {
        let n = self.ranked.len();
        self.ranked.nth_largest(self.params.rank.min(n).saturating_sub(1)).unwrap_or(0.0)
    }

    fn remember(&mut self, z: f64) {
        self.memory.push_back(z);
        self.ranked.insert(z);
        if self.memory.len() > self.params.memory {
            if let Some(old) = self.memory.pop_front() {
                self.ranked.remove(old);
            }
        }
    }

    /// Points still needed before the first score.
    fn needed(&self) -> usize {
        let p = &self.params;
        let have = self.memory.len() + self.values.values.len().min(p.min_window);
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
        if self.last_reference <= 0.0 {
            return None;
        }
        let expected = self.values.last_center;
        let sigma = self.values.last_scale;
        let half = self.params.edge * self.last_reference * sigma;
        Some(Band { expected, lower: expected - half, upper: expected + half, sigma })
    }

    fn check(&mut self, ctx: &PointContext<'_>) -> Verdict {
        let value = ctx.value();
        if value.is_nan() {
            return Verdict::Normal { score: 0.0 };
        }
        match self.observe(value) {
            None => Verdict::WarmingUp { needed: self.needed() },
            Some(score) => Verdict::from_score(score, || {
                format!(
                    "value {value:.4} is {:.1} robust sigmas from its recent normal, against at most {:.1} before",
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

    #[test]
    fn sliding_max_forgets_old_values() {
        let mut m = SlidingMax::new(3);
        for v in [5.0, 1.0, 2.0, 1.0] {
            m.push(v);
        }
        assert_eq!(m.max(), Some(2.0));
    }
}
