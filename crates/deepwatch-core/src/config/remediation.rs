//! The `[remediation]` section of `deepwatch.toml`: the analyzer daemon's state directory and
//! audit log, the gateway admin API it acts through, the scaling rules, and the policies that
//! map Alertmanager alerts (by label matchers) to named actions. Durations are integers with
//! their unit in the name (`cooldown_secs`, `timeout_ms`).

use super::{Path, Problems};
use crate::catalog::agent;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

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
    pub action_timeout_secs: u64,
    /// How long handled alerts are remembered for deduplication across restarts.
    pub journal_retention_secs: u64,
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
            action_timeout_secs: 30,
            journal_retention_secs: 7 * 24 * 3600,
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
    pub timeout_ms: u64,
}

impl Default for GatewayAdminConfig {
    fn default() -> Self {
        GatewayAdminConfig {
            url: "http://127.0.0.1:9845".to_string(),
            token: String::new(),
            token_file: String::new(),
            timeout_ms: 5000,
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
    pub history_secs: u64,
    /// Resolution of that history.
    pub history_step_secs: u64,
    /// The daemon recomputes `deepwatch_capacity_recommended_replicas` this often; 0 = never.
    pub plan_interval_secs: u64,
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
            history_secs: 7 * 24 * 3600,
            history_step_secs: 60,
            plan_interval_secs: 300,
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
    pub cooldown_secs: u64,
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
    pub timeout_secs: Option<u64>,
}

impl Default for ActionConfig {
    fn default() -> Self {
        ActionConfig {
            name: String::new(),
            kind: ActionKind::Failover,
            cooldown_secs: 300,
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
            timeout_secs: None,
        }
    }
}

fn default_policies() -> Vec<PolicyConfig> {
    let policy = |name: &str, alertname: &str, action: &str| PolicyConfig {
        name: name.to_string(),
        matchers: vec![format!("alertname=\"{alertname}\"")],
        actions: vec![action.to_string()],
        revert_on_resolve: false,
    };
    vec![
        policy("model_unavailable", "DeepwatchModelUnavailable", "failover_to_standby"),
        policy("performance_drop", "DeepwatchPerformanceDrop", "degrade_low_priority"),
        policy("canary_failing", "DeepwatchCanaryFailing", "rollback_canary"),
    ]
}

fn default_actions() -> Vec<ActionConfig> {
    vec![
        ActionConfig {
            name: "failover_to_standby".to_string(),
            kind: ActionKind::Failover,
            cooldown_secs: 600,
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
    ]
}

/// How a matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// One parsed Alertmanager-style matcher. A missing label matches as the empty string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

impl Matcher {
    /// Parses `name="value"`, `name!="value"`, `name=~"re"`, `name!~"re"`; the value may be
    /// unquoted when it holds no spaces or quotes. Regular expressions are checked to compile.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let text = text.trim();
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| format!("{text:?} has no operator (=, !=, =~, !~)"))?;
        let name = &text[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("{text:?} does not start with a label name"));
        }
        let rest = text[end..].trim_start();
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(format!("{text:?} has no operator (=, !=, =~, !~) after {name:?}"));
        };
        let value = unquote(value.trim()).map_err(|e| format!("{text:?}: {e}"))?;
        if matches!(op, MatchOp::Regex | MatchOp::NotRegex) {
            regex::Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("{text:?}: invalid regular expression: {e}"))?;
        }
        Ok(Matcher { name: name.to_string(), op, value })
    }
}

fn unquote(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix('"') else {
        if value.contains(['"', ' ']) {
            return Err("unquoted values may not contain spaces or quotes".to_string());
        }
        return Ok(value.to_string());
    };
    let inner = inner.strip_suffix('"').ok_or("missing closing quote")?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other @ ('"' | '\\')) => out.push(other),
                other => return Err(format!("unknown escape \\{}", other.unwrap_or(' '))),
            },
            '"' => return Err("unescaped quote inside the value".to_string()),
            c => out.push(c),
        }
    }
    Ok(out)
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

    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        problems.non_empty(&path.field("state_dir"), &self.state_dir);
        if !self.public_url.is_empty() {
            problems.http_url(&path.field("public_url"), &self.public_url);
        }
        problems.range(&path.field("queue_capacity"), self.queue_capacity, 1, 1_000_000);
        problems.range(&path.field("action_timeout_secs"), self.action_timeout_secs, 1, 3600);
        problems.positive(&path.field("journal_retention_secs"), self.journal_retention_secs);
        let gw = path.field("gateway");
        problems.http_url(&gw.field("url"), &self.gateway.url);
        problems.range(&gw.field("timeout_ms"), self.gateway.timeout_ms, 1, 600_000);
        self.validate_scaling(&path.field("scaling"), problems);
        let mut actions = HashSet::new();
        for (i, a) in self.actions.iter().enumerate() {
            let at = path.field("actions").index(i);
            problems.non_empty(&at.field("name"), &a.name);
            if !a.name.is_empty() && !actions.insert(a.name.as_str()) {
                problems.push(&at.field("name"), format!("duplicate action name {:?}", a.name));
            }
            a.validate(&at, problems);
        }
        let mut policies = HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            let at = path.field("policies").index(i);
            problems.non_empty(&at.field("name"), &p.name);
            if !p.name.is_empty() && !policies.insert(p.name.as_str()) {
                problems.push(&at.field("name"), format!("duplicate policy name {:?}", p.name));
            }
            if p.matchers.is_empty() {
                problems.push(&at.field("matchers"), "needs at least one matcher");
            }
            for (j, m) in p.matchers.iter().enumerate() {
                if let Err(e) = Matcher::parse(m) {
                    problems.push(&at.field("matchers").index(j), e);
                }
            }
            if p.actions.is_empty() {
                problems.push(&at.field("actions"), "needs at least one action");
            }
            for (j, name) in p.actions.iter().enumerate() {
                if !actions.contains(name.as_str()) {
                    problems.push(
                        &at.field("actions").index(j),
                        format!("no [[remediation.actions]] is named {name:?}"),
                    );
                }
            }
        }
    }

    fn validate_scaling(&self, path: &Path, problems: &mut Problems) {
        let s = &self.scaling;
        problems.positive(&path.field("min_replicas"), s.min_replicas);
        if s.max_replicas < s.min_replicas {
            problems.push(
                &path.field("max_replicas"),
                format!(
                    "must be at least min_replicas ({}), got {}",
                    s.min_replicas, s.max_replicas
                ),
            );
        }
        problems.range(&path.field("target_load_ratio"), s.target_load_ratio, 0.05, 1.0);
        problems.range(&path.field("scale_in_below_ratio"), s.scale_in_below_ratio, 0.05, 0.99);
        problems.range(&path.field("peak_factor"), s.peak_factor, 1.0, 10.0);
        problems.positive(&path.field("replica_capacity"), s.replica_capacity);
        problems.non_empty(&path.field("demand_query"), &s.demand_query);
        problems.non_empty(&path.field("replicas_query"), &s.replicas_query);
        problems.positive(&path.field("history_step_secs"), s.history_step_secs);
        if s.history_secs < 2 * s.history_step_secs {
            problems.push(
                &path.field("history_secs"),
                format!(
                    "must cover at least two steps ({} s), got {}",
                    2 * s.history_step_secs,
                    s.history_secs
                ),
            );
        }
    }
}

impl ActionConfig {
    fn validate(&self, at: &Path, problems: &mut Problems) {
        use ActionKind::*;
        let kind = self.kind;
        let mut unused = |field: &str, set: bool, used_by: &[ActionKind]| {
            if set && !used_by.contains(&kind) {
                problems.push(&at.field(field), format!("is not used by kind {:?}", kind.as_str()));
            }
        };
        unused("pool", self.pool.is_some(), &[Failover, Scale]);
        unused("target", self.target.is_some(), &[Scale]);
        unused("spare_upstreams", self.spare_upstreams.is_some(), &[Scale]);
        unused("step", self.step.is_some(), &[Scale]);
        unused("load_query", self.load_query.is_some(), &[Scale]);
        unused("namespace", self.namespace.is_some(), &[Scale]);
        unused("object", self.object.is_some(), &[Scale]);
        unused("kubeconfig", self.kubeconfig.is_some(), &[Scale]);
        unused("max_tokens_cap", self.max_tokens_cap.is_some(), &[Degrade]);
        unused("tenants", self.tenants.is_some(), &[Degrade]);
        unused("requests_per_second", self.requests_per_second.is_some(), &[Degrade]);
        unused("command", self.command.is_some(), &[RestartHook]);
        unused("timeout_secs", self.timeout_secs.is_some(), &[RestartHook]);
        match kind {
            Failover => {
                problems.non_empty(&at.field("pool"), self.pool.as_deref().unwrap_or(""));
            }
            Scale => self.validate_scale(at, problems),
            Degrade => {
                if self.max_tokens_cap.is_none() && self.tenants.is_none() {
                    problems.push(at, "a degrade action needs max_tokens_cap, tenants or both");
                }
                if let Some(cap) = self.max_tokens_cap {
                    problems.positive(&at.field("max_tokens_cap"), cap);
                }
                if self.tenants.as_ref().is_some_and(|t| t.is_empty()) {
                    problems.push(&at.field("tenants"), "must name at least one tenant");
                }
                if self.tenants.is_some() != self.requests_per_second.is_some() {
                    problems.push(at, "tenants and requests_per_second go together");
                }
                if let Some(rps) = self.requests_per_second {
                    problems.positive(&at.field("requests_per_second"), rps);
                }
            }
            Rollback => {}
            RestartHook => {
                let command = self.command.as_deref().unwrap_or(&[]);
                if command.first().is_none_or(|p| p.trim().is_empty()) {
                    problems.push(&at.field("command"), "must name a program to run");
                }
                problems.range(&at.field("timeout_secs"), self.timeout_secs.unwrap_or(60), 1, 3600);
            }
        }
    }

    fn validate_scale(&self, at: &Path, problems: &mut Problems) {
        if let Some(step) = self.step {
            problems.range(&at.field("step"), step, 1, 100);
        }
        if self.load_query.as_deref().is_some_and(|q| q.trim().is_empty()) {
            problems.push(&at.field("load_query"), "must not be empty (leave it out instead)");
        }
        match self.target.unwrap_or_default() {
            ScaleTarget::GatewayPool => {
                problems.non_empty(&at.field("pool"), self.pool.as_deref().unwrap_or(""));
                let spares = self.spare_upstreams.as_deref().unwrap_or(&[]);
                if spares.is_empty() {
                    problems.push(&at.field("spare_upstreams"), "must list at least one URL");
                }
                if self.namespace.is_some() || self.object.is_some() || self.kubeconfig.is_some() {
                    problems.push(
                        at,
                        "namespace, object and kubeconfig are for targets kubernetes and keda",
                    );
                }
                for (i, url) in spares.iter().enumerate() {
                    problems.http_url(&at.field("spare_upstreams").index(i), url);
                }
            }
            ScaleTarget::Kubernetes | ScaleTarget::Keda => {
                problems.non_empty(&at.field("namespace"), self.namespace.as_deref().unwrap_or(""));
                problems.non_empty(&at.field("object"), self.object.as_deref().unwrap_or(""));
                if self.pool.is_some() || self.spare_upstreams.is_some() {
                    problems.push(at, "pool and spare_upstreams are for target \"gateway_pool\"");
                }
            }
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
# the alert resolves.
[[remediation.policies]]
name = "model_unavailable"
matchers = ['alertname="DeepwatchModelUnavailable"']
actions = ["failover_to_standby"]
revert_on_resolve = false

[[remediation.policies]]
name = "performance_drop"
matchers = ['alertname="DeepwatchPerformanceDrop"']
actions = ["degrade_low_priority"]
revert_on_resolve = false

[[remediation.policies]]
name = "canary_failing"
matchers = ['alertname="DeepwatchCanaryFailing"']
actions = ["rollback_canary"]
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

# Run a command (no shell) with a timeout; the alert's labels are in its environment as
# DEEPWATCH_LABEL_<NAME> (upper case), plus DEEPWATCH_ALERTNAME and DEEPWATCH_FINGERPRINT.
# [[remediation.actions]]
# name = "restart_leaking_engine"
# kind = "restart_hook"
# command = ["systemctl", "restart", "vllm"]
# timeout_secs = 60
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn problems_of(toml: &str) -> String {
        match Config::from_toml_str(toml).unwrap().validate() {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn matchers_parse_like_alertmanager() {
        let m = Matcher::parse(r#"alertname="Model Down""#).unwrap();
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("alertname", MatchOp::Equal, "Model Down")
        );
        let m = Matcher::parse("severity=~critical|page").unwrap();
        assert_eq!((m.op, m.value.as_str()), (MatchOp::Regex, "critical|page"));
        assert_eq!(Matcher::parse(r#"pool != "a\"b""#).unwrap().value, "a\"b");
        assert_eq!(Matcher::parse("x!~y").unwrap().op, MatchOp::NotRegex);
        assert!(Matcher::parse("alertname").unwrap_err().contains("no operator"));
        assert!(Matcher::parse(r#"a=~"(""#).unwrap_err().contains("invalid regular expression"));
        assert!(Matcher::parse(r#"a="x"#).unwrap_err().contains("closing quote"));
        assert!(Matcher::parse(r#"="x""#).unwrap_err().contains("label name"));
    }

    #[test]
    fn every_bad_field_is_named_with_its_path() {
        let text = problems_of(
            r#"
[remediation]
public_url = "nowhere"
[remediation.gateway]
url = "ftp://gw"
[remediation.scaling]
min_replicas = 5
max_replicas = 2
[[remediation.policies]]
name = "p"
matchers = ['alertname=~"("']
actions = ["missing"]
[[remediation.actions]]
name = "s"
kind = "scale"
pool = "primary"
spare_upstreams = ["localhost:1"]
max_tokens_cap = 5
[[remediation.actions]]
name = "h"
kind = "restart_hook"
command = []
[[remediation.actions]]
name = "h"
kind = "degrade"
tenants = ["free"]
"#,
        );
        for expected in [
            "remediation.public_url: is not a valid URL",
            "remediation.gateway.url: must be an http or https URL",
            "remediation.scaling.max_replicas: must be at least min_replicas (5), got 2",
            "remediation.policies[0].matchers[0]: ",
            "remediation.policies[0].actions[0]: no [[remediation.actions]] is named \"missing\"",
            "remediation.actions[0].spare_upstreams[0]: must be an http or https URL",
            "remediation.actions[0].max_tokens_cap: is not used by kind \"scale\"",
            "remediation.actions[1].command: must name a program to run",
            "remediation.actions[2].name: duplicate action name \"h\"",
            "remediation.actions[2]: tenants and requests_per_second go together",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn unknown_action_kind_is_a_parse_error_naming_the_value() {
        let err =
            Config::from_toml_str("[[remediation.actions]]\nname = \"x\"\nkind = \"reboot\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("reboot"), "{err}");
    }

    #[test]
    fn audit_log_defaults_into_the_state_dir() {
        let c = RemediationConfig { state_dir: "/s".into(), ..Default::default() };
        assert_eq!(c.audit_log_path(), std::path::PathBuf::from("/s/audit.jsonl"));
    }
}
