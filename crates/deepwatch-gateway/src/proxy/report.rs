//! What a finished request tells the rest of the gateway, one function per concern: request
//! metrics, passive health of the upstream that answered, a rollout sample for its pool, and
//! the request-log line. Each reads the same `Summary`; none knows about the others.

use super::endpoint::Endpoint;
use crate::health::Verdict;
use crate::metrics::{GatewayMetrics, Outcome, RequestLabels, Series};
use crate::pools::{Pools, Route};
use crate::reqlog::{Line, RequestLog};
use crate::rollout::{Rollouts, Sample};
use crate::sse::Usage;
use crate::util::rfc3339;
use deepwatch_core::config::cost::PricedTokens;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// A finished request.
pub struct Summary {
    pub labels: RequestLabels,
    pub id: String,
    pub endpoint: Endpoint,
    pub tenant: String,
    pub model: String,
    /// The attempt that answered (or failed last).
    pub route: Option<Route>,
    /// `pool=green` / `model_version=v2` for pinned requests.
    pub pin: Option<String>,
    pub stream: bool,
    pub status: u16,
    pub outcome: Outcome,
    pub total: Duration,
    pub overhead: Duration,
    pub upstream_wait: Duration,
    /// Streams only.
    pub ttft: Option<Duration>,
    /// Streams only.
    pub tpot: Option<Duration>,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    pub retries: u32,
    pub keepalives: u32,
    pub sensitive_matches: u32,
    pub error: Option<String>,
    pub prompt_text: Option<serde_json::Value>,
    pub output_text: Option<String>,
    /// The upstream's 5xx blamed the request itself.
    pub client_fault: bool,
}

/// Request counters and histograms; `series` holds the request identity's cached handles.
pub fn metrics(m: &GatewayMetrics, series: &Series, s: &Summary) {
    let labels = &s.labels;
    m.request_duration.observe(&labels.with_outcome(s.outcome), s.total.as_secs_f64());
    let code = s.status.to_string();
    m.requests.inc(&labels.with_code(s.outcome, &code));
    series.overhead.observe(s.overhead.as_secs_f64());
    if let Some(t) = s.tpot {
        series.tpot.observe(t.as_secs_f64());
    }
    if let Some(u) = s.usage {
        series.prompt_tokens.inc_by(u.prompt_tokens as f64);
        series.completion_tokens.inc_by(u.completion_tokens as f64);
        series.reasoning_tokens.inc_by(u.reasoning_tokens as f64);
        series.cached_prompt_tokens.inc_by(u.cached_prompt_tokens as f64);
        let tokens = PricedTokens {
            prompt: u.prompt_tokens,
            cached_prompt: u.cached_prompt_tokens,
            completion: u.completion_tokens,
        };
        // Priced by the model asked for, even when its label folded into `other`.
        if let Some(cost) = m.cost(&s.model, tokens) {
            series.spend.inc_by(cost);
        }
        if drift_sample(s) && s.endpoint != Endpoint::Embeddings {
            // Every answered length, `max_tokens`-truncated ones included: the dashboards'
            // response-length panel reads this histogram too, and clients that always set
            // `max_tokens` must not empty it. Pools of one model see the same client mix, so
            // the pool comparison stays matched.
            series.completion_dist.observe(u.completion_tokens as f64);
            if u.completion_tokens > 0 {
                series
                    .reasoning_share
                    .observe(u.reasoning_tokens as f64 / u.completion_tokens as f64);
            }
        }
    }
    if drift_sample(s) {
        if let Some(reason) = &s.finish_reason {
            let reason = match reason.as_str() {
                "stop" | "length" | "tool_calls" | "content_filter" => reason.as_str(),
                _ => "other",
            };
            m.finish_reason.inc(&labels.finish_reason(reason));
        }
    }
}

/// Whether a response feeds the output distributions drift compares: successful, and client
/// traffic, which every pool of a model sees alike; pinned requests (golden-prompt probes) are
/// a fixed prompt set sent to each pool whatever its weight, so they would skew the pool that
/// gets little client traffic.
fn drift_sample(s: &Summary) -> bool {
    s.outcome == Outcome::Ok && s.pin.is_none()
}

/// Passive health of the upstream that answered: failures count against it, successes
/// reset its failure streak; rejected and cancelled requests say nothing about it.
pub fn health(pools: &Pools, s: &Summary, now: Instant) {
    let Some(route) = &s.route else { return };
    match s.outcome {
        // A 5xx the upstream itself blames on the request says nothing about its health.
        Outcome::UpstreamError if s.client_fault => {}
        Outcome::UpstreamError | Outcome::Timeout | Outcome::StreamCut => {
            let last = pools.last_standing(&route.upstream);
            let change = route.upstream.health.record(Verdict::Failure, now, last);
            pools.on_change(&route.upstream, change);
        }
        Outcome::Ok => {
            route.upstream.health.record(Verdict::Success, now, false);
        }
        Outcome::Rejected | Outcome::ClientCancelled => {}
    }
}

/// A sample for the answering pool's running rollout, if any. Pinned requests (the analyzer's
/// probes) go to a pool whatever its rollout weight, so they are not canary traffic.
pub fn rollout(rollouts: &Rollouts, s: &Summary) {
    let Some(route) = &s.route else { return };
    if s.pin.is_some() {
        return;
    }
    if matches!(s.outcome, Outcome::ClientCancelled | Outcome::Rejected) {
        return;
    }
    rollouts.observe(
        &route.pool.name,
        Sample {
            ttft: s.ttft.map(|t| t.as_secs_f64()),
            tpot: s.tpot.map(|t| t.as_secs_f64()),
            error: matches!(s.outcome, Outcome::UpstreamError | Outcome::Timeout),
            stream_cut: s.outcome == Outcome::StreamCut,
        },
    );
}

/// One JSON line for the request log.
pub fn request_log(log: &RequestLog, s: &Summary, wall: SystemTime) {
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let usage = s.usage.unwrap_or_default();
    log.write(&Line {
        ts: rfc3339(wall),
        request_id: &s.id,
        endpoint: s.endpoint.path(),
        tenant: &s.tenant,
        model: &s.model,
        model_version: &s.labels.model_version,
        pool: &s.labels.pool,
        upstream: s.route.as_ref().map(|r| r.upstream.shown.as_str()).unwrap_or_default(),
        pin: s.pin.as_deref(),
        stream: s.stream,
        status: s.status,
        outcome: s.outcome.as_str(),
        duration_ms: ms(s.total),
        overhead_ms: ms(s.overhead),
        upstream_ms: ms(s.upstream_wait),
        ttft_ms: s.ttft.map(ms),
        tpot_ms: s.tpot.map(ms),
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        reasoning_tokens: usage.reasoning_tokens,
        finish_reason: s.finish_reason.as_deref(),
        retries: s.retries,
        keepalives: s.keepalives,
        sensitive_matches: s.sensitive_matches,
        error: s.error.as_deref(),
        prompt: s.prompt_text.as_ref(),
        output: s.output_text.as_deref(),
    });
}
