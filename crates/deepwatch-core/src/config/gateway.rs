//! The `[gateway]` section of `deepwatch.toml`: listeners and credentials, label allow-lists,
//! timeouts and limits, upstream pools with their health settings, retry, rollout defaults,
//! the sensitive-data scanner's per-tenant policies, fault injection and the request log.
//! Durations are written as integers with their unit in the key (`interval_ms`, `step_secs`)
//! and held as `Duration` (`duration.rs`).

use super::client::TlsConfig;
use super::duration::{MAX_INTERVAL, MAX_TIMEOUT, MAX_WINDOW};
use super::{Path, Problems};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Default proxy address: all interfaces, port 8080 (vLLM's own default is 8000).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default admin and `/metrics` address: loopback only, next to the agent's 9844.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9845";
/// Request header pinning a request to one pool (keys in `pin_keys` only); also the response
/// header naming the pool that answered.
pub const POOL_HEADER: &str = "x-deepwatch-pool";
/// Request header pinning a request to the pools of one `model_version` (keys in `pin_keys`
/// only); also the response header naming the answering pool's `model_version`.
pub const MODEL_VERSION_HEADER: &str = "x-deepwatch-model-version";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address of the OpenAI-compatible proxy.
    pub listen: String,
    /// Address of the admin API, `/metrics` and `/healthz`.
    pub admin_listen: String,
    /// Bearer token of the admin API; empty disables every admin endpoint except `/metrics`
    /// and `/healthz`.
    pub admin_token: String,
    /// Proxy worker threads, each with its own event loop, listener socket (SO_REUSEPORT) and
    /// upstream connection pool; 0 = one per CPU core.
    pub workers: usize,
    /// Reject proxy requests without a key from `api_keys` (401).
    pub require_api_key: bool,
    /// API key -> tenant name. The tenant labels metrics and selects the scanner policy.
    pub api_keys: BTreeMap<String, String>,
    /// Keys of `api_keys` whose requests may pin a pool (`x-deepwatch-pool`) or a model
    /// version (`x-deepwatch-model-version`), bypassing weights, priorities and forced
    /// failover: golden-prompt probes, debugging. Anyone else sending a pin header gets 403.
    pub pin_keys: Vec<String>,
    /// Tenant label values; empty = every tenant named in `api_keys`. Others fold into `other`.
    pub tenants: Vec<String>,
    /// Model names served; empty = any model (up to `max_model_labels` names the upstream
    /// answered with a 2xx label metrics, others fold into `other`; a name unused for an hour
    /// frees its slot). Non-empty: other models get 404.
    pub models: Vec<String>,
    pub max_model_labels: usize,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers; also how long a keep-alive connection
    /// may sit idle between requests.
    #[serde(rename = "client_header_timeout_ms", with = "crate::config::duration::millis")]
    pub client_header_timeout: Duration,
    /// Time a client has to send its whole request body (408 after).
    #[serde(rename = "client_body_timeout_ms", with = "crate::config::duration::millis")]
    pub client_body_timeout: Duration,
    #[serde(rename = "upstream_connect_timeout_ms", with = "crate::config::duration::millis")]
    pub upstream_connect_timeout: Duration,
    /// Idle upstream connections are closed after this long, before the engine closes them
    /// (uvicorn, and so vLLM, closes idle keep-alive connections after 5 s).
    #[serde(rename = "upstream_keepalive_ms", with = "crate::config::duration::millis")]
    pub upstream_keepalive: Duration,
    /// Time from sending a request upstream to its response headers.
    #[serde(rename = "upstream_header_timeout_ms", with = "crate::config::duration::millis")]
    pub upstream_header_timeout: Duration,
    /// Longest silence from an upstream while reading its body (first token included).
    #[serde(rename = "upstream_idle_timeout_ms", with = "crate::config::duration::millis")]
    pub upstream_idle_timeout: Duration,
    /// SSE comment sent to streaming clients after this much silence; 0 disables. While a
    /// first-token deadline is on, nothing (not even a keep-alive) goes out before the
    /// upstream's first content byte, so the request can still move to another upstream.
    #[serde(rename = "keepalive_interval_ms", with = "crate::config::duration::millis")]
    pub keepalive_interval: Duration,
    /// Deadline from sending a streamed request upstream to its first content byte; past it
    /// the attempt is dropped and retried elsewhere (the last attempt waits on). 0 disables.
    /// Unset: ten times `rules.thresholds.ttft.critical` (10 s with the defaults). Pools may
    /// override it.
    #[serde(
        rename = "first_token_timeout_ms",
        with = "crate::config::duration::opt_millis",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub first_token_timeout: Option<Duration>,
    /// Client request headers never sent upstream, besides hop-by-hop and gateway-owned ones
    /// (lowercase names, e.g. `cookie`).
    pub forward_headers_deny: Vec<String>,
    pub retry: RetryConfig,
    pub pools: Vec<PoolConfig>,
    pub rollout: RolloutConfig,
    pub scanner: ScannerConfig,
    pub faults: FaultsConfig,
    pub request_log: RequestLogConfig,
    /// Append-only JSON-lines file of deploy events (start, step, rollback, promote, failover);
    /// empty keeps them in memory only (`GET /admin/events`).
    pub events_path: String,
    /// Model name -> price per million tokens, for `deepwatch_spend_total`; models without a
    /// price have no spend series.
    pub prices: super::cost::Prices,
    /// Tenant -> spend budget per day, in the currency of `prices`; exported as
    /// `deepwatch_tenant_daily_budget` for the `TenantBudgetExceeded` alert.
    pub daily_budgets: BTreeMap<String, f64>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: DEFAULT_LISTEN.to_string(),
            admin_listen: DEFAULT_ADMIN_LISTEN.to_string(),
            admin_token: String::new(),
            workers: 0,
            require_api_key: false,
            api_keys: BTreeMap::new(),
            pin_keys: Vec::new(),
            tenants: Vec::new(),
            models: Vec::new(),
            max_model_labels: 16,
            max_body_bytes: 8 * 1024 * 1024,
            client_header_timeout: Duration::from_millis(30_000),
            client_body_timeout: Duration::from_millis(60_000),
            upstream_connect_timeout: Duration::from_millis(2_000),
            upstream_keepalive: Duration::from_millis(4_000),
            upstream_header_timeout: Duration::from_millis(60_000),
            upstream_idle_timeout: Duration::from_millis(300_000),
            keepalive_interval: Duration::from_millis(10_000),
            first_token_timeout: None,
            forward_headers_deny: Vec::new(),
            retry: RetryConfig::default(),
            pools: Vec::new(),
            rollout: RolloutConfig::default(),
            scanner: ScannerConfig::default(),
            faults: FaultsConfig::default(),
            request_log: RequestLogConfig::default(),
            events_path: String::new(),
            prices: super::cost::Prices::new(),
            daily_budgets: BTreeMap::new(),
        }
    }
}

/// Retry of requests that failed before any byte reached the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Extra attempts, each on another upstream (0 disables).
    pub attempts: u32,
    /// Upstream statuses that count as a failure worth retrying.
    pub on_status: Vec<u16>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { attempts: 1, on_status: vec![500, 502, 503, 504] }
    }
}

/// A group of upstreams serving one model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    pub name: String,
    /// Percent of the traffic of its priority tier (0-100); a rollout moves it.
    pub weight: u32,
    /// 0 serves first; a higher number is a standby that serves only while every pool with a
    /// lower number has no healthy upstream.
    pub priority: u32,
    /// The `model_version` label of requests served here.
    pub model_version: String,
    /// Base URLs (`http://host:port`, or `https://host` for a hosted API or a TLS ingress);
    /// request paths are appended.
    pub upstreams: Vec<String>,
    /// Bearer key sent upstream; empty forwards the client's `Authorization` when the gateway
    /// has no `api_keys` of its own, else sends none.
    pub api_key: String,
    /// Environment variable holding the upstream key (instead of `api_key`); read at start,
    /// never logged. The client's `Authorization` is then never forwarded.
    pub api_key_env: String,
    /// File holding the upstream key (trailing whitespace trimmed; a mounted secret).
    pub api_key_file: String,
    /// This pool's first-token deadline (overrides `gateway.first_token_timeout_ms`).
    #[serde(
        rename = "first_token_timeout_ms",
        with = "crate::config::duration::opt_millis",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub first_token_timeout: Option<Duration>,
    /// TLS for this pool's `https://` upstreams: extra CA, client certificate (mTLS).
    #[serde(skip_serializing_if = "TlsConfig::is_default")]
    pub tls: TlsConfig,
    pub health: HealthConfig,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: String::new(),
            weight: 100,
            priority: 0,
            model_version: "unknown".to_string(),
            upstreams: Vec::new(),
            api_key: String::new(),
            api_key_env: String::new(),
            api_key_file: String::new(),
            first_token_timeout: None,
            tls: TlsConfig::default(),
            health: HealthConfig::default(),
        }
    }
}

/// Passive (error ratio of real traffic) and active (probe) health of a pool's upstreams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Eject an upstream whose error ratio over the window reaches this (0-1).
    pub error_ratio: f64,
    #[serde(rename = "window_secs", with = "crate::config::duration::secs")]
    pub window: Duration,
    /// Requests in the window before the ratio counts.
    pub min_requests: u64,
    /// Consecutive failed requests that eject at once, whatever the ratio.
    pub consecutive_failures: u32,
    /// Probe path (GET, 2xx = pass); empty disables active probes.
    pub probe_path: String,
    #[serde(rename = "probe_interval_ms", with = "crate::config::duration::millis")]
    pub probe_interval: Duration,
    #[serde(rename = "probe_timeout_ms", with = "crate::config::duration::millis")]
    pub probe_timeout: Duration,
    /// Consecutive passing probes that bring an ejected upstream back.
    pub healthy_after: u32,
    /// Consecutive failing probes that eject an upstream.
    pub unhealthy_after: u32,
    /// Generation probe: ask the upstream for one token (`max_tokens = 1`) within the
    /// first-token deadline. An upstream ejected for not generating (a missed first-token
    /// deadline, a failed generation probe) returns only after `healthy_after` generation
    /// probes pass, whatever `/health` says; a healthy one is generation-probed every
    /// `generation_probe_interval_ms`.
    pub generation_probe: bool,
    #[serde(rename = "generation_probe_interval_ms", with = "crate::config::duration::millis")]
    pub generation_probe_interval: Duration,
    /// Model the generation probe asks; empty = the first model of the upstream's `/v1/models`.
    pub generation_probe_model: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            error_ratio: 0.5,
            window: Duration::from_secs(10),
            min_requests: 10,
            consecutive_failures: 3,
            probe_path: "/health".to_string(),
            probe_interval: Duration::from_millis(1_000),
            probe_timeout: Duration::from_millis(500),
            healthy_after: 2,
            unhealthy_after: 2,
            generation_probe: true,
            generation_probe_interval: Duration::from_millis(5_000),
            generation_probe_model: String::new(),
        }
    }
}

/// Defaults of rollouts started through `POST /admin/rollouts` (the request may override each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// Canary weights in percent; reaching 100 promotes.
    pub steps: Vec<u32>,
    /// A step not passed after this long counts an extension (`RolloutStalled` reads the
    /// step); steps pass as soon as their samples allow, not after a fixed window.
    #[serde(rename = "step_secs", with = "crate::config::duration::secs")]
    pub step: Duration,
    /// Requests each side needs at a step before it can pass.
    pub min_samples: u64,
    /// Canary TTFT p95 may be at most this multiple of stable's (plus `latency_slack_ms`).
    pub max_ttft_p95_ratio: f64,
    /// Canary TPOT p95 may be at most this multiple of stable's (plus `latency_slack_ms`).
    pub max_tpot_p95_ratio: f64,
    /// Absolute slack on the latency comparisons, so sub-millisecond noise does not fail.
    #[serde(rename = "latency_slack_ms", with = "crate::config::duration::millis")]
    pub latency_slack: Duration,
    /// Canary error ratio may exceed stable's by at most this (0-1).
    pub max_error_ratio_increase: f64,
    /// Canary stream-cut ratio may exceed stable's by at most this (0-1).
    pub max_stream_cut_ratio_increase: f64,
    /// Bound on the chance that a step rolls back a canary within every limit, although the
    /// checks look every second (sequential tests; see the gateway's `rollout::judge`).
    pub false_rollback_rate: f64,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            steps: vec![5, 20, 50, 100],
            step: Duration::from_secs(60),
            min_samples: 50,
            max_ttft_p95_ratio: 1.25,
            max_tpot_p95_ratio: 1.25,
            latency_slack: Duration::from_millis(10),
            max_error_ratio_increase: 0.02,
            max_stream_cut_ratio_increase: 0.01,
            false_rollback_rate: 0.01,
        }
    }
}

/// What the scanner does with a sensitive value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanAction {
    /// Do not scan.
    Off,
    /// Count matches, pass the text unchanged.
    Count,
    /// Replace each value with `[REDACTED:<kind>]`.
    Redact,
    /// Refuse the prompt (403) or end the stream with an error event.
    Block,
}

impl ScanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanAction::Off => "off",
            ScanAction::Count => "count",
            ScanAction::Redact => "redact",
            ScanAction::Block => "block",
        }
    }
}

/// Kinds of sensitive values the scanner knows.
pub const SCAN_KINDS: &[&str] = &["email", "phone", "cn_id", "bank_card", "api_key", "ipv4"];

/// One scanner policy: an action per direction and the kinds it looks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanPolicy {
    pub prompt: ScanAction,
    pub output: ScanAction,
    pub kinds: Vec<String>,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        ScanPolicy {
            prompt: ScanAction::Count,
            output: ScanAction::Count,
            kinds: SCAN_KINDS.iter().map(|k| k.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScannerConfig {
    pub enabled: bool,
    /// Policy of tenants without their own entry.
    pub default: ScanPolicy,
    /// Tenant name -> policy.
    pub tenants: BTreeMap<String, ScanPolicy>,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        ScannerConfig { enabled: true, default: ScanPolicy::default(), tenants: BTreeMap::new() }
    }
}

/// One fault-injection rule, applied to requests of one route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultRule {
    /// Route path, e.g. `/v1/chat/completions`.
    pub endpoint: String,
    /// Added before the request goes upstream.
    #[serde(rename = "latency_ms", with = "crate::config::duration::millis")]
    pub latency: Duration,
    /// Share of requests answered with `error_status` instead (0-1).
    pub error_rate: f64,
    pub error_status: u16,
    /// Streams are cut (SSE error event) after this many content chunks.
    pub stream_cut_after_chunks: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsConfig {
    /// Off unless set: `PUT /admin/faults` answers 403 while false.
    pub enabled: bool,
    /// Rules active from start (the admin API replaces them).
    pub rules: Vec<FaultRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestLogConfig {
    /// JSON-lines file, one line per request; `-` = stdout; empty disables.
    pub path: String,
    /// Also log prompt and output text, every value the sensitive-data detectors find replaced
    /// by `[REDACTED:<kind>]` whatever the scanner policies (off: only ids, timings, counts).
    pub include_text: bool,
}

/// Factor between the TTFT critical threshold (`rules.thresholds.ttft.critical`, p99) and the
/// default first-token deadline: a first token ten times later than the critical p99 is taken
/// for a hung engine, not a slow one.
pub const FIRST_TOKEN_DEADLINE_FACTOR: f64 = 10.0;

/// The first-token deadline derived from a TTFT critical threshold in seconds.
pub fn first_token_deadline(ttft_critical_secs: f64) -> Duration {
    let ms = (ttft_critical_secs * FIRST_TOKEN_DEADLINE_FACTOR * 1000.0).round().max(1.0);
    Duration::from_millis(ms.min(super::duration::MAX_TIMEOUT.as_millis() as f64) as u64)
}

impl GatewayConfig {
    /// The first-token deadline of `pool` (zero = off); `derived` stands in when neither
    /// the pool nor the gateway sets one.
    pub fn first_token_timeout(&self, pool: &PoolConfig, derived: Duration) -> Duration {
        pool.first_token_timeout.or(self.first_token_timeout).unwrap_or(derived)
    }
}

/// Routes the gateway proxies; fault rules must name one of them.
pub const ROUTES: &[&str] =
    &["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models"];

impl GatewayConfig {
    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        problems.socket_addr(&path.field("listen"), &self.listen);
        problems.socket_addr(&path.field("admin_listen"), &self.admin_listen);
        if !self.listen.is_empty()
            && self.listen == self.admin_listen
            && !self.listen.ends_with(":0")
        {
            problems.push(&path.field("admin_listen"), "must differ from listen");
        }
        problems.bearer_token(&path.field("admin_token"), &self.admin_token);
        for (key, tenant) in &self.api_keys {
            if key.trim().is_empty() {
                problems.push(&path.field("api_keys"), "keys must not be empty");
            } else {
                problems.bearer_token(&path.field("api_keys"), key);
            }
            problems.non_empty(&path.field("api_keys").key(key), tenant);
        }
        let mut pins = HashSet::new();
        for (i, key) in self.pin_keys.iter().enumerate() {
            // The key itself is a secret: never echo it in a problem.
            let at = path.field("pin_keys").index(i);
            if key.trim().is_empty() {
                problems.push(&at, "must not be empty");
            } else if !self.api_keys.contains_key(key) {
                problems
                    .push(&at, "is not a key of gateway.api_keys (pinned traffic needs a tenant)");
            } else if !pins.insert(key.as_str()) {
                problems.push(&at, "is listed twice");
            }
        }
        if self.require_api_key && self.api_keys.is_empty() {
            problems.push(&path.field("api_keys"), "require_api_key is set but no key is listed");
        }
        problems.range(&path.field("workers"), self.workers, 0, 1024);
        problems.positive(&path.field("max_model_labels"), self.max_model_labels);
        problems.positive(&path.field("max_body_bytes"), self.max_body_bytes);
        for (name, v) in [
            ("client_header_timeout_ms", self.client_header_timeout),
            ("client_body_timeout_ms", self.client_body_timeout),
            ("upstream_connect_timeout_ms", self.upstream_connect_timeout),
            ("upstream_keepalive_ms", self.upstream_keepalive),
            ("upstream_header_timeout_ms", self.upstream_header_timeout),
            ("upstream_idle_timeout_ms", self.upstream_idle_timeout),
        ] {
            problems.positive_duration(&path.field(name), v, MAX_TIMEOUT);
        }
        for (i, name) in self.forward_headers_deny.iter().enumerate() {
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                problems.push(
                    &path.field("forward_headers_deny").index(i),
                    format!("must be a lowercase header name, got {name:?}"),
                );
            }
        }
        if let Some(deadline) = self.first_token_timeout {
            let at = path.field("first_token_timeout_ms");
            problems.duration(&at, deadline, Duration::ZERO, MAX_TIMEOUT);
        }
        problems.duration(
            &path.field("keepalive_interval_ms"),
            self.keepalive_interval,
            Duration::ZERO,
            MAX_TIMEOUT,
        );
        for (i, s) in self.retry.on_status.iter().enumerate() {
            problems.range(&path.field("retry").field("on_status").index(i), *s, 400, 599);
        }
        self.validate_pools(&path.field("pools"), problems);
        validate_rollout(&self.rollout, &path.field("rollout"), problems);
        validate_policy(&self.scanner.default, &path.field("scanner").field("default"), problems);
        for (tenant, policy) in &self.scanner.tenants {
            validate_policy(policy, &path.field("scanner").field("tenants").key(tenant), problems);
        }
        for (i, rule) in self.faults.rules.iter().enumerate() {
            validate_fault_rule(rule, &path.field("faults").field("rules").index(i), problems);
        }
        super::cost::validate_prices(&self.prices, &path.field("prices"), problems);
        super::cost::validate_budgets(&self.daily_budgets, &path.field("daily_budgets"), problems);
    }

    fn validate_pools(&self, path: &Path, problems: &mut Problems) {
        let mut names = HashSet::new();
        for (i, pool) in self.pools.iter().enumerate() {
            let at = path.index(i);
            problems.non_empty(&at.field("name"), &pool.name);
            if !pool.name.is_empty() && !names.insert(pool.name.as_str()) {
                problems.push(&at.field("name"), format!("duplicate pool name {:?}", pool.name));
            }
            problems.range(&at.field("weight"), pool.weight, 0, 100);
            problems.non_empty(&at.field("model_version"), &pool.model_version);
            problems.bearer_token(&at.field("api_key"), &pool.api_key);
            let key_sources = [&pool.api_key, &pool.api_key_env, &pool.api_key_file]
                .iter()
                .filter(|v| !v.is_empty())
                .count();
            if key_sources > 1 {
                problems.push(
                    &at.field("api_key"),
                    "set at most one of api_key, api_key_env and api_key_file",
                );
            }
            let mut seen = HashSet::new();
            for (j, url) in pool.upstreams.iter().enumerate() {
                let up = at.field("upstreams").index(j);
                problems.http_url(&up, url);
                if !seen.insert(url.trim_end_matches('/')) {
                    problems.push(&up, format!("duplicate upstream {url:?}"));
                }
            }
            pool.tls.validate(&at.field("tls"), problems);
            if let Some(deadline) = pool.first_token_timeout {
                let ft = at.field("first_token_timeout_ms");
                problems.duration(&ft, deadline, Duration::ZERO, MAX_TIMEOUT);
            }
            let h = &pool.health;
            let hp = at.field("health");
            problems.range(&hp.field("error_ratio"), h.error_ratio, 0.0, 1.0);
            problems.positive_duration(&hp.field("window_secs"), h.window, MAX_WINDOW);
            problems.positive_duration(
                &hp.field("probe_interval_ms"),
                h.probe_interval,
                MAX_INTERVAL,
            );
            problems.positive_duration(&hp.field("probe_timeout_ms"), h.probe_timeout, MAX_TIMEOUT);
            problems.positive(&hp.field("healthy_after"), h.healthy_after);
            problems.positive(&hp.field("unhealthy_after"), h.unhealthy_after);
            if h.generation_probe {
                problems.positive_duration(
                    &hp.field("generation_probe_interval_ms"),
                    h.generation_probe_interval,
                    MAX_INTERVAL,
                );
            }
            if !h.probe_path.is_empty() && !h.probe_path.starts_with('/') {
                problems.push(
                    &hp.field("probe_path"),
                    format!("must start with /, got {:?}", h.probe_path),
                );
            }
        }
    }
}

fn validate_rollout(r: &RolloutConfig, path: &Path, problems: &mut Problems) {
    let steps = path.field("steps");
    if r.steps.is_empty() {
        problems.push(&steps, "must list at least one weight");
    }
    for (i, s) in r.steps.iter().enumerate() {
        problems.range(&steps.index(i), *s, 1, 100);
    }
    if r.steps.windows(2).any(|w| w[0] >= w[1]) {
        problems.push(&steps, format!("must increase strictly, got {:?}", r.steps));
    }
    problems.positive_duration(&path.field("step_secs"), r.step, MAX_INTERVAL);
    problems.duration(
        &path.field("latency_slack_ms"),
        r.latency_slack,
        Duration::ZERO,
        MAX_TIMEOUT,
    );
    problems.positive(&path.field("min_samples"), r.min_samples);
    problems.range(&path.field("max_ttft_p95_ratio"), r.max_ttft_p95_ratio, 1.0, 100.0);
    problems.range(&path.field("max_tpot_p95_ratio"), r.max_tpot_p95_ratio, 1.0, 100.0);
    problems.range(&path.field("max_error_ratio_increase"), r.max_error_ratio_increase, 0.0, 1.0);
    problems.range(
        &path.field("max_stream_cut_ratio_increase"),
        r.max_stream_cut_ratio_increase,
        0.0,
        1.0,
    );
    if !(r.false_rollback_rate > 0.0 && r.false_rollback_rate < 0.5) {
        problems.push(
            &path.field("false_rollback_rate"),
            format!("must be between 0 and 0.5 (exclusive), got {}", r.false_rollback_rate),
        );
    }
}

fn validate_policy(p: &ScanPolicy, path: &Path, problems: &mut Problems) {
    for (i, kind) in p.kinds.iter().enumerate() {
        if !SCAN_KINDS.contains(&kind.as_str()) {
            problems.push(
                &path.field("kinds").index(i),
                format!("unknown kind {kind:?}, expected one of {}", SCAN_KINDS.join(", ")),
            );
        }
    }
}

fn validate_fault_rule(rule: &FaultRule, path: &Path, problems: &mut Problems) {
    if !ROUTES.contains(&rule.endpoint.as_str()) {
        problems.push(
            &path.field("endpoint"),
            format!("unknown route {:?}, expected one of {}", rule.endpoint, ROUTES.join(", ")),
        );
    }
    problems.duration(&path.field("latency_ms"), rule.latency, Duration::ZERO, MAX_TIMEOUT);
    problems.range(&path.field("error_rate"), rule.error_rate, 0.0, 1.0);
    if rule.error_rate > 0.0 {
        problems.range(&path.field("error_status"), rule.error_status, 400, 599);
    }
}

/// Commented default for this section, part of `deepwatch config example`.
pub const EXAMPLE: &str = r#"
[gateway]
# OpenAI-compatible proxy (chat, completions, embeddings, models).
listen = "0.0.0.0:8080"
# Admin API, /metrics and /healthz: loopback by default.
admin_listen = "127.0.0.1:9845"
# Bearer token of the admin API; empty disables it (except /metrics and /healthz).
admin_token = ""
# Proxy worker threads (own event loop, SO_REUSEPORT socket and connection pool each);
# 0 = one per CPU core.
workers = 0
# Require a key from api_keys on the proxy (401 otherwise).
require_api_key = false
# Keys of api_keys allowed to pin a request with the header x-deepwatch-pool = "<pool>" or
# x-deepwatch-model-version = "<version>" (golden-prompt probes); others sending one get 403.
pin_keys = []
# Tenant label values; empty = the tenants named in api_keys. Others fold into "other".
tenants = []
# Models served; empty = any (up to max_model_labels names the upstream served label metrics, then "other").
# When set, other models are answered 404 model_not_found.
models = []
max_model_labels = 16
# Larger request bodies get 413.
max_body_bytes = 8388608
# Time a client has to send request headers; also the idle limit of keep-alive connections.
client_header_timeout_ms = 30000
# Time a client has to send its whole request body (408 after), as nginx's 60 s.
client_body_timeout_ms = 60000
upstream_connect_timeout_ms = 2000
# Idle upstream connections are closed after this, before engines close them (vLLM: 5 s); a
# request meeting a connection the upstream closed anyway is retried once on a new one.
upstream_keepalive_ms = 4000
# Time to the upstream's response headers.
upstream_header_timeout_ms = 60000
# Longest silence from an upstream while reading its body (the wait for the first token too).
upstream_idle_timeout_ms = 300000
# SSE keep-alive comment sent to streaming clients after this much silence (0 = never), so
# load balancers with idle timeouts do not cut long reasoning before the first token.
keepalive_interval_ms = 10000
# Deadline from sending a streamed request upstream to its first content byte: past it the
# attempt is dropped and retried on another upstream or the standby (0 = off). Nothing, not
# even a keep-alive, reaches the client before the first content byte while it is on.
# Unset: 10 x rules.thresholds.ttft.critical (10 s). Pools may set their own.
# first_token_timeout_ms = 10000
# Client headers go upstream (traceparent, tracestate, baggage, OpenAI-Organization, custom
# ones) except hop-by-hop and gateway-owned ones and these; X-Forwarded-For gets the client.
forward_headers_deny = []
# Append-only JSON-lines log of deploy events; empty = in memory only (GET /admin/events).
events_path = ""
# Upstream pools: see the commented [[gateway.pools]] example below.
pools = []

# API key -> tenant.
[gateway.api_keys]
# "sk-team-a-..." = "team-a"

# Requests that failed before any byte reached the client are retried on another upstream.
[gateway.retry]
attempts = 1
on_status = [500, 502, 503, 504]

# Defaults of POST /admin/rollouts. Every second each step compares canary with stable over the
# step's requests (sequential tests, at most false_rollback_rate false rollbacks per step): a
# significant regression rolls back at once; with min_samples on both sides and every check
# within its limit the step passes; step_secs without passing counts an extension; 100 promotes.
# At 10 req/s these defaults promote a healthy canary in about 2 to 3 minutes.
[gateway.rollout]
steps = [5, 20, 50, 100]
step_secs = 60
min_samples = 50
max_ttft_p95_ratio = 1.25
max_tpot_p95_ratio = 1.25
latency_slack_ms = 10
max_error_ratio_increase = 0.02
max_stream_cut_ratio_increase = 0.01
false_rollback_rate = 0.01

# Sensitive-data scanner on prompts and streamed output. Actions: off, count, redact, block.
# Kinds: email, phone, cn_id, bank_card, api_key, ipv4. Matched values are never logged.
[gateway.scanner]
enabled = true

[gateway.scanner.default]
prompt = "count"
output = "count"
kinds = ["email", "phone", "cn_id", "bank_card", "api_key", "ipv4"]

[gateway.scanner.tenants]
# [gateway.scanner.tenants.team-a]
# prompt = "redact"
# output = "block"
# kinds = ["cn_id", "bank_card"]

# Fault injection for chaos tests: off unless enabled; managed with PUT /admin/faults.
[gateway.faults]
enabled = false
rules = []
# [[gateway.faults.rules]]
# endpoint = "/v1/chat/completions"
# latency_ms = 200
# error_rate = 0.1
# error_status = 503
# stream_cut_after_chunks = 5

# One JSON line per request (ids, pool, upstream, timings, tokens, outcome); "-" = stdout.
[gateway.request_log]
path = ""
include_text = false

# Model -> price per million tokens, in the currency of rules.cost.currency, for the spend
# counter deepwatch_spend_total{tenant,model,pool}. A cached prompt token (served from the
# prefix cache, usage.prompt_tokens_details.cached_tokens) costs cached_prompt_per_million
# (unset = prompt_per_million). Models without a price have no spend series.
[gateway.prices]
# "deepseek-r1" = { prompt_per_million = 0.55, cached_prompt_per_million = 0.14, completion_per_million = 2.19 }

# Tenant -> spend budget per day (same currency), exported as deepwatch_tenant_daily_budget:
# TenantBudgetExceeded warns when the last 24 h spent more, and tells (info) when the last
# hour's pace would spend more in a day. Tenants without a budget are not alerted on.
[gateway.daily_budgets]
# "team-a" = 200.0

# [[gateway.pools]]
# name = "blue"
# weight = 100                  # percent of its priority tier; rollouts move it
# priority = 0                  # higher numbers are standbys
# model_version = "deepseek-v3-0324"
# upstreams = ["http://10.0.0.11:8000", "http://10.0.0.12:8000"]
# api_key = ""                  # or api_key_env = "DEEPSEEK_API_KEY", api_key_file = "/run/secrets/key"
# first_token_timeout_ms = 10000  # this pool's own first-token deadline
# [gateway.pools.health]
# error_ratio = 0.5             # passive: eject at this error ratio over the window
# window_secs = 10
# min_requests = 10
# consecutive_failures = 3      # or after this many failures in a row
# probe_path = "/health"        # active probes; an ejected upstream returns after they pass
# probe_interval_ms = 1000
# probe_timeout_ms = 500
# healthy_after = 2
# unhealthy_after = 2
# generation_probe = true       # ask for one token within the first-token deadline; an engine
# generation_probe_interval_ms = 5000  # ejected for not generating returns only once it does
# generation_probe_model = ""   # empty = first model of the upstream's /v1/models
#
## A standby on the hosted DeepSeek API (OpenAI-compatible, over https): it serves only while no
## pool of a lower priority has a healthy upstream. Its key comes from the environment and is
## never taken from clients. Requests keep their model name, so serve the engines under the
## hosted names (vLLM: --served-model-name deepseek-chat).
# [[gateway.pools]]
# name = "deepseek-hosted"
# priority = 1
# model_version = "deepseek-hosted"
# upstreams = ["https://api.deepseek.com"]
# api_key_env = "DEEPSEEK_API_KEY"
## Only for a private CA or mutual TLS (the system roots are always trusted):
## [gateway.pools.tls]
## ca_file = "/etc/deepwatch/upstream-ca.pem"
## cert_file = "/etc/deepwatch/client.pem"
## key_file = "/etc/deepwatch/client-key.pem"
# [gateway.pools.health]
# probe_path = "/v1/models"     # probes carry the pool's key
# generation_probe = false      # generation probes would be billed
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(text: &str) -> String {
        let cfg: GatewayConfig = toml::from_str(text).unwrap();
        let mut problems = Problems::default();
        cfg.validate(&Path::root("gateway"), &mut problems);
        problems.to_string()
    }

    #[test]
    fn pool_problems_name_their_path() {
        let text = problems_of(
            r#"
            [[pools]]
            name = "blue"
            upstreams = ["http://127.0.0.1:8000"]
            [[pools]]
            name = "blue"
            weight = 150
            upstreams = ["ftp://x", "https://a:1", "https://a:1/"]
            [pools.health]
            error_ratio = 2.0
            "#,
        );
        assert!(
            text.contains("gateway.pools[1].weight: must be between 0 and 100, got 150"),
            "{text}"
        );
        assert!(text.contains("gateway.pools[1].name: duplicate pool name \"blue\""), "{text}");
        assert!(
            text.contains("gateway.pools[1].upstreams[0]: must be an http or https URL"),
            "{text}"
        );
        // https is fine; the same URL twice is not.
        assert!(!text.contains("gateway.pools[1].upstreams[1]"), "{text}");
        assert!(text.contains("gateway.pools[1].upstreams[2]: duplicate upstream"), "{text}");
        assert!(text.contains("gateway.pools[1].health.error_ratio"), "{text}");
    }

    #[test]
    fn rollout_scanner_and_fault_problems_name_their_path() {
        let text = problems_of(
            r#"
            [rollout]
            steps = [5, 1, 120]
            false_rollback_rate = 0.7
            [scanner.default]
            kinds = ["email", "passport"]
            [[faults.rules]]
            endpoint = "/v1/nope"
            error_rate = 1.5
            "#,
        );
        assert!(
            text.contains("gateway.rollout.steps[2]: must be between 1 and 100, got 120"),
            "{text}"
        );
        assert!(text.contains("gateway.rollout.steps: must increase strictly"), "{text}");
        assert!(
            text.contains(
                "gateway.rollout.false_rollback_rate: must be between 0 and 0.5 (exclusive), got 0.7"
            ),
            "{text}"
        );
        assert!(
            text.contains("gateway.scanner.default.kinds[1]: unknown kind \"passport\""),
            "{text}"
        );
        assert!(text.contains("gateway.faults.rules[0].endpoint: unknown route"), "{text}");
        assert!(text.contains("gateway.faults.rules[0].error_rate"), "{text}");
    }

    #[test]
    fn pin_keys_must_be_api_keys_and_are_never_echoed() {
        let text = problems_of(
            r#"
            pin_keys = ["sk-probe", "sk-secret-unknown", "", "sk-probe"]
            [api_keys]
            "sk-probe" = "probes"
            "#,
        );
        assert!(text.contains("gateway.pin_keys[1]: is not a key of gateway.api_keys"), "{text}");
        assert!(text.contains("gateway.pin_keys[2]: must not be empty"), "{text}");
        assert!(text.contains("gateway.pin_keys[3]: is listed twice"), "{text}");
        assert!(!text.contains("gateway.pin_keys[0]"), "{text}");
        assert!(!text.contains("sk-secret-unknown"), "a key leaked into a problem: {text}");
    }

    #[test]
    fn tokens_that_cannot_travel_as_bearer_tokens_are_refused_unechoed() {
        let text = problems_of(
            r#"
            admin_token = "two words"
            [api_keys]
            "sk:colon" = "t"
            "sk-fine" = "u"
            [[pools]]
            name = "blue"
            upstreams = ["http://127.0.0.1:8000"]
            api_key = "k\u00e9y"
            "#,
        );
        for field in ["gateway.admin_token", "gateway.api_keys", "gateway.pools[0].api_key"] {
            assert!(text.contains(&format!("{field}: cannot be sent as a bearer token")), "{text}");
        }
        assert_eq!(text.matches("bearer token").count(), 3, "{text}");
        for secret in ["two words", "sk:colon", "k\u{e9}y"] {
            assert!(!text.contains(secret), "a token leaked into a problem: {text}");
        }
    }

    #[test]
    fn example_pool_block_parses_when_uncommented() {
        let pool_block: String = EXAMPLE
            .lines()
            .skip_while(|l| !l.starts_with("# [[gateway.pools]]"))
            .map(|l| l.trim_start_matches("# "))
            .collect::<Vec<_>>()
            .join("\n");
        let cfg: super::super::Config = toml::from_str(&pool_block).unwrap();
        assert_eq!(cfg.gateway.pools[0].upstreams.len(), 2);
        let hosted = &cfg.gateway.pools[1];
        assert_eq!(hosted.upstreams, ["https://api.deepseek.com"]);
        assert_eq!((hosted.priority, hosted.api_key_env.as_str()), (1, "DEEPSEEK_API_KEY"));
        assert!(!hosted.health.generation_probe, "generation probes of a billed API are off");
        cfg.validate().unwrap();
    }
}
