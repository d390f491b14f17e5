//! Picks upstreams and relays the answer. An attempt that fails before any byte reached the
//! client (refused connection, no headers in time, a retryable status, a broken or invalid
//! non-streamed body) is retried on another upstream (of its pinned pools only, for a pinned
//! request); the last failure is answered with a clear OpenAI-shaped error. Streams are handed
//! to `stream::ProxyStream` once the upstream's headers say 2xx and `text/event-stream`.

use super::conn::{self, AttemptError, Target, UpstreamBody};
use super::endpoint::Endpoint;
use super::record::Record;
use super::rejection::Rejection;
use super::relay::{Outgoing, RelayOptions};
use super::stream::{PendingHead, ProxyStream};
use crate::error::ApiError;
use crate::health::Verdict;
use crate::metrics::labels::PoolReasonIds;
use crate::metrics::Outcome;
use crate::pools::{Pool, Route, Upstream};
use crate::sse::{EventKind, SseScanner, Usage, WireUsage};
use crate::state::Shared;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use deepwatch_core::config::gateway::{MODEL_VERSION_HEADER, POOL_HEADER};
use deepwatch_core::error::ErrorCode;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::Arc;

fn build(
    shared: &Shared,
    route: &Route,
    out: &Outgoing,
    id: &str,
) -> Result<http::Request<Full<Bytes>>, ApiError> {
    let mut req =
        http::Request::builder().method(out.method.clone()).uri(out.path_and_query.as_str());
    if let Some(h) = req.headers_mut() {
        h.clone_from(&out.headers);
    }
    req = req.header(header::HOST, route.upstream.target.host()).header("x-request-id", id);
    let auth = match (&route.pool.api_key, &out.client_auth) {
        (Some(key), _) => Some(key.clone()),
        (None, Some(client)) if shared.api_keys.is_empty() => Some(client.clone()),
        _ => None,
    };
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    req.body(Full::new(out.body.clone())).map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            "internal_error",
            format!("cannot build upstream request: {e}"),
        )
    })
}

/// Sends one attempt over this thread's upstream connections and waits for the head.
async fn attempt(
    target: Arc<Target>,
    request: http::Request<Full<Bytes>>,
    header_timeout: std::time::Duration,
    connect_timeout: std::time::Duration,
    keepalive: std::time::Duration,
) -> Result<http::Response<UpstreamBody>, AttemptError> {
    let send = conn::send(&target, request, connect_timeout, keepalive);
    match tokio::time::timeout(header_timeout, send).await {
        Err(_) => Err(AttemptError::HeaderTimeout(header_timeout.as_millis() as u64)),
        Ok(r) => r,
    }
}

/// One failed attempt, kept to answer with if no retry succeeds.
struct Failure {
    err: ApiError,
    outcome: Outcome,
    /// The `reason` label of the retry it causes.
    reason: &'static str,
    /// The upstream's own answer (a retryable status): relayed unchanged if it is the last.
    answer: Option<(Route, http::response::Parts, Bytes)>,
}

impl Failure {
    fn new(err: ApiError, outcome: Outcome, reason: &'static str) -> Self {
        Failure { err, outcome, reason, answer: None }
    }
}

/// Waits for `work` unless the upstream is ejected as hung first (then `None`): only requests
/// that may still move elsewhere listen (`hung` is `None` for the last possible attempt).
async fn unless_hung<T>(
    hung: &mut Option<tokio::sync::watch::Receiver<u64>>,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let Some(rx) = hung.as_mut() else { return Some(work.await) };
    tokio::select! {
        biased;
        out = work => Some(out),
        changed = rx.changed() => match changed {
            Ok(()) => None,
            // The upstream is gone (a reload): nothing will fire, keep waiting.
            Err(_) => {
                *hung = None;
                None
            }
        },
    }
}

/// What waiting for the first content byte of a stream ended with.
enum FirstContent {
    /// Content (or the end, an error event, garbage) arrived: these frames, with arrival times,
    /// are relayed first.
    Ready(Vec<(Bytes, tokio::time::Instant)>),
    /// The upstream broke or ended before any content.
    Broken(String),
}

/// Whether an event means the upstream is generating (or answered something final): the
/// point after which the stream is committed to the client.
fn starts_output(kind: &EventKind) -> bool {
    match kind {
        EventKind::Comment => false,
        EventKind::Chunk(info) => {
            info.content || info.finish_reason.is_some() || info.usage.is_some()
        }
        EventKind::Done | EventKind::Error(_) | EventKind::Garbage => true,
    }
}

/// Reads a stream until its first content event, keeping every frame read.
async fn first_content(shared: &Shared, body: &mut UpstreamBody) -> FirstContent {
    let mut scanner = SseScanner::new(false);
    let mut events = Vec::new();
    let mut read = Vec::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                let t = shared.clock.now();
                scanner.push(&data, &mut events);
                read.push((data, t));
                if events.drain(..).any(|e| starts_output(&e.kind)) {
                    return FirstContent::Ready(read);
                }
            }
            Some(Err(e)) => {
                return FirstContent::Broken(format!(
                    "upstream broke the stream before its first token: {e}"
                ))
            }
            None => {
                return FirstContent::Broken(
                    "upstream ended the stream before its first token".into(),
                )
            }
        }
    }
}

pub async fn run(
    shared: Arc<Shared>,
    mut record: Record,
    out: Outgoing,
    opts: RelayOptions,
) -> Response {
    let max_attempts = 1 + shared.cfg.retry.attempts as usize;
    let mut tried: Vec<Arc<Upstream>> = Vec::new();
    let mut last: Option<Failure> = None;
    for n in 0..max_attempts {
        let pinned = record.pin.as_ref().map(|pin| pin.pools.clone());
        let route = match &pinned {
            Some(pools) => shared.pools.select_pinned(pools, &tried),
            None => shared.pools.select(&tried),
        };
        let Some(route) = route else { break };
        if n > 0 {
            record.retries += 1;
            if let Some(f) = &last {
                shared
                    .metrics
                    .retries
                    .inc(&PoolReasonIds { pool: &route.pool.name, reason: f.reason });
            }
        }
        record.set_route(route.clone());
        let request = match build(&shared, &route, &out, &record.id) {
            Ok(r) => r,
            Err(e) => return record.reject(Rejection::new(e, Outcome::UpstreamError)),
        };
        // Only an attempt that another one could follow may be abandoned: the last possible
        // attempt waits for as long as the plain timeouts allow.
        let can_retry = n + 1 < max_attempts && {
            let mut excluded = tried.clone();
            excluded.push(route.upstream.clone());
            shared.pools.has_alternative(&excluded, pinned.as_deref())
        };
        let mut hung = can_retry.then(|| route.upstream.health.hung_signal());
        let deadline = route.pool.first_token_timeout.filter(|_| record.stream && can_retry);
        let sent = shared.clock.now();
        let head = attempt(
            route.upstream.target.clone(),
            request,
            shared.header_timeout,
            shared.connect_timeout,
            shared.upstream_keepalive,
        );
        let result = match (deadline, record.stream, shared.keepalive) {
            (Some(limit), _, _) => {
                let due = sent + limit;
                let waited = unless_hung(&mut hung, tokio::time::timeout_at(due, head)).await;
                match waited {
                    None => {
                        record.upstream_wait += shared.clock.now().saturating_duration_since(sent);
                        abandon_hung(&mut tried, &route, &mut last);
                        continue;
                    }
                    Some(Err(_)) => {
                        record.upstream_wait += shared.clock.now().saturating_duration_since(sent);
                        stalled(&shared, &route, &mut record, &mut tried, &mut last, limit);
                        continue;
                    }
                    Some(Ok(Ok(resp))) if is_event_stream(&resp) => {
                        let (head_parts, mut body) = resp.into_parts();
                        let read = tokio::time::timeout_at(due, first_content(&shared, &mut body));
                        let waited = unless_hung(&mut hung, read).await;
                        record.upstream_wait += shared.clock.now().saturating_duration_since(sent);
                        match waited {
                            None => {
                                abandon_hung(&mut tried, &route, &mut last);
                                continue;
                            }
                            Some(Err(_)) => {
                                stalled(&shared, &route, &mut record, &mut tried, &mut last, limit);
                                continue;
                            }
                            Some(Ok(FirstContent::Broken(message))) => {
                                attempt_failed(
                                    &shared,
                                    &route,
                                    &mut record,
                                    &mut tried,
                                    Verdict::Failure,
                                );
                                last = Some(Failure::new(
                                    bad_gateway(message),
                                    Outcome::UpstreamError,
                                    "body",
                                ));
                                continue;
                            }
                            Some(Ok(FirstContent::Ready(prefix))) => {
                                record.status = 200;
                                return stream_response(
                                    shared,
                                    record,
                                    &route,
                                    Some(&head_parts.headers),
                                    |shared, record| {
                                        ProxyStream::with_prefix(
                                            shared, record, body, prefix, &opts,
                                        )
                                    },
                                );
                            }
                        }
                    }
                    Some(Ok(other)) => other,
                }
            }
            (None, true, Some(every)) => {
                let mut head: PendingHead = Box::pin(head);
                tokio::select! {
                    biased;
                    r = &mut head => r,
                    _ = tokio::time::sleep(every) => {
                        // Headers are late (a queueing engine or proxy) and no other upstream
                        // could take over: commit the stream now so keep-alives reach the
                        // client; a failure becomes an error event.
                        record.upstream_wait += shared.clock.now().saturating_duration_since(sent);
                        return stream_response(shared, record, &route, None, |shared, record| {
                            ProxyStream::awaiting(shared, record, head, &opts)
                        });
                    }
                }
            }
            _ => match unless_hung(&mut hung, head).await {
                Some(r) => r,
                None => {
                    record.upstream_wait += shared.clock.now().saturating_duration_since(sent);
                    abandon_hung(&mut tried, &route, &mut last);
                    continue;
                }
            },
        };
        let headers_at = shared.clock.now();
        record.upstream_wait += headers_at.saturating_duration_since(sent);
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                let (verdict, failure) = match &e {
                    // A failed TLS handshake leaves the upstream as unusable as a refused connect.
                    AttemptError::Connect(_) | AttemptError::Tls(_) => (
                        Verdict::Down,
                        Failure::new(bad_gateway(e.to_string()), Outcome::UpstreamError, "connect"),
                    ),
                    AttemptError::HeaderTimeout(_) => (
                        Verdict::Failure,
                        Failure::new(
                            ApiError::new(
                                ErrorCode::GatewayTimeout,
                                "upstream_timeout",
                                e.to_string(),
                            ),
                            Outcome::Timeout,
                            "timeout",
                        ),
                    ),
                    AttemptError::Other(_) => (
                        Verdict::Failure,
                        Failure::new(bad_gateway(e.to_string()), Outcome::UpstreamError, "error"),
                    ),
                };
                attempt_failed(&shared, &route, &mut record, &mut tried, verdict);
                last = Some(failure);
                continue;
            }
        };
        let status = resp.status().as_u16();
        let retryable = shared.cfg.retry.on_status.contains(&status);
        if record.stream && resp.status().is_success() && is_event_stream(&resp) {
            record.status = 200;
            let (parts, body) = resp.into_parts();
            return stream_response(
                shared,
                record,
                &route,
                Some(&parts.headers),
                |shared, record| ProxyStream::new(shared, record, body, &opts),
            );
        }
        // Everything else is read whole (a non-streamed answer, or an error for a stream).
        let (parts, body) = resp.into_parts();
        let read_started = shared.clock.now();
        let collected =
            unless_hung(&mut hung, tokio::time::timeout(shared.idle_timeout, body.collect())).await;
        record.upstream_wait += shared.clock.now().saturating_duration_since(read_started);
        let bytes = match collected {
            None => {
                abandon_hung(&mut tried, &route, &mut last);
                continue;
            }
            Some(Ok(Ok(c))) => c.to_bytes(),
            Some(Ok(Err(e))) => {
                attempt_failed(&shared, &route, &mut record, &mut tried, Verdict::Failure);
                last = Some(Failure::new(
                    bad_gateway(format!(
                        "upstream closed the connection before the response was complete: {e}"
                    )),
                    Outcome::UpstreamError,
                    "body",
                ));
                continue;
            }
            Some(Err(_)) => {
                attempt_failed(&shared, &route, &mut record, &mut tried, Verdict::Failure);
                last = Some(Failure::new(
                    ApiError::new(
                        ErrorCode::GatewayTimeout,
                        "upstream_timeout",
                        format!("upstream sent no data for {} ms", shared.idle_timeout.as_millis()),
                    ),
                    Outcome::Timeout,
                    "timeout",
                ));
                continue;
            }
        };
        if status >= 500 && client_caused(&bytes) {
            // The upstream blames the request (a validation error sent as 5xx): another
            // upstream would say the same, and it says nothing about this one's health.
            record.client_fault = true;
            return answer(shared, record, parts, bytes, &opts, &route);
        }
        if retryable && can_retry {
            attempt_failed(&shared, &route, &mut record, &mut tried, Verdict::Failure);
            let mut failure = Failure::new(
                upstream_status_error(status, &bytes),
                Outcome::UpstreamError,
                "status",
            );
            failure.answer = Some((route.clone(), parts, bytes));
            last = Some(failure);
            continue;
        }
        return answer(shared, record, parts, bytes, &opts, &route);
    }
    let failure = last.unwrap_or_else(|| {
        Failure::new(
            match &record.pin {
                Some(pin) => pin.unavailable(),
                None => ApiError::new(
                    ErrorCode::Unavailable,
                    "no_healthy_upstream",
                    "no healthy upstream is available",
                ),
            },
            Outcome::UpstreamError,
            "none",
        )
    });
    if let Some((route, parts, bytes)) = failure.answer {
        // The upstream's own error, its status and body unchanged.
        record.set_route(route.clone());
        record.attempt_recorded = true;
        return answer(shared, record, parts, bytes, &opts, &route);
    }
    record.reject(Rejection::new(failure.err, failure.outcome))
}

/// The entry `id` of a `/v1/models` list, as its own JSON document.
fn one_model(list: &[u8], id: &str) -> Option<Bytes> {
    let v: serde_json::Value = serde_json::from_slice(list).ok()?;
    let entry = v
        .get("data")?
        .as_array()?
        .iter()
        .find(|m| m.get("id").and_then(|i| i.as_str()) == Some(id))?;
    serde_json::to_vec(entry).ok().map(Bytes::from)
}

fn is_event_stream(resp: &http::Response<UpstreamBody>) -> bool {
    resp.status().is_success()
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Whether an upstream 5xx body says the request was at fault: vLLM answers some validation
/// errors as `{"type": "BadRequestError", "code": 400}` with status 500.
fn client_caused(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return false };
    let err = v.get("error").unwrap_or(&v);
    let kind = err.get("type").and_then(|t| t.as_str()).unwrap_or_default();
    let code = err.get("code").and_then(|c| c.as_u64()).unwrap_or(0);
    matches!(
        kind,
        "BadRequestError" | "invalid_request_error" | "NotFoundError" | "UnprocessableEntityError"
    ) || (400..500).contains(&code)
}

/// The first-token deadline passed: the upstream may be hung, so the attempt is dropped (which
/// closes its connection and cancels the request upstream) and the request moves on.
fn stalled(
    shared: &Shared,
    route: &Route,
    record: &mut Record,
    tried: &mut Vec<Arc<Upstream>>,
    last: &mut Option<Failure>,
    limit: std::time::Duration,
) {
    attempt_failed(shared, route, record, tried, Verdict::Stall);
    *last = Some(Failure::new(
        ApiError::new(
            ErrorCode::GatewayTimeout,
            "upstream_timeout",
            format!("upstream sent no first token within {} ms", limit.as_millis()),
        ),
        Outcome::Timeout,
        "first_token_timeout",
    ));
}

/// The upstream was ejected as hung while this request waited on it: move on without
/// counting another failure against it (the ejection already did).
fn abandon_hung(tried: &mut Vec<Arc<Upstream>>, route: &Route, last: &mut Option<Failure>) {
    tried.push(route.upstream.clone());
    *last = Some(Failure::new(
        ApiError::new(
            ErrorCode::GatewayTimeout,
            "upstream_timeout",
            "upstream stopped generating while the request waited",
        ),
        Outcome::Timeout,
        "hung",
    ));
}

/// A failed attempt: passive health hears of it, the upstream is not tried again for this
/// request, and it counts against its pool in a running rollout even when a retry saves the
/// request, so a canary cannot hide its errors behind the stable pool (a pinned request, a
/// probe, is no rollout sample).
fn attempt_failed(
    shared: &Shared,
    route: &Route,
    record: &mut Record,
    tried: &mut Vec<Arc<Upstream>>,
    verdict: Verdict,
) {
    let last = shared.pools.last_standing(&route.upstream);
    let change = route.upstream.health.record(verdict, shared.clock.now(), last);
    shared.pools.on_change(&route.upstream, change);
    tried.push(route.upstream.clone());
    record.attempt_recorded = true;
    if record.pin.is_none() {
        let failed = crate::rollout::Sample { error: true, ..Default::default() };
        shared.rollouts.observe(&route.pool.name, failed);
    }
}

/// The 200 SSE response around a stream body.
fn stream_response(
    shared: Arc<Shared>,
    mut record: Record,
    route: &Route,
    upstream_headers: Option<&http::HeaderMap>,
    body: impl FnOnce(Arc<Shared>, Record) -> ProxyStream,
) -> Response {
    record.status = 200;
    let head = record.overhead_now();
    record.head_overhead = Some(head);
    let pool = route.pool.clone();
    let id = record.id.clone();
    let mut response = Response::new(Body::from_stream(body(shared, record)));
    let h = response.headers_mut();
    if let Some(up) = upstream_headers {
        super::headers::downstream_response(up, h);
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    add_headers(h, &id, &pool, head);
    response
}

fn bad_gateway(message: String) -> ApiError {
    ApiError::new(ErrorCode::BadGateway, "upstream_error", message)
}

/// The upstream's own error, kept in OpenAI shape when it already is.
fn upstream_status_error(status: u16, body: &[u8]) -> ApiError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .map(crate::sse::error_message)
                .or_else(|| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        })
        .unwrap_or_else(|| format!("upstream answered {status}"));
    let code = if status >= 500 { ErrorCode::BadGateway } else { ErrorCode::BadRequest };
    ApiError::new(code, "upstream_error", message).with_status(status)
}

/// Our response headers: request id, answering pool and its model version, overhead.
fn add_headers(h: &mut http::HeaderMap, id: &str, pool: &Pool, overhead: std::time::Duration) {
    if let Ok(v) = HeaderValue::from_str(id) {
        h.insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&pool.name) {
        h.insert(POOL_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&pool.model_version) {
        h.insert(MODEL_VERSION_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1000.0)) {
        h.insert("x-deepwatch-overhead-ms", v);
    }
}

/// The parts of a whole answer the gateway reads; texts borrow from the body where they hold
/// no escapes.
#[derive(Deserialize)]
struct WireResponse<'a> {
    #[serde(default, borrow)]
    choices: Vec<WireChoice<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice<'a> {
    #[serde(default, borrow)]
    message: Option<WireMessage<'a>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
}

/// Relays a whole upstream answer: measures it, scans its output, sets our headers.
fn answer(
    shared: Arc<Shared>,
    mut record: Record,
    parts: http::response::Parts,
    bytes: Bytes,
    opts: &RelayOptions,
    route: &Route,
) -> Response {
    let status = parts.status.as_u16();
    let mut body = bytes;
    let outcome = if parts.status.is_success() {
        if record.endpoint == Endpoint::Models {
            if let Some(id) = &opts.model_id {
                match one_model(&body, id) {
                    Some(entry) => body = entry,
                    None => {
                        let err = ApiError::not_found(
                            "model_not_found",
                            format!("the model `{id}` does not exist"),
                        );
                        return record.reject(Rejection::new(err, Outcome::Rejected));
                    }
                }
            }
            Outcome::Ok
        } else {
            match serde_json::from_slice::<WireResponse<'_>>(&body) {
                Ok(parsed) => {
                    record.usage = parsed.usage.as_ref().map(Usage::from);
                    record.finish_reason =
                        parsed.choices.iter().find_map(|c| c.finish_reason.clone());
                    if shared.cfg.request_log.include_text {
                        record.output_text = Some(
                            parsed
                                .choices
                                .iter()
                                .filter_map(|c| {
                                    c.message
                                        .as_ref()
                                        .and_then(|m| m.content.as_deref())
                                        .or(c.text.as_deref())
                                })
                                .collect(),
                        );
                    }
                    if record.endpoint.generates() {
                        let texts = parsed.choices.iter().flat_map(|c| {
                            let m = c.message.as_ref();
                            [
                                m.and_then(|m| m.content.as_deref()),
                                m.and_then(|m| m.reasoning_content.as_deref()),
                                c.text.as_deref(),
                            ]
                            .into_iter()
                            .flatten()
                        });
                        match super::output::scan(&shared, &mut record, &body, texts, opts) {
                            Ok(Some(rewritten)) => body = rewritten,
                            Ok(None) => {}
                            Err(err) => return record.reject(err.into()),
                        }
                    }
                    Outcome::Ok
                }
                Err(e) => {
                    let err = bad_gateway(format!("upstream sent an invalid response body: {e}"));
                    return record.reject(Rejection::new(err, Outcome::UpstreamError));
                }
            }
        }
    } else if status >= 500 {
        Outcome::UpstreamError
    } else {
        Outcome::Rejected
    };
    let overhead = record.overhead_now();
    let pool = route.pool.clone();
    let id = record.id.clone();
    record.finish(outcome, status);
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = resp.headers_mut();
    super::headers::downstream_response(&parts.headers, h);
    if !h.contains_key(header::CONTENT_TYPE) {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    add_headers(h, &id, &pool, overhead);
    resp
}
