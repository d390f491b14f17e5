//! Chaos: drives faults for tests, the demo and root-cause reproductions. Clients for the
//! simulator's admin API (`/admin/faults`, `/admin/reset`) and the gateway's per-route fault
//! rules (`PUT/GET/DELETE /admin/faults`, docs/gateway-admin-api.md, through the shared client), "hold for a while then
//! revert exactly what was changed", and named scenarios that combine them with load.

pub mod scenario;

use crate::sim::Faults;
use deepwatch_core::api::admin::{AdminError, FaultRule, FaultsDoc, GatewayAdmin};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::future::Future;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("admin URL {0:?} is not an http(s) URL")]
    Url(String),
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url} answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{0}")]
    Gateway(#[from] AdminError),
    #[error("{0}")]
    Load(#[from] crate::load::LoadError),
}

/// A typed partial update of simulator faults (absent fields are left as they are).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FaultPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_added_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_token_added_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_status: Option<u16>,
    /// `Some(None)` clears the cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut_after_tokens: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hang_before_first_token: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak_mb_per_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrong_answers: Option<bool>,
}

impl FaultPatch {
    /// The JSON object `PUT /admin/faults` takes.
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// An authenticated JSON client for one admin base URL.
#[derive(Clone)]
struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl AdminClient {
    fn new(base: &str, token: &str) -> Result<Self, ChaosError> {
        let parsed = url::Url::parse(base).map_err(|_| ChaosError::Url(base.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ChaosError::Url(base.to_string()));
        }
        let http = deepwatch_core::http::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ChaosError::Http { url: base.to_string(), message: e.to_string() })?;
        Ok(AdminClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ChaosError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let http_err =
            |e: reqwest::Error| ChaosError::Http { url: url.clone(), message: e.to_string() };
        let response = request.send().await.map_err(http_err)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(http_err)?;
        if !(200..300).contains(&status) {
            return Err(ChaosError::Status { url, status, body: text });
        }
        serde_json::from_str(&text).map_err(|e| ChaosError::Http {
            url,
            message: format!("unexpected answer ({e}): {text}"),
        })
    }
}

/// The simulator's fault admin API.
#[derive(Clone)]
pub struct SimAdmin(AdminClient);

impl SimAdmin {
    pub fn new(admin_url: &str, token: &str) -> Result<Self, ChaosError> {
        AdminClient::new(admin_url, token).map(SimAdmin)
    }

    pub fn url(&self) -> &str {
        &self.0.base
    }

    pub async fn faults(&self) -> Result<Faults, ChaosError> {
        self.0.call(reqwest::Method::GET, "/admin/faults", None).await
    }

    /// Sets the fields present in `patch`; returns the faults now in force.
    pub async fn set(&self, patch: &Map<String, Value>) -> Result<Faults, ChaosError> {
        let body = Value::Object(patch.clone());
        self.0.call(reqwest::Method::PUT, "/admin/faults", Some(&body)).await
    }

    /// All faults off, leaked memory freed, listener back up.
    pub async fn reset(&self) -> Result<Faults, ChaosError> {
        self.0.call(reqwest::Method::POST, "/admin/reset", None).await
    }

    /// Applies `patch`; with `hold`, waits that long (or until `interrupted` resolves, such as
    /// Ctrl-C) and then puts back the previous values of exactly the fields it changed.
    pub async fn inject(
        &self,
        patch: &Map<String, Value>,
        hold: Option<Duration>,
        interrupted: impl Future<Output = ()>,
    ) -> Result<Faults, ChaosError> {
        let before = self.faults().await?.to_map();
        let applied = self.set(patch).await?;
        let Some(hold) = hold else { return Ok(applied) };
        tokio::select! {
            _ = tokio::time::sleep(hold) => {}
            _ = interrupted => tracing::info!(sim = %self.url(), "interrupted, reverting"),
        }
        let revert: Map<String, Value> =
            patch.keys().filter_map(|k| before.get(k).map(|v| (k.clone(), v.clone()))).collect();
        self.set(&revert).await
    }
}

/// The gateway's fault rules, through the shared admin client
/// (`deepwatch_core::api::admin::GatewayAdmin`).
#[derive(Clone)]
pub struct GatewayFaults(GatewayAdmin);

impl GatewayFaults {
    pub fn new(admin_url: &str, token: &str) -> Result<Self, ChaosError> {
        Ok(GatewayFaults(GatewayAdmin::new(admin_url, token, Duration::from_secs(10))?))
    }

    pub async fn faults(&self) -> Result<FaultsDoc, ChaosError> {
        Ok(self.0.faults().await?)
    }

    /// Replaces every rule.
    pub async fn replace(&self, rules: &[FaultRule]) -> Result<FaultsDoc, ChaosError> {
        Ok(self.0.set_faults(rules).await?)
    }

    pub async fn clear(&self) -> Result<FaultsDoc, ChaosError> {
        Ok(self.0.clear_faults().await?)
    }

    /// Sets `rule` for its endpoint, keeping the rules of other endpoints; with `hold`, restores
    /// the previous rules after that long (or when `interrupted` resolves).
    pub async fn inject(
        &self,
        rule: FaultRule,
        hold: Option<Duration>,
        interrupted: impl Future<Output = ()>,
    ) -> Result<FaultsDoc, ChaosError> {
        let before = self.faults().await?.rules;
        let mut rules: Vec<FaultRule> =
            before.iter().filter(|r| r.endpoint != rule.endpoint).cloned().collect();
        rules.push(rule);
        let applied = self.replace(&rules).await?;
        let Some(hold) = hold else { return Ok(applied) };
        tokio::select! {
            _ = tokio::time::sleep(hold) => {}
            _ = interrupted => tracing::info!("interrupted, restoring gateway fault rules"),
        }
        self.replace(&before).await
    }
}
