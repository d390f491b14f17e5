//! Baselines: what a series is expected to be now, and how far from that is still normal.
//! Series live on a regular time grid (`Grid`); a `Baseline` answers, for one point, a band
//! computed from earlier points only, or "warming up" when history is too short. The default
//! model is the seasonal-offset median with MAD bands (`seasonal.rs`); heavier models (MSTL,
//! ETS) would sit behind the same trait.

mod grid;
mod ordered;
mod rolling;
mod seasonal;

pub use grid::Grid;
pub use ordered::OrderedWindow;
pub use rolling::{mad, median};
pub use seasonal::{Prepared, SeasonalMedian};

/// Robust standard deviations per MAD for normal data.
pub const MAD_TO_SIGMA: f64 = 1.4826;

/// The normal band of one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    /// One robust standard deviation: (upper - expected) / band_width.
    pub sigma: f64,
}

impl Band {
    /// Distance from the expected value in robust standard deviations (signed).
    pub fn z(&self, value: f64) -> f64 {
        if self.sigma > 0.0 {
            (value - self.expected) / self.sigma
        } else if value == self.expected {
            0.0
        } else {
            f64::INFINITY.copysign(value - self.expected)
        }
    }
}

/// What a baseline says about one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expectation {
    Band(Band),
    /// Too little history: `needed` more points (at the grid's step) before a band exists.
    WarmingUp {
        needed: usize,
    },
}

impl Expectation {
    pub fn band(&self) -> Option<&Band> {
        match self {
            Expectation::Band(b) => Some(b),
            Expectation::WarmingUp { .. } => None,
        }
    }
}

/// A model of what is normal for a series.
pub trait Baseline: Send + Sync {
    /// Stable snake_case name (reports, benchmarks).
    fn name(&self) -> &'static str;
    /// Precomputes what scoring needs over the whole grid (the "fit").
    fn prepare(&self, grid: &Grid) -> Prepared;
    /// The band of point `index`, from points before it only.
    fn expect(&self, grid: &Grid, prepared: &Prepared, index: usize) -> Expectation;
}
