//! Client of the gateway admin API (`docs/gateway-admin-api.md`): the only way remediation
//! changes routing. Reads are typed leniently (unknown fields ignored, so a newer gateway does
//! not break the analyzer); errors keep the gateway's status and OpenAI-shaped error code.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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
}

/// `GET /admin/pools`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolsDoc {
    pub pools: Vec<Pool>,
    pub active_pools: Vec<String>,
    pub failover: FailoverState,
    pub degrade: DegradeState,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pool {
    pub name: String,
    pub weight: f64,
    pub priority: i64,
    pub model_version: String,
    pub active: bool,
    pub upstreams: Vec<Upstream>,
}

impl Pool {
    pub fn healthy_upstreams(&self) -> usize {
        self.upstreams.iter().filter(|u| u.healthy).count()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Upstream {
    pub url: String,
    pub healthy: bool,
    pub error_ratio: f64,
    pub in_flight: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailoverState {
    pub forced: Option<ForcedFailover>,
    pub automatic: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForcedFailover {
    pub pool: String,
    pub reason: String,
    pub since: String,
}

/// The degrade document, as sent with `PUT /admin/degrade` and shown in `GET /admin/pools`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DegradeState {
    pub max_tokens_cap: Option<u64>,
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimit {
    pub tenants: Vec<String>,
    pub requests_per_second: f64,
}

/// `GET /admin/rollouts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutsDoc {
    pub current: Option<Rollout>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rollout {
    pub id: u64,
    pub canary: String,
    pub stable: String,
    pub weight: f64,
    pub status: String,
}

/// The admin API client.
pub struct GatewayAdmin {
    base: url::Url,
    token: String,
    http: reqwest::Client,
}

impl GatewayAdmin {
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<GatewayAdmin, AdminError> {
        let bad = |message: String| AdminError::Url { url: base.to_string(), message };
        let mut base = url::Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http =
            reqwest::Client::builder().timeout(timeout).build().map_err(|e| bad(e.to_string()))?;
        Ok(GatewayAdmin { base, token: token.to_string(), http })
    }

    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, AdminError> {
        let url = self.base.join(path.trim_start_matches('/')).map_err(|e| AdminError::Url {
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
            message: e.to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        if !status.is_success() {
            let error = value.get("error");
            let field = |name: &str| {
                error.and_then(|e| e.get(name)).and_then(Value::as_str).unwrap_or("").to_string()
            };
            let mut message = field("message");
            if message.is_empty() {
                message = text.chars().take(300).collect();
            }
            return Err(AdminError::Status {
                method,
                path: path.to_string(),
                status: status.as_u16(),
                code: field("code"),
                message,
            });
        }
        Ok(value)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        method: &'static str,
        path: &str,
        value: Value,
    ) -> Result<T, AdminError> {
        serde_json::from_value(value).map_err(|e| AdminError::Decode {
            method,
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    pub async fn pools(&self) -> Result<PoolsDoc, AdminError> {
        let v = self.call("GET", "admin/pools", None).await?;
        Self::decode("GET", "admin/pools", v)
    }

    pub async fn failover(&self, pool: &str, reason: &str) -> Result<PoolsDoc, AdminError> {
        let v = self
            .call("POST", "admin/failover", Some(&json!({"pool": pool, "reason": reason})))
            .await?;
        Self::decode("POST", "admin/failover", v)
    }

    pub async fn clear_failover(&self) -> Result<PoolsDoc, AdminError> {
        let v = self.call("DELETE", "admin/failover", None).await?;
        Self::decode("DELETE", "admin/failover", v)
    }

    pub async fn add_upstream(&self, pool: &str, url: &str) -> Result<Pool, AdminError> {
        let path = format!("admin/pools/{pool}/upstreams");
        let v = self.call("POST", &path, Some(&json!({"url": url}))).await?;
        Self::decode("POST", &path, v)
    }

    pub async fn rollouts(&self) -> Result<RolloutsDoc, AdminError> {
        let v = self.call("GET", "admin/rollouts", None).await?;
        Self::decode("GET", "admin/rollouts", v)
    }

    pub async fn rollback(&self, reason: &str) -> Result<Rollout, AdminError> {
        let v =
            self.call("POST", "admin/rollouts/rollback", Some(&json!({"reason": reason}))).await?;
        Self::decode("POST", "admin/rollouts/rollback", v)
    }

    pub async fn set_degrade(&self, state: &DegradeState) -> Result<DegradeState, AdminError> {
        let body = serde_json::to_value(state).unwrap_or(Value::Null);
        let v = self.call("PUT", "admin/degrade", Some(&body)).await?;
        Self::decode("PUT", "admin/degrade", v)
    }

    pub async fn clear_degrade(&self) -> Result<DegradeState, AdminError> {
        let v = self.call("DELETE", "admin/degrade", None).await?;
        Self::decode("DELETE", "admin/degrade", v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_pools_document_parses() {
        let doc: PoolsDoc = serde_json::from_value(json!({
          "pools": [
            {"name": "blue", "weight": 100, "priority": 0, "model_version": "v1", "active": true,
             "upstreams": [{"url": "http://10.0.0.11:8000", "healthy": true, "ejected_by": null,
               "error_ratio": 0.0, "window_requests": 42, "consecutive_failures": 0, "in_flight": 3}]},
            {"name": "standby", "weight": 100, "priority": 1, "model_version": "v1",
             "active": false, "upstreams": []}
          ],
          "active_pools": ["blue"],
          "failover": {"forced": {"pool": "standby", "reason": "r", "since": "t"}, "automatic": false},
          "degrade": {"max_tokens_cap": null, "rate_limit": null},
          "rollout": null
        }))
        .unwrap();
        assert_eq!(doc.pools[0].healthy_upstreams(), 1);
        assert_eq!(doc.failover.forced.unwrap().pool, "standby");
        assert_eq!(doc.degrade, DegradeState::default());
    }

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
}
