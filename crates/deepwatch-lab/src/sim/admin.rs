//! The simulator's fault admin API (contracts.md): `GET/PUT /admin/faults`,
//! `POST /admin/reset`, and `GET /admin/status` (faults plus what they caused). Every route needs
//! `Authorization: Bearer <token>`. It runs on its own listener so it keeps answering while the
//! main listener is down.

use super::api::error_response;
use super::engine::Engine;
use super::faults::Faults;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
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
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
            Some(t) if constant_time_eq(t.as_bytes(), self.token.as_bytes()) => None,
            Some(_) => Some(error_response(401, "invalid admin token", None)),
            None => Some(error_response(401, "missing `Authorization: Bearer <token>`", None)),
        }
    }

    fn faults_json(&self) -> Response {
        let faults: Faults = self.engine.faults.borrow().clone();
        axum::Json(faults).into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        Err(e) => return error_response(400, format!("invalid JSON: {e}"), None),
    };
    let next = match admin.engine.faults.borrow().patched(&patch) {
        Ok(next) => next,
        Err(e) => return error_response(400, e.to_string(), None),
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
