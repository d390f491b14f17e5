//! Health and failover: a dead primary moves traffic to the standby within 500 ms and the
//! clients see no error; probes bring the primary back; forced failover and scale out.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn traffic_moves_to_the_standby_when_every_primary_fails_and_comes_back() {
    let mut primary = Upstream::start(Knobs::default()).await;
    let standby = Upstream::start(Knobs::default()).await;
    let mut sb = pool("standby", &[standby.url()]);
    sb.priority = 1;
    let gw = start(config(vec![pool("primary", &[primary.url()]), sb])).await;
    let c = client();
    let resp = c.post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.headers()["x-deepwatch-pool"], "primary");

    let served_before = primary.requests();
    primary.stop().await;
    let failed_at = Instant::now();
    // Every request keeps succeeding: the first is retried onto the standby at once.
    for i in 0..10 {
        let resp = c.post(chat_url(&gw)).json(&chat_body(i % 2 == 0)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let pool_hdr = resp.headers()["x-deepwatch-pool"].to_str().unwrap().to_string();
        if pool_hdr != "standby" {
            let t = resp.text().await.unwrap();
            panic!(
                "request {i}: pool {pool_hdr}, primary served {} then {}, standby {}: {t}",
                served_before,
                primary.requests(),
                standby.requests()
            );
        }
        assert!(resp.text().await.unwrap().contains("Hello"));
        if i == 0 {
            assert!(failed_at.elapsed() < Duration::from_millis(500), "{:?}", failed_at.elapsed());
        }
    }
    let m = metrics(&gw).await;
    assert_eq!(sample(&m, "deepwatch_pool_active", &[("pool", "standby")]), Some(1.0));
    assert_eq!(sample(&m, "deepwatch_pool_active", &[("pool", "primary")]), Some(0.0));
    assert_eq!(sample(&m, "deepwatch_upstream_up", &[("pool", "primary")]), Some(0.0));
    assert_eq!(
        sample(&m, "deepwatch_failovers_total", &[("pool", "standby"), ("reason", "unhealthy")]),
        Some(1.0)
    );
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "ok")]), 11.0);
    // At most the first request paid a retry; the ejected primary was skipped afterwards.
    assert!(sum(&m, "deepwatch_retries_total", &[]) <= 1.0);

    primary.restart().await;
    eventually("primary back in rotation", async || {
        let m = metrics(&gw).await;
        sample(&m, "deepwatch_pool_active", &[("pool", "primary")]) == Some(1.0)
    })
    .await;
    let resp = c.post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.headers()["x-deepwatch-pool"], "primary");
    let ev: serde_json::Value = c
        .get(admin_url(&gw, "/admin/events"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> =
        ev["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["failover", "failback"], "{ev}");
}

#[tokio::test]
async fn failing_probes_eject_an_upstream_before_traffic_hits_it() {
    let sick = Upstream::start(Knobs::default()).await;
    let well = Upstream::start(Knobs::default()).await;
    let gw = start(config(vec![pool("blue", &[sick.url(), well.url()])])).await;
    sick.set(|k| k.healthy = false);
    eventually("probe ejection", async || {
        let m = metrics(&gw).await;
        sample(&m, "deepwatch_upstream_up", &[("upstream", &sick.url())]) == Some(0.0)
    })
    .await;
    let before = sick.requests();
    for _ in 0..6 {
        let resp = client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(sick.requests(), before, "an ejected upstream received traffic");
    let doc: serde_json::Value = client()
        .get(admin_url(&gw, "/admin/pools"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ups = doc["pools"][0]["upstreams"].as_array().unwrap();
    let sick_doc = ups.iter().find(|u| u["url"] == sick.url()).unwrap();
    assert_eq!(sick_doc["healthy"], false);
    assert_eq!(sick_doc["ejected_by"], "probe");
    sick.set(|k| k.healthy = true);
    eventually("probe return", async || {
        let m = metrics(&gw).await;
        sample(&m, "deepwatch_upstream_up", &[("upstream", &sick.url())]) == Some(1.0)
    })
    .await;
}
