//! Health of one upstream: passive (error ratio of real traffic over a sliding window with a
//! minimum request count, consecutive failures, refused connections, missed first-token
//! deadlines) and active (liveness probes of `probe_path` and generation probes asking for one
//! token, from the probe task in `probe`). An ejected upstream leaves rotation and returns after
//! `healthy_after` passing generation probes (liveness probes when generation probes are off; with
//! probes off, after one window of cooldown): a hung engine whose `/health` still answers 200 is
//! not readmitted until it generates again. Passive errors never eject the last upstream that
//! could serve (a panic threshold, as Envoy has): that only turns slow errors into instant 503s.

pub mod probe;

pub use deepwatch_core::api::admin::{EjectedBy, UpstreamHealth};
use deepwatch_core::config::gateway::HealthConfig;
use parking_lot::Mutex;
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

/// How a request to an upstream went, for passive health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// 5xx, timeout, stream cut.
    Failure,
    /// No first content byte within the first-token deadline: the engine may be hung.
    Stall,
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
    generation_passes: u32,
    generation_failures: u32,
    /// When the last generation probe started.
    generation_probed: Option<Instant>,
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
    /// Bumped when the upstream is ejected for not answering (stall or failed probes): requests
    /// still waiting on it give up and move on while nothing has reached their client.
    hung: tokio::sync::watch::Sender<u64>,
    /// A generation probe is on its way (they may take the whole deadline).
    pub generation_running: AtomicBool,
    state: Mutex<State>,
}

impl Health {
    pub fn new(cfg: HealthConfig, now: Instant) -> Self {
        let window = PassiveWindow::new(cfg.window.max(Duration::from_secs(1)), now);
        Health {
            cfg,
            healthy: AtomicBool::new(true),
            in_flight: AtomicU64::new(0),
            hung: tokio::sync::watch::Sender::new(0),
            generation_running: AtomicBool::new(false),
            state: Mutex::new(State {
                window,
                consecutive_failures: 0,
                ejected: None,
                probe_passes: 0,
                probe_failures: 0,
                generation_passes: 0,
                generation_failures: 0,
                generation_probed: None,
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
        st.generation_passes = 0;
        self.healthy.store(false, Ordering::Relaxed);
        if by != EjectedBy::Passive {
            self.hung.send_modify(|n| *n += 1);
        }
        Some(Change::Ejected(by))
    }

    fn restore(&self, st: &mut State) -> Option<Change> {
        st.ejected.take()?;
        st.window.reset();
        st.consecutive_failures = 0;
        st.probe_failures = 0;
        st.generation_failures = 0;
        self.healthy.store(true, Ordering::Relaxed);
        Some(Change::Returned)
    }

    /// Fires when the upstream is ejected for not answering (see `hung`).
    pub fn hung_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.hung.subscribe()
    }

    /// Records a finished request. `last_standing`: no other upstream could serve, so passive
    /// errors (other than a refused connection) count but do not eject (panic threshold).
    pub fn record(&self, verdict: Verdict, now: Instant, last_standing: bool) -> Option<Change> {
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
        if verdict == Verdict::Down {
            return self.eject(&mut st, EjectedBy::Passive, now);
        }
        if !(ratio_trips || streak_trips) || last_standing {
            return None;
        }
        let by = if verdict == Verdict::Stall { EjectedBy::Stall } else { EjectedBy::Passive };
        self.eject(&mut st, by, now)
    }

    /// Whether a generation probe is due: always while ejected, else every `interval`.
    pub fn generation_due(&self, interval: Duration, now: Instant) -> bool {
        if self.generation_running.load(Ordering::Relaxed) {
            return false;
        }
        let st = self.state.lock();
        st.ejected.is_some()
            || st.generation_probed.is_none_or(|at| now.saturating_duration_since(at) >= interval)
    }

    /// Marks the start of a generation probe.
    pub fn generation_started(&self, now: Instant) {
        self.state.lock().generation_probed = Some(now);
    }

    /// Records one generation probe: the only way back for an upstream ejected while
    /// generation probes are on.
    pub fn generation(&self, pass: bool, now: Instant) -> Option<Change> {
        let mut st = self.state.lock();
        if pass {
            st.generation_failures = 0;
            st.generation_passes += 1;
            if st.ejected.is_some() && st.generation_passes >= self.cfg.healthy_after.max(1) {
                return self.restore(&mut st);
            }
            return None;
        }
        st.generation_passes = 0;
        st.generation_failures += 1;
        if st.generation_failures >= self.cfg.unhealthy_after.max(1) {
            return self.eject(&mut st, EjectedBy::Stall, now);
        }
        None
    }

    /// Records one probe result.
    pub fn probe(&self, pass: bool, now: Instant) -> Option<Change> {
        let mut st = self.state.lock();
        if pass {
            st.probe_failures = 0;
            st.probe_passes += 1;
            // With generation probes on, a 200 from `/health` proves liveness, not generation.
            if st.ejected.is_some()
                && !self.cfg.generation_probe
                && st.probe_passes >= self.cfg.healthy_after.max(1)
            {
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
    /// With generation probes on, only they readmit.
    pub fn tick(&self, probes_enabled: bool, now: Instant) -> Option<Change> {
        if probes_enabled || self.cfg.generation_probe {
            return None;
        }
        let mut st = self.state.lock();
        match st.ejected {
            Some((_, at)) if now.saturating_duration_since(at) >= self.cfg.window => {
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

    /// A snapshot for the admin API.
    pub fn status(&self, now: Instant) -> UpstreamHealth {
        let st = self.state.lock();
        let (requests, errors) = st.window.totals(now);
        UpstreamHealth {
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
            window: std::time::Duration::from_secs(10),
            min_requests: 4,
            consecutive_failures: 0,
            generation_probe: false,
            ..HealthConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ratio_needs_the_minimum_count_and_old_slots_expire() {
        let h = Health::new(cfg(), Instant::now());
        let now = Instant::now();
        assert_eq!(h.record(Verdict::Failure, now, false), None);
        assert_eq!(h.record(Verdict::Failure, now, false), None);
        assert_eq!(h.record(Verdict::Success, now, false), None);
        // 3 requests < min 4: still healthy although 2/3 failed.
        assert!(h.is_healthy());
        // 11 s later the old failures left the window.
        let later = now + Duration::from_secs(11);
        h.record(Verdict::Success, later, false);
        h.record(Verdict::Success, later, false);
        h.record(Verdict::Failure, later, false);
        assert_eq!(h.record(Verdict::Success, later, false), None);
        assert!(h.is_healthy());
        assert_eq!(h.status(later).window_requests, 4);
        // 2 failures out of 5 (< 0.5) keep it; 3 out of 6 trip.
        assert_eq!(h.record(Verdict::Failure, later, false), None);
        assert_eq!(
            h.record(Verdict::Failure, later, false),
            Some(Change::Ejected(EjectedBy::Passive))
        );
        assert!(!h.is_healthy());
    }

    #[tokio::test(start_paused = true)]
    async fn refused_connection_ejects_at_once_and_probes_bring_it_back() {
        let h = Health::new(cfg(), Instant::now());
        let now = Instant::now();
        assert_eq!(h.record(Verdict::Down, now, false), Some(Change::Ejected(EjectedBy::Passive)));
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
        h.record(Verdict::Failure, now, false);
        assert_eq!(
            h.record(Verdict::Failure, now, false),
            Some(Change::Ejected(EjectedBy::Passive))
        );
        assert_eq!(h.tick(false, now + Duration::from_secs(5)), None);
        assert_eq!(h.tick(true, now + Duration::from_secs(10)), None);
        assert_eq!(h.tick(false, now + Duration::from_secs(10)), Some(Change::Returned));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_upstream_returns_only_once_it_generates_again() {
        let h = Health::new(
            HealthConfig { consecutive_failures: 2, generation_probe: true, ..cfg() },
            Instant::now(),
        );
        let mut hung = h.hung_signal();
        let now = Instant::now();
        assert_eq!(h.record(Verdict::Stall, now, false), None);
        assert_eq!(h.record(Verdict::Stall, now, false), Some(Change::Ejected(EjectedBy::Stall)));
        assert!(hung.has_changed().unwrap(), "waiting requests were not told");
        hung.mark_unchanged();
        // /health keeps answering 200: that alone never readmits.
        for _ in 0..5 {
            assert_eq!(h.probe(true, now), None);
        }
        assert!(!h.is_healthy());
        assert_eq!(h.generation(true, now), None);
        assert_eq!(h.generation(false, now), None);
        assert_eq!(h.generation(true, now), None);
        assert_eq!(h.generation(true, now), Some(Change::Returned));
        // Failed generation probes eject a healthy upstream as stalled.
        assert_eq!(h.generation(false, now), None);
        assert_eq!(h.generation(false, now), Some(Change::Ejected(EjectedBy::Stall)));
        assert!(hung.has_changed().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn passive_errors_never_eject_the_last_upstream_standing() {
        let h = Health::new(HealthConfig { consecutive_failures: 2, ..cfg() }, Instant::now());
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(h.record(Verdict::Failure, now, true), None);
            assert_eq!(h.record(Verdict::Stall, now, true), None);
        }
        assert!(h.is_healthy());
        assert_eq!(h.status(now).consecutive_failures, 20);
        // A refused connection is certain: it ejects even the last one.
        assert_eq!(h.record(Verdict::Down, now, true), Some(Change::Ejected(EjectedBy::Passive)));
    }

    #[tokio::test(start_paused = true)]
    async fn generation_probes_are_due_on_their_interval_and_always_while_ejected() {
        let h = Health::new(HealthConfig { generation_probe: true, ..cfg() }, Instant::now());
        let every = Duration::from_secs(5);
        let now = Instant::now();
        assert!(h.generation_due(every, now));
        h.generation_started(now);
        assert!(!h.generation_due(every, now + Duration::from_secs(4)));
        assert!(h.generation_due(every, now + Duration::from_secs(5)));
        h.record(Verdict::Down, now, false);
        assert!(h.generation_due(every, now + Duration::from_secs(1)));
    }
}
