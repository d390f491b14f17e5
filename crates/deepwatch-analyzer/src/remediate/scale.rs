//! P2 "performance drop above 30 %": add capacity. The `gateway_pool` target adds spare
//! upstream URLs from the config to a gateway pool (`POST /admin/pools/{pool}/upstreams`), which
//! is how the demo grows the simulator pool; `kubernetes` and `keda` (feature `k8s`) patch the
//! cluster. How many replicas to add follows `scaling.rs` when a load query measures load per
//! replica, otherwise `step` per run; never beyond `max_replicas`.

use super::scaling::Sizing;
use super::{Action, ActionContext, ActionError, Deps, Plan, PlanError};
use deepwatch_core::api::admin::GatewayAdmin;
use deepwatch_core::config::remediation::{ActionConfig, ActionKind, ScaleTarget};
use deepwatch_core::http::redact_urls;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::json;
use std::sync::Arc;

/// Builds the scale action for its target.
pub fn build(config: &ActionConfig, deps: &Deps) -> Result<Arc<dyn Action>, String> {
    match config.target.unwrap_or_default() {
        ScaleTarget::GatewayPool => Ok(Arc::new(GatewayPoolScale::new(config, deps)?)),
        #[cfg(feature = "k8s")]
        ScaleTarget::Kubernetes | ScaleTarget::Keda => super::k8s::build(config, deps),
        #[cfg(not(feature = "k8s"))]
        ScaleTarget::Kubernetes | ScaleTarget::Keda => {
            Err("scale targets kubernetes and keda need a deepwatch built with --features k8s"
                .into())
        }
    }
}

pub struct GatewayPoolScale {
    name: String,
    pool: String,
    spares: Vec<String>,
    sizing: Sizing,
    admin: Arc<GatewayAdmin>,
}

impl GatewayPoolScale {
    pub fn new(config: &ActionConfig, deps: &Deps) -> Result<GatewayPoolScale, String> {
        let pool = config.pool.clone().filter(|p| !p.is_empty()).ok_or("needs a pool")?;
        let spares = config.spare_upstreams.clone().unwrap_or_default();
        if spares.is_empty() {
            return Err("needs spare_upstreams".into());
        }
        Ok(GatewayPoolScale {
            name: config.name.clone(),
            pool,
            spares,
            sizing: Sizing::new(config, deps),
            admin: deps.admin.clone(),
        })
    }

    async fn plan_inner(&self) -> Result<Plan, PlanError> {
        let doc = self.admin.pools().await.map_err(ActionError::from)?;
        let Some(pool) = doc.pools.iter().find(|p| p.name == self.pool) else {
            return Err(PlanError::Precondition(format!(
                "the gateway has no pool {:?}",
                self.pool
            )));
        };
        let current = pool.upstreams.len() as u32;
        let (desired, load) = self.sizing.desired(current).await;
        if desired <= current {
            let why = match load {
                Some(l) => format!("load per replica {l:.2} needs no more than {current} replicas"),
                None => format!("pool {} is at max_replicas ({current})", self.pool),
            };
            return Err(PlanError::Precondition(why));
        }
        let free: Vec<&String> = self
            .spares
            .iter()
            .filter(|s| {
                !pool
                    .upstreams
                    .iter()
                    // The gateway shows URLs without their credentials.
                    .any(|u| u.url.trim_end_matches('/') == redact_urls(s).trim_end_matches('/'))
            })
            .collect();
        if free.is_empty() {
            return Err(PlanError::Precondition(format!(
                "no spare upstream left for pool {} (all {} are in it)",
                self.pool,
                self.spares.len()
            )));
        }
        let add: Vec<&String> = free.into_iter().take((desired - current) as usize).collect();
        Ok(Plan {
            summary: format!(
                "scale pool {} from {current} to {} upstreams{}",
                self.pool,
                current as usize + add.len(),
                load.map(|l| format!(" (load per replica {l:.2})")).unwrap_or_default()
            ),
            request: json!({"method": "POST", "path": format!("/admin/pools/{}/upstreams", self.pool),
                            "add": add, "from": current, "desired": desired, "load": load}),
        })
    }

    async fn execute_inner(&self, plan: &Plan) -> Result<String, ActionError> {
        let urls: Vec<String> = serde_json::from_value(plan.request["add"].clone())
            .map_err(|e| ActionError::Failed(format!("bad plan: {e}")))?;
        let mut added = Vec::new();
        for url in &urls {
            match self.admin.add_upstream(&self.pool, url).await {
                Ok(_) => added.push(url.as_str()),
                // Someone (a previous run that timed out) added it already: fine.
                Err(e) if e.code() == Some("upstream_exists") => added.push(url.as_str()),
                Err(e) => {
                    return Err(ActionError::Failed(format!(
                        "added {added:?} to pool {} then failed on {url}: {e}",
                        self.pool
                    )))
                }
            }
        }
        Ok(format!("added {added:?} to pool {}", self.pool))
    }
}

impl Action for GatewayPoolScale {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ActionKind {
        ActionKind::Scale
    }

    fn plan<'a>(&'a self, _ctx: &'a ActionContext) -> BoxFuture<'a, Result<Plan, PlanError>> {
        self.plan_inner().boxed()
    }

    fn execute<'a>(
        &'a self,
        _ctx: &'a ActionContext,
        plan: &'a Plan,
    ) -> BoxFuture<'a, Result<String, ActionError>> {
        self.execute_inner(plan).boxed()
    }
}
