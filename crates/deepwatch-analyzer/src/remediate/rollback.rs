//! A failing canary: force the running rollout back (`POST /admin/rollouts/rollback`). The
//! gateway already rolls back on its own analysis; this covers alerts it cannot see (probe
//! accuracy, drift, anything Prometheus judges).

use super::{Action, ActionContext, ActionError, Deps, Plan, PlanError};
use deepwatch_core::api::admin::{GatewayAdmin, RolloutStatus};
use deepwatch_core::config::remediation::{ActionConfig, ActionKind};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::json;
use std::sync::Arc;

pub struct Rollback {
    name: String,
    admin: Arc<GatewayAdmin>,
}

impl Rollback {
    pub fn new(config: &ActionConfig, deps: &Deps) -> Rollback {
        Rollback { name: config.name.clone(), admin: deps.admin.clone() }
    }

    async fn plan_inner(&self, ctx: &ActionContext) -> Result<Plan, PlanError> {
        let doc = self.admin.rollouts().await.map_err(ActionError::from)?;
        let Some(rollout) = doc.current.filter(|r| r.status == RolloutStatus::Running) else {
            return Err(PlanError::Precondition("no rollout is running".to_string()));
        };
        // An alert naming a pool must be about this rollout's canary.
        let pool = ctx.alert.label("pool");
        if !pool.is_empty() && pool != rollout.canary {
            return Err(PlanError::Precondition(format!(
                "the alert is about pool {pool:?}, the running rollout's canary is {:?}",
                rollout.canary
            )));
        }
        Ok(Plan {
            summary: format!(
                "roll back rollout {} (canary {} at {} %, stable {})",
                rollout.id, rollout.canary, rollout.weight, rollout.stable
            ),
            request: json!({"method": "POST", "path": "/admin/rollouts/rollback",
                            "body": {"reason": ctx.reason}}),
        })
    }
}

impl Action for Rollback {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ActionKind {
        ActionKind::Rollback
    }

    fn plan<'a>(&'a self, ctx: &'a ActionContext) -> BoxFuture<'a, Result<Plan, PlanError>> {
        self.plan_inner(ctx).boxed()
    }

    fn execute<'a>(
        &'a self,
        ctx: &'a ActionContext,
        _plan: &'a Plan,
    ) -> BoxFuture<'a, Result<String, ActionError>> {
        async move {
            let r = self.admin.rollback(&ctx.reason).await?;
            Ok(format!("rollout {} of {} is now {}", r.id, r.canary, r.status))
        }
        .boxed()
    }
}
