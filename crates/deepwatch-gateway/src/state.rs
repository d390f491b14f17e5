//! The gateway's shared state, built once from the `[gateway]` config: metrics, label bounds,
//! tenants, pools, rollouts, scanner, faults, degradation, event and request logs, the
//! upstream client and the clock. Every handler and background task holds an `Arc<Shared>`.

use crate::degrade::Degrade;
use crate::events::EventLog;
use crate::faults::Faults;
use crate::metrics::{GatewayMetrics, LabelBounds};
use crate::pools::Pools;
use crate::proxy::client::{self, HttpClient};
use crate::reqlog::RequestLog;
use crate::rollout::Rollouts;
use crate::scanner::Scanner;
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::gateway::GatewayConfig;
use deepwatch_core::config::{Path, Problems};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid gateway config:\n{0}")]
    Invalid(Problems),
    #[error("gateway.pools: at least one pool with an upstream is needed")]
    NoPools,
    #[error("cannot open {what} {path}: {source}")]
    File { what: &'static str, path: String, source: std::io::Error },
    #[error("cannot bind {what} {addr}: {source}")]
    Bind { what: &'static str, addr: String, source: std::io::Error },
}

pub struct Shared {
    pub cfg: GatewayConfig,
    pub metrics: Arc<GatewayMetrics>,
    pub labels: LabelBounds,
    pub api_keys: HashMap<String, String>,
    /// Keys allowed to pin a pool or model version (`proxy::pin`).
    pub pin_keys: HashSet<String>,
    pub pools: Arc<Pools>,
    pub rollouts: Arc<Rollouts>,
    pub scanner: Scanner,
    pub faults: Faults,
    pub degrade: Degrade,
    pub events: Arc<EventLog>,
    pub reqlog: Option<RequestLog>,
    /// Client of the admin runtime (probes); proxy workers use their thread's own.
    pub client: HttpClient,
    pub connect_timeout: Duration,
    pub clock: SharedClock,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive: Option<Duration>,
}

impl Shared {
    /// Validates the config and builds the state. Needs a tokio runtime (the request log
    /// writer is a task).
    pub fn build(cfg: GatewayConfig, clock: SharedClock) -> Result<Arc<Shared>, BuildError> {
        let mut problems = Problems::default();
        cfg.validate(&Path::root("gateway"), &mut problems);
        if !problems.is_empty() {
            return Err(BuildError::Invalid(problems));
        }
        if !cfg.pools.iter().any(|p| !p.upstreams.is_empty()) {
            return Err(BuildError::NoPools);
        }
        let metrics = GatewayMetrics::new();
        let events = Arc::new(
            EventLog::new(&cfg.events_path, metrics.clone(), clock.clone()).map_err(|source| {
                BuildError::File { what: "event log", path: cfg.events_path.clone(), source }
            })?,
        );
        let tenants: HashSet<String> = if cfg.tenants.is_empty() {
            cfg.api_keys.values().cloned().collect()
        } else {
            cfg.tenants.iter().cloned().collect()
        };
        let mut tenants = tenants;
        tenants.insert(crate::proxy::ANONYMOUS.to_string());
        let pools =
            Arc::new(Pools::new(&cfg.pools, metrics.clone(), events.clone(), clock.clone()));
        let reqlog = if cfg.request_log.path.is_empty() {
            None
        } else {
            Some(RequestLog::open(&cfg.request_log.path).map_err(|source| BuildError::File {
                what: "request log",
                path: cfg.request_log.path.clone(),
                source,
            })?)
        };
        crate::util::seed(clock.unix_millis() as u64 ^ u64::from(std::process::id()));
        let shared = Shared {
            labels: LabelBounds::new(tenants, &cfg.models, cfg.max_model_labels),
            api_keys: cfg.api_keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            pin_keys: cfg.pin_keys.iter().cloned().collect(),
            rollouts: Rollouts::new(
                cfg.rollout.clone(),
                pools.clone(),
                events.clone(),
                metrics.clone(),
                clock.clone(),
            ),
            scanner: Scanner::new(&cfg.scanner),
            faults: Faults::new(cfg.faults.enabled, cfg.faults.rules.clone()),
            degrade: Degrade::new(metrics.clone()),
            client: client::build(Duration::from_millis(cfg.upstream_connect_timeout_ms)),
            connect_timeout: Duration::from_millis(cfg.upstream_connect_timeout_ms),
            header_timeout: Duration::from_millis(cfg.upstream_header_timeout_ms),
            idle_timeout: Duration::from_millis(cfg.upstream_idle_timeout_ms),
            keepalive: (cfg.keepalive_interval_ms > 0)
                .then(|| Duration::from_millis(cfg.keepalive_interval_ms)),
            pools,
            events,
            reqlog,
            metrics,
            clock,
            cfg,
        };
        Ok(Arc::new(shared))
    }
}
