//! A stand-in for the gateway's admin API in tests, speaking the documented wire format
//! (`docs/gateway-admin-api.md`): bearer auth, the pools document, failover, upstreams,
//! rollouts and degrade, with OpenAI-shaped errors. It records every call.

#![allow(clippy::result_large_err)]

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::sync::Arc;

pub const TOKEN: &str = "admin-secret";

#[derive(Debug, Clone)]
pub struct MockPool {
    pub name: String,
    pub upstreams: Vec<(String, bool)>,
}

#[derive(Debug, Default)]
pub struct MockState {
    pub pools: Vec<MockPool>,
    pub forced: Option<(String, String)>,
    pub degrade: Value,
    pub rollout: Option<Value>,
    /// (method, path, body) of every authorised call.
    pub calls: Vec<(String, String, Value)>,
}

pub struct MockGateway {
    pub url: String,
    pub state: Arc<Mutex<MockState>>,
}

pub fn pool(name: &str, upstreams: &[(&str, bool)]) -> MockPool {
    MockPool {
        name: name.into(),
        upstreams: upstreams.iter().map(|(u, h)| (u.to_string(), *h)).collect(),
    }
}

impl MockGateway {
    pub async fn start(pools: Vec<MockPool>) -> MockGateway {
        let state = Arc::new(Mutex::new(MockState {
            pools,
            degrade: json!({"max_tokens_cap": null, "rate_limit": null}),
            ..MockState::default()
        }));
        let app = Router::new()
            .route("/admin/pools", get(pools_doc))
            .route("/admin/failover", post(failover).delete(clear_failover))
            .route("/admin/pools/{pool}/upstreams", post(add_upstream))
            .route("/admin/rollouts", get(rollouts))
            .route("/admin/rollouts/rollback", post(rollback))
            .route("/admin/degrade", put(set_degrade).delete(clear_degrade))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        MockGateway { url, state }
    }

    /// Calls of `method` on `path`.
    pub fn calls(&self, method: &str, path: &str) -> Vec<Value> {
        self.state
            .lock()
            .calls
            .iter()
            .filter(|(m, p, _)| m == method && p == path)
            .map(|(_, _, b)| b.clone())
            .collect()
    }

    pub fn start_rollout(&self, canary: &str, stable: &str) {
        self.state.lock().rollout = Some(json!({
            "id": 7, "canary": canary, "stable": stable, "steps": [1, 5, 25, 50, 100],
            "step_index": 2, "weight": 25, "status": "running", "reason": null
        }));
    }
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    let body =
        json!({"error": {"message": message, "type": "invalid_request_error", "code": code}});
    (status, Json(body)).into_response()
}

fn authorised(headers: &HeaderMap) -> Result<(), Response> {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if ok {
        Ok(())
    } else {
        Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "bad token".into()))
    }
}

fn doc(s: &MockState) -> Value {
    let pools: Vec<Value> = s
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "name": p.name, "weight": 100, "priority": i, "model_version": "v1",
                "active": s.forced.as_ref().map_or(i == 0, |f| f.0 == p.name),
                "upstreams": p.upstreams.iter().map(|(u, h)| json!({
                    "url": u, "healthy": h, "ejected_by": if *h { Value::Null } else { json!("passive") },
                    "error_ratio": 0.0, "window_requests": 10, "consecutive_failures": 0, "in_flight": 1
                })).collect::<Vec<_>>()
            })
        })
        .collect();
    let active: Vec<&str> = match &s.forced {
        Some((p, _)) => vec![p.as_str()],
        None => s.pools.first().map(|p| vec![p.name.as_str()]).unwrap_or_default(),
    };
    json!({
        "pools": pools,
        "active_pools": active,
        "failover": {"forced": s.forced.as_ref().map(|(p, r)| json!({"pool": p, "reason": r, "since": "2026-11-23T06:40:00Z"})), "automatic": false},
        "degrade": s.degrade,
        "rollout": s.rollout,
    })
}

type St = State<Arc<Mutex<MockState>>>;

async fn pools_doc(State(s): St, h: HeaderMap) -> Response {
    if let Err(r) = authorised(&h) {
        return r;
    }
    let mut s = s.lock();
    s.calls.push(("GET".into(), "/admin/pools".into(), Value::Null));
    Json(doc(&s)).into_response()
}

async fn failover(State(s): St, h: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Err(r) = authorised(&h) {
        return r;
    }
    let mut s = s.lock();
    s.calls.push(("POST".into(), "/admin/failover".into(), body.clone()));
    let pool = body["pool"].as_str().unwrap_or("").to_string();
    if !s.pools.iter().any(|p| p.name == pool) {
        return error(StatusCode::NOT_FOUND, "pool_not_found", format!("unknown pool {pool:?}"));
    }
    s.forced = Some((pool, body["reason"].as_str().unwrap_or("").to_string()));
    Json(doc(&s)).into_response()
}

async fn clear_failover(State(s): St, h: HeaderMap) -> Response {
    if let Err(r) = authorised(&h) {
        return r;
    }
    let mut s = s.lock();
    s.calls.push(("DELETE".into(), "/admin/failover".into(), Value::Null));
    s.forced = None;
    Json(doc(&s)).into_response()
}

async fn add_upstream(
    State(s): St,
    h: HeaderMap,
    Path(pool): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = authorised(&h) {
        return r;
    }
    let mut s = s.lock();
    s.calls.push(("POST".into(), format!("/admin/pools/{pool}/upstreams"), body.clone()));
    let url = body["url"].as_str().unwrap_or("").to_string();
    let Some(p) = s.pools.iter_mut().find(|p| p.name == pool) else {
        return error(StatusCode::NOT_FOUND, "pool_not_found", format!("unknown pool {pool:?}"));
    };
    if p.upstreams.iter().any(|(u, _)| *u == url) {
        return error(StatusCode::CONFLICT, "upstream_exists", format!("{url} is in {pool}"));
    }
    p.upstreams.push((url, true));
    let d = doc(&s);
    let pool_doc = d["pools"].as_array().unwrap().iter().find(|p| p["name"] == pool).cloned();
    (StatusCode::CREATED, Json(pool_doc.unwrap_or(Value::Null))).into_response()
}

async fn rollouts(State(s): St, h: HeaderMap) -> Response {
    if let Err(r) = authorised(&h) {
        return r;
    }
    let mut s = s.lock();
    s.calls.push(("GET".into(), "/admin/rollouts".into(), Value::Null));
    Json(json!({"current": s.rollout, "history": []})).into_response()
}

async fn rollback(State(s): St, h: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Err(r) = authorised(&h) {
        return r;
    }
    let mut s = s.lock();
    s.calls.push(("POST".into(), "/admin/rollouts/rollback".into(), body));
    match s.rollout.take() {
        Some(mut r) if r["status"] == "running" => {
            r["status"] = json!("rolled_back");
            r["weight"] = json!(0);
            Json(r).into_response()
        }
        _ => error(StatusCode::CONFLICT, "no_rollout", "no rollout is running".into()),
    }
}

async fn set_degrade(State(s): St, h: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Err(r) = authorised(&h) {
        return r;
    }
    let mut s = s.lock();
    s.calls.push(("PUT".into(), "/admin/degrade".into(), body.clone()));
    s.degrade = json!({"max_tokens_cap": body["max_tokens_cap"], "rate_limit": body["rate_limit"]});
    Json(s.degrade.clone()).into_response()
}

async fn clear_degrade(State(s): St, h: HeaderMap) -> Response {
    if let Err(r) = authorised(&h) {
        return r;
    }
    let mut s = s.lock();
    s.calls.push(("DELETE".into(), "/admin/degrade".into(), Value::Null));
    s.degrade = json!({"max_tokens_cap": null, "rate_limit": null});
    Json(s.degrade.clone()).into_response()
}
