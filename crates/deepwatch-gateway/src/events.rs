//! The deploy event log: rollout start/step/rollback/promote, failover and failback, upstream
//! changes. Each event is counted in `deepwatch_deploy_events_total{pool,event}` (Grafana
//! annotations use `changes()` on it), stamps `deepwatch_deploy_last_event_timestamp_seconds`,
//! is kept in memory for `GET /admin/events` and appended to the JSON-lines file if configured.

use crate::metrics::labels::PoolEventIds;
use crate::metrics::GatewayMetrics;
use crate::util::rfc3339;
pub use deepwatch_core::api::admin::Event;
use deepwatch_core::clock::SharedClock;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

const KEEP: usize = 1000;

pub struct EventLog {
    events: Mutex<VecDeque<Event>>,
    file: Option<Mutex<std::fs::File>>,
    metrics: Arc<GatewayMetrics>,
    clock: SharedClock,
}

impl EventLog {
    pub fn new(
        path: &str,
        metrics: Arc<GatewayMetrics>,
        clock: SharedClock,
    ) -> std::io::Result<EventLog> {
        let file = if path.is_empty() {
            None
        } else {
            Some(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?))
        };
        Ok(EventLog { events: Mutex::new(VecDeque::new()), file, metrics, clock })
    }

    pub fn record(&self, event: &str, pool: &str, detail: impl Into<String>) {
        let e = Event {
            ts: rfc3339(self.clock.wall()),
            event: event.to_string(),
            pool: pool.to_string(),
            detail: detail.into(),
        };
        tracing::info!(event, pool, detail = %e.detail, "deploy event");
        self.metrics.deploy_events.inc(&PoolEventIds { pool, event });
        self.metrics
            .deploy_last_event
            .set(&PoolEventIds { pool, event }, self.clock.unix_seconds());
        if let Some(file) = &self.file {
            if let Ok(mut line) = serde_json::to_vec(&e) {
                line.push(b'\n');
                if let Err(err) = file.lock().write_all(&line) {
                    tracing::warn!(error = %err, "event log write failed");
                }
            }
        }
        let mut events = self.events.lock();
        if events.len() == KEEP {
            events.pop_front();
        }
        events.push_back(e);
    }

    /// The last `limit` events, oldest first.
    pub fn last(&self, limit: usize) -> Vec<Event> {
        let events = self.events.lock();
        events.iter().skip(events.len().saturating_sub(limit)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepwatch_core::clock::{system_time_from_unix, TokioClock};

    #[tokio::test]
    async fn events_are_counted_kept_and_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let metrics = GatewayMetrics::new();
        let clock = Arc::new(TokioClock::anchored_at(system_time_from_unix(1_700_000_000.0)));
        let log = EventLog::new(path.to_str().unwrap(), metrics.clone(), clock).unwrap();
        log.record("start", "green", "rollout 1");
        log.record("rollback", "green", "ttft");
        assert_eq!(
            metrics.deploy_events.get(&PoolEventIds { pool: "green", event: "rollback" }),
            1.0
        );
        assert!(
            metrics.deploy_last_event.get(&PoolEventIds { pool: "green", event: "start" })
                >= 1_700_000_000.0
        );
        assert_eq!(log.last(1)[0].event, "rollback");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["event"], "start");
        assert_eq!(first["pool"], "green");
    }
}
