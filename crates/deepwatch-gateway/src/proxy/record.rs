//! The account of one request: identity, route, timings, tokens and outcome, filled in as the
//! request goes, and turned into metrics, passive health, rollout samples and one request-log
//! line when it ends. Dropping an unfinished record (the client went away) finishes it as
//! `client_cancelled`, so no request escapes the counters.

use crate::health::Verdict;
use crate::metrics::{Outcome, RequestLabels, Series};
use crate::pools::Route;
use crate::reqlog::Line;
use crate::rollout::Sample;
use crate::sse::Usage;
use crate::state::Shared;
use crate::util::rfc3339;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Status label for requests the client abandoned before a status was sent (nginx's 499).
pub const CLIENT_CLOSED: u16 = 499;

pub struct Record {
    pub shared: Arc<Shared>,
    pub id: String,
    pub received: Instant,
    pub endpoint: &'static str,
    pub tenant: String,
    pub tenant_label: String,
    pub model: String,
    pub model_label: String,
    pub stream: bool,
    pub route: Option<Route>,
    /// Set when a trusted caller pinned the request; labels it before a route is chosen.
    pub pin: Option<super::pin::Pin>,
    series: Option<Arc<Series>>,
    /// Time spent waiting on upstreams (and on injected latency standing in for them).
    pub upstream_wait: Duration,
    /// Streams: gateway time spent on frames after the response headers.
    pub stream_overhead: Duration,
    /// Streams: gateway time before the response headers went out.
    pub head_overhead: Option<Duration>,
    pub status: u16,
    pub outcome: Option<Outcome>,
    pub first_content: Option<Instant>,
    pub last_content: Option<Instant>,
    pub content_chunks: u64,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    pub retries: u32,
    pub keepalives: u32,
    pub sensitive_matches: u32,
    pub error: Option<String>,
    pub prompt_text: Option<serde_json::Value>,
    pub output_text: Option<String>,
    /// Health and rollout already saw the current route's failed attempt.
    pub attempt_recorded: bool,
    finished: bool,
}

impl Record {
    pub fn new(shared: Arc<Shared>, id: String, received: Instant, endpoint: &'static str) -> Self {
        Record {
            shared,
            id,
            received,
            endpoint,
            tenant: String::new(),
            tenant_label: crate::proxy::ANONYMOUS.to_string(),
            model: String::new(),
            model_label: "none".to_string(),
            stream: false,
            route: None,
            pin: None,
            series: None,
            upstream_wait: Duration::ZERO,
            stream_overhead: Duration::ZERO,
            head_overhead: None,
            status: 0,
            outcome: None,
            first_content: None,
            last_content: None,
            content_chunks: 0,
            usage: None,
            finish_reason: None,
            retries: 0,
            keepalives: 0,
            sensitive_matches: 0,
            error: None,
            prompt_text: None,
            output_text: None,
            attempt_recorded: false,
            finished: false,
        }
    }

    pub fn labels(&self) -> RequestLabels {
        // A pinned request that found no healthy upstream is still its pinned pool's.
        let pool = self
            .route
            .as_ref()
            .map(|r| &r.pool)
            .or_else(|| self.pin.as_ref().and_then(|p| p.pools.first()));
        let (pool, version) = match pool {
            Some(p) => (p.name.clone(), p.model_version.clone()),
            None => ("none".to_string(), "none".to_string()),
        };
        RequestLabels {
            model: self.model_label.clone(),
            model_version: version,
            pool,
            endpoint: self.endpoint,
            tenant: self.tenant_label.clone(),
        }
    }

    /// Sets the route of the attempt that will answer, moving the in-flight gauges.
    pub fn set_route(&mut self, route: Route) {
        self.leave_route();
        route.upstream.health.in_flight.fetch_add(1, Ordering::Relaxed);
        self.shared.metrics.in_flight.with(&[&route.pool.name]).add(1.0);
        self.route = Some(route);
        self.series = None;
        self.attempt_recorded = false;
    }

    fn leave_route(&mut self) {
        if let Some(r) = &self.route {
            r.upstream.health.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.shared.metrics.in_flight.with(&[&r.pool.name]).add(-1.0);
        }
    }

    pub fn series(&mut self) -> Arc<Series> {
        if let Some(s) = &self.series {
            return s.clone();
        }
        let s = self.shared.metrics.series(&self.labels());
        self.series = Some(s.clone());
        s
    }

    /// A content chunk arrived at `t`: TTFT on the first, inter-token gap after.
    pub fn on_content(&mut self, t: Instant) {
        match self.last_content {
            Some(prev) => {
                let gap = t.saturating_duration_since(prev).as_secs_f64();
                self.series().itl.observe(gap);
            }
            None => {
                // TTFT is observed when the first token arrives, not when a long stream ends.
                let ttft = t.saturating_duration_since(self.received).as_secs_f64();
                self.series().ttft.observe(ttft);
                self.first_content = Some(t);
            }
        }
        self.last_content = Some(t);
        self.content_chunks += 1;
    }

    pub fn ttft(&self) -> Option<Duration> {
        self.first_content.map(|t| t.saturating_duration_since(self.received))
    }

    /// (t_last − t_first) / (tokens − 1), tokens from usage (content chunks when absent).
    pub fn tpot(&self) -> Option<Duration> {
        let (first, last) = (self.first_content?, self.last_content?);
        let tokens = self.usage.map(|u| u.completion_tokens).unwrap_or(self.content_chunks);
        if tokens < 2 {
            return None;
        }
        Some(last.saturating_duration_since(first) / (tokens - 1) as u32)
    }

    /// Gateway time so far (non-streams) or up to the response headers (streams).
    pub fn overhead_now(&self) -> Duration {
        self.shared
            .clock
            .now()
            .saturating_duration_since(self.received)
            .saturating_sub(self.upstream_wait)
    }

    pub fn finish(&mut self, outcome: Outcome, status: u16) {
        self.outcome = Some(outcome);
        self.status = status;
        self.complete();
    }

    fn complete(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let outcome = self.outcome.unwrap_or(Outcome::ClientCancelled);
        let status = if self.status == 0 { CLIENT_CLOSED } else { self.status };
        let shared = self.shared.clone();
        let m = &shared.metrics;
        let now = shared.clock.now();
        let total = now.saturating_duration_since(self.received);
        let overhead = match self.head_overhead {
            Some(head) => head + self.stream_overhead,
            None => total.saturating_sub(self.upstream_wait),
        };
        let labels = self.labels();
        let v = labels.values();
        let code = status.to_string();
        m.request_duration
            .observe(&[v[0], v[1], v[2], v[3], v[4], outcome.as_str()], total.as_secs_f64());
        m.requests.inc(&[v[0], v[1], v[2], v[3], v[4], outcome.as_str(), &code]);
        let series = self.series();
        series.overhead.observe(overhead.as_secs_f64());
        let ttft = self.ttft().filter(|_| self.stream);
        let tpot = self.tpot().filter(|_| self.stream);
        if let Some(t) = tpot {
            series.tpot.observe(t.as_secs_f64());
        }
        if let Some(u) = self.usage {
            series.prompt_tokens.inc_by(u.prompt_tokens as f64);
            series.completion_tokens.inc_by(u.completion_tokens as f64);
            series.reasoning_tokens.inc_by(u.reasoning_tokens as f64);
            if outcome == Outcome::Ok && self.endpoint != "/v1/embeddings" {
                series.completion_dist.observe(u.completion_tokens as f64);
                if u.completion_tokens > 0 {
                    series
                        .reasoning_share
                        .observe(u.reasoning_tokens as f64 / u.completion_tokens as f64);
                }
            }
        }
        if outcome == Outcome::Ok {
            if let Some(reason) = &self.finish_reason {
                let reason = match reason.as_str() {
                    "stop" | "length" | "tool_calls" | "content_filter" => reason.as_str(),
                    _ => "other",
                };
                m.finish_reason.inc(&[v[0], v[1], v[2], reason]);
            }
        }
        if let Some(route) = self.route.clone().filter(|_| !self.attempt_recorded) {
            let verdict = match outcome {
                Outcome::Ok | Outcome::Rejected | Outcome::ClientCancelled => None,
                Outcome::UpstreamError | Outcome::Timeout | Outcome::StreamCut => {
                    Some(Verdict::Failure)
                }
            };
            if let Some(verdict) = verdict {
                let change = route.upstream.health.record(verdict, now);
                shared.pools.on_change(&route.upstream, change);
            } else if outcome == Outcome::Ok {
                route.upstream.health.record(Verdict::Success, now);
            }
            if !matches!(outcome, Outcome::ClientCancelled | Outcome::Rejected) {
                shared.rollouts.observe(
                    &route.pool.name,
                    Sample {
                        ttft: ttft.map(|t| t.as_secs_f64()),
                        tpot: tpot.map(|t| t.as_secs_f64()),
                        error: matches!(outcome, Outcome::UpstreamError | Outcome::Timeout),
                        stream_cut: outcome == Outcome::StreamCut,
                    },
                );
            }
        }
        self.leave_route();
        if let Some(log) = &shared.reqlog {
            let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
            let usage = self.usage.unwrap_or_default();
            log.write(&Line {
                ts: rfc3339(shared.clock.wall()),
                request_id: self.id.clone(),
                endpoint: self.endpoint,
                tenant: self.tenant.clone(),
                model: self.model.clone(),
                model_version: labels.model_version.clone(),
                pool: labels.pool.clone(),
                upstream: self.route.as_ref().map(|r| r.upstream.url.clone()).unwrap_or_default(),
                pin: self.pin.as_ref().map(super::pin::Pin::log_value),
                stream: self.stream,
                status,
                outcome: outcome.as_str(),
                duration_ms: ms(total),
                overhead_ms: ms(overhead),
                upstream_ms: ms(self.upstream_wait),
                ttft_ms: ttft.map(ms),
                tpot_ms: tpot.map(ms),
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                reasoning_tokens: usage.reasoning_tokens,
                finish_reason: self.finish_reason.clone(),
                retries: self.retries,
                keepalives: self.keepalives,
                sensitive_matches: self.sensitive_matches,
                error: self.error.clone(),
                prompt: self.prompt_text.take(),
                output: self.output_text.take(),
            });
        }
        if let Some(err) = &self.error {
            tracing::debug!(request_id = %self.id, outcome = outcome.as_str(), status, error = %err, "request failed");
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.complete();
    }
}
