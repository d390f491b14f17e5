//! Robust statistics over windows: median and MAD of a slice (NaN ignored), and a rolling
//! median that keeps its window sorted so a whole series costs O(n * window) moves instead of a
//! sort per point (the fit of 10,000 week-long series depends on it).

/// Median of the non-NaN values; `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    median_in_place(&mut v)
}

/// Median of `v` (no NaN), reordering it.
pub fn median_in_place(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (_, upper, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        return Some(upper);
    }
    let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lower + upper) / 2.0)
}

/// Median absolute deviation from `center` of the non-NaN values.
pub fn mad(values: &[f64], center: f64) -> Option<f64> {
    let mut dev: Vec<f64> =
        values.iter().filter(|x| !x.is_nan()).map(|x| (x - center).abs()).collect();
    median_in_place(&mut dev)
}

/// Weighted median: the smallest value whose cumulative weight reaches half the total.
pub fn weighted_median(items: &mut [(f64, f64)]) -> Option<f64> {
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = items.iter().map(|i| i.1).sum();
    if total <= 0.0 {
        return None;
    }
    let mut acc = 0.0;
    for (i, &(value, weight)) in items.iter().enumerate() {
        acc += weight;
        if acc * 2.0 > total {
            return Some(value);
        }
        if acc * 2.0 == total {
            // Exactly half: average with the next value, as the plain median does.
            return Some(items.get(i + 1).map_or(value, |next| (value + next.0) / 2.0));
        }
    }
    items.last().map(|i| i.0)
}

/// A sliding window kept sorted; NaN values are not stored.
#[derive(Debug, Default)]
pub struct SortedWindow {
    sorted: Vec<f64>,
}

impl SortedWindow {
    pub fn insert(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        let at = self.sorted.partition_point(|x| x.total_cmp(&v).is_lt());
        self.sorted.insert(at, v);
    }

    pub fn remove(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        let at = self.sorted.partition_point(|x| x.total_cmp(&v).is_lt());
        if at < self.sorted.len() && self.sorted[at].total_cmp(&v).is_eq() {
            self.sorted.remove(at);
        }
    }

    pub fn median(&self) -> Option<f64> {
        let n = self.sorted.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(self.sorted[n / 2]),
            _ => Some((self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2.0),
        }
    }

    /// MAD around the window's median (a copy: used on small windows only).
    pub fn mad(&self) -> Option<f64> {
        let m = self.median()?;
        mad(&self.sorted, m)
    }
}

/// For every index `i`, the median of `values[i - before ..= i + after]` (clipped at the ends),
/// or NaN where the window holds no value.
pub fn rolling_median(values: &[f64], before: usize, after: usize) -> Vec<f64> {
    rolling(values, before, after, |w| w.median())
}

/// Like `rolling_median`, but the MAD around each window's median.
pub fn rolling_mad(values: &[f64], before: usize, after: usize) -> Vec<f64> {
    rolling(values, before, after, |w| w.mad())
}

fn rolling(
    values: &[f64],
    before: usize,
    after: usize,
    stat: impl Fn(&SortedWindow) -> Option<f64>,
) -> Vec<f64> {
    let n = values.len();
    let mut out = Vec::with_capacity(n);
    let mut window = SortedWindow::default();
    let mut next_in = 0;
    for i in 0..n {
        let hi = (i + after).min(n - 1);
        while next_in <= hi {
            window.insert(values[next_in]);
            next_in += 1;
        }
        if i > before {
            window.remove(values[i - before - 1]);
        }
        out.push(stat(&window).unwrap_or(f64::NAN));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn median_and_mad_ignore_nan() {
        assert_eq!(median(&[3.0, f64::NAN, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN]), None);
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 100.0], 3.0), Some(1.0));
    }

    #[test]
    fn weighted_median_follows_weights() {
        assert_eq!(weighted_median(&mut [(1.0, 1.0), (5.0, 3.0), (2.0, 1.0)]), Some(5.0));
        assert_eq!(weighted_median(&mut [(1.0, 1.0), (3.0, 1.0)]), Some(2.0));
    }

    proptest! {
        #[test]
        fn rolling_median_equals_the_naive_one(
            values in proptest::collection::vec(prop_oneof![Just(f64::NAN), -50.0..50.0f64], 0..80),
            before in 0usize..8,
            after in 0usize..8,
        ) {
            let fast = rolling_median(&values, before, after);
            for (i, got) in fast.iter().enumerate() {
                let lo = i.saturating_sub(before);
                let hi = (i + after).min(values.len() - 1);
                let want = median(&values[lo..=hi]).unwrap_or(f64::NAN);
                prop_assert!(got.to_bits() == want.to_bits() || (got - want).abs() < 1e-9,
                    "i={} got {} want {}", i, got, want);
            }
        }
    }
}
