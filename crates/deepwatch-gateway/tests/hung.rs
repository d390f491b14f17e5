//! A hung engine: the primary accepts requests and keeps answering `/health` 200 but produces
//! no token. Streams that have not started and every non-streamed request move to the standby
//! (first-token deadline, then ejection as stalled); `/health` alone never readmits the hung
//! engine; it returns once generation probes pass. The panic threshold keeps the last upstream
//! in rotation through passive errors, and a 5xx the upstream blames on the request ejects
//! nothing.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use deepwatch_core::config::gateway::PoolConfig;
use std::time::Duration;

const DEADLINE_MS: u64 = 300;

fn fast(mut p: PoolConfig) -> PoolConfig {
    p.first_token_timeout = Some(Duration::from_millis(DEADLINE_MS));
    p.health.generation_probe_interval = Duration::from_millis(100);
    p
}

async fn upstream_doc(gw: &deepwatch_gateway::Gateway, url: &str) -> serde_json::Value {
    let doc: serde_json::Value = client()
        .get(admin_url(gw, "/admin/pools"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["pools"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["upstreams"].as_array().unwrap().clone())
        .find(|u| u["url"] == url)
        .unwrap()
}

#[tokio::test]
async fn a_hung_primary_loses_no_request_and_returns_only_once_it_generates() {
    let primary = Upstream::start(Knobs::default()).await;
    let standby = Upstream::start(Knobs::default()).await;
    let mut sb = fast(pool("standby", &[standby.url()]));
    sb.priority = 1;
    let gw = start(config(vec![fast(pool("primary", &[primary.url()])), sb])).await;
    let c = client();
    let resp = c.post(chat_url(&gw)).json(&chat_body(true)).send().await.unwrap();
    assert_eq!(resp.headers()["x-deepwatch-pool"], "primary");
    resp.text().await.unwrap();

    // The engine hangs: headers (and the role chunk) still go out, no token ever follows.
    primary.set(|k| k.ttft_ms = 600_000);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = c.clone();
        let url = chat_url(&gw);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 15)).await;
            let stream = i % 2 == 0;
            let resp = c.post(url).json(&chat_body(stream)).send().await.unwrap();
            let status = resp.status().as_u16();
            let pool = resp.headers()["x-deepwatch-pool"].to_str().unwrap().to_string();
            let text = resp.text().await.unwrap();
            (stream, status, pool, text)
        }));
    }
    for t in tasks {
        let (stream, status, pool, text) = t.await.unwrap();
        assert_eq!(status, 200, "stream={stream}: {text}");
        assert_eq!(pool, "standby", "stream={stream}: {text}");
        assert!(text.contains("friend"), "stream={stream}: {text}");
        if stream {
            assert!(text.contains("[DONE]") && !text.contains("error"), "{text}");
        }
    }
    let doc = upstream_doc(&gw, &primary.url()).await;
    assert_eq!(doc["healthy"], false, "{doc}");
    assert_eq!(doc["ejected_by"], "stall", "{doc}");
    let m = metrics(&gw).await;
    assert!(sum(&m, "deepwatch_retries_total", &[("reason", "first_token_timeout")]) >= 1.0, "{m}");
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "ok")]), 41.0);

    // /health says 200 all along; the hung engine stays out for many probe rounds.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(upstream_doc(&gw, &primary.url()).await["healthy"], false);
    assert!(primary.seen.probes.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    // It generates again: generation probes readmit it.
    primary.set(|k| k.ttft_ms = 0);
    eventually("the primary readmitted", async || {
        upstream_doc(&gw, &primary.url()).await["healthy"] == true
    })
    .await;
    let resp = c.post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.headers()["x-deepwatch-pool"], "primary");
}

#[tokio::test]
async fn a_sole_upstream_is_never_ejected_by_passive_errors() {
    let only = Upstream::start(Knobs { fail_status: Some(500), ..Knobs::default() }).await;
    let gw = start(config(vec![pool("only", &[only.url()])])).await;
    let c = client();
    for _ in 0..6 {
        let resp = c.post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
        assert_eq!(resp.status(), 500);
        // The upstream's own error, unchanged.
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "InternalServerError", "{body}");
        assert_eq!(body["error"]["message"], "engine failed with 500", "{body}");
    }
    let doc = upstream_doc(&gw, &only.url()).await;
    assert_eq!(doc["healthy"], true, "{doc}");
    assert!(doc["consecutive_failures"].as_u64().unwrap() >= 6, "{doc}");
    only.set(|k| k.fail_status = None);
    let resp = c.post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}
