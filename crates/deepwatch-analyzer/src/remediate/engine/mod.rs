//! The remediation engine: for an alert, finds the matching policies and runs their actions
//! one at a time through the same gate: not already attempted for this alert (audit log),
//! cooldown and rate limits, a read-only plan (preconditions), an fsynced `intent`, the action
//! itself under a timeout (or nothing, in dry-run), a `result`. Every outcome is counted in
//! `deepwatch_remediation_actions_total{action,outcome}`.

use super::audit::{AuditLog, Op, Record, RecordKind};
use super::limits::Limits;
use super::policy::Policy;
use super::{Action, ActionContext, ActionError, Plan, PlanError};
use crate::webhook::{Alert, AlertKey, AlertStatus};
use deepwatch_core::catalog::analyzer::REMEDIATION_ACTIONS;
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::remediation::RemediationConfig;
use deepwatch_core::expo::MetricSink;
use deepwatch_core::metrics::{CounterVec, Encode};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// What happened to one action for one alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionReport {
    pub action: String,
    pub policy: String,
    /// ok, failed, dry_run, skipped_cooldown, skipped_rate_limit, skipped_precondition,
    /// reverted, revert_failed, or already_attempted (not counted: a duplicate).
    pub outcome: &'static str,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("remediation.policies: {0}")]
    Policy(String),
    #[error("remediation.policies {policy:?} names action {action:?}, which is not built")]
    MissingAction { policy: String, action: String },
    #[error("audit log {path}: {source}")]
    Audit { path: String, source: std::io::Error },
}

struct Entry {
    action: Arc<dyn Action>,
    dry_run: bool,
}

pub struct Remediator {
    enabled: bool,
    dry_run: bool,
    timeout: Duration,
    policies: Vec<Policy>,
    actions: HashMap<String, Entry>,
    limits: parking_lot::Mutex<Limits>,
    audit: AuditLog,
    clock: SharedClock,
    outcomes: CounterVec,
    /// One alert at a time: limits and "already failed over" checks assume it.
    serial: tokio::sync::Mutex<()>,
}

impl Remediator {
    /// Builds the engine over already-built actions and opens (and replays) the audit log.
    pub fn new(
        config: &RemediationConfig,
        actions: HashMap<String, Arc<dyn Action>>,
        clock: SharedClock,
    ) -> Result<Remediator, EngineError> {
        let mut policies = Vec::new();
        for p in &config.policies {
            let policy = Policy::from_config(p).map_err(EngineError::Policy)?;
            for a in &policy.actions {
                if !actions.contains_key(a) {
                    return Err(EngineError::MissingAction {
                        policy: policy.name.clone(),
                        action: a.clone(),
                    });
                }
            }
            policies.push(policy);
        }
        let path = config.audit_log_path();
        let audit = AuditLog::open(&path, clock.clone())
            .map_err(|source| EngineError::Audit { path: path.display().to_string(), source })?;
        let mut limits = Limits::new(config.max_actions_per_hour);
        let mut entries = HashMap::new();
        let outcomes = CounterVec::new(&REMEDIATION_ACTIONS);
        for a in &config.actions {
            let Some(action) = actions.get(&a.name) else { continue };
            limits.add_action(&a.name, a.cooldown, a.max_per_hour);
            entries.insert(a.name.clone(), Entry { action: action.clone(), dry_run: a.dry_run });
            // Export every action's main outcomes from the start, so rates work from zero.
            for outcome in ["ok", "failed"] {
                outcomes.with(&[a.name.as_str(), outcome]);
            }
        }
        let now = clock.now();
        let now_ms = clock.unix_millis();
        for run in audit.history() {
            let age = Duration::from_millis((now_ms - run.unix_ms).max(0) as u64);
            limits.restore(&run.action, now, age);
        }
        Ok(Remediator {
            enabled: config.enabled,
            dry_run: config.dry_run,
            timeout: config.action_timeout,
            policies,
            actions: entries,
            limits: parking_lot::Mutex::new(limits),
            audit,
            clock,
            outcomes,
            serial: tokio::sync::Mutex::new(()),
        })
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    pub fn counter(&self) -> &CounterVec {
        &self.outcomes
    }

    /// Names of the policies an alert's labels match.
    pub fn matching(&self, alert: &Alert) -> Vec<&str> {
        self.policies.iter().filter(|p| p.matches(&alert.labels)).map(|p| p.name.as_str()).collect()
    }

    /// Runs (firing) or reverts (resolved) the actions of every matching policy.
    pub async fn handle(&self, alert: &Alert) -> Vec<ActionReport> {
        if !self.enabled {
            return Vec::new();
        }
        let _one_at_a_time = self.serial.lock().await;
        let mut reports = Vec::new();
        let mut done = HashSet::new();
        for policy in self.policies.iter().filter(|p| p.matches(&alert.labels)) {
            for name in &policy.actions {
                if !done.insert(name.as_str()) {
                    continue; // two policies naming the same action: once per alert
                }
                let Some(entry) = self.actions.get(name) else { continue };
                let report = match alert.status {
                    AlertStatus::Firing => self.run(entry, &policy.name, alert).await,
                    AlertStatus::Resolved if policy.revert_on_resolve => {
                        match self.revert(entry, &policy.name, alert).await {
                            Some(r) => r,
                            None => continue,
                        }
                    }
                    AlertStatus::Resolved => continue,
                };
                info!(
                    action = %report.action,
                    policy = %report.policy,
                    alertname = alert.alertname(),
                    outcome = report.outcome,
                    detail = %report.detail,
                    "remediation"
                );
                reports.push(report);
            }
        }
        reports
    }

    fn record(
        &self,
        kind: RecordKind,
        id: &str,
        op: Op,
        entry: &Entry,
        policy: &str,
        alert: &Alert,
    ) -> Record {
        let (_, unix_ms, ts) = self.audit.stamp();
        let key = alert.key();
        Record {
            ts,
            unix_ms,
            record: kind,
            id: id.to_string(),
            op,
            action: entry.action.name().to_string(),
            kind: entry.action.kind().as_str().to_string(),
            policy: policy.to_string(),
            alertname: alert.alertname().to_string(),
            fingerprint: key.fingerprint,
            status: key.status,
            starts_at: key.starts_at,
            dry_run: self.dry_run || entry.dry_run,
            plan: None,
            outcome: None,
            detail: None,
            duration_ms: None,
        }
    }

    fn finish(
        &self,
        entry: &Entry,
        policy: &str,
        outcome: &'static str,
        detail: String,
    ) -> ActionReport {
        self.outcomes.inc(&[entry.action.name(), outcome]);
        ActionReport {
            action: entry.action.name().to_string(),
            policy: policy.to_string(),
            outcome,
            detail,
        }
    }

    /// A `skipped` record: nothing ran.
    fn skip(
        &self,
        entry: &Entry,
        policy: &str,
        alert: &Alert,
        outcome: &'static str,
        detail: String,
    ) -> ActionReport {
        let mut r = self.record(RecordKind::Skipped, "", Op::Run, entry, policy, alert);
        r.outcome = Some(outcome.to_string());
        r.detail = Some(detail.clone());
        if let Err(e) = self.audit.append(&r) {
            warn!(error = %e, "audit log write failed for a skipped action");
        }
        self.finish(entry, policy, outcome, detail)
    }

    async fn run(&self, entry: &Entry, policy: &str, alert: &Alert) -> ActionReport {
        let name = entry.action.name();
        let key = alert.key();
        if self.audit.attempted(&key, name, Op::Run) {
            return ActionReport {
                action: name.to_string(),
                policy: policy.to_string(),
                outcome: "already_attempted",
                detail: format!("the audit log has this action for alert {key} already"),
            };
        }
        let now = self.clock.now();
        if let Err(held) = self.limits.lock().check(name, now) {
            return self.skip(entry, policy, alert, held.outcome(), held.describe());
        }
        let ctx = ActionContext::new(alert, policy);
        let plan = match tokio::time::timeout(self.timeout, entry.action.plan(&ctx)).await {
            Err(_) => Err(PlanError::Failed(ActionError::Timeout(self.timeout))),
            Ok(p) => p,
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(PlanError::Precondition(why)) => {
                return self.skip(entry, policy, alert, "skipped_precondition", why)
            }
            Err(PlanError::Failed(e)) => {
                let detail = format!("precondition check failed: {e}");
                return self.skip(entry, policy, alert, "failed", detail);
            }
        };
        let id = self.audit.stamp().0;
        let mut intent = self.record(RecordKind::Intent, &id, Op::Run, entry, policy, alert);
        intent.plan = Some(plan.clone());
        let dry_run = intent.dry_run;
        if let Err(e) = self.audit.append(&intent) {
            // Never act without a durable intent: a restart could not know it happened.
            let detail = format!("not run: cannot write the audit log: {e}");
            return self.finish(entry, policy, "failed", detail);
        }
        self.limits.lock().record(name, now);
        let started = self.clock.now();
        let (outcome, detail) = if dry_run {
            ("dry_run", format!("dry run: would {}", plan.summary))
        } else {
            match tokio::time::timeout(self.timeout, entry.action.execute(&ctx, &plan)).await {
                Ok(Ok(detail)) => ("ok", detail),
                Ok(Err(e)) => ("failed", e.to_string()),
                Err(_) => ("failed", ActionError::Timeout(self.timeout).to_string()),
            }
        };
        self.write_result(entry, policy, alert, &id, Op::Run, outcome, &detail, started);
        self.finish(entry, policy, outcome, detail)
    }

    async fn revert(&self, entry: &Entry, policy: &str, alert: &Alert) -> Option<ActionReport> {
        let name = entry.action.name();
        let firing = AlertKey { status: AlertStatus::Firing, ..alert.key() };
        if !self.audit.succeeded(&firing, name)
            || self.audit.attempted(&alert.key(), name, Op::Revert)
        {
            return None;
        }
        let ctx = ActionContext::new(alert, policy);
        let undo = entry.action.revert(&ctx)?;
        let id = self.audit.stamp().0;
        let mut intent = self.record(RecordKind::Intent, &id, Op::Revert, entry, policy, alert);
        intent.plan = Some(Plan {
            summary: format!("undo {name}: the alert resolved"),
            request: serde_json::Value::Null,
        });
        let dry_run = intent.dry_run;
        if let Err(e) = self.audit.append(&intent) {
            return Some(self.finish(
                entry,
                policy,
                "revert_failed",
                format!("not run: cannot write the audit log: {e}"),
            ));
        }
        let started = self.clock.now();
        let (outcome, detail) = if dry_run {
            drop(undo);
            ("dry_run", format!("dry run: would undo {name}"))
        } else {
            match tokio::time::timeout(self.timeout, undo).await {
                Ok(Ok(detail)) => ("reverted", detail),
                Ok(Err(e)) => ("revert_failed", e.to_string()),
                Err(_) => ("revert_failed", ActionError::Timeout(self.timeout).to_string()),
            }
        };
        self.write_result(entry, policy, alert, &id, Op::Revert, outcome, &detail, started);
        Some(self.finish(entry, policy, outcome, detail))
    }

    #[allow(clippy::too_many_arguments)]
    fn write_result(
        &self,
        entry: &Entry,
        policy: &str,
        alert: &Alert,
        id: &str,
        op: Op,
        outcome: &str,
        detail: &str,
        started: tokio::time::Instant,
    ) {
        let mut result = self.record(RecordKind::Result, id, op, entry, policy, alert);
        result.outcome = Some(outcome.to_string());
        result.detail = Some(detail.to_string());
        result.duration_ms =
            Some(self.clock.now().saturating_duration_since(started).as_millis() as u64);
        if let Err(e) = self.audit.append(&result) {
            warn!(error = %e, action = entry.action.name(), "audit log write failed for a result");
        }
    }
}

impl Encode for Remediator {
    fn encode(&self, sink: &mut MetricSink) {
        self.outcomes.encode(sink);
    }
}

#[cfg(test)]
mod tests;
