//! A series on a regular time grid: point `i` is at `start + i * step`, missing points are NaN.
//! Seasonal offsets become index offsets, which keeps baselines simple and fast; both the online
//! analyzer (fed by `query_range` at the configured step) and offline scoring (CSV rows snapped
//! to their median spacing) build one.

/// Values at `start + i * step` (Unix seconds); NaN where no sample exists.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub start: f64,
    pub step: f64,
    pub values: Vec<f64>,
}

impl Grid {
    pub fn new(start: f64, step: f64) -> Grid {
        Grid { start, step, values: Vec::new() }
    }

    /// Snaps `(time, value)` points (any order) to the grid starting at the first point.
    /// Two points on one slot: the later one in input order wins.
    pub fn from_points(points: &[(f64, f64)], step: f64) -> Grid {
        let start = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let mut grid = Grid::new(if start.is_finite() { start } else { 0.0 }, step);
        for &(t, v) in points {
            grid.set(t, v);
        }
        grid
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn time_of(&self, index: usize) -> f64 {
        self.start + index as f64 * self.step
    }

    /// Index of the slot nearest to `t`; `None` before the start.
    pub fn index_of(&self, t: f64) -> Option<usize> {
        let slot = ((t - self.start) / self.step).round();
        (slot >= 0.0).then_some(slot as usize)
    }

    /// Time of the last slot, if any.
    pub fn end(&self) -> Option<f64> {
        (!self.values.is_empty()).then(|| self.time_of(self.values.len() - 1))
    }

    /// Sets the slot nearest `t`, growing the grid with NaN as needed; points before the start
    /// are dropped. Returns the slot index.
    pub fn set(&mut self, t: f64, value: f64) -> Option<usize> {
        let i = self.index_of(t)?;
        if i >= self.values.len() {
            self.values.resize(i + 1, f64::NAN);
        }
        self.values[i] = value;
        Some(i)
    }

    /// Drops the oldest points so at most `keep` remain; returns how many were dropped.
    pub fn trim_front(&mut self, keep: usize) -> usize {
        if self.values.len() <= keep {
            return 0;
        }
        let drop = self.values.len() - keep;
        self.values.drain(..drop);
        self.start += drop as f64 * self.step;
        drop
    }

    /// Number of non-missing points.
    pub fn present(&self) -> usize {
        self.values.iter().filter(|v| !v.is_nan()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_snap_to_slots_and_gaps_are_nan() {
        let g = Grid::from_points(&[(100.0, 1.0), (161.0, 2.0), (280.0, 4.0)], 60.0);
        assert_eq!(g.len(), 4);
        assert_eq!(g.values[1], 2.0);
        assert!(g.values[2].is_nan());
        assert_eq!(g.time_of(3), 280.0);
        assert_eq!(g.present(), 3);
    }

    #[test]
    fn trimming_moves_the_start() {
        let mut g = Grid::from_points(&[(0.0, 1.0), (60.0, 2.0), (120.0, 3.0)], 60.0);
        assert_eq!(g.trim_front(2), 1);
        assert_eq!(g.start, 60.0);
        assert_eq!(g.values, vec![2.0, 3.0]);
        assert_eq!(g.set(30.0, 9.0), None, "before the start is dropped");
    }
}
