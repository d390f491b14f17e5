//! Getting metrics to a Pushgateway (`deepwatch_core::api::pushgateway`, the one client). Push
//! mode, for nodes Prometheus cannot reach (behind NAT, short-lived): every interval the agent
//! renders its whole `/metrics` and PUTs it to the group `job/<job>/instance/<instance>`,
//! replacing the previous push; outcomes are counted in `deepwatch_agent_pushes_total{outcome}`,
//! which the next push carries. `remote_write` sends timestamped samples as Prometheus
//! remote_write to VictoriaMetrics or Prometheus' receiver instead, buffering (bounded) and
//! retrying while the receiver is down. `batch` is `deepwatch push`, for batch jobs.

pub mod batch;
pub mod remote_write;

pub use remote_write::RemoteWriter;

use crate::collector::CollectorSet;
use deepwatch_core::api::pushgateway::{PushError, Pushgateway};
use deepwatch_core::catalog::agent as cat;
use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::agent::{AgentPushConfig, PushProtocol};
use deepwatch_core::expo::{Format, MetricSink};
use deepwatch_core::metrics::{CounterVec, Encode};
use std::sync::Arc;
use std::time::Duration;

pub struct Pusher {
    gateway: Pushgateway,
    interval: Duration,
    outcomes: Arc<CounterVec>,
}

/// This host's name, the default `instance`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The `instance` pushed: the configured one, else this host's name.
pub fn instance(config: &AgentPushConfig) -> String {
    if config.instance.is_empty() {
        hostname()
    } else {
        config.instance.clone()
    }
}

/// Starts push mode as configured; the tasks run until aborted.
pub fn start(
    config: &AgentPushConfig,
    collectors: Arc<CollectorSet>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    match config.protocol {
        PushProtocol::Pushgateway => {
            let pusher = Pusher::new(config).map_err(|e| e.to_string())?;
            tracing::info!(url = %deepwatch_core::http::redact_urls(pusher.url()), "push mode on (pushgateway)");
            Ok(vec![pusher.spawn(collectors)])
        }
        PushProtocol::RemoteWrite => {
            let writer =
                RemoteWriter::new(config, TokioClock::shared()).map_err(|e| e.to_string())?;
            tracing::info!(url = %deepwatch_core::http::redact_urls(&config.url), "push mode on (remote_write)");
            Ok(Arc::new(writer).spawn(collectors))
        }
    }
}

impl Pusher {
    pub fn new(config: &AgentPushConfig) -> Result<Pusher, PushError> {
        let instance = instance(config);
        let mut grouping = vec![("job", config.job.as_str()), ("instance", instance.as_str())];
        grouping.extend(config.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let timeout = config.timeout;
        let gateway = Pushgateway::new(&config.url, &grouping, timeout)?;
        let outcomes = Arc::new(CounterVec::new(&cat::AGENT_PUSHES));
        outcomes.with(&["ok"]);
        outcomes.with(&["error"]);
        Ok(Pusher { gateway, interval: config.interval.max(Duration::from_millis(1)), outcomes })
    }

    pub fn url(&self) -> &str {
        self.gateway.url()
    }

    /// Renders every collector and PUTs the result.
    pub async fn push_once(&self, collectors: &Arc<CollectorSet>) -> Result<(), PushError> {
        let mut body = collectors.scrape(Format::Text004).await;
        let mut own = MetricSink::new(Format::Text004);
        self.outcomes.encode(&mut own);
        body.push_str(&own.render());
        let outcome = self.gateway.replace_group(body).await;
        self.outcomes.inc(&[if outcome.is_ok() { "ok" } else { "error" }]);
        outcome
    }

    /// Pushes every interval until the task is aborted; logs failures when they start and stop.
    pub fn spawn(self, collectors: Arc<CollectorSet>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                match self.push_once(&collectors).await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!(url = %deepwatch_core::http::redact_urls(self.url()), "push recovered");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "push failed");
                    }
                    Err(e) => tracing::debug!(error = %e, "push failed"),
                }
            }
        })
    }
}
