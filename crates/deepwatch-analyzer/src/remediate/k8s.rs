//! Scaling on Kubernetes through kube-rs (feature `k8s`). Target `kubernetes` patches a
//! Deployment's `scale` subresource; target `keda` raises a KEDA ScaledObject's
//! `minReplicaCount`, so KEDA (which owns the HPA) keeps at least that many replicas instead of
//! fighting a direct patch. Both read the Deployment's current replicas and size with the same
//! rules as every scale action (`scaling::Sizing`).

use super::scaling::Sizing;
use super::{Action, ActionContext, ActionError, Deps, Plan, PlanError};
use deepwatch_core::config::remediation::{ActionConfig, ActionKind, ScaleTarget};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Builds the action; the client is created on first use (it needs a runtime).
pub fn build(config: &ActionConfig, deps: &Deps) -> Result<Arc<dyn Action>, String> {
    let namespace =
        config.namespace.clone().filter(|n| !n.is_empty()).ok_or("needs a namespace")?;
    let object = config.object.clone().filter(|o| !o.is_empty()).ok_or("needs an object")?;
    Ok(Arc::new(KubeScale {
        name: config.name.clone(),
        keda: config.target == Some(ScaleTarget::Keda),
        namespace,
        object,
        kubeconfig: config.kubeconfig.clone(),
        sizing: Sizing::new(config, deps),
        client: OnceCell::new(),
    }))
}

pub struct KubeScale {
    name: String,
    keda: bool,
    namespace: String,
    /// Deployment (kubernetes) or ScaledObject (keda) name.
    object: String,
    kubeconfig: Option<String>,
    sizing: Sizing,
    client: OnceCell<kube::Client>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> ActionError {
    ActionError::Failed(format!("kubernetes: {what}: {e}"))
}

fn scaled_objects() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    )
}

impl KubeScale {
    async fn client(&self) -> Result<kube::Client, ActionError> {
        let client = self
            .client
            .get_or_try_init(|| async {
                let config = match &self.kubeconfig {
                    Some(path) => {
                        let kc = Kubeconfig::read_from(path)
                            .map_err(|e| failed(&format!("reading kubeconfig {path}"), e))?;
                        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                            .await
                            .map_err(|e| failed(&format!("kubeconfig {path}"), e))?
                    }
                    None => {
                        kube::Config::infer().await.map_err(|e| failed("no cluster config", e))?
                    }
                };
                kube::Client::try_from(config).map_err(|e| failed("client", e))
            })
            .await?;
        Ok(client.clone())
    }

    /// The Deployment whose replicas count: the object itself, or the ScaledObject's target.
    async fn deployment(
        &self,
        client: &kube::Client,
    ) -> Result<(String, Option<i64>), ActionError> {
        if !self.keda {
            return Ok((self.object.clone(), None));
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &self.namespace, &scaled_objects());
        let so = api.get(&self.object).await.map_err(|e| {
            failed(&format!("get scaledobject {}/{}", self.namespace, self.object), e)
        })?;
        let spec = &so.data["spec"];
        let target = spec["scaleTargetRef"]["name"].as_str().unwrap_or("").to_string();
        if target.is_empty() {
            return Err(failed("scaledobject", "spec.scaleTargetRef.name is missing"));
        }
        Ok((target, spec["maxReplicaCount"].as_i64()))
    }

    async fn plan_inner(&self) -> Result<Plan, PlanError> {
        let client = self.client().await?;
        let (deployment, keda_max) = self.deployment(&client).await?;
        let deployments: Api<Deployment> = Api::namespaced(client, &self.namespace);
        let scale = deployments.get_scale(&deployment).await.map_err(|e| {
            failed(&format!("get scale of deployment {}/{deployment}", self.namespace), e)
        })?;
        let current = scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
        let (mut desired, load) = self.sizing.desired(current).await;
        if let Some(max) = keda_max {
            desired = desired.min(max.max(0) as u32);
        }
        if desired <= current {
            let why = match load {
                Some(l) => format!("load per replica {l:.2} needs no more than {current} replicas"),
                None => format!("deployment {deployment} is at its maximum ({current})"),
            };
            return Err(PlanError::Precondition(why));
        }
        let (path, patch) = if self.keda {
            (
                format!("scaledobjects/{}/{}", self.namespace, self.object),
                json!({"spec": {"minReplicaCount": desired}}),
            )
        } else {
            (
                format!("deployments/{}/{deployment}/scale", self.namespace),
                json!({"spec": {"replicas": desired}}),
            )
        };
        Ok(Plan {
            summary: format!(
                "scale deployment {}/{deployment} from {current} to {desired} replicas{}{}",
                self.namespace,
                if self.keda { " (KEDA minReplicaCount)" } else { "" },
                load.map(|l| format!(" (load per replica {l:.2})")).unwrap_or_default()
            ),
            request: json!({"merge_patch": path, "body": patch, "from": current, "to": desired}),
        })
    }

    async fn execute_inner(&self, plan: &Plan) -> Result<String, ActionError> {
        let client = self.client().await?;
        let body = plan.request["body"].clone();
        let params = PatchParams::default();
        if self.keda {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client, &self.namespace, &scaled_objects());
            api.patch(&self.object, &params, &Patch::Merge(&body))
                .await
                .map_err(|e| failed(&format!("patch scaledobject {}", self.object), e))?;
            return Ok(format!(
                "scaledobject {} minReplicaCount {}",
                self.object, body["spec"]["minReplicaCount"]
            ));
        }
        let api: Api<Deployment> = Api::namespaced(client, &self.namespace);
        let scale = api
            .patch_scale(&self.object, &params, &Patch::Merge(&body))
            .await
            .map_err(|e| failed(&format!("patch scale of deployment {}", self.object), e))?;
        Ok(format!(
            "deployment {} scaled to {} replicas",
            self.object,
            scale.spec.and_then(|s| s.replicas).unwrap_or_default()
        ))
    }
}

impl Action for KubeScale {
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
