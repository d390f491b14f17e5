//! The OpenAI-compatible proxy listener. A request passes the admission stages of `admit`
//! (authentication, body limit, request checks, pinning, degrade, prompt scanning, faults), then
//! `forward` picks upstreams and relays the answer (`stream` for event streams, `output` scans
//! whole answers). Every exit goes through the request's `Record`, so each request is counted
//! exactly once; `report` turns a finished record into metrics, health, rollout samples and a
//! request-log line.
//!
//! Module arrows point one way: `mod` → `admit` → (`pin`, `request`) and `mod` → `forward` →
//! (`stream`, `output`, `conn`); all of them use the leaves `record` → `report`, `relay`,
//! `rejection` and `endpoint`.

mod admit;
pub mod conn;
pub mod endpoint;
mod forward;
mod headers;
mod output;
pub mod pin;
pub mod record;
mod rejection;
pub mod relay;
mod report;
pub mod request;
mod stream;

use crate::error::ApiError;
use crate::state::Shared;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use deepwatch_core::error::ErrorCode;
use endpoint::Endpoint;
use record::Record;
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> Router {
    let route = |e: Endpoint| move |s: State<Arc<Shared>>, r: Request| proxy(s, r, e);
    let one_model = |s: State<Arc<Shared>>, Path(id): Path<String>, mut r: Request| {
        // The upstream's list answers it (engines do not all serve /v1/models/{id}).
        *r.uri_mut() = http::Uri::from_static("/v1/models");
        r.extensions_mut().insert(relay::ModelId(id));
        proxy(s, r, Endpoint::Models)
    };
    Router::new()
        .route(Endpoint::Chat.path(), post(route(Endpoint::Chat)).fallback(method_not_allowed))
        .route(
            Endpoint::Completions.path(),
            post(route(Endpoint::Completions)).fallback(method_not_allowed),
        )
        .route(
            Endpoint::Embeddings.path(),
            post(route(Endpoint::Embeddings)).fallback(method_not_allowed),
        )
        .route(Endpoint::Models.path(), get(route(Endpoint::Models)).fallback(method_not_allowed))
        .route("/v1/models/{*id}", get(one_model).fallback(method_not_allowed))
        .fallback(|r: Request| async move {
            ApiError::not_found(
                "unknown_url",
                format!("unknown route {} {}", r.method(), r.uri().path()),
            )
        })
        .with_state(shared)
}

/// Most request headers accepted (nginx allows about as many in its default 4 x 8 KiB).
pub const MAX_HEADERS: usize = 100;
/// Most bytes of request headers accepted (names and values).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// 431 in OpenAI's shape for a request with too many or too large headers.
fn oversized_headers(headers: &http::HeaderMap) -> Option<ApiError> {
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers.len() <= MAX_HEADERS && bytes <= MAX_HEADER_BYTES {
        return None;
    }
    let message = format!(
        "request headers too large: {} headers, {bytes} bytes (limits {MAX_HEADERS} headers, {MAX_HEADER_BYTES} bytes)",
        headers.len()
    );
    Some(
        ApiError::new(ErrorCode::BadRequest, "request_header_fields_too_large", message)
            .with_status(431),
    )
}

/// 405 in OpenAI's shape (axum's own has an empty body).
async fn method_not_allowed(r: Request) -> ApiError {
    ApiError::new(
        ErrorCode::BadRequest,
        "method_not_allowed",
        format!("{} is not allowed on {}", r.method(), r.uri().path()),
    )
    .with_status(405)
}

/// Reuses the client's request id when it is a sane token, else makes one.
fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(crate::util::request_id)
}

async fn proxy(State(shared): State<Arc<Shared>>, req: Request, endpoint: Endpoint) -> Response {
    let received = shared.clock.now();
    let (parts, body) = req.into_parts();
    let mut record = Record::new(shared.clone(), request_id(&parts.headers), received, endpoint);
    if let Some(err) = oversized_headers(&parts.headers) {
        return record.reject(rejection::Rejection::from(err));
    }
    match admit::admit(&shared, &mut record, parts, body).await {
        Ok((outgoing, options)) => forward::run(shared, record, outgoing, options).await,
        Err(rejection) => record.reject(rejection),
    }
}
