//! The `[remediation]` section of `deepwatch.toml`: the analyzer daemon's state directory and
//! audit log, the gateway admin API it acts through, the scaling rules, and the policies that
//! map Alertmanager alerts (by label matchers) to named actions. Durations are written as
//! integers with their unit in the key (`cooldown_secs`, `timeout_ms`) and held as `Duration`.

mod matcher;
mod validate;

pub use matcher::{MatchOp, Matcher};

use super::{Path, Problems};
use crate::catalog::agent;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationConfig {
    /// Run actions at all; when false alerts are still received, journaled and ranked.
    pub enabled: bool,
    /// Directory for durable state: the alert journal (handled alerts, for deduplication).
    pub state_dir: String,
    /// Append-only JSON-lines audit log; empty means `<state_dir>/audit.jsonl`.
    pub audit_log: String,
    /// Base URL under which others reach this daemon (links to reports); empty means
    /// `http://<analyzer.listen>`.
    pub public_url: String,
    /// Bearer token Alertmanager must send to `/webhook/alertmanager` and `/notify/{channel}`
    /// (its webhook `http_config.authorization`); empty accepts any caller on the network.
    pub webhook_token: String,
    /// File whose trimmed content is the webhook token; wins over `webhook_token`.
    pub webhook_token_file: String,
    /// Check preconditions and audit every action, but change nothing.
    pub dry_run: bool,
    /// Alerts waiting to be processed; when full the webhook answers 503 and Alertmanager retries.
    pub queue_capacity: usize,
    /// Actions of all kinds together in any rolling hour; 0 means no global limit.
    pub max_actions_per_hour: u32,
    /// Longest one action may run before it counts as failed.
    #[serde(rename = "action_timeout_secs", with = "crate::config::duration::secs")]
    pub action_timeout: Duration,
    /// How long handled alerts are remembered for deduplication across restarts.
    #[serde(rename = "journal_retention_secs", with = "crate::config::duration::secs")]
    pub journal_retention: Duration,
    pub gateway: GatewayAdminConfig,
    pub scaling: ScalingConfig,
    pub policies: Vec<PolicyConfig>,
    pub actions: Vec<ActionConfig>,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        RemediationConfig {
            enabled: true,
            state_dir: "/var/lib/deepwatch/analyzer".to_string(),
            audit_log: String::new(),
            public_url: String::new(),
            webhook_token: String::new(),
            webhook_token_file: String::new(),
            dry_run: false,
            queue_capacity: 1024,
            max_actions_per_hour: 20,
            action_timeout: Duration::from_secs(30),
            journal_retention: Duration::from_secs(7 * 24 * 3600),
            gateway: GatewayAdminConfig::default(),
            scaling: ScalingConfig::default(),
            policies: default_policies(),
            actions: default_actions(),
        }
    }
}

/// The gateway's admin API (`docs/gateway-admin-api.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayAdminConfig {
    /// Base URL of the gateway's admin listener.
    pub url: String,
    /// Bearer token; prefer `token_file` outside tests.
    pub token: String,
    /// File whose trimmed content is the token (read at start); wins over `token`.
    pub token_file: String,
    #[serde(rename = "timeout_ms", with = "crate::config::duration::millis")]
    pub timeout: Duration,
}

impl Default for GatewayAdminConfig {
    fn default() -> Self {
        GatewayAdminConfig {
            url: "http://127.0.0.1:9845".to_string(),
            token: String::new(),
            token_file: String::new(),
            timeout: Duration::from_millis(5000),
        }
    }
}

/// Replica rules shared by the scale action and `deepwatch analyze capacity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScalingConfig {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Load per replica (0-1) the fleet is sized for.
    pub target_load_ratio: f64,
    /// Scale in only while load is below this share of the target (hysteresis).
    pub scale_in_below_ratio: f64,
    /// Capacity is planned for this multiple of the observed peak.
    pub peak_factor: f64,
    /// What one replica carries at 100 % load, in the unit of `demand_query` (concurrent
    /// sequences: vLLM's `--max-num-seqs`, 256 by default).
    pub replica_capacity: f64,
    /// PromQL: demand per model now (one series per `model`).
    pub demand_query: String,
    /// PromQL: replicas serving each model now.
    pub replicas_query: String,
    /// History the peak is taken from.
    #[serde(rename = "history_secs", with = "crate::config::duration::secs")]
    pub history: Duration,
    /// Resolution of that history.
    #[serde(rename = "history_step_secs", with = "crate::config::duration::secs")]
    pub history_step: Duration,
    /// The daemon recomputes `deepwatch_capacity_recommended_replicas` this often; 0 = never.
    #[serde(rename = "plan_interval_secs", with = "crate::config::duration::secs")]
    pub plan_interval: Duration,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        ScalingConfig {
            min_replicas: 3,
            max_replicas: 10,
            target_load_ratio: 0.8,
            scale_in_below_ratio: 0.7,
            peak_factor: 1.5,
            replica_capacity: 256.0,
            demand_query: format!(
                "sum by (model) ({} + {})",
                agent::ENGINE_REQUESTS_RUNNING.name,
                agent::ENGINE_REQUESTS_WAITING.name
            ),
            replicas_query: format!("count by (model) ({})", agent::ENGINE_REQUESTS_RUNNING.name),
            history: Duration::from_secs(7 * 24 * 3600),
            history_step: Duration::from_secs(60),
            plan_interval: Duration::from_secs(300),
        }
    }
}

/// Maps alerts to actions: an alert matching every matcher triggers the actions in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub name: String,
    /// Alertmanager matchers on the alert's labels: `name="v"`, `name!="v"`, `name=~"re"`,
    /// `name!~"re"` (regular expressions are anchored, as in Alertmanager).
    pub matchers: Vec<String>,
    /// Names of `[[remediation.actions]]`, run in order.
    pub actions: Vec<String>,
    /// When the alert resolves, undo the actions that can be undone (failover, degrade).
    pub revert_on_resolve: bool,
}

/// What an action does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Gateway `POST /admin/failover` to `pool`.
    #[default]
    Failover,
    /// Add capacity: `target` says where.
    Scale,
    /// Gateway `PUT /admin/degrade`: cap max_tokens, rate-limit low-priority tenants.
    Degrade,
    /// Gateway `POST /admin/rollouts/rollback`.
    Rollback,
    /// Run a configured command with a timeout (alert labels in its environment).
    RestartHook,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Failover => "failover",
            ActionKind::Scale => "scale",
            ActionKind::Degrade => "degrade",
            ActionKind::Rollback => "rollback",
            ActionKind::RestartHook => "restart_hook",
        }
    }
}

/// Where a scale action adds capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleTarget {
    /// Add spare upstream URLs to a gateway pool (`POST /admin/pools/{pool}/upstreams`).
    #[default]
    GatewayPool,
    /// Patch a Deployment's scale subresource (built with the `k8s` feature).
    Kubernetes,
    /// Raise a KEDA ScaledObject's `minReplicaCount` (built with the `k8s` feature).
    Keda,
}

/// One named action. Fields after `dry_run` belong to one kind each; `validate()` rejects a
/// field set for a kind that does not use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    pub name: String,
    pub kind: ActionKind,
    /// After running, the action is skipped for this long.
    #[serde(rename = "cooldown_secs", with = "crate::config::duration::secs")]
    pub cooldown: Duration,
    /// Runs in any rolling hour; 0 means no per-action limit.
    pub max_per_hour: u32,
    /// This action only: check and audit, change nothing.
    pub dry_run: bool,
    /// failover: pool to send all traffic to; scale (gateway_pool): pool to grow.
    pub pool: Option<String>,
    /// scale: where capacity is added.
    pub target: Option<ScaleTarget>,
    /// scale (gateway_pool): upstream URLs that may be added, in order.
    pub spare_upstreams: Option<Vec<String>>,
    /// scale: replicas added per run when no load measurement is available.
    pub step: Option<u32>,
    /// scale: PromQL giving the current load per replica (0-1); empty means step.
    pub load_query: Option<String>,
    /// scale (kubernetes, keda): namespace of the object.
    pub namespace: Option<String>,
    /// scale (kubernetes): Deployment name; (keda): ScaledObject name.
    pub object: Option<String>,
    /// scale (kubernetes, keda): kubeconfig file; absent means in-cluster or `$KUBECONFIG`.
    pub kubeconfig: Option<String>,
    /// degrade: cap on max_tokens of every request.
    pub max_tokens_cap: Option<u32>,
    /// degrade: low-priority tenants to rate-limit.
    pub tenants: Option<Vec<String>>,
    /// degrade: their rate limit.
    pub requests_per_second: Option<f64>,
    /// restart_hook: program and arguments (no shell).
    pub command: Option<Vec<String>>,
    /// restart_hook: the command is killed after this long.
    #[serde(rename = "timeout_secs", with = "crate::config::duration::opt_secs")]
    pub timeout: Option<Duration>,
}

impl Default for ActionConfig {
    fn default() -> Self {
        ActionConfig {
            name: String::new(),
            kind: ActionKind::Failover,
            cooldown: Duration::from_secs(300),
            max_per_hour: 6,
            dry_run: false,
            pool: None,
            target: None,
            spare_upstreams: None,
            step: None,
            load_query: None,
            namespace: None,
            object: None,
            kubeconfig: None,
            max_tokens_cap: None,
            tenants: None,
            requests_per_second: None,
            command: None,
            timeout: None,
        }
    }
}

/// The default policies act on alerts `deepwatch rules` generates (a test in the rules crate
/// checks every one matches a generated alert routed to the analyzer). Policies whose action
/// is risky or site-specific (restarting an engine, shedding load) ship with that action in
/// `dry_run`: the analyzer audits what it would do and changes nothing until it is set false.
fn default_policies() -> Vec<PolicyConfig> {
    let policy = |name: &str, matchers: &[&str], action: &str| PolicyConfig {
        name: name.to_string(),
        matchers: matchers.iter().map(|m| m.to_string()).collect(),
        actions: vec![action.to_string()],
        revert_on_resolve: false,
    };
    vec![
        policy("model_unavailable", &["alertname=\"ModelUnavailable\""], "failover_to_standby"),
        policy("performance_drop", &["alertname=\"PerformanceDrop\""], "degrade_low_priority"),
        policy("canary_failing", &["alertname=\"CanaryFailing\""], "rollback_canary"),
        policy("engine_stalled", &["alertname=\"EngineStalled\""], "restart_engine"),
        policy(
            "memory_leak",
            &["alertname=\"MemoryLeak\"", "severity=\"critical\""],
            "restart_engine",
        ),
        policy(
            "queue_backlog",
            &["alertname=\"EngineQueueDepthHigh\"", "severity=\"critical\""],
            "shed_low_priority",
        ),
    ]
}

fn default_actions() -> Vec<ActionConfig> {
    vec![
        ActionConfig {
            name: "failover_to_standby".to_string(),
            kind: ActionKind::Failover,
            cooldown: Duration::from_secs(600),
            max_per_hour: 3,
            pool: Some("standby".to_string()),
            ..ActionConfig::default()
        },
        ActionConfig {
            name: "degrade_low_priority".to_string(),
            kind: ActionKind::Degrade,
            max_tokens_cap: Some(512),
            tenants: Some(vec!["free".to_string()]),
            requests_per_second: Some(1.0),
            ..ActionConfig::default()
        },
        ActionConfig {
            name: "rollback_canary".to_string(),
            kind: ActionKind::Rollback,
            ..ActionConfig::default()
        },
        ActionConfig {
            name: "restart_engine".to_string(),
            kind: ActionKind::RestartHook,
            cooldown: Duration::from_secs(900),
            max_per_hour: 2,
            dry_run: true,
            command: Some(vec!["systemctl".into(), "restart".into(), "vllm".into()]),
            timeout: Some(Duration::from_secs(120)),
            ..ActionConfig::default()
        },
        ActionConfig {
            name: "shed_low_priority".to_string(),
            kind: ActionKind::Degrade,
            dry_run: true,
            max_tokens_cap: Some(512),
            tenants: Some(vec!["free".to_string()]),
            requests_per_second: Some(1.0),
            ..ActionConfig::default()
        },
    ]
}

impl RemediationConfig {
    /// The webhook token: `webhook_token_file` (trimmed) wins over `webhook_token`.
    pub fn webhook_token(&self) -> Result<String, String> {
        if self.webhook_token_file.is_empty() {
            return Ok(self.webhook_token.clone());
        }
        std::fs::read_to_string(&self.webhook_token_file)
            .map(|t| t.trim().to_string())
            .map_err(|e| format!("cannot read {}: {e}", self.webhook_token_file))
    }

    /// The audit log path: `audit_log`, or `audit.jsonl` in the state directory.
    pub fn audit_log_path(&self) -> std::path::PathBuf {
        if self.audit_log.is_empty() {
            std::path::Path::new(&self.state_dir).join("audit.jsonl")
        } else {
            std::path::PathBuf::from(&self.audit_log)
        }
    }
}

/// Commented default for this section, part of `deepwatch config example`.
pub const EXAMPLE: &str = r#"
[remediation]
# Run actions at all. When false, alerts are still received, journaled and root-cause ranked.
enabled = true
# The analyzer daemon (`deepwatch analyze --config FILE`, listening on analyzer.listen) takes
# Alertmanager's webhook on POST /webhook/alertmanager and acts through these settings.
# Durable state: alerts.jsonl, the handled alerts, so a restart never repeats an action.
state_dir = "/var/lib/deepwatch/analyzer"
# Append-only JSON lines: an "intent" record (fsynced) before each action, a "result" after.
# Empty = <state_dir>/audit.jsonl.
audit_log = ""
# Base URL for links to reports in notifications; empty = http://<analyzer.listen>.
public_url = ""
# Bearer token required on POST /webhook/alertmanager and /notify/{channel}; set it in
# Alertmanager's webhook http_config (authorization: {credentials: ...}). Empty: no check.
webhook_token = ""
webhook_token_file = ""
# Check preconditions and audit every action, but change nothing.
dry_run = false
# Alerts waiting for the worker; when full the webhook answers 503 and Alertmanager retries.
queue_capacity = 1024
# Actions of all kinds together in any rolling hour (0 = no global limit).
max_actions_per_hour = 20
action_timeout_secs = 30
# Handled alerts (fingerprint, status, startsAt) are remembered this long: 7 days.
journal_retention_secs = 604800

# The gateway admin API the actions call (Authorization: Bearer <token>).
[remediation.gateway]
url = "http://127.0.0.1:9845"
token = ""
# File holding the token; wins over `token`.
token_file = ""
timeout_ms = 5000

# Replica rules for the scale action and `deepwatch analyze capacity`: keep 3 to 10 replicas at
# 80 % load each, scale in only below 70 % of that target, plan for 1.5x the observed peak.
[remediation.scaling]
min_replicas = 3
max_replicas = 10
target_load_ratio = 0.8
scale_in_below_ratio = 0.7
peak_factor = 1.5
# Demand is counted in concurrent sequences (running + waiting); one replica carries
# replica_capacity of them at 100 % load (vLLM --max-num-seqs).
replica_capacity = 256.0
demand_query = "sum by (model) (deepwatch_engine_requests_running + deepwatch_engine_requests_waiting)"
replicas_query = "count by (model) (deepwatch_engine_requests_running)"
# The peak is taken over this history (7 days) at this step.
history_secs = 604800
history_step_secs = 60
# The daemon exports deepwatch_capacity_recommended_replicas{model} this often (0 = off).
plan_interval_secs = 300

# Policies: an alert whose labels match every matcher (Alertmanager syntax; regular expressions
# anchored) runs the named actions in order. revert_on_resolve undoes failover/degrade when
# the alert resolves. The defaults act on alerts `deepwatch rules` generates: the P1
# ModelUnavailable, the P2 PerformanceDrop and CanaryFailing (a canary clearly worse than
# its stable pool during a rollout), EngineStalled (an engine hanging while /health answers),
# a critical MemoryLeak and a critical EngineQueueDepthHigh; the generated Alertmanager config
# routes them to the analyzer's webhook. The last three are off by default: their actions run
# as dry runs (audited, nothing changed) until you set dry_run = false on the action.
[[remediation.policies]]
name = "model_unavailable"
matchers = ['alertname="ModelUnavailable"']
actions = ["failover_to_standby"]
revert_on_resolve = false

[[remediation.policies]]
name = "performance_drop"
matchers = ['alertname="PerformanceDrop"']
actions = ["degrade_low_priority"]
revert_on_resolve = false

[[remediation.policies]]
name = "canary_failing"
matchers = ['alertname="CanaryFailing"']
actions = ["rollback_canary"]
revert_on_resolve = false

# Off by default (restart_engine is a dry run): restart an engine that hangs.
[[remediation.policies]]
name = "engine_stalled"
matchers = ['alertname="EngineStalled"']
actions = ["restart_engine"]
revert_on_resolve = false

# Off by default: drain and restart a process that leaks past the critical rate.
[[remediation.policies]]
name = "memory_leak"
matchers = ['alertname="MemoryLeak"', 'severity="critical"']
actions = ["restart_engine"]
revert_on_resolve = false

# Off by default (shed_low_priority is a dry run): shed low-priority load while an engine's
# queue is critically long.
[[remediation.policies]]
name = "queue_backlog"
matchers = ['alertname="EngineQueueDepthHigh"', 'severity="critical"']
actions = ["shed_low_priority"]
revert_on_resolve = false

# Actions: kind is failover, scale, degrade, rollback or restart_hook. Each has a cooldown,
# a per-hour limit and its own dry_run. Preconditions are checked (read-only) before running.
[[remediation.actions]]
name = "failover_to_standby"
kind = "failover"
pool = "standby"
cooldown_secs = 600
max_per_hour = 3
dry_run = false

[[remediation.actions]]
name = "degrade_low_priority"
kind = "degrade"
max_tokens_cap = 512
tenants = ["free"]
requests_per_second = 1.0
cooldown_secs = 300
max_per_hour = 6
dry_run = false

[[remediation.actions]]
name = "rollback_canary"
kind = "rollback"
cooldown_secs = 300
max_per_hour = 6
dry_run = false

# Restart (or drain and restart) an engine: a command without a shell; the alert's labels
# are in its environment as DEEPWATCH_LABEL_<NAME>. A script that first takes the upstream
# out of its pool (DELETE /admin/pools/{pool}/upstreams), restarts, and adds it back drains
# it. dry_run = true: audited, never run, until you point it at your service and set false.
[[remediation.actions]]
name = "restart_engine"
kind = "restart_hook"
command = ["systemctl", "restart", "vllm"]
timeout_secs = 120
cooldown_secs = 900
max_per_hour = 2
dry_run = true

# Shed low-priority load (same settings as degrade_low_priority); a dry run by default.
[[remediation.actions]]
name = "shed_low_priority"
kind = "degrade"
max_tokens_cap = 512
tenants = ["free"]
requests_per_second = 1.0
cooldown_secs = 300
max_per_hour = 6
dry_run = true

# Scale out by adding spare upstreams to a gateway pool (how the demo grows the simulator pool).
# The number added follows [remediation.scaling] when load_query measures load per replica,
# otherwise `step` per run.
# [[remediation.actions]]
# name = "scale_out_primary"
# kind = "scale"
# target = "gateway_pool"                   # gateway_pool, kubernetes, keda
# pool = "primary"
# spare_upstreams = ["http://10.0.0.7:8000", "http://10.0.0.8:8000"]
# step = 1
# load_query = 'avg(deepwatch_engine_requests_running / 256)'
# # target = "kubernetes": namespace = "llm", object = "vllm-deepseek" (its Deployment's
# #   scale subresource is patched); target = "keda": object names the ScaledObject, whose
# #   minReplicaCount is raised. Both need a build with `--features k8s`; kubeconfig = "path"
# #   picks a cluster, otherwise in-cluster config or $KUBECONFIG.

"#;

#[cfg(test)]
mod tests;
