//! Kubernetes scaling (feature `k8s`) against a mock API server speaking the Kubernetes wire
//! format: the Deployment scale subresource and a KEDA ScaledObject, reached through a real
//! kubeconfig. Run with `cargo test -p deepwatch-analyzer --features k8s --test integration ops_k8s`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use deepwatch_analyzer::remediate::{self, scaling::ScalingRules, Deps, LoadSource, Remediator};
use deepwatch_analyzer::webhook::{Alert, AlertStatus};
use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::remediation::{
    ActionConfig, ActionKind, PolicyConfig, RemediationConfig, ScaleTarget,
};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Cluster {
    replicas: i64,
    keda_min: i64,
    keda_max: i64,
    /// (path, content-type, body) of every PATCH.
    patches: Vec<(String, String, Value)>,
}

type St = State<Arc<Mutex<Cluster>>>;

fn scale_doc(ns: &str, name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
           "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"},
           "spec": {"replicas": replicas}, "status": {"replicas": replicas, "selector": "app=vllm"}})
}

fn not_found(what: &str) -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": format!("{what} not found"), "reason": "NotFound", "code": 404});
    (StatusCode::NOT_FOUND, Json(status)).into_response()
}

async fn get_scale(State(c): St, Path((ns, name)): Path<(String, String)>) -> Response {
    if name != "vllm" {
        return not_found(&format!("deployments.apps \"{name}\""));
    }
    Json(scale_doc(&ns, &name, c.lock().replicas)).into_response()
}

async fn patch_scale(
    State(c): St,
    h: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let patch: Value = serde_json::from_slice(&body).unwrap();
    let mut c = c.lock();
    let ct = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    c.patches.push((format!("deployments/{name}/scale"), ct, patch.clone()));
    c.replicas = patch["spec"]["replicas"].as_i64().unwrap_or(c.replicas);
    Json(scale_doc(&ns, &name, c.replicas)).into_response()
}

fn scaled_object(ns: &str, c: &Cluster) -> Value {
    json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
           "metadata": {"name": "vllm-so", "namespace": ns, "resourceVersion": "7"},
           "spec": {"scaleTargetRef": {"name": "vllm"}, "minReplicaCount": c.keda_min,
                    "maxReplicaCount": c.keda_max, "triggers": []}})
}

async fn get_so(State(c): St, Path((ns, _name)): Path<(String, String)>) -> Response {
    Json(scaled_object(&ns, &c.lock())).into_response()
}

async fn patch_so(
    State(c): St,
    h: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let patch: Value = serde_json::from_slice(&body).unwrap();
    let mut c = c.lock();
    let ct = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    c.patches.push((format!("scaledobjects/{name}"), ct, patch.clone()));
    c.keda_min = patch["spec"]["minReplicaCount"].as_i64().unwrap_or(c.keda_min);
    Json(scaled_object(&ns, &c)).into_response()
}

async fn api_server(cluster: Arc<Mutex<Cluster>>) -> String {
    let app = Router::new()
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
            get(get_scale).patch(patch_scale),
        )
        .route(
            "/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects/{name}",
            get(get_so).patch(patch_so),
        )
        .with_state(cluster);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

struct Load(Option<f64>);

impl LoadSource for Load {
    fn load<'a>(&'a self, _q: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>> {
        let v = self.0;
        async move { Ok(v) }.boxed()
    }
}

fn engine(
    dir: &std::path::Path,
    server: &str,
    target: ScaleTarget,
    load: Option<f64>,
) -> Remediator {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mock\n  cluster:\n    server: {server}\n\
             contexts:\n- name: mock\n  context:\n    cluster: mock\n    user: tester\n    namespace: llm\n\
             current-context: mock\nusers:\n- name: tester\n  user:\n    token: test-token\n"
        ),
    )
    .unwrap();
    let cfg = RemediationConfig {
        state_dir: dir.display().to_string(),
        policies: vec![PolicyConfig {
            name: "p2".into(),
            matchers: vec!["alertname=\"PerformanceDrop\"".into()],
            actions: vec!["scale".into()],
            revert_on_resolve: false,
        }],
        actions: vec![ActionConfig {
            name: "scale".into(),
            kind: ActionKind::Scale,
            target: Some(target),
            namespace: Some("llm".into()),
            object: Some(if target == ScaleTarget::Keda { "vllm-so" } else { "vllm" }.into()),
            kubeconfig: Some(kubeconfig.display().to_string()),
            step: Some(2),
            load_query: load.map(|_| "avg(load)".to_string()),
            cooldown_secs: 0,
            max_per_hour: 0,
            ..ActionConfig::default()
        }],
        ..RemediationConfig::default()
    };
    let admin = deepwatch_core::api::admin::GatewayAdmin::new(
        "http://127.0.0.1:9",
        "",
        Duration::from_secs(1),
    )
    .unwrap();
    let deps = Deps {
        admin: Arc::new(admin),
        load: Some(Arc::new(Load(load))),
        scaling: ScalingRules::default(),
    };
    Remediator::new(&cfg, remediate::build_actions(&cfg, &deps).unwrap(), TokioClock::shared())
        .unwrap()
}

fn alert(fp: &str) -> Alert {
    let mut a = Alert {
        status: AlertStatus::Firing,
        fingerprint: fp.into(),
        starts_at: "t".into(),
        ..Alert::default()
    };
    a.labels.insert("alertname".into(), "PerformanceDrop".into());
    a
}

#[tokio::test]
async fn the_deployment_scale_subresource_is_patched_by_load() {
    let cluster = Arc::new(Mutex::new(Cluster { replicas: 4, ..Cluster::default() }));
    let server = api_server(cluster.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    // 4 replicas at 120 % -> 6.
    let e = engine(dir.path(), &server, ScaleTarget::Kubernetes, Some(1.2));
    let r = e.handle(&alert("a")).await;
    assert_eq!(r[0].outcome, "ok", "{r:?}");
    assert!(r[0].detail.contains("scaled to 6 replicas"), "{}", r[0].detail);
    let c = cluster.lock();
    assert_eq!(c.replicas, 6);
    let (path, content_type, body) = &c.patches[0];
    assert_eq!(path, "deployments/vllm/scale");
    assert_eq!(content_type, "application/merge-patch+json");
    assert_eq!(body, &json!({"spec": {"replicas": 6}}));
}

#[tokio::test]
async fn keda_gets_a_higher_minimum_within_its_maximum() {
    let cluster = Arc::new(Mutex::new(Cluster {
        replicas: 4,
        keda_min: 3,
        keda_max: 5,
        ..Cluster::default()
    }));
    let server = api_server(cluster.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    // No load measurement: step 2 -> 6, bounded by the ScaledObject's maximum of 5.
    let e = engine(dir.path(), &server, ScaleTarget::Keda, None);
    let r = e.handle(&alert("a")).await;
    assert_eq!(r[0].outcome, "ok", "{r:?}");
    assert_eq!(cluster.lock().keda_min, 5);
    assert_eq!(cluster.lock().patches[0].2, json!({"spec": {"minReplicaCount": 5}}));
    // At the maximum: nothing more to do.
    cluster.lock().replicas = 5;
    let r = e.handle(&alert("b")).await;
    assert_eq!(r[0].outcome, "skipped_precondition", "{r:?}");
}
