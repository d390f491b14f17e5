//! A multiset of floats kept in sorted blocks, for medians over long sliding windows (thousands
//! of points). One sorted `Vec` costs a memmove of half the window per insert; blocks of at most
//! `2 * BLOCK` values cost a short scan of block bounds and a move inside one block, so a week
//! of one-minute points per series stays cheap on every tick.

/// Values per block before a block is split in two.
const BLOCK: usize = 64;

/// Sorted blocks; NaN is never stored.
#[derive(Debug, Default, Clone)]
pub struct OrderedWindow {
    blocks: Vec<Vec<f64>>,
    /// The last (largest) value of each block, side by side: finding a block reads one short
    /// array instead of following a pointer per step.
    lasts: Vec<f64>,
    len: usize,
}

impl OrderedWindow {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Block that holds (or would hold) `v`: the first whose last value is not below it.
    fn block_for(&self, v: f64) -> usize {
        let i = self.lasts.partition_point(|last| *last < v);
        i.min(self.blocks.len().saturating_sub(1))
    }

    pub fn insert(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        if self.blocks.is_empty() {
            self.blocks.push(Vec::with_capacity(2 * BLOCK + 1));
            self.lasts.push(v);
        }
        let b = self.block_for(v);
        let block = &mut self.blocks[b];
        let at = block.partition_point(|x| *x < v);
        block.insert(at, v);
        self.len += 1;
        if at + 1 == block.len() {
            self.lasts[b] = v;
        }
        if block.len() > 2 * BLOCK {
            let tail = block.split_off(BLOCK);
            self.lasts[b] = block[BLOCK - 1];
            self.lasts.insert(b + 1, tail[tail.len() - 1]);
            self.blocks.insert(b + 1, tail);
        }
    }

    /// Removes one copy of `v`; false when it is not there.
    pub fn remove(&mut self, v: f64) -> bool {
        if v.is_nan() || self.blocks.is_empty() {
            return false;
        }
        let mut b = self.block_for(v);
        // Equal values may span blocks: the first block whose last value is >= v holds one.
        while b < self.blocks.len() {
            let block = &mut self.blocks[b];
            let at = block.partition_point(|x| *x < v);
            if at < block.len() && block[at] == v {
                block.remove(at);
                self.len -= 1;
                if let Some(last) = block.last() {
                    self.lasts[b] = *last;
                } else if self.blocks.len() > 1 {
                    self.blocks.remove(b);
                    self.lasts.remove(b);
                }
                return true;
            }
            if at < block.len() {
                return false;
            }
            b += 1;
        }
        false
    }

    /// The `k`-th smallest value (0-based).
    pub fn nth(&self, mut k: usize) -> Option<f64> {
        if k >= self.len {
            return None;
        }
        for block in &self.blocks {
            if k < block.len() {
                return Some(block[k]);
            }
            k -= block.len();
        }
        None
    }

    /// The `k`-th largest value (0-based: `nth_largest(0)` is the maximum).
    pub fn nth_largest(&self, mut k: usize) -> Option<f64> {
        if k >= self.len {
            return None;
        }
        for block in self.blocks.iter().rev() {
            if k < block.len() {
                return Some(block[block.len() - 1 - k]);
            }
            k -= block.len();
        }
        None
    }

    pub fn median(&self) -> Option<f64> {
        let n = self.len;
        match n {
            0 => None,
            _ if n % 2 == 1 => self.nth(n / 2),
            _ => Some((self.nth(n / 2 - 1)? + self.nth(n / 2)?) / 2.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sliding_medians_equal_the_naive_ones(
            values in proptest::collection::vec(prop_oneof![Just(f64::NAN), Just(1.0), -50.0..50.0f64], 1..700),
            window in 1usize..300,
        ) {
            let mut w = OrderedWindow::default();
            for (i, v) in values.iter().enumerate() {
                w.insert(*v);
                if i >= window {
                    w.remove(values[i - window]);
                }
                let lo = (i + 1).saturating_sub(window);
                let want = crate::baseline::median(&values[lo..=i]);
                prop_assert_eq!(w.median(), want, "i={}", i);
                let mut present: Vec<f64> =
                    values[lo..=i].iter().copied().filter(|v| !v.is_nan()).collect();
                present.sort_by(f64::total_cmp);
                prop_assert_eq!(w.nth_largest(2), present.iter().rev().nth(2).copied());
            }
        }
    }

    #[test]
    fn removing_what_is_not_there_changes_nothing() {
        let mut w = OrderedWindow::default();
        for v in [3.0, 1.0, 2.0] {
            w.insert(v);
        }
        assert!(!w.remove(5.0));
        assert!(w.remove(1.0));
        assert_eq!(w.len(), 2);
        assert_eq!(w.median(), Some(2.5));
    }
}
