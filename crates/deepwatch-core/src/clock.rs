//! The injectable clock. Everything with a window, timeout, cooldown or rate reads time through
//! `Clock`, whose monotonic side is `tokio::time::Instant`: tests run under
//! `tokio::time::pause()` and move time forward without sleeping. Wall-clock time is derived
//! from the same monotonic source, so paused tests see timestamps advance consistently too.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// A source of monotonic and wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic now, for measuring durations and scheduling.
    fn now(&self) -> Instant;
    /// Wall-clock now, for timestamps that leave the process.
    fn wall(&self) -> SystemTime;
    /// Wall-clock now as Unix seconds.
    fn unix_seconds(&self) -> f64 {
        self.wall().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
    }
    /// Wall-clock now as Unix milliseconds.
    fn unix_millis(&self) -> i64 {
        self.wall().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The production clock: tokio's monotonic time, with wall time anchored at creation.
#[derive(Debug, Clone)]
pub struct TokioClock {
    anchor_instant: Instant,
    anchor_wall: SystemTime,
}

impl TokioClock {
    /// Anchors wall time to the real system clock at this moment.
    #[allow(clippy::disallowed_methods)]
    pub fn new() -> Self {
        TokioClock::anchored_at(SystemTime::now())
    }

    /// Anchors wall time to a given moment, for tests that need fixed timestamps.
    pub fn anchored_at(wall: SystemTime) -> Self {
        TokioClock { anchor_instant: Instant::now(), anchor_wall: wall }
    }

    pub fn shared() -> SharedClock {
        Arc::new(TokioClock::new())
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        self.anchor_wall + Instant::now().saturating_duration_since(self.anchor_instant)
    }
}

/// Converts Unix seconds to `SystemTime` (negative or non-finite values clamp to the epoch).
pub fn system_time_from_unix(seconds: f64) -> SystemTime {
    if seconds.is_finite() && seconds > 0.0 {
        UNIX_EPOCH + Duration::from_secs_f64(seconds)
    } else {
        UNIX_EPOCH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_wall_and_monotonic_together() {
        let clock = TokioClock::anchored_at(system_time_from_unix(1_700_000_000.0));
        let start = clock.now();
        assert_eq!(clock.unix_seconds(), 1_700_000_000.0);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(clock.now() - start, Duration::from_secs(90));
        assert_eq!(clock.unix_seconds(), 1_700_000_090.0);
        assert_eq!(clock.unix_millis(), 1_700_000_090_000);
    }
}
