//! Self-healing. Policies map alerts (by label matchers) to named actions; every action kind is
//! one implementation of `Action` (one file each) built from its `[[remediation.actions]]`
//! entry. The `Remediator` (engine.rs) runs them with preconditions, cooldowns, rate limits
//! and dry-run, writing each to the append-only audit log before it runs and after.

pub mod audit;
pub mod degrade;
pub mod engine;
pub mod failover;
#[cfg(feature = "k8s")]
pub mod k8s;
pub mod limits;
pub mod policy;
pub mod restart_hook;
pub mod rollback;
pub mod scale;
pub mod scaling;

pub use engine::Remediator;

use crate::webhook::Alert;
use deepwatch_core::api::admin::{AdminError, GatewayAdmin};
use deepwatch_core::config::remediation::{ActionConfig, ActionKind, RemediationConfig};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// What an action is acting on: the alert and the policy that chose the action.
#[derive(Debug, Clone)]
pub struct ActionContext {
    pub alert: Alert,
    pub policy: String,
    /// Human-readable reason passed to the gateway ("model_unavailable: DeepwatchModelUnavailable").
    pub reason: String,
}

impl ActionContext {
    pub fn new(alert: &Alert, policy: &str) -> ActionContext {
        let summary = alert.annotations.get("summary").map(String::as_str).unwrap_or("");
        let mut reason = format!("deepwatch policy {policy}: alert {}", alert.alertname());
        if !summary.is_empty() {
            reason.push_str(": ");
            reason.push_str(summary);
        }
        ActionContext { alert: alert.clone(), policy: policy.to_string(), reason }
    }
}

/// What an action would do now, decided without changing anything. It is written into the
/// audit intent, so the log says exactly what was attempted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub summary: String,
    /// The request(s) the action will send, for the audit log.
    #[serde(default)]
    pub request: serde_json::Value,
}

/// Why an action will not run, or could not decide.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The action does not apply now (already failed over, no spare capacity, no rollout).
    #[error("precondition not met: {0}")]
    Precondition(String),
    /// Checking failed (gateway unreachable, unexpected answer).
    #[error(transparent)]
    Failed(#[from] ActionError),
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("{0}")]
    Failed(String),
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}

/// One kind of remediation.
pub trait Action: Send + Sync {
    /// The configured name (the `action` label and audit field).
    fn name(&self) -> &str;
    fn kind(&self) -> ActionKind;
    /// Read-only: check preconditions and decide what to do.
    fn plan<'a>(&'a self, ctx: &'a ActionContext) -> BoxFuture<'a, Result<Plan, PlanError>>;
    /// Carry out a plan; the result is a short description for the audit log.
    fn execute<'a>(
        &'a self,
        ctx: &'a ActionContext,
        plan: &'a Plan,
    ) -> BoxFuture<'a, Result<String, ActionError>>;
    /// Undo the action when its alert resolves; `None` for actions that cannot be undone.
    fn revert<'a>(
        &'a self,
        _ctx: &'a ActionContext,
    ) -> Option<BoxFuture<'a, Result<String, ActionError>>> {
        None
    }
}

/// Current load per replica (0-1) from a PromQL query; the daemon backs it with Prometheus.
pub trait LoadSource: Send + Sync {
    fn load<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>>;
}

/// What actions need from outside: the gateway admin client and, for scaling, a load source.
#[derive(Clone)]
pub struct Deps {
    pub admin: Arc<GatewayAdmin>,
    pub load: Option<Arc<dyn LoadSource>>,
    pub scaling: scaling::ScalingRules,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("remediation.actions[{index}] ({name}): {message}")]
    Action { index: usize, name: String, message: String },
    #[error("remediation.gateway: {0}")]
    Admin(#[from] AdminError),
    #[error("remediation.gateway.token_file: cannot read {path}: {message}")]
    TokenFile { path: String, message: String },
}

/// The action registry: one line per kind.
pub fn build_action(config: &ActionConfig, deps: &Deps) -> Result<Arc<dyn Action>, String> {
    Ok(match config.kind {
        ActionKind::Failover => Arc::new(failover::Failover::new(config, deps)?),
        ActionKind::Scale => scale::build(config, deps)?,
        ActionKind::Degrade => Arc::new(degrade::Degrade::new(config, deps)?),
        ActionKind::Rollback => Arc::new(rollback::Rollback::new(config, deps)),
        ActionKind::RestartHook => Arc::new(restart_hook::RestartHook::new(config)?),
    })
}

/// Builds every configured action by name.
pub fn build_actions(
    config: &RemediationConfig,
    deps: &Deps,
) -> Result<HashMap<String, Arc<dyn Action>>, BuildError> {
    let mut out = HashMap::new();
    for (index, a) in config.actions.iter().enumerate() {
        let action = build_action(a, deps).map_err(|message| BuildError::Action {
            index,
            name: a.name.clone(),
            message,
        })?;
        out.insert(a.name.clone(), action);
    }
    Ok(out)
}

/// The gateway admin token: `token_file` (trimmed) wins over `token`.
pub fn admin_token(config: &RemediationConfig) -> Result<String, BuildError> {
    let g = &config.gateway;
    if g.token_file.is_empty() {
        return Ok(g.token.clone());
    }
    std::fs::read_to_string(&g.token_file)
        .map(|t| t.trim().to_string())
        .map_err(|e| BuildError::TokenFile { path: g.token_file.clone(), message: e.to_string() })
}
