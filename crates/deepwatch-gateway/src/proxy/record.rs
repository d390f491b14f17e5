//! The account of one request: identity, route, timings, tokens and outcome, filled in as the
//! request goes. When it ends it becomes a `report::Summary` that each concern (metrics,
//! passive health, rollout samples, the request log) reads on its own. Dropping an unfinished
//! record (the client went away) finishes it as `client_cancelled`, so no request escapes the
//! counters.

use super::endpoint::Endpoint;
use super::pin::Pin;
use super::rejection::Rejection;
use super::report::{self, Summary};
use crate::metrics::labels::PoolIds;
use crate::metrics::{Outcome, RequestLabels, Series, ANONYMOUS};
use crate::pools::Route;
use crate::sse::Usage;
use crate::state::Shared;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue};
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
    pub endpoint: Endpoint,
    pub tenant: String,
    pub tenant_label: String,
    pub model: String,
    pub model_label: String,
    pub stream: bool,
    pub route: Option<Route>,
    /// Set when a trusted caller pinned the request; labels it before a route is chosen.
    pub pin: Option<Pin>,
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
    /// The upstream's 5xx blamed the request (a validation error): no health verdict.
    pub client_fault: bool,
    finished: bool,
}

impl Record {
    pub fn new(shared: Arc<Shared>, id: String, received: Instant, endpoint: Endpoint) -> Self {
        Record {
            shared,
            id,
            received,
            endpoint,
            tenant: String::new(),
            tenant_label: ANONYMOUS.to_string(),
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
            client_fault: false,
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
            endpoint: self.endpoint.path(),
            tenant: self.tenant_label.clone(),
        }
    }

    /// Sets the route of the attempt that will answer, moving the in-flight gauges.
    pub fn set_route(&mut self, route: Route) {
        self.leave_route();
        route.upstream.health.in_flight.fetch_add(1, Ordering::Relaxed);
        self.shared.metrics.in_flight.with(&PoolIds { pool: &route.pool.name }).add(1.0);
        self.route = Some(route);
        self.series = None;
        self.attempt_recorded = false;
    }

    fn leave_route(&mut self) {
        if let Some(r) = &self.route {
            r.upstream.health.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.shared.metrics.in_flight.with(&PoolIds { pool: &r.pool.name }).add(-1.0);
        }
    }

    pub fn series(&mut self) -> Arc<Series> {
        if let Some(s) = &self.series {
            return s.clone();
        }
        self.claim_model_label();
        let s = self.shared.metrics.series(&self.labels());
        self.series = Some(s.clone());
        s
    }

    /// The upstream served the request (2xx): its model keeps or takes a label slot.
    fn claim_model_label(&mut self) {
        if (200..300).contains(&self.status) && !self.model.is_empty() {
            if let Some(label) = self.shared.labels.served(&self.model, self.shared.clock.now()) {
                self.model_label = label;
            }
        }
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

    /// Answers the rejection's error (with `x-request-id`) and finishes the record.
    pub fn reject(mut self, rejection: Rejection) -> Response {
        let Rejection { error, outcome, retry_after } = rejection;
        let status = error.status();
        self.error = Some(error.message.clone());
        let id = HeaderValue::from_str(&self.id).ok();
        self.finish(outcome, status);
        let mut resp = error.into_response();
        if let Some(id) = id {
            resp.headers_mut().insert("x-request-id", id);
        }
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }

    pub fn finish(&mut self, outcome: Outcome, status: u16) {
        self.outcome = Some(outcome);
        self.status = status;
        self.complete();
    }

    /// Turns the record into its summary and hands that to each concern, once.
    fn complete(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let shared = self.shared.clone();
        let now = shared.clock.now();
        self.claim_model_label();
        let summary = self.summary(now);
        report::metrics(&shared.metrics, &self.series(), &summary);
        if !self.attempt_recorded {
            report::health(&shared.pools, &summary, now);
            report::rollout(&shared.rollouts, &summary);
        }
        self.leave_route();
        if let Some(log) = &shared.reqlog {
            report::request_log(log, &summary, shared.clock.wall());
        }
        if let Some(err) = &summary.error {
            tracing::debug!(request_id = %summary.id, outcome = summary.outcome.as_str(), status = summary.status, error = %err, "request failed");
        }
    }

    /// What the concerns read: the record's values, moved out (it is finished).
    fn summary(&mut self, now: Instant) -> Summary {
        let total = now.saturating_duration_since(self.received);
        let overhead = match self.head_overhead {
            Some(head) => head + self.stream_overhead,
            None => total.saturating_sub(self.upstream_wait),
        };
        Summary {
            labels: self.labels(),
            id: std::mem::take(&mut self.id),
            endpoint: self.endpoint,
            tenant: std::mem::take(&mut self.tenant),
            model: std::mem::take(&mut self.model),
            route: self.route.clone(),
            pin: self.pin.as_ref().map(Pin::log_value),
            stream: self.stream,
            status: if self.status == 0 { CLIENT_CLOSED } else { self.status },
            outcome: self.outcome.unwrap_or(Outcome::ClientCancelled),
            total,
            overhead,
            upstream_wait: self.upstream_wait,
            ttft: self.ttft().filter(|_| self.stream),
            tpot: self.tpot().filter(|_| self.stream),
            usage: self.usage,
            finish_reason: self.finish_reason.take(),
            retries: self.retries,
            keepalives: self.keepalives,
            sensitive_matches: self.sensitive_matches,
            error: self.error.take(),
            prompt_text: self.prompt_text.take(),
            output_text: self.output_text.take(),
            client_fault: self.client_fault,
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.complete();
    }
}
