//! The OpenAI-compatible proxy listener: authentication, body limit, request checks, pinning
//! (trusted callers only), degrade and fault rules, prompt scanning, then `forward` picks
//! upstreams and relays the answer.
//! Every exit goes through the request's `Record`, so each request is counted exactly once.

pub mod client;
mod conn;
mod forward;
mod output;
pub mod pin;
pub mod record;
pub mod request;
mod stream;

use crate::error::ApiError;
use crate::metrics::Outcome;
use crate::state::Shared;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use deepwatch_core::config::gateway::ScanAction;
use deepwatch_core::error::ErrorCode;
use http::{header, HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use record::Record;
use std::sync::Arc;
use std::time::Duration;

/// Tenant of requests without a known API key.
pub const ANONYMOUS: &str = "anonymous";

pub const CHAT: &str = "/v1/chat/completions";
pub const COMPLETIONS: &str = "/v1/completions";
pub const EMBEDDINGS: &str = "/v1/embeddings";
pub const MODELS: &str = "/v1/models";

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(CHAT, post(|s: State<Arc<Shared>>, r: Request| proxy(s, r, CHAT)))
        .route(COMPLETIONS, post(|s: State<Arc<Shared>>, r: Request| proxy(s, r, COMPLETIONS)))
        .route(EMBEDDINGS, post(|s: State<Arc<Shared>>, r: Request| proxy(s, r, EMBEDDINGS)))
        .route(MODELS, get(|s: State<Arc<Shared>>, r: Request| proxy(s, r, MODELS)))
        .fallback(|r: Request| async move {
            ApiError::not_found(
                "unknown_url",
                format!("unknown route {} {}", r.method(), r.uri().path()),
            )
        })
        .with_state(shared)
}

/// Answers an error and finishes the record with `outcome`.
pub(crate) fn reject(mut record: Record, err: ApiError, outcome: Outcome) -> Response {
    let status = err.status();
    record.error = Some(err.message.clone());
    let id = record.id.clone();
    record.finish(outcome, status);
    let mut resp = err.into_response();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(crate::util::request_id)
}

async fn proxy(
    State(shared): State<Arc<Shared>>,
    req: Request,
    endpoint: &'static str,
) -> Response {
    let received = shared.clock.now();
    let (parts, body) = req.into_parts();
    let mut record = Record::new(shared.clone(), request_id(&parts.headers), received, endpoint);

    // Who is asking.
    let key = bearer(&parts.headers);
    let tenant = key.and_then(|k| shared.api_keys.get(k)).cloned();
    if shared.cfg.require_api_key && tenant.is_none() {
        let err = ApiError::new(
            ErrorCode::Unauthorized,
            "invalid_api_key",
            if key.is_some() {
                "incorrect API key provided"
            } else {
                "missing API key: send Authorization: Bearer <key>"
            },
        );
        return reject(record, err, Outcome::Rejected);
    }
    record.tenant = tenant.unwrap_or_else(|| ANONYMOUS.to_string());
    record.tenant_label = shared.labels.tenant(&record.tenant);

    // The body, within the limit.
    let limit = shared.cfg.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            "request_too_large",
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return reject(record, too_large(), Outcome::Rejected);
    }
    let body: Bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return reject(record, too_large(), Outcome::Rejected)
        }
        Err(e) => {
            let err = ApiError::bad_request(format!("cannot read request body: {e}"));
            return reject(record, err, Outcome::ClientCancelled);
        }
    };

    let mut info = request::RequestInfo::default();
    if endpoint != MODELS {
        info = match request::parse(&body) {
            Ok(i) => i,
            Err(e) => return reject(record, e, Outcome::Rejected),
        };
        record.model = info.model.clone();
        record.stream = info.stream && endpoint != EMBEDDINGS;
        if !shared.labels.model_allowed(&info.model) {
            let err = ApiError::not_found(
                "model_not_found",
                format!(
                    "the model `{}` does not exist or you do not have access to it",
                    info.model
                ),
            );
            return reject(record, err, Outcome::Rejected);
        }
        record.model_label = shared.labels.model(&info.model);
    }

    // Pinning to a pool or model version: trusted keys only.
    match pin::resolve(&shared, &parts.headers, bearer(&parts.headers)) {
        Ok(pin) => record.pin = pin,
        Err(e) => return reject(record, e, Outcome::Rejected),
    }

    // Degradation: rate limit for listed tenants.
    if let Err(wait) = shared.degrade.admit(&record.tenant, received) {
        let err = ApiError::new(
            ErrorCode::TooManyRequests,
            "rate_limit_exceeded",
            format!("tenant {} is rate limited; retry in {wait:.2} s", record.tenant),
        );
        let mut resp = reject(record, err, Outcome::Rejected);
        let secs = wait.ceil().max(1.0) as u64;
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return resp;
    }

    // Prompt scanning.
    let policy = shared.scanner.policy(&record.tenant).clone();
    let mut body = body;
    if endpoint != MODELS && policy.prompt != ScanAction::Off {
        let scan = shared.scanner.scan_prompt(&policy, &body);
        for kind in &scan.kinds {
            shared.metrics.sensitive.inc(&[
                &record.tenant_label,
                kind.as_str(),
                "prompt",
                policy.prompt.as_str(),
            ]);
        }
        record.sensitive_matches += scan.kinds.len() as u32;
        if scan.blocked {
            let kinds: Vec<&str> = scan.kinds.iter().map(|k| k.as_str()).collect();
            let err = ApiError::new(
                ErrorCode::Forbidden,
                "sensitive_data_blocked",
                format!(
                    "the prompt contains sensitive data ({}) and policy blocks it",
                    kinds.join(", ")
                ),
            );
            return reject(record, err, Outcome::Rejected);
        }
        if let Some(redacted) = scan.redacted_body {
            body = Bytes::from(redacted);
        }
    }
    if shared.cfg.request_log.include_text && endpoint != MODELS {
        record.prompt_text = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| ["messages", "prompt", "input"].iter().find_map(|k| v.get(*k).cloned()));
    }
    if let Some(new_body) = request::rewrite(&body, &info, shared.degrade.max_tokens_cap()) {
        body = Bytes::from(new_body);
    }

    // Fault injection.
    let injection = shared.faults.pick(endpoint);
    if let Some(inj) = &injection {
        if inj.latency_ms > 0 {
            shared.metrics.faults.inc(&[endpoint, "latency"]);
            let started = shared.clock.now();
            tokio::time::sleep(Duration::from_millis(inj.latency_ms)).await;
            record.upstream_wait += shared.clock.now().saturating_duration_since(started);
        }
        if let Some(status) = inj.error_status {
            shared.metrics.faults.inc(&[endpoint, "error"]);
            let code = match status {
                429 => ErrorCode::TooManyRequests,
                400..=499 => ErrorCode::BadRequest,
                504 => ErrorCode::GatewayTimeout,
                _ => ErrorCode::Unavailable,
            };
            let err =
                ApiError::new(code, "injected_fault", format!("injected fault: status {status}"))
                    .with_status(status);
            let outcome = if status >= 500 { Outcome::UpstreamError } else { Outcome::Rejected };
            return reject(record, err, outcome);
        }
    }

    let upstream_request = forward::Outgoing {
        method: parts.method,
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| endpoint.to_string()),
        content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
        client_auth: parts.headers.get(header::AUTHORIZATION).cloned(),
        body,
    };
    let options = forward::Options {
        strip_usage: info.stream && !info.client_wants_usage,
        cut_after_chunks: injection.and_then(|i| i.stream_cut_after_chunks),
        output_action: policy.output,
        policy,
    };
    forward::run(shared, record, upstream_request, options).await
}
