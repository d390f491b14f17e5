//! Named chaos scenarios: a fault (or a traffic surge) on a timeline, optionally with load
//! running through it. Timeline: load starts; after `lead` the fault goes on in every listed
//! simulator; after `hold` it is reverted (only the fields it set); load goes on for another
//! `lead`, so alerts can fire and resolve within one run. `surge` injects no fault: it runs the
//! load generator's surge profile (the base rate times `factor` during the hold).

use super::{ChaosError, SimAdmin};
use crate::load::{self, LoadOptions, Mode, Profile, Report};
use crate::sim::Faults;
use serde_json::{json, Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    /// Slow prefill and decode: TTFT and per-token latency added.
    LatencySpike { ttft_ms: u64, per_token_ms: u64 },
    /// A share of requests fail with `status`.
    ErrorBurst { rate: f64, status: u16 },
    /// Resident memory grows; with `release` the revert frees it (as a restart would).
    MemoryLeak { mb_per_min: f64, release: bool },
    /// The engine refuses connections.
    Outage,
    /// Traffic multiplied by `factor` (needs load).
    Surge { factor: f64 },
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::LatencySpike { .. } => "latency-spike",
            Scenario::ErrorBurst { .. } => "error-burst",
            Scenario::MemoryLeak { .. } => "memory-leak",
            Scenario::Outage => "outage",
            Scenario::Surge { .. } => "surge",
        }
    }

    /// The simulator fault fields this scenario sets (none for a surge).
    pub fn patch(&self) -> Option<Map<String, Value>> {
        let value = match self {
            Scenario::LatencySpike { ttft_ms, per_token_ms } => {
                json!({"ttft_added_ms": ttft_ms, "per_token_added_ms": per_token_ms})
            }
            Scenario::ErrorBurst { rate, status } => {
                json!({"error_rate": rate, "error_status": status})
            }
            Scenario::MemoryLeak { mb_per_min, .. } => json!({"leak_mb_per_min": mb_per_min}),
            Scenario::Outage => json!({"down": true}),
            Scenario::Surge { .. } => return None,
        };
        match value {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }
}

/// A scenario with its targets and timeline.
pub struct ScenarioRun {
    pub scenario: Scenario,
    pub sims: Vec<SimAdmin>,
    /// How long the fault (or surge) lasts.
    pub hold: Duration,
    /// Load before and after the fault.
    pub lead: Duration,
    /// Load to run through the scenario; its duration and (for a surge) profile are set here.
    pub load: Option<LoadOptions>,
}

/// What happened.
#[derive(Debug)]
pub struct ScenarioOutcome {
    /// Each simulator's faults while the scenario held.
    pub during: Vec<Faults>,
    /// Each simulator's faults after the revert.
    pub after: Vec<Faults>,
    pub load: Option<Report>,
}

impl ScenarioRun {
    /// Runs the timeline; `interrupted` (such as Ctrl-C) ends the hold early, and the fault is
    /// reverted all the same.
    pub async fn run(
        mut self,
        interrupted: impl Future<Output = ()>,
    ) -> Result<ScenarioOutcome, ChaosError> {
        if let Scenario::Surge { factor } = self.scenario {
            let Some(options) = self.load.as_mut() else {
                return Err(ChaosError::Load(load::LoadError::Options(
                    "the surge scenario needs a load target".into(),
                )));
            };
            let Mode::Open { rate, .. } = options.mode else {
                return Err(ChaosError::Load(load::LoadError::Options(
                    "the surge scenario needs an open-loop rate".into(),
                )));
            };
            options.mode = Mode::Open {
                rate,
                profile: Profile::Surge {
                    factor,
                    at_secs: self.lead.as_secs_f64(),
                    for_secs: self.hold.as_secs_f64(),
                },
            };
        }
        let load_task = self.load.take().map(|mut options| {
            options.duration = self.lead + self.hold + self.lead;
            tokio::spawn(load::run(options, Arc::new(load::Silent)))
        });

        let patch = self.scenario.patch();
        let mut during = Vec::new();
        let mut after = Vec::new();
        if let Some(patch) = &patch {
            tokio::time::sleep(self.lead).await;
            let mut before = Vec::new();
            for sim in &self.sims {
                before.push(sim.faults().await?.to_map());
                during.push(sim.set(patch).await?);
                tracing::info!(sim = %sim.url(), scenario = self.scenario.name(), "fault on");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.hold) => {}
                _ = interrupted => tracing::info!("interrupted, reverting"),
            }
            for (sim, before) in self.sims.iter().zip(before) {
                let reverted = match self.scenario {
                    Scenario::MemoryLeak { release: true, .. } => sim.reset().await?,
                    _ => {
                        let revert: Map<String, Value> = patch
                            .keys()
                            .filter_map(|k| before.get(k).map(|v| (k.clone(), v.clone())))
                            .collect();
                        sim.set(&revert).await?
                    }
                };
                tracing::info!(sim = %sim.url(), scenario = self.scenario.name(), "fault off");
                after.push(reverted);
            }
        }
        let load = match load_task {
            Some(task) => match task.await {
                Ok(report) => Some(report?),
                Err(e) => {
                    return Err(ChaosError::Load(load::LoadError::Options(format!(
                        "load task failed: {e}"
                    ))))
                }
            },
            None => None,
        };
        Ok(ScenarioOutcome { during, after, load })
    }
}
