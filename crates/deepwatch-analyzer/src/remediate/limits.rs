//! Cooldowns and rate limits, on the injectable clock so tests run under paused time. An
//! action may not run again within its cooldown, nor more than `max_per_hour` times in any
//! rolling hour; all actions together obey the global hourly limit. History is restored from
//! the audit log at start, so a restart does not reset the limits.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

const HOUR: Duration = Duration::from_secs(3600);

/// Why an action was held back.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    Cooldown { remaining: Duration },
    RateLimit { max_per_hour: u32 },
    GlobalRateLimit { max_per_hour: u32 },
}

impl Held {
    /// The `outcome` label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Held::Cooldown { .. } => "skipped_cooldown",
            Held::RateLimit { .. } | Held::GlobalRateLimit { .. } => "skipped_rate_limit",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Held::Cooldown { remaining } => {
                format!("in cooldown for {}s more", remaining.as_secs())
            }
            Held::RateLimit { max_per_hour } => {
                format!("ran {max_per_hour} times in the last hour (max_per_hour)")
            }
            Held::GlobalRateLimit { max_per_hour } => {
                format!(
                    "all actions ran {max_per_hour} times in the last hour (max_actions_per_hour)"
                )
            }
        }
    }
}

#[derive(Debug, Default)]
struct Window {
    runs: VecDeque<Instant>,
}

impl Window {
    fn prune(&mut self, now: Instant) {
        while self.runs.front().is_some_and(|t| now.saturating_duration_since(*t) >= HOUR) {
            self.runs.pop_front();
        }
    }

    fn full(&mut self, now: Instant, max: u32) -> bool {
        self.prune(now);
        max > 0 && self.runs.len() >= max as usize
    }

    fn record(&mut self, at: Instant) {
        // Restored history may arrive out of order; keep the deque sorted.
        let i = self.runs.partition_point(|t| *t <= at);
        self.runs.insert(i, at);
    }
}

#[derive(Debug)]
struct ActionLimit {
    cooldown: Duration,
    max_per_hour: u32,
    last: Option<Instant>,
    window: Window,
}

/// Limits for every action plus the global one.
#[derive(Debug)]
pub struct Limits {
    actions: HashMap<String, ActionLimit>,
    global_max_per_hour: u32,
    global: Window,
}

impl Limits {
    pub fn new(global_max_per_hour: u32) -> Limits {
        Limits { actions: HashMap::new(), global_max_per_hour, global: Window::default() }
    }

    pub fn add_action(&mut self, name: &str, cooldown: Duration, max_per_hour: u32) {
        self.actions.insert(
            name.to_string(),
            ActionLimit { cooldown, max_per_hour, last: None, window: Window::default() },
        );
    }

    /// Whether `name` may run at `now`.
    pub fn check(&mut self, name: &str, now: Instant) -> Result<(), Held> {
        if let Some(a) = self.actions.get_mut(name) {
            if let Some(last) = a.last {
                let since = now.saturating_duration_since(last);
                if since < a.cooldown {
                    return Err(Held::Cooldown { remaining: a.cooldown - since });
                }
            }
            if a.window.full(now, a.max_per_hour) {
                return Err(Held::RateLimit { max_per_hour: a.max_per_hour });
            }
        }
        if self.global.full(now, self.global_max_per_hour) {
            return Err(Held::GlobalRateLimit { max_per_hour: self.global_max_per_hour });
        }
        Ok(())
    }

    /// Counts a run of `name` that started at `at`.
    pub fn record(&mut self, name: &str, at: Instant) {
        if let Some(a) = self.actions.get_mut(name) {
            a.last = Some(a.last.map_or(at, |l| l.max(at)));
            a.window.record(at);
        }
        self.global.record(at);
    }

    /// Counts a run restored from the audit log that happened `age` ago.
    pub fn restore(&mut self, name: &str, now: Instant, age: Duration) {
        let horizon = self.actions.get(name).map_or(HOUR, |a| a.cooldown.max(HOUR));
        if age >= horizon {
            return;
        }
        if let Some(at) = now.checked_sub(age) {
            self.record(name, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn cooldown_holds_until_it_elapses() {
        let mut l = Limits::new(0);
        l.add_action("f", Duration::from_secs(600), 0);
        let t0 = Instant::now();
        assert_eq!(l.check("f", t0), Ok(()));
        l.record("f", t0);
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(
            l.check("f", Instant::now()),
            Err(Held::Cooldown { remaining: Duration::from_secs(1) })
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(l.check("f", Instant::now()), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_count_a_rolling_hour() {
        let mut l = Limits::new(3);
        l.add_action("a", Duration::ZERO, 2);
        l.add_action("b", Duration::ZERO, 0);
        for _ in 0..2 {
            assert_eq!(l.check("a", Instant::now()), Ok(()));
            l.record("a", Instant::now());
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        assert_eq!(l.check("a", Instant::now()), Err(Held::RateLimit { max_per_hour: 2 }));
        // b has no limit of its own but the global one (3) is reached after one run of b.
        l.record("b", Instant::now());
        assert_eq!(l.check("b", Instant::now()), Err(Held::GlobalRateLimit { max_per_hour: 3 }));
        // An hour after the first run, one slot frees up.
        tokio::time::advance(Duration::from_secs(3600 - 120)).await;
        assert_eq!(l.check("a", Instant::now()), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn restored_history_applies_cooldown_and_rates() {
        let mut l = Limits::new(0);
        l.add_action("f", Duration::from_secs(600), 1);
        let now = Instant::now() + Duration::from_secs(7200);
        tokio::time::advance(Duration::from_secs(7200)).await;
        l.restore("f", now, Duration::from_secs(100));
        l.restore("f", now, Duration::from_secs(90_000)); // too old to matter
        match l.check("f", now) {
            Err(Held::Cooldown { remaining }) => assert_eq!(remaining, Duration::from_secs(500)),
            other => panic!("{other:?}"),
        }
    }
}
