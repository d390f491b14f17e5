//! The one client of the gateway admin API, used by the analyzer's remediation, the lab's
//! chaos tools and the demo. Errors keep the gateway's status and its `error.code`
//! (`no_rollout`, `upstream_exists`) so callers can tell a refusal from a failure.

use super::{
    DegradeState, EventsDoc, FailoverRequest, FaultRule, FaultsDoc, PoolDoc, PoolsDoc,
    ReasonRequest, RolloutDoc, RolloutRequest, RolloutsDoc, UpstreamRequest, WeightRequest,
};
use crate::config::client::TlsConfig;
use crate::error::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid gateway admin url {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("gateway admin {method} {path}: {message}")]
    Transport { method: &'static str, path: String, message: String },
    #[error("gateway admin {method} {path} answered {status} {code}: {message}")]
    Status { method: &'static str, path: String, status: u16, code: String, message: String },
    #[error("gateway admin {method} {path}: unexpected answer: {message}")]
    Decode { method: &'static str, path: String, message: String },
}

impl AdminError {
    /// The gateway's `error.code` for a refused request (`no_rollout`, `upstream_exists`).
    pub fn code(&self) -> Option<&str> {
        match self {
            AdminError::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<u16> {
        match self {
            AdminError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one gateway's admin listener.
#[derive(Clone)]
pub struct GatewayAdmin {
    base: url::Url,
    token: String,
    http: reqwest::Client,
}

impl GatewayAdmin {
    /// `base` is the admin listener's URL (`http://127.0.0.1:9845`); every call gives up after
    /// `timeout`.
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<GatewayAdmin, AdminError> {
        let bad = |message: String| AdminError::Url { url: base.to_string(), message };
        let mut parsed = url::Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(bad("must be an http(s) URL with a host".into()));
        }
        if !parsed.path().ends_with('/') {
            let path = format!("{}/", parsed.path());
            parsed.set_path(&path);
        }
        let http = crate::http::client_builder(&TlsConfig::default())
            .map_err(|e| bad(e.to_string()))?
            .timeout(timeout)
            .build()
            .map_err(|e| bad(crate::http::chain(&e)))?;
        Ok(GatewayAdmin { base: parsed, token: token.to_string(), http })
    }

    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    pub async fn pools(&self) -> Result<PoolsDoc, AdminError> {
        self.call("GET", "admin/pools", None::<&()>).await
    }

    pub async fn set_weight(&self, pool: &str, weight: u32) -> Result<PoolDoc, AdminError> {
        let path = format!("admin/pools/{pool}/weight");
        self.call("PUT", &path, Some(&WeightRequest { weight })).await
    }

    /// Scale out: the upstream joins rotation at once.
    pub async fn add_upstream(&self, pool: &str, url: &str) -> Result<PoolDoc, AdminError> {
        let path = format!("admin/pools/{pool}/upstreams");
        self.call("POST", &path, Some(&UpstreamRequest { url: url.to_string() })).await
    }

    pub async fn remove_upstream(&self, pool: &str, url: &str) -> Result<PoolDoc, AdminError> {
        let path = format!("admin/pools/{pool}/upstreams");
        self.call("DELETE", &path, Some(&UpstreamRequest { url: url.to_string() })).await
    }

    /// Sends all traffic to `pool` until `clear_failover`.
    pub async fn failover(&self, pool: &str, reason: &str) -> Result<PoolsDoc, AdminError> {
        let body = FailoverRequest { pool: pool.to_string(), reason: Some(reason.to_string()) };
        self.call("POST", "admin/failover", Some(&body)).await
    }

    pub async fn clear_failover(&self) -> Result<PoolsDoc, AdminError> {
        self.call("DELETE", "admin/failover", None::<&()>).await
    }

    pub async fn start_rollout(&self, request: &RolloutRequest) -> Result<RolloutDoc, AdminError> {
        self.call("POST", "admin/rollouts", Some(request)).await
    }

    pub async fn rollouts(&self) -> Result<RolloutsDoc, AdminError> {
        self.call("GET", "admin/rollouts", None::<&()>).await
    }

    /// Rolls the running rollout back now; `no_rollout` (409) when none runs.
    pub async fn rollback(&self, reason: &str) -> Result<RolloutDoc, AdminError> {
        let body = ReasonRequest { reason: Some(reason.to_string()) };
        self.call("POST", "admin/rollouts/rollback", Some(&body)).await
    }

    /// Promotes the running rollout now; `no_rollout` (409) when none runs.
    pub async fn promote(&self, reason: &str) -> Result<RolloutDoc, AdminError> {
        let body = ReasonRequest { reason: Some(reason.to_string()) };
        self.call("POST", "admin/rollouts/promote", Some(&body)).await
    }

    /// Replaces the degrade state.
    pub async fn set_degrade(&self, state: &DegradeState) -> Result<DegradeState, AdminError> {
        self.call("PUT", "admin/degrade", Some(state)).await
    }

    pub async fn clear_degrade(&self) -> Result<DegradeState, AdminError> {
        self.call("DELETE", "admin/degrade", None::<&()>).await
    }

    /// `faults_disabled` (403) unless the gateway runs with `faults.enabled = true`.
    pub async fn faults(&self) -> Result<FaultsDoc, AdminError> {
        self.call("GET", "admin/faults", None::<&()>).await
    }

    /// Replaces every fault rule.
    pub async fn set_faults(&self, rules: &[FaultRule]) -> Result<FaultsDoc, AdminError> {
        self.call("PUT", "admin/faults", Some(&rules)).await
    }

    pub async fn clear_faults(&self) -> Result<FaultsDoc, AdminError> {
        self.call("DELETE", "admin/faults", None::<&()>).await
    }

    /// The last `limit` deploy events, oldest first.
    pub async fn events(&self, limit: usize) -> Result<EventsDoc, AdminError> {
        self.call("GET", &format!("admin/events?limit={limit}"), None::<&()>).await
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, AdminError> {
        let url = self.base.join(path).map_err(|e| AdminError::Url {
            url: format!("{}{path}", self.base),
            message: e.to_string(),
        })?;
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self.http.request(m, url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let transport = |e: reqwest::Error| AdminError::Transport {
            method,
            path: path.to_string(),
            message: crate::http::chain(&e),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        if !status.is_success() {
            let error = serde_json::from_str::<ErrorBody>(&text).map(|b| b.error).ok();
            let (code, mut message) = error.map(|e| (e.code, e.message)).unwrap_or_default();
            if message.is_empty() {
                message = text.chars().take(300).collect();
            }
            return Err(AdminError::Status {
                method,
                path: path.to_string(),
                status: status.as_u16(),
                code,
                message,
            });
        }
        serde_json::from_str(&text).map_err(|e| AdminError::Decode {
            method,
            path: path.to_string(),
            message: format!("{e}: {}", text.chars().take(300).collect::<String>()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_with_and_without_a_trailing_slash_join_the_same() {
        for base in ["http://gw:9845", "http://gw:9845/"] {
            let admin = GatewayAdmin::new(base, "t", Duration::from_secs(1)).unwrap();
            assert_eq!(
                admin.base.join("admin/pools").unwrap().as_str(),
                "http://gw:9845/admin/pools"
            );
        }
    }

    #[test]
    fn only_http_urls_with_a_host_are_accepted() {
        for base in ["gw:9845", "ftp://gw", "not a url", "file:///tmp/x"] {
            let err = GatewayAdmin::new(base, "t", Duration::from_secs(1)).err();
            assert!(matches!(err, Some(AdminError::Url { .. })), "{base}: {err:?}");
        }
    }
}
