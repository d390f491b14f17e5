//! Metrics emitted by the gateway: per-request latency (TTFT, TPOT, inter-token gap, overhead),
//! tokens, outcomes, output distributions for drift analysis, pool health, rollouts, the
//! sensitive-data scanner and fault injection. Label values are bounded by allow-lists in the
//! gateway config; anything else folds into `other`.

use super::{buckets, MetricSpec};

/// Identity of a request as every request metric labels it.
pub const REQUEST_LABELS: &[&str] = &["model", "model_version", "pool", "endpoint", "tenant"];

// === latency ===

pub const REQUEST_DURATION: MetricSpec = hist!(
    "deepwatch_request_duration_seconds",
    "seconds",
    &["model", "model_version", "pool", "endpoint", "tenant", "outcome"],
    buckets::LATENCY_SECONDS,
    "Time from request received to last byte sent to the client, by outcome."
);
pub const TIME_TO_FIRST_TOKEN: MetricSpec = hist!("deepwatch_time_to_first_token_seconds", "seconds",
    REQUEST_LABELS, buckets::LATENCY_SECONDS,
    "Time from request received to the first chunk carrying generated content (reasoning or answer).");
pub const TIME_PER_OUTPUT_TOKEN: MetricSpec = hist!(
    "deepwatch_time_per_output_token_seconds",
    "seconds",
    REQUEST_LABELS,
    buckets::TOKEN_LATENCY_SECONDS,
    "Per request: (time of last content chunk - time of first) / (completion tokens - 1)."
);
pub const INTER_TOKEN_LATENCY: MetricSpec = hist!(
    "deepwatch_inter_token_latency_seconds",
    "seconds",
    REQUEST_LABELS,
    buckets::TOKEN_LATENCY_SECONDS,
    "Gap between successive content chunks of a stream."
);
pub const GATEWAY_OVERHEAD: MetricSpec = hist!(
    "deepwatch_gateway_overhead_seconds",
    "seconds",
    &["model", "pool", "endpoint"],
    buckets::OVERHEAD_SECONDS,
    "Time the gateway itself added: request duration minus time spent waiting on the upstream."
);

// === tokens and outcomes ===

pub const PROMPT_TOKENS: MetricSpec = spec!(
    "deepwatch_prompt_tokens_total",
    Counter,
    "",
    REQUEST_LABELS,
    "Prompt tokens, from the upstream's usage."
);
pub const COMPLETION_TOKENS: MetricSpec = spec!(
    "deepwatch_completion_tokens_total",
    Counter,
    "",
    REQUEST_LABELS,
    "Completion tokens (reasoning included), from the upstream's usage."
);
pub const REASONING_TOKENS: MetricSpec = spec!(
    "deepwatch_reasoning_tokens_total",
    Counter,
    "",
    REQUEST_LABELS,
    "Reasoning tokens, from the upstream's usage (completion_tokens_details.reasoning_tokens)."
);
pub const CACHED_PROMPT_TOKENS: MetricSpec = spec!(
    "deepwatch_cached_prompt_tokens_total",
    Counter,
    "",
    REQUEST_LABELS,
    "Prompt tokens served from the engine's prefix cache, from the upstream's usage (prompt_tokens_details.cached_tokens); included in deepwatch_prompt_tokens_total."
);
pub const SPEND: MetricSpec = spec!(
    "deepwatch_spend_total",
    Counter,
    "",
    &["tenant", "model", "pool"],
    "Money spent on tokens at gateway.prices (computed prompt, cached prompt and completion tokens x their price per million), in the configured currency."
);
pub const TENANT_DAILY_BUDGET: MetricSpec = spec!(
    "deepwatch_tenant_daily_budget",
    Gauge,
    "",
    &["tenant"],
    "A tenant's spend budget per day (gateway.daily_budgets), in the currency of gateway.prices; read by the TenantBudgetExceeded alert."
);
pub const REQUESTS: MetricSpec = spec!("deepwatch_requests_total", Counter, "",
    &["model", "model_version", "pool", "endpoint", "tenant", "outcome", "code"],
    "Finished requests by outcome (ok, upstream_error, timeout, client_cancelled, stream_cut, rejected) and HTTP status code.");
pub const REQUESTS_IN_FLIGHT: MetricSpec = spec!(
    "deepwatch_requests_in_flight",
    Gauge,
    "",
    &["pool"],
    "Requests currently being served, by pool."
);
pub const RETRIES: MetricSpec = spec!(
    "deepwatch_retries_total",
    Counter,
    "",
    &["pool", "reason"],
    "Requests retried on another upstream before any byte reached the client."
);

// === output distributions (drift analysis) ===

pub const RESPONSE_COMPLETION_TOKENS: MetricSpec = hist!(
    "deepwatch_response_completion_tokens",
    "",
    &["model", "model_version", "pool"],
    buckets::TOKEN_COUNT,
    "Distribution of completion length in tokens per successful unpinned response."
);
pub const RESPONSE_REASONING_SHARE: MetricSpec = hist!(
    "deepwatch_response_reasoning_share_ratio",
    "ratio",
    &["model", "model_version", "pool"],
    buckets::RATIO,
    "Distribution of reasoning tokens / completion tokens per successful unpinned response."
);
pub const RESPONSE_FINISH_REASON: MetricSpec = spec!(
    "deepwatch_response_finish_reason_total",
    Counter,
    "",
    &["model", "model_version", "pool", "finish_reason"],
    "Successful unpinned responses by finish_reason (stop, length, tool_calls, content_filter, other)."
);

// === pools, failover, rollouts ===

pub const UPSTREAM_UP: MetricSpec = spec!(
    "deepwatch_upstream_up",
    Gauge,
    "",
    &["pool", "upstream"],
    "1 while the upstream is in rotation (passive and active health agree), else 0."
);
pub const UPSTREAM_ERROR_RATIO: MetricSpec = spec!(
    "deepwatch_upstream_error_ratio",
    Gauge,
    "ratio",
    &["pool", "upstream"],
    "Error ratio of the upstream over the passive-health sliding window."
);
pub const POOL_WEIGHT: MetricSpec = spec!("deepwatch_pool_traffic_weight_ratio", Gauge, "ratio", &["pool"],
    "Share of primary traffic the pool is configured to receive (0-1); a rollout moves it step by step.");
pub const POOL_ACTIVE: MetricSpec = spec!(
    "deepwatch_pool_active",
    Gauge,
    "",
    &["pool"],
    "1 for pools currently receiving traffic (the standby pool turns 1 on failover)."
);
pub const FAILOVERS: MetricSpec = spec!("deepwatch_failovers_total", Counter, "", &["pool", "reason"],
    "Times traffic moved to pool because the pools ahead of it had no healthy upstream (or on command).");
pub const DEPLOY_EVENTS: MetricSpec = spec!("deepwatch_deploy_events_total", Counter, "", &["pool", "event"],
    "Deploy events (start, step, rollback, promote, config_reload, config_reload_failed, failover, ...): use changes() for Grafana annotations.");
pub const DEPLOY_LAST_EVENT: MetricSpec = spec!(
    "deepwatch_deploy_last_event_timestamp_seconds",
    Gauge,
    "seconds",
    &["pool", "event"],
    "Unix time of the last deploy event of each kind."
);
pub const ROLLOUT_STEP: MetricSpec = spec!(
    "deepwatch_rollout_step",
    Gauge,
    "",
    &["pool"],
    "Index of the current rollout step of the canary pool (0 when no rollout runs)."
);

// === sensitive data, faults, degradation ===

pub const SENSITIVE_MATCHES: MetricSpec = spec!("deepwatch_sensitive_data_matches_total", Counter, "",
    &["tenant", "kind", "direction", "action"],
    "Sensitive values found by kind (email, phone, cn_id, bank_card, api_key, ipv4), direction (prompt, output) and action taken (count, redact, block). The value itself is never logged.");
pub const FAULTS_INJECTED: MetricSpec = spec!(
    "deepwatch_faults_injected_total",
    Counter,
    "",
    &["endpoint", "kind"],
    "Faults injected by the gateway's fault-injection rules (latency, error, stream_cut)."
);
pub const DEGRADE_ACTIVE: MetricSpec = spec!("deepwatch_degrade_active", Gauge, "", &["kind"],
    "1 while a degradation set through the admin API is in force (max_tokens_cap, tenant_rate_limit).");
pub const KEEPALIVES: MetricSpec = spec!(
    "deepwatch_sse_keepalives_total",
    Counter,
    "",
    &["pool"],
    "SSE keep-alive comments sent to clients while waiting for the first token."
);

pub const OPEN_FILES_LIMIT: MetricSpec = spec!(
    "deepwatch_gateway_open_files_limit",
    Gauge,
    "",
    &["kind"],
    "Open-file limit (RLIMIT_NOFILE) of the gateway process, soft and hard, after the gateway raised the soft limit to the hard one at start: each client and upstream connection holds a file."
);

pub const REQUEST_LOG_LINES: MetricSpec = spec!(
    "deepwatch_gateway_request_log_lines_total",
    Counter,
    "",
    &["outcome"],
    "Request-log lines by outcome: written, dropped (the writer was behind), failed (the write failed); written should equal the requests served."
);

pub const ALL: &[&MetricSpec] = &[
    &REQUEST_DURATION,
    &TIME_TO_FIRST_TOKEN,
    &TIME_PER_OUTPUT_TOKEN,
    &INTER_TOKEN_LATENCY,
    &GATEWAY_OVERHEAD,
    &PROMPT_TOKENS,
    &COMPLETION_TOKENS,
    &REASONING_TOKENS,
    &CACHED_PROMPT_TOKENS,
    &SPEND,
    &TENANT_DAILY_BUDGET,
    &REQUESTS,
    &REQUESTS_IN_FLIGHT,
    &RETRIES,
    &RESPONSE_COMPLETION_TOKENS,
    &RESPONSE_REASONING_SHARE,
    &RESPONSE_FINISH_REASON,
    &UPSTREAM_UP,
    &UPSTREAM_ERROR_RATIO,
    &POOL_WEIGHT,
    &POOL_ACTIVE,
    &FAILOVERS,
    &DEPLOY_EVENTS,
    &DEPLOY_LAST_EVENT,
    &ROLLOUT_STEP,
    &SENSITIVE_MATCHES,
    &FAULTS_INJECTED,
    &DEGRADE_ACTIVE,
    &KEEPALIVES,
    &OPEN_FILES_LIMIT,
    &REQUEST_LOG_LINES,
];
