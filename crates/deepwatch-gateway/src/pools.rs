//! Upstream pools and routing. Pools have a weight (share of their priority tier: blue-green and
//! canary splits) and a priority (a higher number is a standby). A request goes to the lowest
//! priority tier that has a healthy upstream in a pool of weight above 0, split by weight, then
//! round-robin over that pool's healthy upstreams. A forced failover overrides all of it; a
//! pinned request (trusted callers only, see `proxy::pin`) overrides that too, but only ever
//! goes to a healthy upstream of its own pools.
//! Tier changes are detected from health (not from one request's retry) and become `failover` /
//! `failback` events.

use crate::events::EventLog;
use crate::health::{Change, Health};
use crate::metrics::labels::{PoolIds, PoolReasonIds, UpstreamIds};
use crate::metrics::GatewayMetrics;
use crate::proxy::conn::Target;
use crate::util::{random_u64, rfc3339};
pub use deepwatch_core::api::admin::{ForcedFailover, PoolDoc, UpstreamDoc};
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::gateway::{HealthConfig, PoolConfig};
use http::HeaderValue;
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

/// One upstream server.
#[derive(Debug)]
pub struct Upstream {
    /// Base URL without a trailing slash, as configured (credentials included).
    pub url: String,
    /// `url` as it may be shown: metric labels, events, logs, admin documents
    /// (`deepwatch_core::http::redact_urls`).
    pub shown: String,
    /// Where and how its connections go (address, TLS, `Host`).
    pub target: Arc<Target>,
    pub pool: String,
    pub health: Health,
}

impl Upstream {
    fn new(url: &str, pool: &str, tls: &Arc<rustls::ClientConfig>, health: Health) -> Upstream {
        let url = normalize_url(url);
        Upstream {
            target: Arc::new(Target::new(&url, pool, tls)),
            shown: deepwatch_core::http::redact_urls(&url).into_owned(),
            url,
            pool: pool.to_string(),
            health,
        }
    }
}

/// A pool of upstreams serving one model version.
#[derive(Debug)]
pub struct Pool {
    pub name: String,
    pub priority: u32,
    pub model_version: String,
    pub api_key: Option<HeaderValue>,
    pub health_cfg: HealthConfig,
    /// Deadline from sending a streamed request to its first content byte (`None`: off).
    pub first_token_timeout: Option<std::time::Duration>,
    weight: AtomicU32,
    /// TLS client config for its https upstreams.
    tls: Arc<rustls::ClientConfig>,
    upstreams: RwLock<Arc<Vec<Arc<Upstream>>>>,
    next: AtomicUsize,
}

impl Pool {
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub fn upstreams(&self) -> Arc<Vec<Arc<Upstream>>> {
        self.upstreams.read().clone()
    }

    fn has_healthy(&self, exclude: &[Arc<Upstream>]) -> bool {
        self.upstreams
            .read()
            .iter()
            .any(|u| u.health.is_healthy() && !exclude.iter().any(|e| Arc::ptr_eq(e, u)))
    }

    /// Round-robin over healthy upstreams not in `exclude`; with `any`, unhealthy ones too.
    fn pick(&self, exclude: &[Arc<Upstream>], any: bool) -> Option<Arc<Upstream>> {
        let ups = self.upstreams.read().clone();
        let n = ups.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &ups[(start + i) % n])
            .find(|u| (any || u.health.is_healthy()) && !exclude.iter().any(|e| Arc::ptr_eq(e, u)))
            .cloned()
    }
}

pub struct Pools {
    pools: Vec<Arc<Pool>>,
    forced: RwLock<Option<ForcedFailover>>,
    /// Names of the pools that served last time we looked, for failover detection.
    active: Mutex<Vec<String>>,
    metrics: Arc<GatewayMetrics>,
    events: Arc<EventLog>,
    clock: SharedClock,
}

/// The pool and upstream chosen for an attempt.
#[derive(Clone)]
pub struct Route {
    pub pool: Arc<Pool>,
    pub upstream: Arc<Upstream>,
}

/// A pool's config with what is read once at start: the TLS client config of its https
/// upstreams (system roots plus the pool's `tls` table, ALPN `http/1.1`). Every pool gets one,
/// so an https upstream added later (admin API, reload) can connect too.
pub struct PoolSetup {
    pub config: PoolConfig,
    pub tls: Arc<rustls::ClientConfig>,
}

impl PoolSetup {
    /// Reads the pool's CA and client certificate files; the error names the file.
    pub fn new(config: PoolConfig) -> Result<PoolSetup, deepwatch_core::http::HttpError> {
        let mut tls = deepwatch_core::http::rustls_config(&config.tls)?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(PoolSetup { config, tls: Arc::new(tls) })
    }
}

pub fn normalize_url(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

impl Pools {
    pub fn new(
        setups: &[PoolSetup],
        metrics: Arc<GatewayMetrics>,
        events: Arc<EventLog>,
        clock: SharedClock,
    ) -> Pools {
        let now = clock.now();
        let pools = setups
            .iter()
            .map(|setup| {
                let c = &setup.config;
                let ups = c
                    .upstreams
                    .iter()
                    .map(|u| {
                        Arc::new(Upstream::new(
                            u,
                            &c.name,
                            &setup.tls,
                            Health::new(c.health.clone(), now),
                        ))
                    })
                    .collect();
                Arc::new(Pool {
                    name: c.name.clone(),
                    priority: c.priority,
                    model_version: c.model_version.clone(),
                    api_key: (!c.api_key.is_empty())
                        .then(|| HeaderValue::from_str(&format!("Bearer {}", c.api_key)).ok())
                        .flatten(),
                    health_cfg: c.health.clone(),
                    first_token_timeout: c.first_token_timeout.filter(|d| !d.is_zero()),
                    weight: AtomicU32::new(c.weight),
                    tls: setup.tls.clone(),
                    upstreams: RwLock::new(Arc::new(ups)),
                    next: AtomicUsize::new(0),
                })
            })
            .collect();
        let p = Pools {
            pools,
            forced: RwLock::new(None),
            active: Mutex::new(Vec::new()),
            metrics,
            events,
            clock,
        };
        for pool in &p.pools {
            for u in pool.upstreams().iter() {
                p.metrics
                    .upstream_up
                    .set(&UpstreamIds { pool: &pool.name, upstream: &u.shown }, 1.0);
                p.metrics
                    .upstream_error_ratio
                    .set(&UpstreamIds { pool: &pool.name, upstream: &u.shown }, 0.0);
            }
        }
        *p.active.lock() = p.active_pools();
        p.refresh();
        p
    }

    pub fn all(&self) -> &[Arc<Pool>] {
        &self.pools
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub fn forced(&self) -> Option<ForcedFailover> {
        self.forced.read().clone()
    }

    /// Chooses where an attempt goes. `exclude` holds upstreams that already failed this request.
    pub fn select(&self, exclude: &[Arc<Upstream>]) -> Option<Route> {
        if let Some(forced) = self.forced.read().as_ref() {
            let pool = self.get(&forced.pool)?.clone();
            let upstream = pool.pick(exclude, false).or_else(|| pool.pick(exclude, true))?;
            return Some(Route { pool, upstream });
        }
        let mut priorities: Vec<u32> = self.pools.iter().map(|p| p.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        for prio in priorities {
            let candidates: Vec<&Arc<Pool>> = self
                .pools
                .iter()
                .filter(|p| p.priority == prio && p.weight() > 0 && p.has_healthy(exclude))
                .collect();
            let total: u64 = candidates.iter().map(|p| u64::from(p.weight())).sum();
            if total == 0 {
                continue;
            }
            let mut ticket = random_u64() % total;
            for pool in candidates {
                let w = u64::from(pool.weight());
                if ticket < w {
                    let upstream = pool.pick(exclude, false)?;
                    return Some(Route { pool: pool.clone(), upstream });
                }
                ticket -= w;
            }
        }
        None
    }

    /// Whether another attempt would find an upstream not in `exclude` (`pinned`: among those
    /// pools only). Unlike `select`, it moves no round-robin counter.
    pub fn has_alternative(&self, exclude: &[Arc<Upstream>], pinned: Option<&[Arc<Pool>]>) -> bool {
        if let Some(pools) = pinned {
            return pools.iter().any(|p| p.has_healthy(exclude));
        }
        if let Some(forced) = self.forced.read().as_ref() {
            return self.get(&forced.pool).is_some_and(|p| {
                p.upstreams().iter().any(|u| !exclude.iter().any(|e| Arc::ptr_eq(e, u)))
            });
        }
        self.pools.iter().any(|p| p.weight() > 0 && p.has_healthy(exclude))
    }

    /// True when `upstream` is the last one that could serve: passive errors must not eject
    /// it (the panic threshold), or every client would get an instant 503.
    pub fn last_standing(&self, upstream: &Arc<Upstream>) -> bool {
        !self.has_alternative(std::slice::from_ref(upstream), None)
    }

    /// Where an attempt of a pinned request goes: a healthy upstream not in `exclude` of the
    /// first of `pools` (ordered by priority) that has one. Weights, priorities between tiers
    /// and forced failover do not apply; `None` when no pinned pool has a healthy upstream
    /// (never another pool).
    pub fn select_pinned(&self, pools: &[Arc<Pool>], exclude: &[Arc<Upstream>]) -> Option<Route> {
        pools.iter().find_map(|pool| {
            let upstream = pool.pick(exclude, false)?;
            Some(Route { pool: pool.clone(), upstream })
        })
    }

    /// The pools serving `model_version`, lowest priority number first (config order within).
    pub fn of_version(&self, model_version: &str) -> Vec<Arc<Pool>> {
        let mut pools: Vec<Arc<Pool>> =
            self.pools.iter().filter(|p| p.model_version == model_version).cloned().collect();
        pools.sort_by_key(|p| p.priority);
        pools
    }

    /// Pools that would receive traffic now (forced pool, or the serving tier's weighted pools).
    pub fn active_pools(&self) -> Vec<String> {
        if let Some(f) = self.forced.read().as_ref() {
            return vec![f.pool.clone()];
        }
        let mut priorities: Vec<u32> = self.pools.iter().map(|p| p.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        for prio in priorities {
            let names: Vec<String> = self
                .pools
                .iter()
                .filter(|p| p.priority == prio && p.weight() > 0 && p.has_healthy(&[]))
                .map(|p| p.name.clone())
                .collect();
            if !names.is_empty() {
                return names;
            }
        }
        Vec::new()
    }

    /// Whether traffic left the first tier because of health.
    pub fn automatic_failover(&self) -> bool {
        if self.forced.read().is_some() {
            return false;
        }
        let top = self.pools.iter().filter(|p| p.weight() > 0).map(|p| p.priority).min();
        let active = self.active_pools();
        let serving =
            self.pools.iter().filter(|p| active.contains(&p.name)).map(|p| p.priority).min();
        matches!((top, serving), (Some(t), Some(s)) if s > t)
    }

    /// Recomputes gauges and detects tier changes; called after every health or admin change.
    pub fn refresh(&self) {
        let active = self.active_pools();
        for p in &self.pools {
            let on = active.contains(&p.name);
            self.metrics.pool_active.set(&PoolIds { pool: &p.name }, if on { 1.0 } else { 0.0 });
            self.metrics.pool_weight.set(&PoolIds { pool: &p.name }, f64::from(p.weight()) / 100.0);
        }
        let mut last = self.active.lock();
        if *last == active {
            return;
        }
        let forced = self.forced.read().is_some();
        let prio_of = |names: &[String]| {
            self.pools.iter().filter(|p| names.contains(&p.name)).map(|p| p.priority).min()
        };
        let (before, after) = (prio_of(&last), prio_of(&active));
        if !forced {
            match (before, after) {
                (Some(b), Some(a)) if a > b => {
                    for name in &active {
                        self.metrics
                            .failovers
                            .inc(&PoolReasonIds { pool: name, reason: "unhealthy" });
                        self.events.record(
                            "failover",
                            name,
                            format!("no healthy upstream in priority {b}; serving priority {a}"),
                        );
                    }
                }
                (Some(b), Some(a)) if a < b => {
                    for name in &active {
                        self.events.record("failback", name, format!("priority {a} healthy again"));
                    }
                }
                (Some(_), None) => {
                    tracing::error!("no pool has a healthy upstream");
                }
                _ => {}
            }
        }
        *last = active;
    }

    pub fn force(&self, pool: &str, reason: &str) -> bool {
        if self.get(pool).is_none() {
            return false;
        }
        *self.forced.write() = Some(ForcedFailover {
            pool: pool.to_string(),
            reason: reason.to_string(),
            since: rfc3339(self.clock.wall()),
        });
        self.metrics.failovers.inc(&PoolReasonIds { pool, reason: "command" });
        self.events.record("failover", pool, format!("forced: {reason}"));
        self.refresh();
        true
    }

    pub fn unforce(&self) {
        if let Some(f) = self.forced.write().take() {
            self.events.record("failback", &f.pool, "forced failover cleared");
        }
        self.refresh();
    }

    pub fn set_weight(&self, pool: &Pool, weight: u32) {
        pool.weight.store(weight, Ordering::Relaxed);
        self.refresh();
    }

    /// Adds an upstream (scale out); false when it is already there.
    pub fn add_upstream(&self, pool: &Pool, url: &str) -> bool {
        let url = normalize_url(url);
        let mut guard = pool.upstreams.write();
        if guard.iter().any(|u| u.url == url) {
            return false;
        }
        let mut list = (**guard).clone();
        let health = Health::new(pool.health_cfg.clone(), self.clock.now());
        let upstream = Arc::new(Upstream::new(&url, &pool.name, &pool.tls, health));
        list.push(upstream.clone());
        *guard = Arc::new(list);
        drop(guard);
        let ids = UpstreamIds { pool: &pool.name, upstream: &upstream.shown };
        self.metrics.upstream_up.set(&ids, 1.0);
        self.metrics.upstream_error_ratio.set(&ids, 0.0);
        self.events.record("upstream_added", &pool.name, upstream.shown.clone());
        self.refresh();
        true
    }

    pub fn remove_upstream(&self, pool: &Pool, url: &str) -> bool {
        let url = normalize_url(url);
        let mut guard = pool.upstreams.write();
        // By its URL, or by the redacted form the admin API shows.
        let Some(gone) = guard.iter().find(|u| u.url == url || u.shown == url).cloned() else {
            return false;
        };
        let list: Vec<_> = guard.iter().filter(|u| !Arc::ptr_eq(u, &gone)).cloned().collect();
        *guard = Arc::new(list);
        drop(guard);
        let ids = UpstreamIds { pool: &pool.name, upstream: &gone.shown };
        self.metrics.upstream_up.remove(&ids);
        self.metrics.upstream_error_ratio.remove(&ids);
        self.events.record("upstream_removed", &pool.name, gone.shown.clone());
        self.refresh();
        true
    }

    /// Applies a health change of one upstream: gauge, log, routing refresh.
    pub fn on_change(&self, upstream: &Upstream, change: Option<Change>) {
        let Some(change) = change else { return };
        let up = matches!(change, Change::Returned);
        let ids = UpstreamIds { pool: &upstream.pool, upstream: &upstream.shown };
        self.metrics.upstream_up.set(&ids, if up { 1.0 } else { 0.0 });
        match change {
            Change::Ejected(by) => {
                tracing::warn!(pool = %upstream.pool, upstream = %upstream.shown, ?by, "upstream ejected")
            }
            Change::Returned => {
                tracing::info!(pool = %upstream.pool, upstream = %upstream.shown, "upstream back in rotation")
            }
        }
        self.refresh();
    }

    pub fn docs(&self) -> Vec<PoolDoc> {
        let now = self.clock.now();
        let active = self.active_pools();
        self.pools.iter().map(|p| self.doc_of(p, &active, now)).collect()
    }

    pub fn doc(&self, pool: &Pool) -> PoolDoc {
        self.doc_of(pool, &self.active_pools(), self.clock.now())
    }

    fn doc_of(&self, p: &Pool, active: &[String], now: tokio::time::Instant) -> PoolDoc {
        PoolDoc {
            name: p.name.clone(),
            weight: p.weight(),
            priority: p.priority,
            model_version: p.model_version.clone(),
            active: active.contains(&p.name),
            upstreams: p
                .upstreams()
                .iter()
                .map(|u| UpstreamDoc { url: u.shown.clone(), health: u.health.status(now) })
                .collect(),
        }
    }

    /// Updates the error-ratio gauges (called by the health task).
    pub fn export_ratios(&self) {
        let now = self.clock.now();
        for p in &self.pools {
            for u in p.upstreams().iter() {
                self.metrics.upstream_error_ratio.set(
                    &UpstreamIds { pool: &p.name, upstream: &u.shown },
                    u.health.error_ratio(now),
                );
            }
        }
    }
}
