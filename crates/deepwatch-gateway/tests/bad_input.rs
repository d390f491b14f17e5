//! Bad input from clients and upstreams: clear OpenAI-shaped errors, the right outcome counters,
//! and a gateway that keeps serving.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;

async fn error_of(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn malformed_missing_unknown_and_oversized_requests_are_refused() {
    let up = Upstream::start(Knobs::default()).await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.models = vec!["m".into()];
    cfg.max_body_bytes = 1024;
    let gw = start(cfg).await;
    let c = client();
    let send = |body: Vec<u8>| {
        c.post(chat_url(&gw)).header("content-type", "application/json").body(body).send()
    };

    let (status, e) =
        error_of(send(b"{\"model\": \"m\", \"messages\": [".to_vec()).await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"]["code"], "invalid_json");
    assert_eq!(e["error"]["type"], "invalid_request_error");

    let (status, e) = error_of(send(br#"{"messages": []}"#.to_vec()).await.unwrap()).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("missing_model")));

    let (status, e) =
        error_of(send(br#"{"model": "gpt-9", "messages": []}"#.to_vec()).await.unwrap()).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("model_not_found")));
    assert!(e["error"]["message"].as_str().unwrap().contains("gpt-9"));

    let big = format!(
        r#"{{"model": "m", "messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "x".repeat(4096)
    );
    let (status, e) = error_of(send(big.into_bytes()).await.unwrap()).await;
    assert_eq!((status, e["error"]["code"].as_str()), (413, Some("request_too_large")));

    // A chunked body without a length is cut at the limit too.
    let chunks =
        futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512])));
    let resp = c.post(chat_url(&gw)).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(resp.status(), 413);

    let (status, e) =
        error_of(c.get(format!("http://{}/v1/nope", gw.proxy_addr())).send().await.unwrap()).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("unknown_url")));

    assert_eq!(up.requests(), 0, "a bad request reached the upstream");
    let m = metrics(&gw).await;
    assert_eq!(
        sum(&m, "deepwatch_requests_total", &[("outcome", "rejected"), ("code", "400")]),
        2.0
    );
    assert_eq!(
        sum(&m, "deepwatch_requests_total", &[("outcome", "rejected"), ("code", "404")]),
        1.0
    );
    assert_eq!(
        sum(&m, "deepwatch_requests_total", &[("outcome", "rejected"), ("code", "413")]),
        2.0
    );
    // The unknown model folds into "other"; it is not a label value.
    assert!(!m.contains("gpt-9"));

    // Still serving.
    let resp = c.post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn garbage_sse_from_the_upstream_ends_the_stream_with_an_error() {
    let up = Upstream::start(Knobs { garbage: true, ..Knobs::default() }).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let text = client()
        .post(chat_url(&gw))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("<html>"), "garbage forwarded:\n{text}");
    let last = events(&text).pop().unwrap();
    let v: serde_json::Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "upstream_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("invalid server-sent event"));
    let m = metrics(&gw).await;
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "upstream_error")]), 1.0);
}

#[tokio::test]
async fn an_upstream_that_closes_a_non_streamed_answer_midway_gets_a_502() {
    let up = Upstream::start(Knobs { cut_after: Some(1), ..Knobs::default() }).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let (status, e) =
        error_of(client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap()).await;
    assert_eq!(status, 502);
    assert!(e["error"]["message"].as_str().unwrap().contains("closed the connection"), "{e}");
    let m = metrics(&gw).await;
    assert_eq!(
        sum(&m, "deepwatch_requests_total", &[("outcome", "upstream_error"), ("code", "502")]),
        1.0
    );
    up.set(|k| k.cut_after = None);
    let resp = client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_api_key_is_required_when_configured() {
    let up = Upstream::start(Knobs::default()).await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.require_api_key = true;
    cfg.api_keys.insert("sk-team-a".into(), "team-a".into());
    let gw = start(cfg).await;
    let resp = client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .post(chat_url(&gw))
        .bearer_auth("sk-wrong")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .post(chat_url(&gw))
        .bearer_auth("sk-team-a")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The gateway's key does not go upstream.
    assert!(up.seen.headers.lock()[0].get("authorization").is_none());
    let m = metrics(&gw).await;
    assert_eq!(
        sum(&m, "deepwatch_requests_total", &[("tenant", "team-a"), ("outcome", "ok")]),
        1.0
    );
    assert_eq!(
        sum(&m, "deepwatch_requests_total", &[("outcome", "rejected"), ("code", "401")]),
        2.0
    );
}

#[tokio::test]
async fn errors_do_not_reveal_upstream_addresses() {
    let mut up = Upstream::start(Knobs::default()).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    up.stop().await;
    let resp = client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    assert!(text.contains("cannot connect to upstream"), "{text}");
    assert!(!text.contains(&up.addr.port().to_string()), "upstream address leaked: {text}");
}
