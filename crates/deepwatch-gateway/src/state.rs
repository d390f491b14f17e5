//! The gateway's shared state, built once from the `[gateway]` config: metrics, label bounds,
//! tenants, pools, rollouts, scanner, faults, degradation, event and request logs, the
//! upstream client and the clock. Every handler and background task holds an `Arc<Shared>`.

use crate::degrade::Degrade;
use crate::events::EventLog;
use crate::faults::Faults;
use crate::health::probe::Prober;
use crate::metrics::labels::LimitKindIds;
use crate::metrics::{GatewayMetrics, LabelBounds};
use crate::pools::{PoolSetup, Pools};
use crate::reqlog::RequestLog;
use crate::rollout::Rollouts;
use crate::scanner::Scanner;
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::gateway::{first_token_deadline, GatewayConfig, PoolConfig};
use deepwatch_core::config::rules::Thresholds;
use deepwatch_core::config::{Path, Problems};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid gateway config:\n{0}")]
    Invalid(Problems),
    #[error("{field}: {reason}")]
    Key { field: String, reason: String },
    /// A pool's `tls` files could not be read or parsed.
    #[error("{field}: {reason}")]
    Tls { field: String, reason: String },
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
    /// Active health probes (one task per pool, started by the server).
    pub prober: Arc<Prober>,
    pub connect_timeout: Duration,
    pub clock: SharedClock,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive: Option<Duration>,
    /// Idle upstream connections are not reused after this long.
    pub upstream_keepalive: Duration,
}

/// The pools with their first-token deadline resolved (pool, else gateway, else derived from
/// the default TTFT critical threshold).
pub fn resolved_pools(cfg: &GatewayConfig) -> Result<Vec<PoolSetup>, BuildError> {
    let derived = first_token_deadline(Thresholds::default().ttft.critical);
    let mut out = Vec::new();
    for (i, p) in cfg.pools.iter().enumerate() {
        let config = PoolConfig {
            first_token_timeout: Some(cfg.first_token_timeout(p, derived)),
            api_key: pool_key(p, i)?,
            ..p.clone()
        };
        out.push(PoolSetup::new(config).map_err(|e| BuildError::Tls {
            field: format!("gateway.pools[{i}].tls"),
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

/// The pool's upstream key from `api_key`, `api_key_env` or `api_key_file`. Errors name the
/// field and the variable or file, never the key.
fn pool_key(p: &PoolConfig, i: usize) -> Result<String, BuildError> {
    let field = |name: &str| format!("gateway.pools[{i}].{name}");
    let key = if !p.api_key_env.is_empty() {
        std::env::var(&p.api_key_env).map_err(|_| BuildError::Key {
            field: field("api_key_env"),
            reason: format!("environment variable {} is not set", p.api_key_env),
        })?
    } else if !p.api_key_file.is_empty() {
        std::fs::read_to_string(&p.api_key_file)
            .map_err(|e| BuildError::Key {
                field: field("api_key_file"),
                reason: format!("cannot read {}: {e}", p.api_key_file),
            })?
            .trim_end()
            .to_string()
    } else {
        return Ok(p.api_key.clone());
    };
    let sendable = !key.is_empty() && http::HeaderValue::from_str(&format!("Bearer {key}")).is_ok();
    if !sendable || key.contains(char::is_whitespace) {
        let name = if p.api_key_env.is_empty() { "api_key_file" } else { "api_key_env" };
        return Err(BuildError::Key {
            field: field(name),
            reason: "the key is empty or cannot be sent as a bearer token".into(),
        });
    }
    Ok(key)
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
        let files = crate::limits::raise_open_files();
        for (kind, limit) in [("soft", files.soft), ("hard", files.hard)] {
            // Unlimited shows as +Inf.
            let value = limit.map_or(f64::INFINITY, |n| n as f64);
            metrics.open_files_limit.set(&LimitKindIds { kind }, value);
        }
        metrics.set_prices(cfg.prices.clone());
        metrics.set_budgets(&cfg.daily_budgets);
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
        tenants.insert(crate::metrics::ANONYMOUS.to_string());
        let pools = Arc::new(Pools::new(
            &resolved_pools(&cfg)?,
            metrics.clone(),
            events.clone(),
            clock.clone(),
        ));
        let reqlog = if cfg.request_log.path.is_empty() {
            None
        } else {
            let lines = &metrics.request_log_lines;
            let counters = crate::reqlog::LineCounters {
                written: lines.with(&["written"]),
                dropped: lines.with(&["dropped"]),
                failed: lines.with(&["failed"]),
            };
            Some(RequestLog::open(&cfg.request_log.path, counters).map_err(|source| {
                BuildError::File { what: "request log", path: cfg.request_log.path.clone(), source }
            })?)
        };
        crate::util::seed(clock.unix_millis() as u64 ^ u64::from(std::process::id()));
        let shared = Shared {
            labels: LabelBounds::new(tenants, &cfg.models, cfg.max_model_labels, clock.now()),
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
            prober: Arc::new(Prober::new(
                cfg.upstream_connect_timeout,
                cfg.upstream_keepalive,
                pools.clone(),
                clock.clone(),
            )),
            connect_timeout: cfg.upstream_connect_timeout,
            header_timeout: cfg.upstream_header_timeout,
            idle_timeout: cfg.upstream_idle_timeout,
            upstream_keepalive: cfg.upstream_keepalive,
            keepalive: (!cfg.keepalive_interval.is_zero()).then_some(cfg.keepalive_interval),
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
