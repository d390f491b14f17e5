//! The agent's HTTP server: `/metrics` (0.0.4 text, or OpenMetrics when the scraper's Accept
//! asks for it) and `/healthz`. Every scrape runs the collectors; nothing is cached here.

use crate::collector::CollectorSet;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use deepwatch_core::expo::Format;
use std::sync::Arc;

pub fn router(collectors: Arc<CollectorSet>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/", get(index))
        .with_state(collectors)
}

async fn metrics(State(set): State<Arc<CollectorSet>>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let body = set.scrape(format).await;
    ([(header::CONTENT_TYPE, format.content_type())], body)
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><head><title>deepwatch agent</title></head><body><h1>deepwatch agent</h1><p><a href=\"/metrics\">/metrics</a> <a href=\"/healthz\">/healthz</a></p></body></html>\n")
}
