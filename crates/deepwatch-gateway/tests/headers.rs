//! Header policy with real clients and upstreams: tracing, OpenAI and custom headers reach the
//! upstream, hop-by-hop and gateway-owned ones do not, X-Forwarded-For gets the client's
//! address, the pool key replaces the client's Authorization; upstream response headers
//! (Retry-After, x-ratelimit-*, custom) come back on whole and streamed answers, and an
//! upstream 429 keeps its status and body.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;

fn knobs() -> Knobs {
    Knobs {
        response_headers: vec![
            ("x-ratelimit-remaining-requests".into(), "41".into()),
            ("x-engine-trace".into(), "abc".into()),
        ],
        ..Knobs::default()
    }
}

#[tokio::test]
async fn client_headers_travel_upstream_and_upstream_headers_come_back() {
    let up = Upstream::start(knobs()).await;
    let mut blue = pool("blue", &[up.url()]);
    blue.api_key = "sk-pool-key".into();
    let mut cfg = config(vec![blue]);
    cfg.forward_headers_deny = vec!["cookie".into()];
    let gw = start(cfg).await;
    let c = client();
    for stream in [false, true] {
        let resp = c
            .post(chat_url(&gw))
            .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .header("tracestate", "congo=t61rcWkgMzE")
            .header("baggage", "userId=alice")
            .header("openai-organization", "org-123")
            .header("user-agent", "OpenAI/Python 1.60.0")
            .header("x-custom", "kept")
            .header("x-forwarded-for", "203.0.113.7")
            .header("authorization", "Bearer sk-client-key")
            .header("cookie", "session=secret")
            .header("x-deepwatch-pool", "blue")
            .json(&chat_body(stream))
            .send()
            .await
            .unwrap();
        // A pin header from an untrusted caller is refused, so send the rest without it.
        assert_eq!(resp.status(), 403, "{}", resp.text().await.unwrap());
        let resp = c
            .post(chat_url(&gw))
            .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .header("tracestate", "congo=t61rcWkgMzE")
            .header("baggage", "userId=alice")
            .header("openai-organization", "org-123")
            .header("user-agent", "OpenAI/Python 1.60.0")
            .header("x-custom", "kept")
            .header("x-forwarded-for", "203.0.113.7")
            .header("authorization", "Bearer sk-client-key")
            .header("cookie", "session=secret")
            .json(&chat_body(stream))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], "41", "stream={stream}");
        assert_eq!(resp.headers()["x-engine-trace"], "abc");
        assert_eq!(resp.headers()["x-deepwatch-pool"], "blue");
        let text = resp.text().await.unwrap();
        assert!(text.contains("friend"), "{text}");

        let seen = up.seen.headers.lock().last().unwrap().clone();
        for (name, value) in [
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("baggage", "userId=alice"),
            ("openai-organization", "org-123"),
            ("user-agent", "OpenAI/Python 1.60.0"),
            ("x-custom", "kept"),
            ("x-forwarded-for", "203.0.113.7, 127.0.0.1"),
            ("authorization", "Bearer sk-pool-key"),
        ] {
            assert_eq!(seen.get(name).map(|v| v.to_str().unwrap()), Some(value), "{name}");
        }
        assert!(seen.get("cookie").is_none(), "a denied header went upstream");
        assert!(seen.get("x-request-id").is_some());
    }
}

#[tokio::test]
async fn an_upstream_429_comes_back_unchanged_with_retry_after() {
    let up = Upstream::start(Knobs {
        fail_status: Some(429),
        response_headers: vec![
            ("retry-after".into(), "7".into()),
            ("x-ratelimit-reset-requests".into(), "7s".into()),
        ],
        ..Knobs::default()
    })
    .await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let resp = client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.headers()["x-ratelimit-reset-requests"], "7s");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], "engine failed with 429", "{body}");
    assert_eq!(body["error"]["code"], 429, "{body}");
    assert_eq!(up.requests(), 1, "a 429 was retried");
}

#[tokio::test]
async fn the_pool_key_comes_from_a_file_or_the_environment_and_never_from_the_client() {
    let up = Upstream::start(Knobs::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, "sk-from-file\n").unwrap();
    let mut blue = pool("blue", &[up.url()]);
    blue.api_key_file = file.to_str().unwrap().to_string();
    let gw = start(config(vec![blue])).await;
    let resp = client()
        .post(chat_url(&gw))
        .bearer_auth("sk-client")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.seen.headers.lock().last().unwrap()["authorization"], "Bearer sk-from-file");

    // A variable that is not set: the error names the field and the variable, not a key.
    let mut green = pool("green", &[up.url()]);
    green.api_key_env = "DEEPWATCH_TEST_UNSET_KEY_VAR".into();
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clock = std::sync::Arc::new(deepwatch_core::clock::TokioClock::new());
    let err = deepwatch_gateway::Gateway::start_on(config(vec![green]), clock, proxy, admin)
        .await
        .err()
        .expect("a missing key variable must stop the gateway")
        .to_string();
    assert!(err.contains("gateway.pools[0].api_key_env"), "{err}");
    assert!(err.contains("DEEPWATCH_TEST_UNSET_KEY_VAR"), "{err}");
}
