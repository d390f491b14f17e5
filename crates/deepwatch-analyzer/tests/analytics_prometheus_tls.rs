//! The analyzer's Prometheus client against Debian's Prometheus started with
//! `--web.config.file`: TLS with a certificate from a CA made in the test, and basic auth.
//! The client must trust the CA through `prometheus_tls.ca_file`, send the basic auth, and
//! name the cause when either is wrong. Bearer tokens and extra headers (Mimir's
//! `X-Scope-OrgID`) are checked on a stand-in that records what it receives.

use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use deepwatch_analyzer::prom::{PromClient, PromError, PromOptions};
use deepwatch_core::config::client::{HttpAuthConfig, TlsConfig};
use deepwatch_core::config::Config;
use deepwatch_testkit::tls::TestCa;
use deepwatch_testkit::Prometheus;
use parking_lot::Mutex;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const USER: &str = "deepwatch";
const PASSWORD: &str = "deepwatch-test-pw";
/// bcrypt of PASSWORD (cost 4), as Prometheus' web config wants it; made with
/// `python3 -c "import crypt; print(crypt.crypt('deepwatch-test-pw', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"`.
const PASSWORD_BCRYPT: &str = "$2b$04$regaE.TpMBRqWFwGRstbdOEx5gx7PauFznSLpWpvTZlpcgy1PFZhq";

fn options(tls: TlsConfig, auth: HttpAuthConfig) -> PromOptions {
    PromOptions { timeout: Duration::from_secs(5), retries: 0, tls, auth, ..PromOptions::default() }
}

fn basic(password: &str) -> HttpAuthConfig {
    HttpAuthConfig {
        username: Some(USER.into()),
        password: Some(password.into()),
        ..HttpAuthConfig::default()
    }
}

#[tokio::test]
async fn queries_prometheus_over_tls_with_basic_auth() {
    let ca = TestCa::new("prometheus CA");
    let cert = ca.server_cert(&["127.0.0.1", "localhost"]);
    let web_config = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {USER}: '{PASSWORD_BCRYPT}'\n",
        cert.cert_file.display(),
        cert.key_file.display()
    );
    let tls = TlsConfig { ca_file: Some(ca.ca_file.clone()), ..TlsConfig::default() };
    let ready_client = deepwatch_core::http::client_builder(&tls)
        .unwrap()
        .default_headers(
            deepwatch_core::http::default_headers("auth", &basic(PASSWORD), "h", &BTreeMap::new())
                .unwrap(),
        )
        .build()
        .unwrap();
    let prom = Prometheus::start_with_web_config(
        "global:\n  scrape_interval: 1h\n",
        &web_config,
        "https",
        &ready_client,
    )
    .await;
    let url = format!("https://{}", prom.server.addr);

    // From the config, as the daemon builds it: ca_file and basic auth.
    let mut config = Config::default();
    config.analyzer.prometheus_url = url.clone();
    config.analyzer.prometheus_tls = tls.clone();
    config.analyzer.prometheus_auth = basic(PASSWORD);
    config.validate().unwrap();
    let client = PromClient::from_config(&config.analyzer).unwrap();
    let samples = client.query("vector(42)", None).await.unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].value, 42.0);
    assert!(client.rules().await.unwrap().is_empty());

    // Wrong password: Prometheus answers 401 and the error says so.
    let client = PromClient::new(&url, options(tls.clone(), basic("wrong"))).unwrap();
    let err = client.query("vector(1)", None).await.unwrap_err();
    assert!(matches!(err, PromError::Status { status: 401, .. }), "{err}");

    // No auth at all: 401 too.
    let client = PromClient::new(&url, options(tls.clone(), HttpAuthConfig::default())).unwrap();
    let err = client.query("vector(1)", None).await.unwrap_err();
    assert!(matches!(err, PromError::Status { status: 401, .. }), "{err}");

    // The system roots alone do not know the test CA: unreachable, with the TLS cause.
    let client = PromClient::new(&url, options(TlsConfig::default(), basic(PASSWORD))).unwrap();
    let err = client.query("vector(1)", None).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PromError::Unreachable { .. }), "{text}");
    assert!(text.contains("invalid peer certificate: UnknownIssuer"), "{text}");
    assert_eq!(client.last_error().as_deref(), Some(text.as_str()));

    // Plain http to a TLS port fails clearly too (Prometheus answers 400 to plain HTTP).
    let plain = format!("http://{}", prom.server.addr);
    let client = PromClient::new(&plain, options(tls.clone(), basic(PASSWORD))).unwrap();
    assert!(client.query("vector(1)", None).await.is_err());
}

#[tokio::test]
async fn sends_bearer_token_and_extra_headers() {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/prometheus/api/v1/query",
        get(move |headers: HeaderMap| {
            let log = log.clone();
            async move {
                log.lock().push(headers);
                Json(json!({"status": "success", "data": {"resultType": "vector", "result": []}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cr3t-token\n").unwrap();
    let mut config = Config::default();
    config.analyzer.prometheus_url = format!("http://{addr}/prometheus");
    config.analyzer.prometheus_auth =
        HttpAuthConfig { bearer_token_file: Some(token_file), ..HttpAuthConfig::default() };
    config.analyzer.prometheus_headers =
        BTreeMap::from([("X-Scope-OrgID".to_string(), "team-a".to_string())]);
    config.validate().unwrap();
    let client = PromClient::from_config(&config.analyzer).unwrap();
    client.query("up", None).await.unwrap();
    let headers = seen.lock()[0].clone();
    assert_eq!(headers["authorization"], "Bearer s3cr3t-token");
    assert_eq!(headers["x-scope-orgid"], "team-a");
    assert!(!format!("{client:?}").contains("s3cr3t"), "the token never shows in debug output");
}
