//! The analyzer daemon (`deepwatch analyze --config FILE`): one HTTP server with `/metrics`
//! (its own metrics and the analytics' baselines and detectors), `/healthz`,
//! `POST /webhook/alertmanager` (remediation and root-cause ranking), `POST /notify/{channel}`
//! (the chat bridge) and `/reports`; plus the background loops: analytics ticks, golden-prompt
//! probes and the alert worker. Prometheus being down never stops it: analytics reports itself
//! degraded and everything webhook-driven keeps working.

pub mod incidents;
pub mod reports;
pub mod svg;
pub mod worker;

use crate::capacity::{self, CapacityGauge, PlanInput};
use crate::notify::{Bridge, Delivery, NotifyError};
use crate::probe::Prober;
use crate::prom::PromClient;
use crate::remediate::{self, scaling::ScalingRules, Deps, LoadSource, Remediator};
use crate::webhook::{journal::Journal, Payload, Receiver};
use crate::Analytics;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use deepwatch_core::api::bearer;
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::remediation::ScalingConfig;
use deepwatch_core::config::Config;
use deepwatch_core::error::{ErrorBody, ErrorCode, HasErrorCode};
use deepwatch_core::expo::Format;
use deepwatch_core::metrics::{CounterVec, Registry};
use deepwatch_core::shard::Shard;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use reports::ReportIndex;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("analyzer.prometheus_url: {0}")]
    Prometheus(#[from] crate::prom::PromError),
    #[error("remediation.state_dir {path}: {source}")]
    StateDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Build(#[from] remediate::BuildError),
    #[error(transparent)]
    Engine(#[from] remediate::engine::EngineError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(transparent)]
    Probe(#[from] crate::probe::ProbeError),
    #[error("remediation.webhook_token_file: {0}")]
    WebhookToken(String),
    #[error("cannot serve on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
}

/// Current load per replica from Prometheus, for the scale action.
struct PromLoad(PromClient);

impl LoadSource for PromLoad {
    fn load<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>> {
        async move {
            let samples = self.0.query(query, None).await.map_err(|e| e.to_string())?;
            Ok(samples.first().map(|s| s.value).filter(|v| v.is_finite()))
        }
        .boxed()
    }
}

struct AppState {
    /// Which alerts and notification groups this analyzer handles (`analyzer.shard`).
    shard: Shard,
    shard_skipped: Arc<CounterVec>,
    /// Bearer token callers of the webhook and bridge must present, when configured.
    webhook_token: Option<String>,
    registry: Registry,
    receiver: Arc<Receiver>,
    bridge: Arc<Bridge>,
    reports: Arc<ReportIndex>,
    /// The remediation audit log, read by the incident pages.
    audit_log: std::path::PathBuf,
}

/// A running daemon: its address, and a way to stop it.
pub struct Running {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

/// How long a stopping daemon waits for its HTTP server, worker and loops before it abandons
/// them: shutdown takes at most this (under 5 s, inside systemd's and Kubernetes' grace) whatever
/// a Prometheus retry backoff or an action's timeout says. An alert whose handling is cut short
/// stays unfinished in the journal and is replayed on the next start.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

impl Running {
    /// Stops accepting requests, lets the worker finish (and drain the queue briefly), waits at
    /// most `SHUTDOWN_GRACE`.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let _ = join_by(self.server, deadline).await;
        for task in self.tasks {
            join_by(task, deadline).await;
        }
    }

    /// Waits until the server stops (on a `stopper()` signal or an I/O error), then for the
    /// worker to finish, at most `SHUTDOWN_GRACE` after the server stopped.
    pub async fn wait(self) -> std::io::Result<()> {
        let mut stop_rx = self.stop.subscribe();
        let mut server = self.server;
        // The server itself may wait for open connections: bound that by the grace too.
        let result = tokio::select! {
            r = &mut server => Some(r),
            _ = stopped(&mut stop_rx) => None,
        };
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let result = match result {
            Some(r) => r,
            None => join_by(server, deadline).await.unwrap_or(Ok(Ok(()))),
        };
        let result = match result {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        let _ = self.stop.send(true);
        for task in self.tasks {
            join_by(task, deadline).await;
        }
        result
    }

    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Builds every part from the config and starts serving on `listener`.
pub async fn start(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
) -> Result<Running, DaemonError> {
    let addr = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen { addr: config.analyzer.listen.clone(), source })?;
    let r = &config.remediation;
    let state_dir = Path::new(&r.state_dir);
    let state_error =
        |source: std::io::Error| DaemonError::StateDir { path: r.state_dir.clone(), source };
    let journal =
        Journal::open(state_dir, r.journal_retention, clock.clone()).map_err(state_error)?;
    let (receiver, jobs) = Receiver::new(Arc::new(journal), r.queue_capacity);
    let receiver = Arc::new(receiver);

    let prom = PromClient::from_config(&config.analyzer)?;
    let analytics = Arc::new(Analytics::new(&config.analyzer, prom.clone(), clock.clone()));

    let token = remediate::admin_token(r)?;
    let admin =
        deepwatch_core::api::admin::GatewayAdmin::new(&r.gateway.url, &token, r.gateway.timeout)
            .map_err(remediate::BuildError::from)?;
    let deps = Deps {
        admin: Arc::new(admin),
        load: Some(Arc::new(PromLoad(prom.clone()))),
        scaling: ScalingRules::from(&r.scaling),
    };
    let actions = remediate::build_actions(r, &deps)?;
    let remediator = Arc::new(Remediator::new(r, actions, clock.clone())?);
    if remediator.audit().interrupted() > 0 {
        tracing::warn!(
            interrupted = remediator.audit().interrupted(),
            "audit log has actions without a result from a previous run"
        );
    }

    let public_url = if r.public_url.is_empty() {
        format!("http://{addr}")
    } else {
        r.public_url.trim_end_matches('/').to_string()
    };
    let report_index = Arc::new(ReportIndex::open(Path::new(&config.analyzer.report_dir)));
    let bridge = Arc::new(Bridge::new(
        &config.notify,
        Some(format!("{public_url}/incidents/alert")),
        clock.clone(),
    )?);
    let rca = Arc::new(worker::Rca::new(
        prom.clone(),
        config.analyzer.rca.clone(),
        config.analyzer.baseline.clone(),
        report_index.clone(),
        clock.clone(),
    ));
    let shard = config.analyzer.shard();
    // Probes and capacity plans are fleet-wide: the leader (shard 0) runs them once.
    let prober = if config.probes.enabled && shard.is_leader() {
        Some(Arc::new(Prober::new(&config.probes, clock.clone())?))
    } else {
        None
    };

    let mut registry = Registry::new();
    registry.register(analytics.clone());
    registry.register(receiver.clone());
    registry.register(remediator.clone());
    registry.register(bridge.clone());
    registry.register(Arc::new(CounterPart(rca.reports.clone())));
    if let Some(p) = &prober {
        registry.register(p.clone());
    }
    let shard_skipped =
        Arc::new(CounterVec::new(&deepwatch_core::catalog::analyzer::SHARD_SKIPPED));
    if shard.count > 1 {
        for kind in ["alert", "notification"] {
            shard_skipped.with(&[kind]);
        }
    }
    registry.register(Arc::new(CounterPart(shard_skipped.clone())));
    let capacity_gauge = Arc::new(CapacityGauge::default());
    registry.register(capacity_gauge.clone());

    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(worker::run(
        jobs,
        receiver.clone(),
        remediator.clone(),
        Some(rca),
        stop_rx.clone(),
        r.action_timeout,
    )));
    tasks.push(tokio::spawn(analytics_loop(
        analytics,
        config.analyzer.evaluation_interval,
        stop_rx.clone(),
    )));
    if !r.scaling.plan_interval.is_zero() && shard.is_leader() {
        tasks.push(tokio::spawn(capacity_loop(
            prom.clone(),
            r.scaling.clone(),
            capacity_gauge,
            clock.clone(),
            stop_rx.clone(),
        )));
    }
    if let Some(p) = prober {
        let mut stop_probe = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            p.run(async move { stopped(&mut stop_probe).await }).await
        }));
    }

    let webhook_token = r.webhook_token().map_err(DaemonError::WebhookToken)?;
    let webhook_token = (!webhook_token.is_empty()).then_some(webhook_token);
    let state = Arc::new(AppState {
        shard,
        shard_skipped,
        webhook_token,
        registry,
        receiver,
        bridge,
        reports: report_index,
        audit_log: r.audit_log_path(),
    });
    let app = router(state);
    let mut stop_http = stop_rx;
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped(&mut stop_http).await })
            .await
    });
    info!(%addr, state_dir = %r.state_dir, audit_log = %r.audit_log_path().display(),
          prometheus = %deepwatch_core::http::redact_urls(&config.analyzer.prometheus_url), %shard, "analyzer daemon listening");
    Ok(Running { addr, stop, tasks, server })
}

/// Binds `analyzer.listen` and starts.
pub async fn bind_and_start(config: &Config, clock: SharedClock) -> Result<Running, DaemonError> {
    let addr = &config.analyzer.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen { addr: addr.clone(), source })?;
    start(config, clock, listener).await
}

struct CounterPart(Arc<deepwatch_core::metrics::CounterVec>);

impl deepwatch_core::metrics::Encode for CounterPart {
    fn encode(&self, sink: &mut deepwatch_core::expo::MetricSink) {
        self.0.encode(sink);
    }
}

/// Awaits `task` until `deadline`, then aborts it; `None` when it had to be aborted.
async fn join_by<T>(
    task: JoinHandle<T>,
    deadline: tokio::time::Instant,
) -> Option<Result<T, tokio::task::JoinError>> {
    let abort = task.abort_handle();
    match tokio::time::timeout_at(deadline, task).await {
        Ok(r) => Some(r),
        Err(_) => {
            abort.abort();
            tracing::warn!("shutdown: a task did not stop within the grace period; abandoned");
            None
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone), holding no borrow across awaits.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn analytics_loop(
    analytics: Arc<Analytics>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The tick races the stop signal too: a Prometheus retry backoff never holds a shutdown.
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = async {
                ticker.tick().await;
                analytics.tick().await
            } => {}
        }
    }
}

/// Recomputes the recommended replicas per model from Prometheus history.
async fn capacity_loop(
    prom: PromClient,
    scaling: ScalingConfig,
    gauge: Arc<CapacityGauge>,
    clock: SharedClock,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(scaling.plan_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = async {
                ticker.tick().await;
                let input = PlanInput::from_config(&scaling, clock.unix_seconds());
                match capacity::plan(&prom, &input).await {
                    Ok(plans) => gauge.update(&plans),
                    Err(e) => tracing::debug!(error = %e, "no capacity plan this round"),
                }
            } => {}
        }
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/webhook/alertmanager", post(webhook))
        .route("/notify/{channel}", post(notify))
        .route("/reports", get(list_reports))
        .route("/reports/alert/{fingerprint}", get(report_for_alert))
        .route("/reports/{file}", get(report_file))
        .route("/incidents", get(incident_list))
        .route("/incidents/alert/{fingerprint}", get(incident_for_alert))
        .route("/incidents/{id}", get(incident))
        // Alertmanager sends every alert of a group in one body; allow large groups.
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(state)
}

/// An error answer: status from the shared code map, body `deepwatch_core::error::ErrorBody`.
fn error_response(code: ErrorCode, reason: &str, message: String) -> Response {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, Json(ErrorBody::new(code, reason, message))).into_response()
}

/// Checks `Authorization: Bearer <webhook_token>` when a token is configured.
fn check_token(state: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(expected) = &state.webhook_token else { return Ok(()) };
    if bearer::matches(headers, expected) {
        Ok(())
    } else {
        let message = "missing or wrong bearer token".to_string();
        Err(Box::new(error_response(ErrorCode::Unauthorized, "unauthorized", message)))
    }
}

fn parse_payload(body: &Bytes) -> Result<Payload, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        let message = format!("not an Alertmanager webhook payload: {e}");
        Box::new(error_response(ErrorCode::BadRequest, "bad_request", message))
    })
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let body = state.registry.render(format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

async fn webhook(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = check_token(&state, &headers) {
        state.receiver.refuse("unauthorized");
        return *r;
    }
    let mut payload = match parse_payload(&body) {
        Ok(p) => p,
        Err(r) => {
            state.receiver.refuse("bad_request");
            return *r;
        }
    };
    // Every shard gets every alert; each handles (journals, remediates, ranks) its own.
    let before = payload.alerts.len();
    payload.alerts.retain(|a| state.shard.owns(&a.fingerprint()));
    let skipped = before - payload.alerts.len();
    if skipped > 0 {
        state.shard_skipped.inc_by(&["alert"], skipped as f64);
    }
    // The journal's fsync blocks: keep it off the async workers.
    let receiver = state.receiver.clone();
    let received = tokio::task::spawn_blocking(move || receiver.receive(payload)).await;
    match received {
        Ok(Ok(accepted)) => (StatusCode::OK, Json(accepted)).into_response(),
        // 503: Alertmanager retries the payload with backoff.
        Ok(Err(e)) => error_response(ErrorCode::Unavailable, "queue_unavailable", e.to_string()),
        Err(e) => error_response(ErrorCode::Internal, "internal", e.to_string()),
    }
}

async fn notify(
    State(state): State<Arc<AppState>>,
    UrlPath(channel): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = check_token(&state, &headers) {
        state.receiver.refuse("unauthorized");
        return *r;
    }
    let payload = match parse_payload(&body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if !state.shard.owns(&payload.group_key) {
        state.shard_skipped.inc(&["notification"]);
        let why = format!("shard {} does not own this group", state.shard);
        return Json(json!({"status": "skipped", "reason": why})).into_response();
    }
    match state.bridge.deliver(&channel, &payload).await {
        Ok(Delivery::Sent) => Json(json!({"status": "sent"})).into_response(),
        Ok(Delivery::Skipped(why)) => {
            Json(json!({"status": "skipped", "reason": why})).into_response()
        }
        Err(e) => {
            let mut resp = error_response(e.error_code(), e.reason(), e.to_string());
            if let NotifyError::RateLimited { retry_after, .. } = &e {
                let secs = retry_after.as_secs().max(1).to_string();
                if let Ok(v) = HeaderValue::from_str(&secs) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            resp
        }
    }
}

async fn list_reports(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({"reports": state.reports.list()})).into_response()
}

async fn report_for_alert(
    State(state): State<Arc<AppState>>,
    UrlPath(fingerprint): UrlPath<String>,
) -> Response {
    let Some(entry) = state.reports.latest_for(&fingerprint) else {
        let message = format!("no root-cause report for alert {fingerprint} yet");
        return error_response(ErrorCode::NotFound, "report_not_found", message);
    };
    match state.reports.file(&entry.markdown) {
        Some((text, content_type)) => {
            ([(header::CONTENT_TYPE, content_type)], text).into_response()
        }
        None => {
            let message = format!("report file {} is gone", entry.markdown);
            error_response(ErrorCode::NotFound, "report_not_found", message)
        }
    }
}

async fn report_file(
    State(state): State<Arc<AppState>>,
    UrlPath(file): UrlPath<String>,
) -> Response {
    match state.reports.file(&file) {
        Some((text, content_type)) => {
            ([(header::CONTENT_TYPE, content_type)], text).into_response()
        }
        None => error_response(
            ErrorCode::NotFound,
            "report_not_found",
            format!("no report file {file:?}"),
        ),
    }
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

async fn incident_list(State(state): State<Arc<AppState>>) -> Response {
    html(StatusCode::OK, incidents::list_page(&state.reports))
}

async fn incident(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    let Some(report) = incidents::load(&state.reports, &id) else {
        return error_response(
            ErrorCode::NotFound,
            "incident_not_found",
            format!("no incident {id:?}"),
        );
    };
    let entry = incidents::entry(&state.reports, &id);
    let fingerprint = entry.as_ref().map_or("", |e| e.fingerprint.as_str());
    let from = report.history.search_from;
    let to = report.window_end;
    let actions = incidents::actions(&state.audit_log, fingerprint, from, to);
    html(StatusCode::OK, incidents::incident_page(&report, entry.as_ref(), &actions))
}

/// The latest incident page of an alert (the link notifications carry), or a page that waits
/// for it.
async fn incident_for_alert(
    State(state): State<Arc<AppState>>,
    UrlPath(fingerprint): UrlPath<String>,
) -> Response {
    match state.reports.latest_for(&fingerprint) {
        Some(entry) => {
            let id = entry.markdown.trim_end_matches(".md").to_string();
            (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/incidents/{id}"))])
                .into_response()
        }
        None => html(StatusCode::NOT_FOUND, incidents::pending_page(&fingerprint)),
    }
}
