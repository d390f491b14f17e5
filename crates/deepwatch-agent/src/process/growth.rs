//! RSS growth rate: a time-bounded ring of (seconds, bytes) samples and a robust slope over
//! it. Theil–Sen (median of pairwise slopes) ignores allocator sawtooth and one-off spikes that
//! would swing a least-squares fit; past 100 samples it uses the half-split variant (slopes of
//! pairs half a window apart) to stay linear in the number of samples.

use std::collections::VecDeque;

/// Fewer samples than this give no rate (`None`), not a guess.
pub const MIN_SAMPLES: usize = 3;
const ALL_PAIRS_UP_TO: usize = 100;

#[derive(Debug, Clone)]
pub struct GrowthWindow {
    window_secs: f64,
    samples: VecDeque<(f64, f64)>,
}

impl GrowthWindow {
    pub fn new(window_secs: f64) -> Self {
        GrowthWindow { window_secs, samples: VecDeque::new() }
    }

    /// Records a sample taken at `t` seconds (monotonic) and drops those older than the window.
    pub fn push(&mut self, t: f64, bytes: f64) {
        self.samples.push_back((t, bytes));
        while let Some(&(oldest, _)) = self.samples.front() {
            if t - oldest > self.window_secs {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Bytes per second, or `None` with fewer than `MIN_SAMPLES` samples.
    pub fn slope(&self) -> Option<f64> {
        let n = self.samples.len();
        if n < MIN_SAMPLES {
            return None;
        }
        let s = &self.samples;
        let mut slopes = Vec::new();
        if n <= ALL_PAIRS_UP_TO {
            slopes.reserve(n * (n - 1) / 2);
            for i in 0..n {
                for j in i + 1..n {
                    push_slope(&mut slopes, s[i], s[j]);
                }
            }
        } else {
            let half = n / 2;
            for i in 0..n - half {
                push_slope(&mut slopes, s[i], s[i + half]);
            }
        }
        median(&mut slopes)
    }
}

fn push_slope(out: &mut Vec<f64>, a: (f64, f64), b: (f64, f64)) {
    let dt = b.0 - a.0;
    if dt > 0.0 {
        out.push((b.1 - a.1) / dt);
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_memory_has_zero_slope_and_too_few_samples_have_none() {
        let mut w = GrowthWindow::new(300.0);
        w.push(0.0, 1e9);
        w.push(5.0, 1e9);
        assert_eq!(w.slope(), None);
        w.push(10.0, 1e9);
        assert_eq!(w.slope(), Some(0.0));
    }

    #[test]
    fn sawtooth_and_spikes_do_not_hide_a_steady_leak() {
        let mut w = GrowthWindow::new(300.0);
        let leak = 10e6 / 60.0;
        for i in 0..60 {
            let t = i as f64 * 5.0;
            // 40 MB allocator sawtooth every 8 samples, and a 1 GB spike once.
            let saw = (i % 8) as f64 * 5e6;
            let spike = if i == 30 { 1e9 } else { 0.0 };
            w.push(t, 2e9 + leak * t + saw + spike);
        }
        let slope = w.slope().unwrap();
        assert!((slope - leak).abs() / leak < 0.15, "slope {slope} vs {leak}");
    }

    #[test]
    fn old_samples_leave_the_window_and_long_windows_stay_linear() {
        let mut w = GrowthWindow::new(60.0);
        for i in 0..1000 {
            let t = i as f64;
            // Flat for the first 900 s, then a 1000 B/s leak.
            let v = if t < 900.0 { 0.0 } else { (t - 900.0) * 1000.0 };
            w.push(t, v);
        }
        assert_eq!(w.len(), 61);
        assert_eq!(w.slope(), Some(1000.0));
    }
}
