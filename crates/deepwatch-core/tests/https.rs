//! `deepwatch_core::http` against a local https server whose CA is made in the test: the
//! `ca_file` is trusted beside the system roots, an untrusted certificate fails with the whole
//! cause chain, mutual TLS presents the client certificate, and the Pushgateway client pushes
//! over https.

use deepwatch_core::config::client::TlsConfig;
use deepwatch_core::http::{chain, client_builder};
use deepwatch_testkit::tls::{server_config, TestCa, TlsFront};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 server that answers every request `200 hello` and keeps the request heads.
async fn plain_backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = tcp.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let length = head
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    buf.drain(..end + 4 + length);
                    log.lock().unwrap().push(head);
                    let answer = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
                    if tcp.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn ca_file_is_trusted_and_untrusted_cert_names_its_cause() {
    let ca = TestCa::new("deepwatch test CA");
    let (backend, seen) = plain_backend().await;
    let front =
        TlsFront::start(server_config(&ca.server_cert(&["127.0.0.1"]), None), backend).await;
    let url = format!("{}/ping", front.url());

    let tls = TlsConfig { ca_file: Some(ca.ca_file.clone()), ..TlsConfig::default() };
    let client = client_builder(&tls).unwrap().build().unwrap();
    let resp = client.get(&url).send().await.unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "hello");
    assert!(seen.lock().unwrap()[0].starts_with("GET /ping HTTP/1.1"));

    // System roots only: the test CA is unknown, and the error says so.
    let client = client_builder(&TlsConfig::default()).unwrap().build().unwrap();
    let err = client.get(&url).send().await.unwrap_err();
    let text = chain(&err);
    assert!(text.contains("invalid peer certificate: UnknownIssuer"), "{text}");
    assert!(text.contains(&url), "{text}");
    assert_ne!(text, err.to_string(), "cause chain adds nothing: {text}");

    // Another CA's file does not help either.
    let other = TestCa::new("other CA");
    let tls = TlsConfig { ca_file: Some(other.ca_file.clone()), ..TlsConfig::default() };
    let err = client_builder(&tls).unwrap().build().unwrap().get(&url).send().await.unwrap_err();
    assert!(chain(&err).contains("UnknownIssuer"), "{}", chain(&err));

    // A certificate for another name fails on the name, not the issuer.
    let wrong_name =
        TlsFront::start(server_config(&ca.server_cert(&["example.org"]), None), backend).await;
    let tls = TlsConfig { ca_file: Some(ca.ca_file.clone()), ..TlsConfig::default() };
    let client = client_builder(&tls).unwrap().build().unwrap();
    let err = client.get(wrong_name.url()).send().await.unwrap_err();
    assert!(
        chain(&err).contains("certificate not valid for name \"127.0.0.1\""),
        "{}",
        chain(&err)
    );

    // insecure_skip_verify accepts it (and is off unless asked for).
    let tls = TlsConfig { insecure_skip_verify: true, ..TlsConfig::default() };
    let client = client_builder(&tls).unwrap().build().unwrap();
    assert_eq!(client.get(wrong_name.url()).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let ca = TestCa::new("mtls CA");
    let (backend, _) = plain_backend().await;
    let config = server_config(&ca.server_cert(&["127.0.0.1"]), Some(&ca));
    let front = TlsFront::start(config, backend).await;

    let without = TlsConfig { ca_file: Some(ca.ca_file.clone()), ..TlsConfig::default() };
    let client = client_builder(&without).unwrap().build().unwrap();
    let err = client.get(front.url()).send().await.unwrap_err();
    let text = chain(&err);
    assert!(text.contains("error sending request"), "{text}");
    assert!(text.len() > err.to_string().len(), "{text}");

    let cert = ca.client_cert("analyzer");
    let with = TlsConfig {
        ca_file: Some(ca.ca_file.clone()),
        cert_file: Some(cert.cert_file),
        key_file: Some(cert.key_file),
        ..TlsConfig::default()
    };
    let client = client_builder(&with).unwrap().build().unwrap();
    let resp = client.get(front.url()).send().await.unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn pushgateway_client_pushes_over_https() {
    use deepwatch_core::api::pushgateway::Pushgateway;
    let ca = TestCa::new("push CA");
    let (backend, seen) = plain_backend().await;
    let front =
        TlsFront::start(server_config(&ca.server_cert(&["127.0.0.1"]), None), backend).await;
    let grouping = [("job", "batch"), ("instance", "b1")];
    let timeout = std::time::Duration::from_secs(10);

    let untrusted = Pushgateway::new(&front.url(), &grouping, timeout).unwrap();
    let err = untrusted.replace_group("x 1\n".into()).await.unwrap_err().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");

    let tls = TlsConfig { ca_file: Some(ca.ca_file.clone()), ..TlsConfig::default() };
    let trusted = Pushgateway::with_tls(&front.url(), &grouping, timeout, &tls).unwrap();
    trusted.replace_group("x 1\n".into()).await.unwrap();
    let heads = seen.lock().unwrap().clone();
    assert!(
        heads.iter().any(|h| h.starts_with("PUT /metrics/job/batch/instance/b1 ")),
        "{heads:?}"
    );
}
