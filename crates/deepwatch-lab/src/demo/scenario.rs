//! The demo's faults and their schedule: after a warm-up each fault is injected into the
//! simulators through their admin API, held, removed, and the scenario waits until the alert
//! the fault is about has resolved before the next one.
//!
//! - `latency`: the blue pool's engine takes 3 s more to the first token. The request-latency
//!   alert fires (critical: phone webhook and analyzer), its warnings are inhibited, and it
//!   resolves only after the recovery hold once the fault is gone.
//! - `outage`: the blue and green engines stop accepting connections. No request succeeds, the
//!   P1 `ModelUnavailable` fires, the analyzer fails over to the cold standby pool and the
//!   model answers again; once the engines are back, the demo (as the operator) fails back.

use super::timeline::Timeline;
use crate::chaos::SimAdmin;
use deepwatch_core::api::admin::GatewayAdmin;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Latency,
    Outage,
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        match s.trim() {
            "latency" => Ok(Fault::Latency),
            "outage" => Ok(Fault::Outage),
            other => Err(format!("unknown fault {other:?} (one of: latency, outage)")),
        }
    }
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Latency => "latency",
            Fault::Outage => "outage",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Fault::Latency => "blue engine +3000 ms to first token",
            Fault::Outage => "blue and green engines refuse connections",
        }
    }

    /// The alert this fault is about; the scenario waits for it to fire and resolve.
    pub fn key_alert(self) -> &'static str {
        match self {
            Fault::Latency => "RequestLatencyCritical",
            Fault::Outage => "ModelUnavailable",
        }
    }

    fn patch(self) -> Map<String, Value> {
        let v = match self {
            Fault::Latency => json!({"ttft_added_ms": 3000}),
            Fault::Outage => json!({"down": true}),
        };
        v.as_object().cloned().unwrap_or_default()
    }
}

/// The admin endpoints the scenario drives.
pub struct Targets {
    pub blue: SimAdmin,
    pub green: SimAdmin,
    pub gateway_admin: String,
    pub gateway_token: String,
    pub prometheus: String,
}

pub struct Schedule {
    pub faults: Vec<Fault>,
    pub warmup: Duration,
    pub hold: Duration,
    /// Longest wait for the alerts of one fault to resolve after it is removed.
    pub settle: Duration,
}

/// Runs the schedule; faults still in force when this future is dropped are removed by
/// `revert_all`.
pub async fn run(schedule: Schedule, targets: &Targets, timeline: Timeline) {
    if schedule.faults.is_empty() {
        timeline.info("no fault scheduled (--no-fault)");
        return;
    }
    timeline
        .info(format!("warming up for {}s: baseline traffic, no fault", schedule.warmup.as_secs()));
    tokio::time::sleep(schedule.warmup).await;
    for fault in &schedule.faults {
        let sims: Vec<&SimAdmin> = match fault {
            Fault::Latency => vec![&targets.blue],
            Fault::Outage => vec![&targets.blue, &targets.green],
        };
        let mut injected = true;
        for sim in &sims {
            if let Err(e) = sim.set(&fault.patch()).await {
                timeline.info(format!("cannot inject {}: {e}", fault.name()));
                injected = false;
            }
        }
        if !injected {
            continue;
        }
        timeline.emit(
            "fault",
            format!("fault injected: {} ({})", fault.name(), fault.describe()),
            json!({"fault": fault.name(), "state": "injected"}),
        );
        tokio::time::sleep(schedule.hold).await;
        for sim in &sims {
            let _ = sim.reset().await;
        }
        timeline.emit(
            "fault",
            format!("fault removed: {}", fault.name()),
            json!({"fault": fault.name(), "state": "removed"}),
        );
        if *fault == Fault::Outage {
            fail_back(targets, &timeline).await;
        }
        let removed_at = tokio::time::Instant::now();
        let key = fault.key_alert();
        loop {
            if let Some(active) = active_alerts(&targets.prometheus).await {
                if !active.contains(key) {
                    timeline.info(format!(
                        "{key} is not active any more, {:.0}s after the fault was removed",
                        removed_at.elapsed().as_secs_f64()
                    ));
                    break;
                }
            }
            if removed_at.elapsed() > schedule.settle {
                timeline.info(format!(
                    "{key} still active {}s after the fault was removed",
                    schedule.settle.as_secs()
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    timeline.emit("info", "scenario complete", json!({"scenario": "complete"}));
}

/// Removes every fault (best effort), for Ctrl-C in the middle of the scenario.
pub async fn revert_all(targets: &Targets) {
    let _ = targets.blue.reset().await;
    let _ = targets.green.reset().await;
}

/// The operator's failback after an outage: only when a failover is in force.
async fn fail_back(targets: &Targets, timeline: &Timeline) {
    let timeout = Duration::from_secs(10);
    let Ok(admin) = GatewayAdmin::new(&targets.gateway_admin, &targets.gateway_token, timeout)
    else {
        return;
    };
    match admin.pools().await {
        Ok(pools) if pools.failover.forced.is_some() => {}
        _ => return,
    }
    // Give the engines a moment to pass the gateway's health probes again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if admin.clear_failover().await.is_ok() {
        timeline.info(
            "operator: engines are back, failing back to normal routing (DELETE /admin/failover)",
        );
    }
}

/// Names of the alerts pending or firing now; `None` when Prometheus does not answer.
async fn active_alerts(prometheus: &str) -> Option<BTreeSet<String>> {
    let client = deepwatch_core::http::builder().build().ok()?;
    let resp = client.get(format!("{prometheus}/api/v1/alerts")).send().await.ok()?;
    let doc: Value = resp.json().await.ok()?;
    let alerts = doc["data"]["alerts"].as_array()?;
    Some(
        alerts.iter().filter_map(|a| a["labels"]["alertname"].as_str().map(String::from)).collect(),
    )
}
