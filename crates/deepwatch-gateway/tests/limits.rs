//! Limits and odd requests, answered in OpenAI's error shape: a client that stalls its body
//! (408 after `client_body_timeout_ms`), a wrong method (405), too many headers (431), and
//! `GET /v1/models/{id}` (the entry, or 404). The open-file limit is exported.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

#[tokio::test]
async fn a_client_that_stalls_its_body_gets_408_and_frees_the_connection() {
    let up = Upstream::start(Knobs::default()).await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.client_body_timeout = std::time::Duration::from_millis(300);
    let gw = start(cfg).await;
    let mut sock = tokio::net::TcpStream::connect(gw.proxy_addr()).await.unwrap();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":";
    sock.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = sock.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled body: {}", String::from_utf8_lossy(&answer));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn wrong_methods_and_oversized_headers_get_openai_shaped_errors() {
    let up = Upstream::start(Knobs::default()).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let c = client();
    let resp = c.get(chat_url(&gw)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let e: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "method_not_allowed", "{e}");
    assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");

    let mut req = c.post(chat_url(&gw)).json(&chat_body(false));
    for i in 0..150 {
        req = req.header(format!("x-filler-{i}"), "v");
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 431);
    let e: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "request_header_fields_too_large", "{e}");
    assert_eq!(up.requests(), 0);
    // The gateway keeps serving.
    let resp = c.post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn one_model_is_answered_from_the_upstream_list() {
    let up = Upstream::start(Knobs { model: "deepseek-ai/DeepSeek-V3".into(), ..Knobs::default() })
        .await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let c = client();
    let url = format!("http://{}/v1/models/deepseek-ai/DeepSeek-V3", gw.proxy_addr());
    let resp = c.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let m: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(m["id"], "deepseek-ai/DeepSeek-V3", "{m}");
    assert_eq!(m["object"], "model", "{m}");
    let resp = c.get(format!("http://{}/v1/models/gpt-9", gw.proxy_addr())).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let e: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "model_not_found", "{e}");
}

#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit_and_exported() {
    let up = Upstream::start(Knobs::default()).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let m = metrics(&gw).await;
    let soft = sample(&m, "deepwatch_gateway_open_files_limit", &[("kind", "soft")]).unwrap();
    let hard = sample(&m, "deepwatch_gateway_open_files_limit", &[("kind", "hard")]).unwrap();
    assert_eq!(soft, hard, "{m}");
    assert!(soft >= 1024.0, "{m}");
}
