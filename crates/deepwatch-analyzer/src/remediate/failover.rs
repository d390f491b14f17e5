//! P1 "model unavailable": send all traffic to the standby pool through the gateway admin API
//! (`POST /admin/failover`); undone with `DELETE /admin/failover` when the alert resolves and
//! the policy says so.

use super::{Action, ActionContext, ActionError, Deps, Plan, PlanError};
use deepwatch_core::api::admin::GatewayAdmin;
use deepwatch_core::config::remediation::{ActionConfig, ActionKind};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::json;
use std::sync::Arc;

pub struct Failover {
    name: String,
    pool: String,
    admin: Arc<GatewayAdmin>,
}

impl Failover {
    pub fn new(config: &ActionConfig, deps: &Deps) -> Result<Failover, String> {
        let pool = config.pool.clone().filter(|p| !p.is_empty()).ok_or("needs a pool")?;
        Ok(Failover { name: config.name.clone(), pool, admin: deps.admin.clone() })
    }

    async fn plan_inner(&self, ctx: &ActionContext) -> Result<Plan, PlanError> {
        let doc = self.admin.pools().await.map_err(ActionError::from)?;
        let Some(pool) = doc.pools.iter().find(|p| p.name == self.pool) else {
            return Err(PlanError::Precondition(format!(
                "the gateway has no pool {:?} (pools: {})",
                self.pool,
                doc.pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        if doc.failover.forced.as_ref().is_some_and(|f| f.pool == self.pool) {
            return Err(PlanError::Precondition(format!(
                "traffic is already failed over to {:?}",
                self.pool
            )));
        }
        if pool.healthy_upstreams() == 0 {
            return Err(PlanError::Precondition(format!(
                "pool {:?} has no healthy upstream to fail over to",
                self.pool
            )));
        }
        Ok(Plan {
            summary: format!(
                "fail over all traffic to pool {} ({} healthy upstreams)",
                self.pool,
                pool.healthy_upstreams()
            ),
            request: json!({"method": "POST", "path": "/admin/failover",
                            "body": {"pool": self.pool, "reason": ctx.reason}}),
        })
    }
}

impl Action for Failover {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ActionKind {
        ActionKind::Failover
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
            let doc = self.admin.failover(&self.pool, &ctx.reason).await?;
            Ok(format!("failed over to {}; active pools now {:?}", self.pool, doc.active_pools))
        }
        .boxed()
    }

    fn revert<'a>(
        &'a self,
        _ctx: &'a ActionContext,
    ) -> Option<BoxFuture<'a, Result<String, ActionError>>> {
        Some(
            async move {
                let doc = self.admin.clear_failover().await?;
                Ok(format!("failover cleared; active pools now {:?}", doc.active_pools))
            }
            .boxed(),
        )
    }
}
