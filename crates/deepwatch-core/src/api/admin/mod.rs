//! The gateway admin API's documents and request bodies (`docs/gateway-admin-api.md`), defined
//! once: the gateway serializes them, its clients (analyzer remediation, lab chaos, the demo)
//! deserialize them through `client::GatewayAdmin`. Documents read leniently (absent fields
//! default, unknown fields are ignored) so an older or newer gateway does not break a client;
//! request bodies are strict (an unknown field is a 400 naming it).

pub mod client;

pub use crate::config::gateway::FaultRule;
pub use client::{AdminError, GatewayAdmin};
use serde::{Deserialize, Serialize};

/// `GET /admin/pools`, and the answer of `POST/DELETE /admin/failover`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolsDoc {
    pub pools: Vec<PoolDoc>,
    /// Pools receiving traffic now.
    pub active_pools: Vec<String>,
    pub failover: FailoverState,
    pub degrade: DegradeState,
    pub rollout: Option<RolloutDoc>,
}

/// One pool, also the answer of `PUT .../weight` and `POST/DELETE .../upstreams`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolDoc {
    pub name: String,
    /// Percent of its priority tier's traffic, 0..=100.
    pub weight: u32,
    /// 0 serves first; higher numbers are standbys.
    pub priority: u32,
    pub model_version: String,
    /// The pool receives traffic now.
    pub active: bool,
    pub upstreams: Vec<UpstreamDoc>,
}

impl PoolDoc {
    pub fn healthy_upstreams(&self) -> usize {
        self.upstreams.iter().filter(|u| u.health.healthy).count()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamDoc {
    pub url: String,
    #[serde(flatten)]
    pub health: UpstreamHealth,
}

/// An upstream's rotation status and load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamHealth {
    /// In rotation.
    pub healthy: bool,
    /// Why it is out of rotation.
    pub ejected_by: Option<EjectedBy>,
    /// Failed share of the passive-health window.
    pub error_ratio: f64,
    pub window_requests: u64,
    pub consecutive_failures: u32,
    pub in_flight: u64,
}

/// Why an upstream is out of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EjectedBy {
    /// Error ratio, consecutive failures or a refused connection.
    Passive,
    /// Failed active probes.
    Probe,
    /// Not generating: missed first-token deadlines or failed generation probes. Only passing
    /// generation probes bring it back (`/health` alone does not).
    Stall,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailoverState {
    pub forced: Option<ForcedFailover>,
    /// Traffic left the first priority tier because of health.
    pub automatic: bool,
}

/// A failover forced through `POST /admin/failover`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForcedFailover {
    pub pool: String,
    pub reason: String,
    /// RFC 3339.
    pub since: String,
}

/// The degrade state: the body of `PUT /admin/degrade` (an absent field switches that
/// degradation off), its answer, and `degrade` in `GET /admin/pools`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DegradeState {
    /// Lower `max_tokens` / `max_completion_tokens` above this.
    pub max_tokens_cap: Option<u64>,
    pub rate_limit: Option<RateLimit>,
}

/// A token bucket for listed tenants (burst = max(1, rate)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub tenants: Vec<String>,
    pub requests_per_second: f64,
}

/// `PUT /admin/pools/{pool}/weight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightRequest {
    pub weight: u32,
}

/// `POST` and `DELETE /admin/pools/{pool}/upstreams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamRequest {
    pub url: String,
}

/// `POST /admin/failover`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    pub pool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The optional body of `POST /admin/rollouts/rollback` and `.../promote`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /admin/rollouts`: only `pool` (the canary) is required; the rest default to
/// `[gateway.rollout]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    pub pool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttft_p95_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tpot_p95_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_slack_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_ratio_increase: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_cut_ratio_increase: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_rollback_rate: Option<f64>,
}

/// `GET /admin/rollouts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutsDoc {
    pub current: Option<RolloutDoc>,
    /// Finished rollouts, newest first, at most 20.
    pub history: Vec<RolloutDoc>,
}

/// One rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutDoc {
    pub id: u64,
    pub canary: String,
    pub stable: String,
    pub steps: Vec<u32>,
    pub step_index: usize,
    /// The canary's weight now.
    pub weight: u32,
    pub status: RolloutStatus,
    pub reason: Option<String>,
    pub step_secs: u64,
    /// Times `step_secs` went by at this step without it passing (too few samples, or a check
    /// inconclusive).
    pub extensions: u32,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub last_analysis: Option<Analysis>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    #[default]
    Running,
    Promoted,
    RolledBack,
}

impl RolloutStatus {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStatus::Running => "running",
            RolloutStatus::Promoted => "promoted",
            RolloutStatus::RolledBack => "rolled_back",
        }
    }
}

impl std::fmt::Display for RolloutStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The canary compared with the stable pool over one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Analysis {
    pub verdict: Verdict,
    /// What failed (`"ttft p95 240.0 ms > 1.25 x 175.0 ms + 10 ms"`).
    pub reasons: Vec<String>,
    pub canary: SideStats,
    pub stable: SideStats,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    #[default]
    NotEnoughSamples,
    /// A limit is crossed by the estimate but not yet significantly: the step waits for more.
    Inconclusive,
}

/// One side of a canary analysis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SideStats {
    pub requests: u64,
    pub errors: u64,
    pub stream_cuts: u64,
    pub error_ratio: f64,
    pub stream_cut_ratio: f64,
    pub ttft_p95_ms: Option<f64>,
    pub tpot_p95_ms: Option<f64>,
}

/// `GET`, `PUT` and `DELETE /admin/faults`; `PUT` takes a JSON array of `FaultRule`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultsDoc {
    pub enabled: bool,
    pub rules: Vec<FaultRule>,
}

/// `GET /admin/events?limit=N`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventsDoc {
    /// Oldest first.
    pub events: Vec<Event>,
}

/// One deploy event; also a line of the gateway's event log file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    /// RFC 3339 with milliseconds.
    pub ts: String,
    /// `start`, `step`, `rollback`, `promote`, `failover`, `failback`, `upstream_added`,
    /// `upstream_removed`, `weight`, `config_reload`.
    pub event: String,
    pub pool: String,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_pools_document_round_trips() {
        let documented = json!({
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
        });
        let doc: PoolsDoc = serde_json::from_value(documented.clone()).unwrap();
        assert_eq!(doc.pools[0].healthy_upstreams(), 1);
        assert_eq!(doc.pools[0].upstreams[0].health.in_flight, 3);
        assert_eq!(doc.failover.forced.as_ref().unwrap().pool, "standby");
        assert_eq!(serde_json::to_value(&doc).unwrap(), documented);
    }

    #[test]
    fn documents_read_leniently_and_request_bodies_strictly() {
        let doc: PoolsDoc =
            serde_json::from_value(json!({"pools": [{"name": "a", "shiny_new_field": 1}]}))
                .unwrap();
        assert_eq!(doc.pools[0].name, "a");
        let err = serde_json::from_value::<WeightRequest>(json!({"weigth": 5})).unwrap_err();
        assert!(err.to_string().contains("weigth"), "{err}");
        let err = serde_json::from_value::<DegradeState>(json!({"cap": 5})).unwrap_err();
        assert!(err.to_string().contains("cap"), "{err}");
    }

    #[test]
    fn the_documented_rollout_document_round_trips() {
        let documented = json!({
          "id": 3, "canary": "green", "stable": "blue", "steps": [1, 5, 25, 50, 100],
          "step_index": 1, "weight": 5, "status": "rolled_back", "reason": null,
          "step_secs": 60, "extensions": 0, "started_at": "2026-11-23T06:40:00Z", "finished_at": null,
          "last_analysis": {
            "verdict": "not_enough_samples", "reasons": [],
            "canary": {"requests": 61, "errors": 0, "stream_cuts": 0, "error_ratio": 0.0,
                       "stream_cut_ratio": 0.0, "ttft_p95_ms": 180.0, "tpot_p95_ms": null},
            "stable": {"requests": 1180, "errors": 2, "stream_cuts": 0, "error_ratio": 0.0017,
                       "stream_cut_ratio": 0.0, "ttft_p95_ms": 175.0, "tpot_p95_ms": 21.0}
          }
        });
        let doc: RolloutDoc = serde_json::from_value(documented.clone()).unwrap();
        assert_eq!(doc.status, RolloutStatus::RolledBack);
        assert_eq!(doc.status.to_string(), "rolled_back");
        assert_eq!(doc.last_analysis.as_ref().unwrap().verdict, Verdict::NotEnoughSamples);
        assert_eq!(serde_json::to_value(&doc).unwrap(), documented);
    }
}
