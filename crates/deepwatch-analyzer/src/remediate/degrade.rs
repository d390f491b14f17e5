//! P2 "performance drop", when there is no capacity to add: shed load through the gateway
//! (`PUT /admin/degrade`): cap max_tokens and rate-limit low-priority tenants. Undone with
//! `DELETE /admin/degrade` when the alert resolves and the policy says so.

use super::{Action, ActionContext, ActionError, Deps, Plan, PlanError};
use deepwatch_core::api::admin::{DegradeState, GatewayAdmin, RateLimit};
use deepwatch_core::config::remediation::{ActionConfig, ActionKind};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::json;
use std::sync::Arc;

pub struct Degrade {
    name: String,
    wanted: DegradeState,
    admin: Arc<GatewayAdmin>,
}

impl Degrade {
    pub fn new(config: &ActionConfig, deps: &Deps) -> Result<Degrade, String> {
        let rate_limit = match (&config.tenants, config.requests_per_second) {
            (Some(tenants), Some(rps)) => {
                Some(RateLimit { tenants: tenants.clone(), requests_per_second: rps })
            }
            (None, None) => None,
            _ => return Err("tenants and requests_per_second go together".into()),
        };
        let wanted =
            DegradeState { max_tokens_cap: config.max_tokens_cap.map(u64::from), rate_limit };
        if wanted == DegradeState::default() {
            return Err("needs max_tokens_cap, tenants or both".into());
        }
        Ok(Degrade { name: config.name.clone(), wanted, admin: deps.admin.clone() })
    }

    /// The state to send: ours, tightened by what is already in force (a lower cap stays).
    fn merged(&self, current: &DegradeState) -> DegradeState {
        let max_tokens_cap = match (self.wanted.max_tokens_cap, current.max_tokens_cap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let rate_limit = self.wanted.rate_limit.clone().or_else(|| current.rate_limit.clone());
        DegradeState { max_tokens_cap, rate_limit }
    }

    async fn plan_inner(&self) -> Result<Plan, PlanError> {
        let current = self.admin.pools().await.map_err(ActionError::from)?.degrade;
        let next = self.merged(&current);
        if next == current {
            return Err(PlanError::Precondition(format!(
                "the gateway is already degraded that far ({})",
                describe(&current)
            )));
        }
        Ok(Plan {
            summary: format!("degrade: {} (was: {})", describe(&next), describe(&current)),
            request: json!({"method": "PUT", "path": "/admin/degrade", "body": next}),
        })
    }
}

fn describe(state: &DegradeState) -> String {
    let mut parts = Vec::new();
    if let Some(cap) = state.max_tokens_cap {
        parts.push(format!("max_tokens capped at {cap}"));
    }
    if let Some(rl) = &state.rate_limit {
        parts.push(format!("{} limited to {} req/s", rl.tenants.join(","), rl.requests_per_second));
    }
    if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join(", ")
    }
}

impl Action for Degrade {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ActionKind {
        ActionKind::Degrade
    }

    fn plan<'a>(&'a self, _ctx: &'a ActionContext) -> BoxFuture<'a, Result<Plan, PlanError>> {
        self.plan_inner().boxed()
    }

    fn execute<'a>(
        &'a self,
        _ctx: &'a ActionContext,
        plan: &'a Plan,
    ) -> BoxFuture<'a, Result<String, ActionError>> {
        async move {
            let body: DegradeState = serde_json::from_value(plan.request["body"].clone())
                .map_err(|e| ActionError::Failed(format!("bad plan: {e}")))?;
            let now = self.admin.set_degrade(&body).await?;
            Ok(format!("degraded: {}", describe(&now)))
        }
        .boxed()
    }

    fn revert<'a>(
        &'a self,
        _ctx: &'a ActionContext,
    ) -> Option<BoxFuture<'a, Result<String, ActionError>>> {
        Some(
            async move {
                self.admin.clear_degrade().await?;
                Ok("degradation switched off".to_string())
            }
            .boxed(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_lower_cap_is_kept() {
        let d = Degrade {
            name: "d".into(),
            wanted: DegradeState { max_tokens_cap: Some(512), rate_limit: None },
            admin: Arc::new(
                GatewayAdmin::new("http://x", "", std::time::Duration::from_secs(1)).unwrap(),
            ),
        };
        let current = DegradeState {
            max_tokens_cap: Some(256),
            rate_limit: Some(RateLimit { tenants: vec!["free".into()], requests_per_second: 1.0 }),
        };
        assert_eq!(d.merged(&current), current);
        let none = DegradeState::default();
        assert_eq!(d.merged(&none).max_tokens_cap, Some(512));
    }
}
