//! Pinning a request to a pool (`x-deepwatch-pool`) or a model version
//! (`x-deepwatch-model-version`): trusted keys reach exactly the pinned pool under a 90/10 split,
//! a weight of 0 and a forced failover elsewhere; other callers get 403; unknown names get 404;
//! a pinned pool without a healthy upstream gets 503 and a failing one is never rerouted;
//! pinned requests are neither rollout samples nor drift samples.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use deepwatch_core::config::gateway::GatewayConfig;
use deepwatch_gateway::Gateway;

const PROBE_KEY: &str = "sk-probe-0001";
const TEAM_KEY: &str = "sk-team-a-0001";

/// blue (v1, weight 90) and green (v2, weight 10), a probe key allowed to pin and a team key.
async fn split() -> (Upstream, Upstream, GatewayConfig) {
    let blue = Upstream::start(Knobs::default()).await;
    let green = Upstream::start(Knobs::default()).await;
    let mut b = pool("blue", &[blue.url()]);
    b.weight = 90;
    b.model_version = "v1".into();
    let mut g = pool("green", &[green.url()]);
    g.weight = 10;
    g.model_version = "v2".into();
    let mut cfg = config(vec![b, g]);
    cfg.api_keys = [(PROBE_KEY, "probes"), (TEAM_KEY, "team-a")]
        .into_iter()
        .map(|(k, t)| (k.to_string(), t.to_string()))
        .collect();
    cfg.pin_keys = vec![PROBE_KEY.into()];
    (blue, green, cfg)
}

async fn pinned(
    gw: &Gateway,
    key: Option<&str>,
    pins: &[(&str, &str)],
    stream: bool,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = client().post(chat_url(gw)).json(&chat_body(stream));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    for (name, value) in pins {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// Pin headers sent, then the status, `error.code` and a part of `error.message` expected.
type Case = (&'static [(&'static str, &'static str)], u16, &'static str, &'static str);

fn error_of(body: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let e = &v["error"];
    assert!(e["type"].is_string(), "not an OpenAI error: {body}");
    (e["code"].as_str().unwrap_or("").to_string(), e["message"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn pinned_requests_always_reach_the_pinned_pool_under_a_90_10_split() {
    let (blue, green, mut cfg) = split().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    cfg.request_log.path = log.to_str().unwrap().into();
    let gw = start(cfg).await;

    // Unpinned traffic follows the split: most of it goes to blue.
    for _ in 0..50 {
        let (status, _, _) = pinned(&gw, Some(TEAM_KEY), &[], false).await;
        assert_eq!(status, 200);
    }
    assert!(blue.requests() > 30, "the 90/10 split is not in force: blue {}", blue.requests());
    let (blue_before, green_before) = (blue.requests(), green.requests());

    // Pinned by pool and by version, streamed and not: every one is green's.
    for i in 0..40 {
        let pin = if i % 2 == 0 {
            ("x-deepwatch-pool", "green")
        } else {
            ("x-deepwatch-model-version", "v2")
        };
        let (status, headers, body) = pinned(&gw, Some(PROBE_KEY), &[pin], i % 4 < 2).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["x-deepwatch-pool"], "green", "request {i} pinned {pin:?}");
        assert_eq!(headers["x-deepwatch-model-version"], "v2");
        assert!(body.contains("Hello"), "{body}");
    }
    assert_eq!(green.requests() - green_before, 40);
    assert_eq!(blue.requests(), blue_before, "a pinned request reached blue");
    // Both headers, agreeing, work too; the pin headers never go upstream.
    let both = [("x-deepwatch-pool", "blue"), ("x-deepwatch-model-version", "v1")];
    let (status, headers, _) = pinned(&gw, Some(PROBE_KEY), &both, false).await;
    assert_eq!((status, &headers["x-deepwatch-pool"]), (200, &"blue".parse().unwrap()));
    assert!(green.seen.headers.lock().iter().all(|h| !h.contains_key("x-deepwatch-pool")));

    // Weight 0 and a forced failover to blue do not move a pinned request.
    let admin = |method: reqwest::Method, path: &str| {
        client().request(method, admin_url(&gw, path)).bearer_auth(ADMIN_TOKEN)
    };
    let r = admin(reqwest::Method::PUT, "/admin/pools/green/weight")
        .json(&serde_json::json!({"weight": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = admin(reqwest::Method::POST, "/admin/failover")
        .json(&serde_json::json!({"pool": "blue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for stream in [false, true] {
        let (status, headers, _) =
            pinned(&gw, Some(PROBE_KEY), &[("x-deepwatch-pool", "green")], stream).await;
        assert_eq!((status, &headers["x-deepwatch-pool"]), (200, &"green".parse().unwrap()));
    }
    assert_eq!(green.requests() - green_before, 42);

    // Pinned traffic is labelled like any other, with the probe's tenant.
    let m = metrics(&gw).await;
    let probes_on_green = [("pool", "green"), ("model_version", "v2"), ("tenant", "probes")];
    assert_eq!(sum(&m, "deepwatch_requests_total", &probes_on_green), 42.0, "{m}");
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("tenant", "probes"), ("pool", "blue")]), 1.0);
    eventually("93 log lines", async || {
        std::fs::read_to_string(&log).unwrap_or_default().lines().count() == 93
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines[..50].iter().all(|l| l.get("pin").is_none()), "unpinned lines carry a pin");
    assert_eq!(lines[50]["pin"], "pool=green");
    assert_eq!(lines[51]["pin"], "model_version=v2");
}

#[tokio::test]
async fn untrusted_pin_headers_are_refused_with_403() {
    let (blue, green, cfg) = split().await;
    let gw = start(cfg).await;
    for key in [Some(TEAM_KEY), None, Some("sk-not-a-key")] {
        for pin in [("x-deepwatch-pool", "green"), ("x-deepwatch-model-version", "v2")] {
            let (status, _, body) = pinned(&gw, key, &[pin], false).await;
            assert_eq!(status, 403, "key {key:?} pin {pin:?}: {body}");
            let (code, message) = error_of(&body);
            assert_eq!(code, "pin_not_allowed");
            assert!(message.contains(pin.0) && message.contains("gateway.pin_keys"), "{message}");
        }
    }
    // Unknown names are refused the same way: untrusted callers learn nothing about pools.
    let (status, _, _) =
        pinned(&gw, Some(TEAM_KEY), &[("x-deepwatch-pool", "purple")], false).await;
    assert_eq!(status, 403);
    assert_eq!(blue.requests() + green.requests(), 0, "a refused request went upstream");
    let m = metrics(&gw).await;
    let refused = [("tenant", "team-a"), ("outcome", "rejected"), ("code", "403")];
    assert_eq!(sum(&m, "deepwatch_requests_total", &refused), 3.0, "{m}");
}

#[tokio::test]
async fn unknown_or_conflicting_pins_are_named_in_the_error() {
    let (blue, green, cfg) = split().await;
    let gw = start(cfg).await;
    let cases: [Case; 4] = [
        (&[("x-deepwatch-pool", "purple")], 404, "pool_not_found", "\"purple\""),
        (&[("x-deepwatch-model-version", "v9")], 404, "model_version_not_found", "\"v9\""),
        (
            &[("x-deepwatch-pool", "blue"), ("x-deepwatch-model-version", "v2")],
            400,
            "invalid_pin",
            "pool \"blue\" serves model_version \"v1\", not \"v2\"",
        ),
        (&[("x-deepwatch-pool", " ")], 400, "invalid_pin", "must not be empty"),
    ];
    for (pins, want_status, want_code, want_text) in cases {
        let (status, _, body) = pinned(&gw, Some(PROBE_KEY), pins, false).await;
        assert_eq!(status, want_status, "{pins:?}: {body}");
        let (code, message) = error_of(&body);
        assert_eq!(code, want_code, "{pins:?}: {body}");
        assert!(message.contains(want_text), "{pins:?}: {message}");
    }
    assert_eq!(blue.requests() + green.requests(), 0);
}

#[tokio::test]
async fn a_pinned_pool_that_cannot_answer_fails_and_is_never_rerouted() {
    let (blue, green, cfg) = split().await;
    let gw = start(cfg).await;

    // A failing answer is retried only inside the pinned pool (it has no other upstream).
    green.set(|k| k.fail_status = Some(503));
    let (status, _, body) =
        pinned(&gw, Some(PROBE_KEY), &[("x-deepwatch-pool", "green")], false).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(green.requests(), 1);
    assert_eq!(blue.requests(), 0, "a pinned request was rerouted to blue");

    // With every upstream of green ejected by its probes: 503 naming the pool, by pool and by
    // version, streamed or not, while unpinned traffic still flows to blue.
    green.set(|k| k.healthy = false);
    eventually("green ejected", async || {
        let m = metrics(&gw).await;
        sample(&m, "deepwatch_upstream_up", &[("pool", "green")]) == Some(0.0)
    })
    .await;
    let served_by_green = green.requests();
    for (pin, stream) in
        [(("x-deepwatch-pool", "green"), false), (("x-deepwatch-model-version", "v2"), true)]
    {
        let (status, _, body) = pinned(&gw, Some(PROBE_KEY), &[pin], stream).await;
        assert_eq!(status, 503, "{pin:?}: {body}");
        let (code, message) = error_of(&body);
        assert_eq!(code, "pool_unavailable");
        assert!(message.contains("\"green\"") && message.contains("healthy upstream"), "{message}");
    }
    assert_eq!(green.requests(), served_by_green);
    assert_eq!(blue.requests(), 0, "a pinned request was rerouted to blue");
    let (status, headers, _) = pinned(&gw, Some(TEAM_KEY), &[], false).await;
    assert_eq!((status, &headers["x-deepwatch-pool"]), (200, &"blue".parse().unwrap()));

    // The failures are green's, not "none"'s: probe traffic shows where it failed.
    let m = metrics(&gw).await;
    let failed = [("pool", "green"), ("model_version", "v2"), ("outcome", "upstream_error")];
    assert_eq!(sum(&m, "deepwatch_requests_total", &failed), 3.0, "{m}");
}

#[tokio::test]
async fn pinned_requests_are_neither_rollout_samples_nor_drift_samples() {
    let (_blue, _green, cfg) = split().await;
    let gw = start(cfg).await;
    let c = client();
    let resp = c
        .post(admin_url(&gw, "/admin/rollouts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"pool": "green", "steps": [10, 100], "min_samples": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    for stream in [false, true, false, true, false, true] {
        let (status, headers, _) =
            pinned(&gw, Some(PROBE_KEY), &[("x-deepwatch-pool", "green")], stream).await;
        assert_eq!((status, headers["x-deepwatch-pool"].to_str().unwrap()), (200, "green"));
    }
    let canary = async || {
        let v: serde_json::Value = c
            .get(admin_url(&gw, "/admin/rollouts"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["current"]["last_analysis"]["canary"]["requests"].as_u64()
    };
    eventually("a look at the rollout", async || canary().await.is_some()).await;
    assert_eq!(canary().await, Some(0), "pinned probes counted as canary samples");
    let m = metrics(&gw).await;
    let green = [("pool", "green")];
    assert_eq!(sum(&m, "deepwatch_requests_total", &green), 6.0);
    assert_eq!(sum(&m, "deepwatch_response_completion_tokens_count", &green), 0.0);
    assert_eq!(sum(&m, "deepwatch_response_reasoning_share_ratio_count", &green), 0.0);
    assert_eq!(sum(&m, "deepwatch_response_finish_reason_total", &green), 0.0);

    // Client traffic is, with or without a client max_tokens.
    for max_tokens in [None, Some(3), None, Some(3)] {
        let mut body = chat_body(false);
        if let Some(n) = max_tokens {
            body["max_tokens"] = n.into();
        }
        let resp = c.post(chat_url(&gw)).bearer_auth(TEAM_KEY).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let m = metrics(&gw).await;
    let total = |name: &str| sum(&m, name, &[]);
    assert_eq!(total("deepwatch_response_completion_tokens_count"), 4.0);
    assert_eq!(total("deepwatch_response_finish_reason_total"), 4.0);
}

#[tokio::test]
async fn failing_pinned_probes_are_no_canary_errors() {
    let blue = Upstream::start(Knobs::default()).await;
    let failing = || Upstream::start(Knobs { fail_status: Some(500), ..Knobs::default() });
    let (green_a, green_b) = (failing().await, failing().await);
    let mut b = pool("blue", &[blue.url()]);
    b.model_version = "v1".into();
    // Two upstreams, so a failed pinned attempt is retried within the pool (`attempt_failed`).
    let mut g = pool("green", &[green_a.url(), green_b.url()]);
    g.weight = 0;
    g.model_version = "v2".into();
    // Green stays healthy by passive health: every pinned attempt reaches it and fails.
    g.health.probe_path = String::new();
    g.health.consecutive_failures = 0;
    g.health.min_requests = 1000;
    let mut cfg = config(vec![b, g]);
    cfg.api_keys = [(PROBE_KEY.to_string(), "probes".to_string())].into_iter().collect();
    cfg.pin_keys = vec![PROBE_KEY.into()];
    let gw = start(cfg).await;
    let c = client();
    let resp = c
        .post(admin_url(&gw, "/admin/rollouts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"pool": "green", "steps": [10, 100], "min_samples": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    for _ in 0..10 {
        let (status, _, _) =
            pinned(&gw, Some(PROBE_KEY), &[("x-deepwatch-pool", "green")], false).await;
        assert_eq!(status, 500, "the pinned probe sees green's own error");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let v: serde_json::Value = c
        .get(admin_url(&gw, "/admin/rollouts"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["current"]["status"], "running", "probes rolled the canary back: {v}");
    // Without client traffic the stable side has no samples, so the rollout would not judge
    // yet; the canary's side must simply not have counted the probes' failures.
    assert_eq!(v["current"]["last_analysis"]["canary"]["requests"], 0, "{v}");
    assert_eq!(v["current"]["last_analysis"]["canary"]["errors"], 0, "{v}");
}
