//! What a series' own extremes look like: the `rank`-th largest of a long sliding window of
//! z-scores (thousands of points), asked for on every point by the surprise detector. Only a
//! few largest values matter, so the window is cut into blocks that each keep their `rank`
//! largest: a new value touches one short sorted array, and the block that is expiring keeps
//! the largest of each of its suffixes, so the answer stays exact at O(rank) per value instead
//! of a sorted window of every value (which cost most of the detector's time).

use std::collections::VecDeque;

/// Largest `rank` the memory supports.
pub const MAX_RANK: usize = 16;
/// Values per block.
const BLOCK: usize = 128;

/// The largest values (at most `rank` of them) of a set, in decreasing order.
#[derive(Debug, Clone, Copy)]
struct Top {
    len: usize,
    values: [f64; MAX_RANK],
}

impl Top {
    const EMPTY: Top = Top { len: 0, values: [0.0; MAX_RANK] };

    fn as_slice(&self) -> &[f64] {
        &self.values[..self.len]
    }

    /// Takes `v` in (NaN never counts).
    fn insert(&mut self, v: f64, rank: usize) {
        if v.is_nan() || (self.len == rank && v <= self.values[rank - 1]) {
            return;
        }
        let mut at = self.len.min(rank - 1);
        while at > 0 && self.values[at - 1] < v {
            self.values[at] = self.values[at - 1];
            at -= 1;
        }
        self.values[at] = v;
        self.len = (self.len + 1).min(rank);
    }

    /// The largest `rank` values of both.
    fn merge(&self, other: &Top, rank: usize) -> Top {
        let (a, b) = (self.as_slice(), other.as_slice());
        let mut out = Top::EMPTY;
        let (mut i, mut j) = (0, 0);
        while out.len < rank && (i < a.len() || j < b.len()) {
            let take_a = j == b.len() || (i < a.len() && a[i] >= b[j]);
            out.values[out.len] = if take_a { a[i] } else { b[j] };
            if take_a {
                i += 1;
            } else {
                j += 1;
            }
            out.len += 1;
        }
        out
    }
}

/// The last `len` values and their `rank`-th largest (exact).
#[derive(Debug)]
pub struct Extremes {
    len: usize,
    rank: usize,
    block: usize,
    /// The window, oldest first.
    values: VecDeque<f64>,
    /// Largest values of each complete block, oldest first; the oldest may have lost some.
    blocks: VecDeque<Top>,
    /// Values of the oldest block still in the window.
    oldest_left: usize,
    /// Once the oldest block has lost values: the largest of each of its suffixes
    /// (`suffixes[i]` from its `i`-th remaining value on), and how many were left then.
    suffixes: Vec<Top>,
    suffixes_from: usize,
    /// Merged largest values of every complete block but the oldest.
    middle: Top,
    /// The block being filled and how many values it has.
    head: Top,
    head_len: usize,
}

impl Extremes {
    /// A memory of `len` values judged at the `rank`-th largest (1..=`MAX_RANK`).
    pub fn new(len: usize, rank: usize) -> Extremes {
        Extremes {
            len,
            rank: rank.clamp(1, MAX_RANK),
            block: BLOCK.min(len).max(1),
            values: VecDeque::with_capacity(len.min(1 << 16) + 1),
            blocks: VecDeque::new(),
            oldest_left: 0,
            suffixes: Vec::new(),
            suffixes_from: 0,
            middle: Top::EMPTY,
            head: Top::EMPTY,
            head_len: 0,
        }
    }

    /// Values remembered (NaN included).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The `rank`-th largest remembered value (the smallest one while fewer are known; 0 while
    /// none is).
    pub fn reference(&self) -> f64 {
        let oldest = match self.blocks.front() {
            None => Top::EMPTY,
            Some(top) if self.suffixes.is_empty() => *top,
            Some(_) => self.suffixes[self.suffixes_from - self.oldest_left],
        };
        let all = oldest.merge(&self.middle, self.rank).merge(&self.head, self.rank);
        all.as_slice().last().copied().unwrap_or(0.0)
    }

    pub fn remember(&mut self, v: f64) {
        if self.len == 0 {
            return;
        }
        self.values.push_back(v);
        self.head.insert(v, self.rank);
        self.head_len += 1;
        if self.head_len == self.block {
            self.blocks.push_back(self.head);
            if self.blocks.len() == 1 {
                self.oldest_left = self.block;
            }
            self.head = Top::EMPTY;
            self.head_len = 0;
            self.merge_middle();
        }
        if self.values.len() > self.len {
            self.values.pop_front();
            self.forget_oldest();
        }
    }

    /// The oldest value has left the window: it belongs to the oldest complete block (the
    /// head is never older than the window, as a block is at most `len` values).
    fn forget_oldest(&mut self) {
        self.oldest_left -= 1;
        if self.oldest_left == 0 {
            self.blocks.pop_front();
            self.suffixes.clear();
            self.oldest_left = if self.blocks.is_empty() { 0 } else { self.block };
            self.merge_middle();
            return;
        }
        if self.suffixes.is_empty() {
            // The remaining values of the oldest block are the front of the window.
            let n = self.oldest_left;
            self.suffixes = vec![Top::EMPTY; n];
            let mut top = Top::EMPTY;
            for i in (0..n).rev() {
                top.insert(self.values[i], self.rank);
                self.suffixes[i] = top;
            }
            self.suffixes_from = n;
        }
    }

    fn merge_middle(&mut self) {
        self.middle = Top::EMPTY;
        for top in self.blocks.iter().skip(1) {
            self.middle = self.middle.merge(top, self.rank);
        }
    }
}

/// Maximum over a sliding window of the last `len` pushed values (monotonic deque).
#[derive(Debug, Default)]
pub struct SlidingMax {
    len: usize,
    pushed: usize,
    /// (position, value), values decreasing.
    queue: VecDeque<(usize, f64)>,
}

impl SlidingMax {
    pub fn new(len: usize) -> SlidingMax {
        SlidingMax { len, ..SlidingMax::default() }
    }

    pub fn max(&self) -> Option<f64> {
        self.queue.front().map(|e| e.1)
    }

    pub fn push(&mut self, value: f64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_reference_is_the_ranked_value_of_the_window(
            values in proptest::collection::vec(prop_oneof![Just(f64::NAN), Just(1.0), -50.0..50.0f64], 1..1500),
            len in 1usize..400,
            rank in 1usize..8,
        ) {
            let mut e = Extremes::new(len, rank);
            for (i, v) in values.iter().enumerate() {
                e.remember(*v);
                let lo = (i + 1).saturating_sub(len);
                let mut present: Vec<f64> =
                    values[lo..=i].iter().copied().filter(|v| !v.is_nan()).collect();
                present.sort_by(|a, b| b.total_cmp(a));
                let want = present.get(rank.min(present.len()).saturating_sub(1)).copied();
                prop_assert_eq!(e.reference(), want.unwrap_or(0.0), "i={}", i);
                prop_assert_eq!(e.len(), i + 1 - lo);
            }
        }
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
