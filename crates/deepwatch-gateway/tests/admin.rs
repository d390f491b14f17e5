//! The admin API: authentication, pools, weights, scale out, forced failover, degrade, faults.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use deepwatch_gateway::Gateway;

async fn call(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = client().request(method, admin_url(gw, path)).bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn admin_needs_the_token_but_metrics_and_healthz_do_not() {
    let up = Upstream::start(Knobs::default()).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let c = client();
    let resp = c.get(admin_url(&gw, "/admin/pools")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    let resp = c.get(admin_url(&gw, "/admin/pools")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(c.get(admin_url(&gw, "/healthz")).send().await.unwrap().status(), 200);
    let resp = c
        .get(admin_url(&gw, "/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(resp.text().await.unwrap().ends_with("# EOF\n"));
    // The proxy listener does not serve the admin API.
    let resp = c
        .get(format!("http://{}/admin/pools", gw.proxy_addr()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.admin_token = String::new();
    let gw2 = start(cfg).await;
    let resp = c.get(admin_url(&gw2, "/admin/pools")).bearer_auth("").send().await.unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn pools_weights_scale_out_and_forced_failover() {
    let a = Upstream::start(Knobs::default()).await;
    let b = Upstream::start(Knobs::default()).await;
    let s = Upstream::start(Knobs::default()).await;
    let mut standby = pool("standby", &[s.url()]);
    standby.priority = 1;
    let gw = start(config(vec![pool("blue", &[a.url()]), standby])).await;

    let (status, doc) = call(&gw, Method::GET, "/admin/pools", None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["active_pools"], json!(["blue"]));
    assert_eq!(doc["pools"][0]["upstreams"][0]["healthy"], true);
    assert_eq!(doc["failover"]["forced"], serde_json::Value::Null);

    // Scale out: the new upstream takes traffic.
    let (status, doc) =
        call(&gw, Method::POST, "/admin/pools/blue/upstreams", Some(json!({"url": b.url()}))).await;
    assert_eq!(status, 201);
    assert_eq!(doc["upstreams"].as_array().unwrap().len(), 2);
    let (status, _) =
        call(&gw, Method::POST, "/admin/pools/blue/upstreams", Some(json!({"url": b.url()}))).await;
    assert_eq!(status, 409);
    let (status, e) =
        call(&gw, Method::POST, "/admin/pools/blue/upstreams", Some(json!({"url": "ftp://x"})))
            .await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("bad_request")));
    let (status, e) =
        call(&gw, Method::POST, "/admin/pools/nope/upstreams", Some(json!({"url": b.url()}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("pool_not_found")));
    for _ in 0..4 {
        client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    }
    assert!(b.requests() >= 1, "the added upstream got no traffic");
    let (status, _) =
        call(&gw, Method::DELETE, "/admin/pools/blue/upstreams", Some(json!({"url": b.url()})))
            .await;
    assert_eq!(status, 200);
    let (status, _) =
        call(&gw, Method::DELETE, "/admin/pools/blue/upstreams", Some(json!({"url": b.url()})))
            .await;
    assert_eq!(status, 404);

    // Unknown fields are named.
    let (status, e) =
        call(&gw, Method::PUT, "/admin/pools/blue/weight", Some(json!({"weigth": 5}))).await;
    assert_eq!(status, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("weigth"), "{e}");
    let (status, _) =
        call(&gw, Method::PUT, "/admin/pools/blue/weight", Some(json!({"weight": 150}))).await;
    assert_eq!(status, 400);
    let (status, doc) =
        call(&gw, Method::PUT, "/admin/pools/blue/weight", Some(json!({"weight": 40}))).await;
    assert_eq!((status, doc["weight"].as_u64()), (200, Some(40)));
    let m = metrics(&gw).await;
    assert_eq!(sample(&m, "deepwatch_pool_traffic_weight_ratio", &[("pool", "blue")]), Some(0.4));

    // Forced failover.
    let (status, doc) = call(
        &gw,
        Method::POST,
        "/admin/failover",
        Some(json!({"pool": "standby", "reason": "drill"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["failover"]["forced"]["pool"], "standby");
    assert_eq!(doc["active_pools"], json!(["standby"]));
    let resp = client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.headers()["x-deepwatch-pool"], "standby");
    let m = metrics(&gw).await;
    assert_eq!(
        sample(&m, "deepwatch_failovers_total", &[("pool", "standby"), ("reason", "command")]),
        Some(1.0)
    );
    let (status, doc) = call(&gw, Method::DELETE, "/admin/failover", None).await;
    assert_eq!((status, doc["active_pools"].clone()), (200, json!(["blue"])));
    let (status, _) =
        call(&gw, Method::POST, "/admin/failover", Some(json!({"pool": "nope"}))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn degrade_caps_max_tokens_and_rate_limits_listed_tenants() {
    let up = Upstream::start(Knobs::default()).await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.api_keys.insert("sk-free".into(), "free".into());
    cfg.api_keys.insert("sk-paid".into(), "paid".into());
    let gw = start(cfg).await;
    let (status, _) = call(
        &gw,
        Method::PUT,
        "/admin/degrade",
        Some(json!({"max_tokens_cap": 32, "rate_limit": {"tenants": ["free"], "requests_per_second": 1}})),
    )
    .await;
    assert_eq!(status, 200);
    let mut body = chat_body(false);
    body["max_tokens"] = json!(4096);
    let c = client();
    let first = c.post(chat_url(&gw)).bearer_auth("sk-free").json(&body).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(up.seen.bodies.lock()[0]["max_tokens"], 32);
    let second = c.post(chat_url(&gw)).bearer_auth("sk-free").json(&body).send().await.unwrap();
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
    let paid = c.post(chat_url(&gw)).bearer_auth("sk-paid").json(&body).send().await.unwrap();
    assert_eq!(paid.status(), 200);
    let m = metrics(&gw).await;
    assert_eq!(sample(&m, "deepwatch_degrade_active", &[("kind", "tenant_rate_limit")]), Some(1.0));
    assert_eq!(
        sum(
            &m,
            "deepwatch_requests_total",
            &[("tenant", "free"), ("code", "429"), ("outcome", "rejected")]
        ),
        1.0
    );
    let (status, _) = call(&gw, Method::DELETE, "/admin/degrade", None).await;
    assert_eq!(status, 200);
    let again = c.post(chat_url(&gw)).bearer_auth("sk-free").json(&body).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(up.seen.bodies.lock().last().unwrap()["max_tokens"], 4096);
    let m = metrics(&gw).await;
    assert_eq!(sample(&m, "deepwatch_degrade_active", &[("kind", "max_tokens_cap")]), Some(0.0));
}

#[tokio::test]
async fn faults_are_refused_unless_enabled_and_inject_errors_and_cuts() {
    let up = Upstream::start(Knobs::default()).await;
    let gw = start(config(vec![pool("blue", &[up.url()])])).await;
    let (status, e) = call(&gw, Method::PUT, "/admin/faults", Some(json!([]))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("faults_disabled")));

    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.faults.enabled = true;
    let gw = start(cfg).await;
    let (status, e) =
        call(&gw, Method::PUT, "/admin/faults", Some(json!([{"endpoint": "/v1/nope"}]))).await;
    assert_eq!(status, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("endpoint"), "{e}");
    let (status, _) = call(
        &gw,
        Method::PUT,
        "/admin/faults",
        Some(json!([{"endpoint": "/v1/chat/completions", "error_rate": 1.0, "error_status": 503}])),
    )
    .await;
    assert_eq!(status, 200);
    let resp = client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "injected_fault");

    call(
        &gw,
        Method::PUT,
        "/admin/faults",
        Some(json!([{"endpoint": "/v1/chat/completions", "stream_cut_after_chunks": 2}])),
    )
    .await;
    let text = client()
        .post(chat_url(&gw))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("there") && !text.contains("friend"), "{text}");
    assert!(events(&text).last().unwrap().contains("\"stream_cut\""));
    let (_, doc) = call(&gw, Method::GET, "/admin/faults", None).await;
    assert_eq!(doc["rules"][0]["stream_cut_after_chunks"], 2);
    call(&gw, Method::DELETE, "/admin/faults", None).await;
    let text = client()
        .post(chat_url(&gw))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("[DONE]"));
    let m = metrics(&gw).await;
    assert_eq!(sample(&m, "deepwatch_faults_injected_total", &[("kind", "error")]), Some(1.0));
    assert_eq!(sample(&m, "deepwatch_faults_injected_total", &[("kind", "stream_cut")]), Some(1.0));
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "stream_cut")]), 1.0);
}

#[tokio::test]
async fn a_reload_applies_weights_upstreams_and_faults_and_names_the_rest() {
    let a = Upstream::start(Knobs::default()).await;
    let b = Upstream::start(Knobs::default()).await;
    let mut cfg = config(vec![pool("blue", &[a.url()])]);
    cfg.faults.enabled = true;
    let gw = start(cfg.clone()).await;
    let mut new = cfg.clone();
    new.pools[0].upstreams = vec![b.url()];
    new.pools[0].weight = 60;
    new.faults.rules = vec![deepwatch_core::config::gateway::FaultRule {
        endpoint: "/v1/chat/completions".into(),
        latency: std::time::Duration::from_millis(1),
        ..Default::default()
    }];
    new.max_body_bytes = 1;
    new.pools.push(pool("green", &[a.url()]));
    let report = gw.reload(&new).unwrap();
    assert!(report.applied.contains(&"blue weight 60%".to_string()), "{report:?}");
    assert!(report.applied.iter().any(|r| r.contains("+ ") && r.contains(&b.url())), "{report:?}");
    assert!(report.applied.iter().any(|r| r.contains("- ") && r.contains(&a.url())), "{report:?}");
    assert!(report.applied.contains(&"fault rules".to_string()), "{report:?}");
    assert!(report.needs_restart.contains(&"timeouts and limits".to_string()), "{report:?}");
    assert!(report.needs_restart.iter().any(|r| r.contains("green")), "{report:?}");
    client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!((a.requests(), b.requests()), (0, 1));
    let (_, ev) = call(&gw, Method::GET, "/admin/events", None).await;
    let last = ev["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "config_reload");
    // An invalid config changes nothing.
    let mut bad = new.clone();
    bad.pools[0].weight = 150;
    let err = gw.reload(&bad).unwrap_err().to_string();
    assert!(err.contains("gateway.pools[0].weight: must be between 0 and 100, got 150"), "{err}");
    assert_eq!(gw.shared().pools.get("blue").unwrap().weight(), 60);
    // ... and is counted, not only logged: an event with the reason and a deploy-event count
    // the generated GatewayConfigReloadFailed alert reads; so is a file that does not parse.
    let (_, ev) = call(&gw, Method::GET, "/admin/events", None).await;
    let last = ev["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "config_reload_failed");
    assert!(last["detail"].as_str().unwrap().contains("weight"), "{last}");
    gw.reload_refused("line 3: invalid type");
    let failed = [("event", "config_reload_failed"), ("pool", "all")];
    assert_eq!(sample(&metrics(&gw).await, "deepwatch_deploy_events_total", &failed), Some(2.0));
}
