//! https upstreams (a hosted OpenAI-compatible API as a standby, an engine behind a TLS
//! ingress): the gateway speaks TLS with SNI, trusts a pool's extra CA, presents its client
//! certificate for mutual TLS, probes through the same connections, and answers a clear 502 when
//! the certificate is not trusted. Every server is local: a CA made in the test (rcgen) and an
//! https relay (`deepwatch_testkit::tls::TlsFront`) in front of the in-test upstream.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use deepwatch_core::config::client::TlsConfig;
use deepwatch_testkit::tls::{server_config, TestCa, TlsFront};
use std::sync::atomic::Ordering;

/// The in-test upstream behind https with a certificate of `ca` for localhost and 127.0.0.1;
/// with `client_ca`, clients must present a certificate of that CA.
async fn https_upstream(ca: &TestCa, client_ca: Option<&TestCa>) -> (Upstream, TlsFront) {
    let up = Upstream::start(Knobs::default()).await;
    let cert = ca.server_cert(&["localhost", "127.0.0.1"]);
    let front = TlsFront::start(server_config(&cert, client_ca), up.addr).await;
    (up, front)
}

/// `https://localhost:<port>`: a DNS name, so the handshake's SNI and name check are exercised.
fn by_name(front: &TlsFront) -> String {
    format!("https://localhost:{}", front.addr.port())
}

#[tokio::test]
async fn requests_streams_and_probes_go_over_tls_with_the_pools_ca_and_key() {
    let ca = TestCa::new("upstream CA");
    let (up, front) = https_upstream(&ca, None).await;
    let mut p = pool("hosted", &[by_name(&front)]);
    p.api_key = "sk-pool-key".into();
    p.tls = TlsConfig { ca_file: Some(ca.ca_file.clone()), ..TlsConfig::default() };
    let gw = start(config(vec![p])).await;
    let c = client();
    for stream in [false, true, false, true] {
        let resp = c
            .post(chat_url(&gw))
            .bearer_auth("client-key")
            .json(&chat_body(stream))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "stream={stream}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("friend"), "stream={stream}: {text}");
        if stream {
            assert!(text.contains("data: [DONE]"), "{text}");
        }
    }
    assert_eq!(up.seen.requests.load(Ordering::SeqCst), 4);
    let headers = up.seen.headers.lock().clone();
    for h in &headers {
        assert_eq!(h["authorization"], "Bearer sk-pool-key", "the pool's key, not the client's");
        assert_eq!(h["host"], format!("localhost:{}", front.addr.port()));
    }
    // Liveness and generation probes reach the upstream through TLS as well.
    eventually("a generation probe over TLS", async || up.seen.probes.load(Ordering::SeqCst) > 0)
        .await;
    let m = metrics(&gw).await;
    assert_eq!(sample(&m, "deepwatch_upstream_up", &[("pool", "hosted")]), Some(1.0), "{m}");
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "ok")]), 4.0, "{m}");
    assert_eq!(front.failed_handshakes.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_clear_502_and_a_failing_probe() {
    let ca = TestCa::new("private CA");
    let (up, front) = https_upstream(&ca, None).await;
    // No ca_file: only the system roots, which do not know the test's CA.
    let gw = start(config(vec![pool("hosted", &[by_name(&front)])])).await;
    let resp = client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("TLS") && message.contains("certificate"), "{body}");
    assert_eq!(up.seen.requests.load(Ordering::SeqCst), 0, "nothing crossed an untrusted TLS");
    assert!(front.failed_handshakes.load(Ordering::Relaxed) >= 1);
    eventually("the failing probes to mark the upstream down", async || {
        sample(&metrics(&gw).await, "deepwatch_upstream_up", &[("pool", "hosted")]) == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn mutual_tls_presents_the_pools_client_certificate() {
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("client CA");
    let (up, front) = https_upstream(&server_ca, Some(&client_ca)).await;
    let client_cert = client_ca.client_cert("deepwatch-gateway");
    let mut with_cert = pool("mtls", &[front.url()]);
    with_cert.tls = TlsConfig {
        ca_file: Some(server_ca.ca_file.clone()),
        cert_file: Some(client_cert.cert_file.clone()),
        key_file: Some(client_cert.key_file.clone()),
        ..TlsConfig::default()
    };
    let mut without = pool("no-cert", &[front.url()]);
    without.tls = TlsConfig { ca_file: Some(server_ca.ca_file.clone()), ..TlsConfig::default() };
    for p in [&mut with_cert, &mut without] {
        p.health.probe_path = String::new();
        p.health.generation_probe = false;
    }
    let ok = start(config(vec![with_cert])).await;
    let resp = client().post(chat_url(&ok)).json(&chat_body(true)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("data: [DONE]"));
    assert_eq!(up.seen.requests.load(Ordering::SeqCst), 1);

    let refused = start(config(vec![without])).await;
    let resp = client().post(chat_url(&refused)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(up.seen.requests.load(Ordering::SeqCst), 1, "no certificate, no request");
}

#[tokio::test]
async fn a_ca_file_that_holds_no_certificate_stops_the_start_naming_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("ca.pem");
    std::fs::write(&bogus, "not a certificate\n").unwrap();
    let mut p = pool("hosted", &["https://localhost:1".to_string()]);
    p.tls = TlsConfig { ca_file: Some(bogus.clone()), ..TlsConfig::default() };
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clock = std::sync::Arc::new(deepwatch_core::clock::TokioClock::new());
    let err = match deepwatch_gateway::Gateway::start_on(config(vec![p]), clock, proxy, admin).await
    {
        Ok(_) => panic!("a gateway started with a CA file that holds no certificate"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("gateway.pools[0].tls"), "{err}");
    assert!(err.contains(&bogus.display().to_string()), "{err}");
}
