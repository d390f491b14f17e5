//! The simulator's fault admin API (contracts.md): `GET/PUT /admin/faults`,
//! `POST /admin/reset`, and `GET /admin/status` (faults plus what they caused). Every route needs
//! `Authorization: Bearer <token>`. It runs on its own listener so it keeps answering while the
//! main listener is down.

use super::engine::Engine;
use super::faults::Faults;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use deepwatch_core::api::bearer;
use deepwatch_core::error::{ErrorBody, ErrorCode};
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct Admin {
    engine: Arc<Engine>,
    token: Arc<str>,
}

pub fn router(engine: Arc<Engine>, token: &str) -> Router {
    let admin = Admin { engine, token: token.into() };
    Router::new()
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/reset", post(reset))
        .route("/admin/status", get(status))
        .with_state(admin)
}

impl Admin {
    /// `None` when the bearer token matches; the 401 response otherwise.
    fn deny(&self, headers: &HeaderMap) -> Option<Response> {
        if bearer::matches(headers, &self.token) {
            return None;
        }
        let message = match bearer::from_headers(headers) {
            Some(_) => "invalid admin token",
            None => "missing `Authorization: Bearer <token>`",
        };
        Some(error_response(ErrorCode::Unauthorized, "unauthorized", message))
    }

    fn faults_json(&self) -> Response {
        let faults: Faults = self.engine.faults.borrow().clone();
        axum::Json(faults).into_response()
    }
}

/// An error of this admin API: status from the shared code map, body
/// `deepwatch_core::error::ErrorBody` (the engine API answers vLLM's own shape instead).
fn error_response(code: ErrorCode, reason: &str, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(ErrorBody::new(code, reason, message))).into_response()
}

async fn get_faults(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    if let Some(denied) = admin.deny(&headers) {
        return denied;
    }
    admin.faults_json()
}

async fn put_faults(State(admin): State<Admin>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(denied) = admin.deny(&headers) {
        return denied;
    }
    let patch: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error_response(
                ErrorCode::BadRequest,
                "bad_request",
                format!("invalid JSON: {e}"),
            )
        }
    };
    let next = match admin.engine.faults.borrow().patched(&patch) {
        Ok(next) => next,
        Err(e) => return error_response(ErrorCode::BadRequest, "bad_request", e.to_string()),
    };
    tracing::info!(faults = %serde_json::to_string(&next).unwrap_or_default(), "sim faults set");
    admin.engine.faults.send_replace(next);
    admin.faults_json()
}

async fn reset(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    if let Some(denied) = admin.deny(&headers) {
        return denied;
    }
    admin.engine.faults.send_replace(Faults::default());
    admin.engine.leak.release();
    tracing::info!("sim faults reset");
    admin.faults_json()
}

async fn status(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    if let Some(denied) = admin.deny(&headers) {
        return denied;
    }
    let gauges = admin.engine.gauges();
    let faults: Faults = admin.engine.faults.borrow().clone();
    axum::Json(json!({
        "faults": faults,
        "leaked_bytes": admin.engine.leak.held_bytes(),
        "running": gauges.running,
        "waiting": gauges.waiting,
        "kv_cache_usage_perc": gauges.kv_usage,
    }))
    .into_response()
}
