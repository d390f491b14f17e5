//! The admin listener: `/metrics` and `/healthz` without a token, and the bearer-protected
//! admin API that the analyzer's remediation and the lab's chaos scenarios use (pools, forced
//! failover, weights, scale out, rollouts, degrade, faults, events). `docs/gateway-admin-api.md`
//! is its reference and `deepwatch_core::api::admin` holds its documents and bodies, shared
//! with the clients; errors have the OpenAI shape.

use crate::error::ApiError;
use crate::state::Shared;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use deepwatch_core::api::admin::{
    DegradeState, EventsDoc, FailoverRequest, FailoverState, FaultRule, FaultsDoc, PoolDoc,
    PoolsDoc, ReasonRequest, RolloutDoc, RolloutRequest, RolloutsDoc, UpstreamRequest,
    WeightRequest,
};
use deepwatch_core::api::bearer;
use deepwatch_core::error::ErrorCode;
use deepwatch_core::expo::Format;
use deepwatch_core::http::redact_urls;
use http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;

type Result<T> = std::result::Result<T, ApiError>;

pub fn router(shared: Arc<Shared>) -> Router {
    let admin = Router::new()
        .route("/admin/pools", get(pools))
        .route("/admin/pools/{pool}/weight", put(set_weight))
        .route("/admin/pools/{pool}/upstreams", post(add_upstream).delete(remove_upstream))
        .route("/admin/failover", post(failover).delete(failback))
        .route("/admin/rollouts", post(start_rollout).get(rollouts))
        .route("/admin/rollouts/rollback", post(rollback))
        .route("/admin/rollouts/promote", post(promote))
        .route("/admin/degrade", put(set_degrade).delete(clear_degrade))
        .route("/admin/faults", put(set_faults).get(get_faults).delete(clear_faults))
        .route("/admin/events", get(events))
        .layer(middleware::from_fn_with_state(shared.clone(), auth));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(admin)
        .fallback(|r: Request| async move {
            ApiError::not_found(
                "not_found",
                format!("unknown route {} {}", r.method(), r.uri().path()),
            )
        })
        .with_state(shared)
}

async fn auth(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let token = &shared.cfg.admin_token;
    if token.is_empty() {
        return ApiError::new(
            ErrorCode::Forbidden,
            "admin_disabled",
            "the admin API is disabled: set gateway.admin_token",
        )
        .into_response();
    }
    if !bearer::matches(req.headers(), token) {
        return ApiError::new(
            ErrorCode::Unauthorized,
            "unauthorized",
            "missing or wrong admin token",
        )
        .into_response();
    }
    next.run(req).await
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.pools.export_ratios();
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let text = shared.metrics.registry().render(format);
    ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
}

/// Parses a JSON body; the error names the problem (serde names unknown fields).
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

fn pools_doc(shared: &Shared) -> PoolsDoc {
    PoolsDoc {
        pools: shared.pools.docs(),
        active_pools: shared.pools.active_pools(),
        failover: FailoverState {
            forced: shared.pools.forced(),
            automatic: shared.pools.automatic_failover(),
        },
        degrade: shared.degrade.get(),
        rollout: shared.rollouts.current(),
    }
}

async fn pools(State(shared): State<Arc<Shared>>) -> Json<PoolsDoc> {
    Json(pools_doc(&shared))
}

fn pool<'a>(shared: &'a Shared, name: &str) -> Result<&'a Arc<crate::pools::Pool>> {
    shared
        .pools
        .get(name)
        .ok_or_else(|| ApiError::not_found("pool_not_found", format!("unknown pool {name:?}")))
}

async fn set_weight(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<PoolDoc>> {
    let p = pool(&shared, &name)?;
    let b: WeightRequest = parse(&body)?;
    if b.weight > 100 {
        return Err(ApiError::bad_request(format!(
            "weight must be between 0 and 100, got {}",
            b.weight
        )));
    }
    if shared.rollouts.controls(&name) {
        return Err(ApiError::conflict(
            "pool_in_rollout",
            format!("a running rollout controls the weight of {name:?}"),
        ));
    }
    shared.pools.set_weight(p, b.weight);
    shared.events.record("weight", &name, format!("weight {}%", b.weight));
    Ok(Json(shared.pools.doc(p)))
}

async fn add_upstream(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let p = pool(&shared, &name)?;
    let b: UpstreamRequest = parse(&body)?;
    match url::Url::parse(&b.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => {
            return Err(ApiError::bad_request(format!(
                "url must be an http(s) URL like http://10.0.0.5:8000, got {:?}",
                redact_urls(&b.url)
            )))
        }
    }
    if !shared.pools.add_upstream(p, &b.url) {
        return Err(ApiError::conflict(
            "upstream_exists",
            format!("{} is already in pool {name:?}", redact_urls(&b.url)),
        ));
    }
    Ok((StatusCode::CREATED, Json(shared.pools.doc(p))).into_response())
}

async fn remove_upstream(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<PoolDoc>> {
    let p = pool(&shared, &name)?;
    let b: UpstreamRequest = parse(&body)?;
    if !shared.pools.remove_upstream(p, &b.url) {
        return Err(ApiError::not_found(
            "upstream_not_found",
            format!("{} is not in pool {name:?}", redact_urls(&b.url)),
        ));
    }
    Ok(Json(shared.pools.doc(p)))
}

async fn failover(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Json<PoolsDoc>> {
    let b: FailoverRequest = parse(&body)?;
    pool(&shared, &b.pool)?;
    shared.pools.force(&b.pool, b.reason.as_deref().unwrap_or("admin request"));
    Ok(Json(pools_doc(&shared)))
}

async fn failback(State(shared): State<Arc<Shared>>) -> Json<PoolsDoc> {
    shared.pools.unforce();
    Json(pools_doc(&shared))
}

async fn start_rollout(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response> {
    let req: RolloutRequest = parse(&body)?;
    let doc = shared.rollouts.start(req)?;
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

async fn rollouts(State(shared): State<Arc<Shared>>) -> Json<RolloutsDoc> {
    Json(RolloutsDoc { current: shared.rollouts.current(), history: shared.rollouts.history() })
}

fn reason_of(body: &Bytes) -> Result<Option<String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(parse::<ReasonRequest>(body)?.reason)
}

async fn rollback(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Json<RolloutDoc>> {
    Ok(Json(shared.rollouts.force(false, reason_of(&body)?)?))
}

async fn promote(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Json<RolloutDoc>> {
    Ok(Json(shared.rollouts.force(true, reason_of(&body)?)?))
}

async fn set_degrade(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Json<DegradeState>> {
    let state: DegradeState = parse(&body)?;
    let state = shared.degrade.set(state).map_err(ApiError::bad_request)?;
    Ok(Json(state))
}

async fn clear_degrade(State(shared): State<Arc<Shared>>) -> Result<Json<DegradeState>> {
    let state = shared.degrade.set(DegradeState::default()).map_err(ApiError::bad_request)?;
    Ok(Json(state))
}

fn faults_enabled(shared: &Shared) -> Result<()> {
    if shared.faults.enabled {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            "faults_disabled",
            "fault injection is disabled: set gateway.faults.enabled = true",
        ))
    }
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Json<FaultsDoc>> {
    faults_enabled(&shared)?;
    let rules: Vec<FaultRule> = parse(&body)?;
    let rules = shared.faults.set(rules).map_err(ApiError::bad_request)?;
    Ok(Json(FaultsDoc { enabled: true, rules }))
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Result<Json<FaultsDoc>> {
    faults_enabled(&shared)?;
    Ok(Json(FaultsDoc { enabled: true, rules: shared.faults.rules() }))
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Result<Json<FaultsDoc>> {
    faults_enabled(&shared)?;
    shared.faults.set(Vec::new()).map_err(ApiError::bad_request)?;
    Ok(Json(FaultsDoc { enabled: true, rules: Vec::new() }))
}

async fn events(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<EventsDoc>> {
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("limit must be a number, got {v:?}")))?
            .min(1000),
    };
    Ok(Json(EventsDoc { events: shared.events.last(limit) }))
}
