//! The admission stages of a proxied request, in the order they run: who is asking, the body
//! within its limit, the request's fields, pinning (trusted callers only), the tenant rate limit
//! under degradation, prompt scanning, fault injection. Each stage is a function that returns
//! what the next needs or the `Rejection` to answer; `admit` runs them in order and fills in the
//! request's record as it goes. Plain functions on the hot path, no middleware layers.

use super::endpoint::Endpoint;
use super::pin::{self, Pin};
use super::record::Record;
use super::rejection::Rejection;
use super::relay::{ClientAddr, ModelId};
use super::relay::{Outgoing, RelayOptions};
use super::request::{self, RequestInfo};
use crate::error::ApiError;
use crate::faults::Injection;
use crate::metrics::labels::{FaultIds, SensitiveIds};
use crate::metrics::{Outcome, ANONYMOUS};
use crate::scanner::Policy;
use crate::state::Shared;
use axum::body::Body;
use bytes::Bytes;
use deepwatch_core::api::bearer;
use deepwatch_core::config::gateway::ScanAction;
use deepwatch_core::error::ErrorCode;
use http::request::Parts;
use http::{header, HeaderMap};
use http_body_util::BodyExt;
use tokio::time::Instant;

/// Runs every stage; on success the request is ready to go upstream.
pub async fn admit(
    shared: &Shared,
    record: &mut Record,
    parts: Parts,
    body: Body,
) -> Result<(Outgoing, RelayOptions), Rejection> {
    let key = bearer::from_headers(&parts.headers);
    record.tenant = authenticate(shared, key)?;
    record.tenant_label = shared.labels.tenant(&record.tenant);

    let body = read_body(shared, &parts.headers, body).await?;
    let mut info = RequestInfo::default();
    if record.endpoint.has_body() {
        info = request::parse(&body)?;
        record.model.clone_from(&info.model);
        record.stream = info.stream && record.endpoint != Endpoint::Embeddings;
        check_model(shared, &info.model)?;
        record.model_label = shared.labels.model(&info.model);
    }
    record.pin = pin(shared, &parts.headers, key)?;
    rate_limit(shared, &record.tenant, record.received)?;

    let policy = shared.scanner.policy(&record.tenant).clone();
    let mut body = scan_prompt(shared, record, &policy, body).await?;
    if shared.cfg.request_log.include_text && record.endpoint.has_body() {
        record.prompt_text = prompt_text(&body);
    }
    if let Some(rewritten) = request::rewrite(&body, &info, shared.degrade.max_tokens_cap()) {
        body = Bytes::from(rewritten);
    }
    let injection = inject_faults(shared, record).await?;

    let outgoing = Outgoing {
        method: parts.method,
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| record.endpoint.path().to_string()),
        headers: super::headers::upstream_request(
            &parts.headers,
            &shared.cfg.forward_headers_deny,
            parts.extensions.get::<ClientAddr>().map(|a| a.0.ip()),
        ),
        client_auth: parts.headers.get(header::AUTHORIZATION).cloned(),
        body,
    };
    let options = RelayOptions {
        strip_usage: info.stream && !info.client_wants_usage,
        cut_after_chunks: injection.and_then(|i| i.stream_cut_after_chunks),
        output_action: policy.output,
        policy,
        model_id: parts.extensions.get::<ModelId>().map(|m| m.0.clone()),
    };
    Ok((outgoing, options))
}

/// Who is asking: the tenant of the API key (`anonymous` without one), 401 when keys are
/// required and this one is missing or unknown.
fn authenticate(shared: &Shared, key: Option<&str>) -> Result<String, Rejection> {
    let tenant = key.and_then(|k| shared.api_keys.get(k)).cloned();
    if shared.cfg.require_api_key && tenant.is_none() {
        let message = if key.is_some() {
            "incorrect API key provided"
        } else {
            "missing API key: send Authorization: Bearer <key>"
        };
        return Err(ApiError::new(ErrorCode::Unauthorized, "invalid_api_key", message).into());
    }
    Ok(tenant.unwrap_or_else(|| ANONYMOUS.to_string()))
}

/// The whole body, within `max_body_bytes` (413 above it, declared or not).
async fn read_body(shared: &Shared, headers: &HeaderMap, body: Body) -> Result<Bytes, Rejection> {
    let limit = shared.cfg.max_body_bytes;
    let too_large = || {
        Rejection::from(ApiError::new(
            ErrorCode::PayloadTooLarge,
            "request_too_large",
            format!("request body is larger than the limit of {limit} bytes"),
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let timeout = shared.cfg.client_body_timeout;
    let read = tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect());
    let Ok(collected) = read.await else {
        let err = ApiError::new(
            ErrorCode::BadRequest,
            "request_timeout",
            format!("request body not received within {} ms", timeout.as_millis()),
        )
        .with_status(408);
        return Err(Rejection::new(err, Outcome::ClientCancelled));
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(too_large())
        }
        Err(e) => Err(Rejection::new(
            ApiError::bad_request(format!("cannot read request body: {e}")),
            Outcome::ClientCancelled,
        )),
    }
}

/// 404 for a model outside `gateway.models` (when that list is set).
fn check_model(shared: &Shared, model: &str) -> Result<(), Rejection> {
    if shared.labels.model_allowed(model) {
        return Ok(());
    }
    Err(ApiError::not_found(
        "model_not_found",
        format!("the model `{model}` does not exist or you do not have access to it"),
    )
    .into())
}

/// Pinning to a pool or model version: trusted keys only (403, 404 or 400 otherwise).
fn pin(shared: &Shared, headers: &HeaderMap, key: Option<&str>) -> Result<Option<Pin>, Rejection> {
    Ok(pin::resolve(shared, headers, key)?)
}

/// Degradation: 429 with `Retry-After` for a listed tenant over its rate.
fn rate_limit(shared: &Shared, tenant: &str, now: Instant) -> Result<(), Rejection> {
    let Err(wait) = shared.degrade.admit(tenant, now) else { return Ok(()) };
    let err = ApiError::new(
        ErrorCode::TooManyRequests,
        "rate_limit_exceeded",
        format!("tenant {tenant} is rate limited; retry in {wait:.2} s"),
    );
    Err(Rejection::from(err).with_retry_after(wait.ceil().max(1.0) as u64))
}

/// Prompt scanning under the tenant's policy: counts matches, redacts (a new body) or
/// refuses (403).
/// Prompts up to this size are scanned on the proxy worker (a 2 KB chat body takes about
/// 1.5 µs); larger ones on tokio's blocking pool, so a multi-megabyte prompt never holds up the
/// other requests of its worker.
pub const SCAN_INLINE_BYTES: usize = 64 * 1024;

async fn scan_prompt(
    shared: &Shared,
    record: &mut Record,
    policy: &Policy,
    body: Bytes,
) -> Result<Bytes, Rejection> {
    if !record.endpoint.has_body() || policy.prompt == ScanAction::Off {
        return Ok(body);
    }
    let scan = if body.len() <= SCAN_INLINE_BYTES {
        shared.scanner.scan_prompt(policy, &body)
    } else {
        let (owner, policy, large) = (record.shared.clone(), policy.clone(), body.clone());
        tokio::task::spawn_blocking(move || owner.scanner.scan_prompt(&policy, &large))
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::Internal,
                    "scan_failed",
                    format!("prompt scan failed: {e}"),
                )
            })?
    };
    for kind in &scan.kinds {
        shared.metrics.sensitive.inc(&SensitiveIds {
            tenant: &record.tenant_label,
            kind: kind.as_str(),
            direction: "prompt",
            action: policy.prompt.as_str(),
        });
    }
    record.sensitive_matches += scan.kinds.len() as u32;
    if scan.blocked {
        let kinds: Vec<&str> = scan.kinds.iter().map(|k| k.as_str()).collect();
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "sensitive_data_blocked",
            format!(
                "the prompt contains sensitive data ({}) and policy blocks it",
                kinds.join(", ")
            ),
        )
        .into());
    }
    Ok(scan.redacted_body.map(Bytes::from).unwrap_or(body))
}

/// The prompt as the request log shows it (`include_text = true`).
fn prompt_text(body: &[u8]) -> Option<serde_json::Value> {
    let v = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    ["messages", "prompt", "input"].iter().find_map(|k| v.get(*k).cloned())
}

/// Fault injection: added latency (counted as upstream wait), an injected error answer, or a
/// stream cut for `forward` to apply.
async fn inject_faults(
    shared: &Shared,
    record: &mut Record,
) -> Result<Option<Injection>, Rejection> {
    let endpoint = record.endpoint.path();
    let Some(inj) = shared.faults.pick(endpoint) else { return Ok(None) };
    if !inj.latency.is_zero() {
        shared.metrics.faults.inc(&FaultIds { endpoint, kind: "latency" });
        let started = shared.clock.now();
        tokio::time::sleep(inj.latency).await;
        record.upstream_wait += shared.clock.now().saturating_duration_since(started);
    }
    if let Some(status) = inj.error_status {
        shared.metrics.faults.inc(&FaultIds { endpoint, kind: "error" });
        let code = match status {
            429 => ErrorCode::TooManyRequests,
            400..=499 => ErrorCode::BadRequest,
            504 => ErrorCode::GatewayTimeout,
            _ => ErrorCode::Unavailable,
        };
        let err = ApiError::new(code, "injected_fault", format!("injected fault: status {status}"))
            .with_status(status);
        let outcome = if status >= 500 { Outcome::UpstreamError } else { Outcome::Rejected };
        return Err(Rejection::new(err, outcome));
    }
    Ok(Some(inj))
}
