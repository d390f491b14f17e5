//! Picks upstreams and relays the answer. An attempt that fails before any byte reached the
//! client (refused connection, no headers in time, a retryable status, a broken or invalid
//! non-streamed body) is retried on another upstream (of its pinned pools only, for a pinned
//! request); the last failure is answered with a clear OpenAI-shaped error. Streams are handed
//! to `stream::ProxyStream` once the upstream's headers say 2xx and `text/event-stream`.

use super::client::AttemptError;
use super::record::Record;
use super::stream::{PendingHead, ProxyStream};
use super::{reject, EMBEDDINGS};
use crate::error::ApiError;
use crate::health::Verdict;
use crate::metrics::Outcome;
use crate::pools::{Pool, Route};
use crate::scanner::Policy;
use crate::sse::{Usage, WireUsage};
use crate::state::Shared;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use deepwatch_core::config::gateway::{ScanAction, MODEL_VERSION_HEADER, POOL_HEADER};
use deepwatch_core::error::ErrorCode;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use std::sync::Arc;

/// The request as it goes upstream.
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: String,
    pub content_type: Option<HeaderValue>,
    pub client_auth: Option<HeaderValue>,
    pub body: Bytes,
}

pub struct Options {
    pub strip_usage: bool,
    pub cut_after_chunks: Option<u64>,
    pub output_action: ScanAction,
    pub policy: Policy,
}

fn build(
    shared: &Shared,
    route: &Route,
    out: &Outgoing,
    id: &str,
) -> Result<http::Request<Full<Bytes>>, ApiError> {
    let mut req = http::Request::builder()
        .method(out.method.clone())
        .uri(out.path_and_query.as_str())
        .header(header::HOST, route.upstream.authority.as_str());
    if let Some(ct) = &out.content_type {
        req = req.header(header::CONTENT_TYPE, ct.clone());
    }
    req = req.header("x-request-id", id);
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
    key: String,
    request: http::Request<Full<Bytes>>,
    header_timeout: std::time::Duration,
    connect_timeout: std::time::Duration,
) -> Result<http::Response<super::conn::UpstreamBody>, AttemptError> {
    match tokio::time::timeout(header_timeout, super::conn::send(&key, request, connect_timeout))
        .await
    {
        Err(_) => Err(AttemptError::HeaderTimeout(header_timeout.as_millis() as u64)),
        Ok(r) => r,
    }
}

/// One failed attempt, kept to answer with if no retry succeeds.
struct Failure {
    err: ApiError,
    outcome: Outcome,
    reason: &'static str,
}

pub async fn run(
    shared: Arc<Shared>,
    mut record: Record,
    out: Outgoing,
    opts: Options,
) -> Response {
    let max_attempts = 1 + shared.cfg.retry.attempts as usize;
    let mut tried: Vec<Arc<crate::pools::Upstream>> = Vec::new();
    let mut last: Option<Failure> = None;
    for n in 0..max_attempts {
        let route = match &record.pin {
            Some(pin) => shared.pools.select_pinned(&pin.pools, &tried),
            None => shared.pools.select(&tried),
        };
        let Some(route) = route else { break };
        if n > 0 {
            record.retries += 1;
            if let Some(f) = &last {
                shared.metrics.retries.inc(&[&route.pool.name, f.reason]);
            }
        }
        record.set_route(route.clone());
        let request = match build(&shared, &route, &out, &record.id) {
            Ok(r) => r,
            Err(e) => return reject(record, e, Outcome::UpstreamError),
        };
        let sent = shared.clock.now();
        let result = match (record.stream, shared.keepalive) {
            (true, Some(every)) => {
                let mut head: PendingHead = Box::pin(attempt(
                    route.upstream.authority.clone(),
                    request,
                    shared.header_timeout,
                    shared.connect_timeout,
                ));
                tokio::select! {
                    biased;
                    r = &mut head => r,
                    _ = tokio::time::sleep(every) => {
                        // Headers are late (a queueing engine or proxy): commit the stream now
                        // so keep-alives reach the client; a failure becomes an error event.
                        record.upstream_wait += shared.clock.now().saturating_duration_since(sent);
                        return stream_response(shared, record, &route, |shared, record| {
                            ProxyStream::awaiting(shared, record, head, &opts)
                        });
                    }
                }
            }
            _ => {
                attempt(
                    route.upstream.authority.clone(),
                    request,
                    shared.header_timeout,
                    shared.connect_timeout,
                )
                .await
            }
        };
        let headers_at = shared.clock.now();
        record.upstream_wait += headers_at.saturating_duration_since(sent);
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                let (verdict, failure) = match &e {
                    AttemptError::Connect(_) => (
                        Verdict::Down,
                        Failure {
                            err: bad_gateway(e.to_string()),
                            outcome: Outcome::UpstreamError,
                            reason: "connect",
                        },
                    ),
                    AttemptError::HeaderTimeout(_) => (
                        Verdict::Failure,
                        Failure {
                            err: ApiError::new(
                                ErrorCode::GatewayTimeout,
                                "upstream_timeout",
                                e.to_string(),
                            ),
                            outcome: Outcome::Timeout,
                            reason: "timeout",
                        },
                    ),
                    AttemptError::Other(_) => (
                        Verdict::Failure,
                        Failure {
                            err: bad_gateway(e.to_string()),
                            outcome: Outcome::UpstreamError,
                            reason: "error",
                        },
                    ),
                };
                attempt_failed(&shared, &route, &mut record, &mut tried, verdict);
                last = Some(failure);
                continue;
            }
        };
        let status = resp.status().as_u16();
        let retryable = shared.cfg.retry.on_status.contains(&status);
        let is_sse = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if record.stream && resp.status().is_success() && is_sse {
            record.status = 200;
            let body = resp.into_body();
            return stream_response(shared, record, &route, |shared, record| {
                ProxyStream::new(shared, record, body, &opts)
            });
        }
        // Everything else is read whole (a non-streamed answer, or an error for a stream).
        let (parts, body) = resp.into_parts();
        let read_started = shared.clock.now();
        let collected = tokio::time::timeout(shared.idle_timeout, body.collect()).await;
        record.upstream_wait += shared.clock.now().saturating_duration_since(read_started);
        let bytes = match collected {
            Ok(Ok(c)) => c.to_bytes(),
            Ok(Err(e)) => {
                attempt_failed(&shared, &route, &mut record, &mut tried, Verdict::Failure);
                last = Some(Failure {
                    err: bad_gateway(format!(
                        "upstream closed the connection before the response was complete: {e}"
                    )),
                    outcome: Outcome::UpstreamError,
                    reason: "body",
                });
                continue;
            }
            Err(_) => {
                attempt_failed(&shared, &route, &mut record, &mut tried, Verdict::Failure);
                last = Some(Failure {
                    err: ApiError::new(
                        ErrorCode::GatewayTimeout,
                        "upstream_timeout",
                        format!("upstream sent no data for {} ms", shared.idle_timeout.as_millis()),
                    ),
                    outcome: Outcome::Timeout,
                    reason: "timeout",
                });
                continue;
            }
        };
        if retryable && n + 1 < max_attempts {
            attempt_failed(&shared, &route, &mut record, &mut tried, Verdict::Failure);
            last = Some(Failure {
                err: upstream_status_error(status, &bytes),
                outcome: Outcome::UpstreamError,
                reason: "status",
            });
            continue;
        }
        return answer(shared, record, parts, bytes, &opts, &route);
    }
    let failure = last.unwrap_or_else(|| Failure {
        err: match &record.pin {
            Some(pin) => pin.unavailable(),
            None => ApiError::new(
                ErrorCode::Unavailable,
                "no_healthy_upstream",
                "no healthy upstream is available",
            ),
        },
        outcome: Outcome::UpstreamError,
        reason: "none",
    });
    reject(record, failure.err, failure.outcome)
}

/// A failed attempt: passive health hears of it, the upstream is not tried again for this
/// request, and it counts against its pool in a running rollout even when a retry saves the
/// request, so a canary cannot hide its errors behind the stable pool.
fn attempt_failed(
    shared: &Shared,
    route: &Route,
    record: &mut Record,
    tried: &mut Vec<Arc<crate::pools::Upstream>>,
    verdict: Verdict,
) {
    let change = route.upstream.health.record(verdict, shared.clock.now());
    shared.pools.on_change(&route.upstream, change);
    tried.push(route.upstream.clone());
    record.attempt_recorded = true;
    shared
        .rollouts
        .observe(&route.pool.name, crate::rollout::Sample { error: true, ..Default::default() });
}

/// The 200 SSE response around a stream body.
fn stream_response(
    shared: Arc<Shared>,
    mut record: Record,
    route: &Route,
    body: impl FnOnce(Arc<Shared>, Record) -> ProxyStream,
) -> Response {
    record.status = 200;
    let head = record.overhead_now();
    record.head_overhead = Some(head);
    let pool = route.pool.clone();
    let id = record.id.clone();
    let mut response = Response::new(Body::from_stream(body(shared, record)));
    let h = response.headers_mut();
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

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
}

/// Relays a whole upstream answer: measures it, scans its output, sets our headers.
fn answer(
    shared: Arc<Shared>,
    mut record: Record,
    parts: http::response::Parts,
    bytes: Bytes,
    opts: &Options,
    route: &Route,
) -> Response {
    let status = parts.status.as_u16();
    let mut body = bytes;
    let outcome = if parts.status.is_success() {
        if record.endpoint == super::MODELS {
            Outcome::Ok
        } else {
            match serde_json::from_slice::<WireResponse>(&body) {
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
                                        .and_then(|m| m.content.clone())
                                        .or(c.text.clone())
                                })
                                .collect(),
                        );
                    }
                    Outcome::Ok
                }
                Err(e) => {
                    return reject(
                        record,
                        bad_gateway(format!("upstream sent an invalid response body: {e}")),
                        Outcome::UpstreamError,
                    );
                }
            }
        }
    } else if status >= 500 {
        Outcome::UpstreamError
    } else {
        Outcome::Rejected
    };
    if outcome == Outcome::Ok && record.endpoint != EMBEDDINGS && record.endpoint != super::MODELS {
        match super::output::scan(&shared, &mut record, &body, opts) {
            Ok(Some(rewritten)) => body = rewritten,
            Ok(None) => {}
            Err(err) => return reject(record, err, Outcome::Rejected),
        }
    }
    let overhead = record.overhead_now();
    let pool = route.pool.clone();
    let id = record.id.clone();
    record.finish(outcome, status);
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = resp.headers_mut();
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    h.insert(header::CONTENT_TYPE, ct);
    add_headers(h, &id, &pool, overhead);
    resp
}
