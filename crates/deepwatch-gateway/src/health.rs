//! Health of one upstream: passive (error ratio of real traffic over a sliding window with a
//! minimum request count, consecutive failures, refused connections) and active (probe results).
//! An ejected upstream leaves rotation and returns after `healthy_after` passing probes (or,
//! with probes off, after one window of cooldown).

use deepwatch_core::config::gateway::HealthConfig;
use parking_lot::Mutex;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const BUCKETS: u64 = 10;

/// Requests and errors over a sliding window, in `BUCKETS` slots.
#[derive(Debug)]
pub struct PassiveWindow {
    origin: Instant,
    slot_ms: u64,
    slots: [(u64, u32, u32); BUCKETS as usize],
}

impl PassiveWindow {
    pub fn new(window: Duration, origin: Instant) -> Self {
        let slot_ms = (window.as_millis() as u64 / BUCKETS).max(1);
        PassiveWindow { origin, slot_ms, slots: [(u64::MAX, 0, 0); BUCKETS as usize] }
    }

    fn slot(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_millis() as u64 / self.slot_ms
    }

    pub fn record(&mut self, now: Instant, error: bool) {
        let s = self.slot(now);
        let cell = &mut self.slots[(s % BUCKETS) as usize];
        if cell.0 != s {
            *cell = (s, 0, 0);
        }
        cell.1 += 1;
        cell.2 += u32::from(error);
    }

    /// (requests, errors) within the window ending at `now`.
    pub fn totals(&self, now: Instant) -> (u64, u64) {
        let s = self.slot(now);
        self.slots
            .iter()
            .filter(|c| c.0 != u64::MAX && c.0 + BUCKETS > s && c.0 <= s)
            .fold((0, 0), |acc, c| (acc.0 + u64::from(c.1), acc.1 + u64::from(c.2)))
    }

    pub fn reset(&mut self) {
        self.slots = [(u64::MAX, 0, 0); BUCKETS as usize];
    }
}

/// Why an upstream is out of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EjectedBy {
    Passive,
    Probe,
}

/// How a request to an upstream went, for passive health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// 5xx, timeout, stream cut.
    Failure,
    /// Connection refused or reset before a response: the upstream is down.
    Down,
}

#[derive(Debug)]
struct State {
    window: PassiveWindow,
    consecutive_failures: u32,
    ejected: Option<(EjectedBy, Instant)>,
    probe_passes: u32,
    probe_failures: u32,
}

/// A change of rotation status, for logs and gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Ejected(EjectedBy),
    Returned,
}

/// One upstream's health and load.
#[derive(Debug)]
pub struct Health {
    cfg: HealthConfig,
    healthy: AtomicBool,
    pub in_flight: AtomicU64,
    state: Mutex<State>,
}

/// A snapshot for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct HealthStatus {
    pub healthy: bool,
    pub ejected_by: Option<EjectedBy>,
    pub error_ratio: f64,
    pub window_requests: u64,
    pub consecutive_failures: u32,
    pub in_flight: u64,
}

impl Health {
    pub fn new(cfg: HealthConfig, now: Instant) -> Self {
        let window = PassiveWindow::new(Duration::from_secs(cfg.window_secs.max(1)), now);
        Health {
            cfg,
            healthy: AtomicBool::new(true),
            in_flight: AtomicU64::new(0),
            state: Mutex::new(State {
                window,
                consecutive_failures: 0,
                ejected: None,
                probe_passes: 0,
                probe_failures: 0,
            }),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn eject(&self, st: &mut State, by: EjectedBy, now: Instant) -> Option<Change> {
        if st.ejected.is_some() {
            return None;
        }
        st.ejected = Some((by, now));
        st.probe_passes = 0;
        self.healthy.store(false, Ordering::Relaxed);
        Some(Change::Ejected(by))
    }

    fn restore(&self, st: &mut State) -> Option<Change> {
        st.ejected.take()?;
        st.window.reset();
        st.consecutive_failures = 0;
        st.probe_failures = 0;
        self.healthy.store(true, Ordering::Relaxed);
        Some(Change::Returned)
    }

    /// Records a finished request.
    pub fn record(&self, verdict: Verdict, now: Instant) -> Option<Change> {
        let mut st = self.state.lock();
        let failed = verdict != Verdict::Success;
        st.window.record(now, failed);
        if !failed {
            st.consecutive_failures = 0;
            return None;
        }
        st.consecutive_failures += 1;
        let (requests, errors) = st.window.totals(now);
        let ratio_trips = requests >= self.cfg.min_requests.max(1)
            && errors as f64 >= self.cfg.error_ratio * requests as f64;
        let streak_trips = self.cfg.consecutive_failures > 0
            && st.consecutive_failures >= self.cfg.consecutive_failures;
        if verdict == Verdict::Down || ratio_trips || streak_trips {
            return self.eject(&mut st, EjectedBy::Passive, now);
        }
        None
    }

    /// Records one probe result.
    pub fn probe(&self, pass: bool, now: Instant) -> Option<Change> {
        let mut st = self.state.lock();
        if pass {
            st.probe_failures = 0;
            st.probe_passes += 1;
            if st.ejected.is_some() && st.probe_passes >= self.cfg.healthy_after.max(1) {
                return self.restore(&mut st);
            }
            None
        } else {
            st.probe_passes = 0;
            st.probe_failures += 1;
            if st.probe_failures >= self.cfg.unhealthy_after.max(1) {
                return self.eject(&mut st, EjectedBy::Probe, now);
            }
            None
        }
    }

    /// Without probes, passively ejected upstreams return after one window of cooldown.
    pub fn tick(&self, probes_enabled: bool, now: Instant) -> Option<Change> {
        if probes_enabled {
            return None;
        }
        let mut st = self.state.lock();
        match st.ejected {
            Some((_, at))
                if now.saturating_duration_since(at).as_secs() >= self.cfg.window_secs =>
            {
                self.restore(&mut st)
            }
            _ => None,
        }
    }

    pub fn error_ratio(&self, now: Instant) -> f64 {
        let (requests, errors) = self.state.lock().window.totals(now);
        if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        }
    }

    pub fn status(&self, now: Instant) -> HealthStatus {
        let st = self.state.lock();
        let (requests, errors) = st.window.totals(now);
        HealthStatus {
            healthy: st.ejected.is_none(),
            ejected_by: st.ejected.map(|e| e.0),
            error_ratio: if requests == 0 { 0.0 } else { errors as f64 / requests as f64 },
            window_requests: requests,
            consecutive_failures: st.consecutive_failures,
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HealthConfig {
        HealthConfig {
            error_ratio: 0.5,
            window_secs: 10,
            min_requests: 4,
            consecutive_failures: 0,
            ..HealthConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ratio_needs_the_minimum_count_and_old_slots_expire() {
        let h = Health::new(cfg(), Instant::now());
        let now = Instant::now();
        assert_eq!(h.record(Verdict::Failure, now), None);
        assert_eq!(h.record(Verdict::Failure, now), None);
        assert_eq!(h.record(Verdict::Success, now), None);
        // 3 requests < min 4: still healthy although 2/3 failed.
        assert!(h.is_healthy());
        // 11 s later the old failures left the window.
        let later = now + Duration::from_secs(11);
        h.record(Verdict::Success, later);
        h.record(Verdict::Success, later);
        h.record(Verdict::Failure, later);
        assert_eq!(h.record(Verdict::Success, later), None);
        assert!(h.is_healthy());
        assert_eq!(h.status(later).window_requests, 4);
        // 2 failures out of 5 (< 0.5) keep it; 3 out of 6 trip.
        assert_eq!(h.record(Verdict::Failure, later), None);
        assert_eq!(h.record(Verdict::Failure, later), Some(Change::Ejected(EjectedBy::Passive)));
        assert!(!h.is_healthy());
    }

    #[tokio::test(start_paused = true)]
    async fn refused_connection_ejects_at_once_and_probes_bring_it_back() {
        let h = Health::new(cfg(), Instant::now());
        let now = Instant::now();
        assert_eq!(h.record(Verdict::Down, now), Some(Change::Ejected(EjectedBy::Passive)));
        assert_eq!(h.probe(true, now), None);
        assert_eq!(h.probe(false, now), None);
        assert_eq!(h.probe(true, now), None);
        assert_eq!(h.probe(true, now), Some(Change::Returned));
        assert!(h.is_healthy());
        // Failing probes eject a healthy upstream.
        assert_eq!(h.probe(false, now), None);
        assert_eq!(h.probe(false, now), Some(Change::Ejected(EjectedBy::Probe)));
    }

    #[tokio::test(start_paused = true)]
    async fn without_probes_an_ejected_upstream_returns_after_a_window() {
        let h = Health::new(HealthConfig { consecutive_failures: 2, ..cfg() }, Instant::now());
        let now = Instant::now();
        h.record(Verdict::Failure, now);
        assert_eq!(h.record(Verdict::Failure, now), Some(Change::Ejected(EjectedBy::Passive)));
        assert_eq!(h.tick(false, now + Duration::from_secs(5)), None);
        assert_eq!(h.tick(true, now + Duration::from_secs(10)), None);
        assert_eq!(h.tick(false, now + Duration::from_secs(10)), Some(Change::Returned));
    }
}
