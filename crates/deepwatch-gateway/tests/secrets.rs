//! What a gateway shows must not leak what its config holds, nor let junk take what real
//! traffic needs: credentials in upstream URLs never reach `/metrics`, the admin API, the event
//! log or the request log; model-label slots go only to models the upstream served.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;

const PASSWORD: &str = "s3cr3t-pw";

#[tokio::test]
async fn credentials_in_upstream_urls_never_leave_the_gateway() {
    let up = Upstream::start(Knobs::default()).await;
    let spare = Upstream::start(Knobs::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let with_password = |u: &Upstream| format!("http://svc:{PASSWORD}@127.0.0.1:{}", u.addr.port());
    let mut cfg = config(vec![pool("blue", &[with_password(&up)])]);
    cfg.events_path = dir.path().join("events.jsonl").display().to_string();
    cfg.request_log.path = dir.path().join("requests.jsonl").display().to_string();
    let gw = start(cfg).await;
    let c = client();
    for stream in [false, true] {
        let resp = c.post(chat_url(&gw)).json(&chat_body(stream)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap();
    }
    // Scale out through the admin API with another URL holding a password, then remove it by
    // the form the admin API shows.
    let admin = |m: reqwest::Method, path: &str| {
        c.request(m, admin_url(&gw, path)).bearer_auth(ADMIN_TOKEN)
    };
    let added = admin(reqwest::Method::POST, "/admin/pools/blue/upstreams")
        .json(&serde_json::json!({"url": with_password(&spare)}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201, "{}", added.text().await.unwrap());
    let pools =
        admin(reqwest::Method::GET, "/admin/pools").send().await.unwrap().text().await.unwrap();
    let shown = format!("http://***@127.0.0.1:{}", spare.addr.port());
    assert!(pools.contains(&shown), "{pools}");
    let metrics_text = metrics(&gw).await;
    assert!(
        metrics_text.contains(&format!("upstream=\"http://***@127.0.0.1:{}\"", up.addr.port())),
        "{metrics_text}"
    );
    let removed = admin(reqwest::Method::DELETE, "/admin/pools/blue/upstreams")
        .json(&serde_json::json!({"url": shown}))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200, "{}", removed.text().await.unwrap());
    let events =
        admin(reqwest::Method::GET, "/admin/events").send().await.unwrap().text().await.unwrap();
    assert!(events.contains("upstream_removed"), "{events}");
    let log = dir.path().join("requests.jsonl");
    eventually("two request-log lines", async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 2)
    })
    .await;
    let request_log = std::fs::read_to_string(&log).unwrap();
    assert!(request_log.contains("http://***@127.0.0.1"), "{request_log}");
    let event_log = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    for (what, text) in [
        ("/metrics", metrics_text),
        ("/admin/pools", pools),
        ("/admin/events", events),
        ("request log", request_log),
        ("event log", event_log),
    ] {
        assert!(!text.contains(PASSWORD), "{what} shows the password:\n{text}");
    }
}

#[tokio::test]
async fn junk_model_names_the_upstream_rejects_take_no_label_slot() {
    let up = Upstream::start(Knobs::default()).await;
    let mut cfg = config(vec![pool("blue", &[format!("http://{}", up.addr)])]);
    cfg.max_model_labels = 4;
    let gw = start(cfg).await;
    let c = client();
    // Sixteen junk names, each answered 404 by the upstream (vLLM's "model does not exist").
    up.knobs.lock().fail_status = Some(404);
    for i in 0..16 {
        let body = serde_json::json!({"model": format!("junk-{i}"), "messages": [{"role": "user", "content": "hi"}]});
        let resp = c.post(chat_url(&gw)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 404);
    }
    up.knobs.lock().fail_status = None;
    for stream in [false, true] {
        let resp = c.post(chat_url(&gw)).json(&chat_body(stream)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap();
    }
    let text = metrics(&gw).await;
    let served = sum(&text, "deepwatch_requests_total", &[("model", "m")]);
    assert_eq!(served, 2.0, "the served model keeps its own label:\n{text}");
    assert_eq!(sum(&text, "deepwatch_requests_total", &[("model", "other")]), 16.0, "{text}");
    assert!(!text.contains("junk-"), "{text}");
    // The stream's TTFT, observed while it ran, carries the name too.
    let ttft = sum(&text, "deepwatch_time_to_first_token_seconds_count", &[("model", "m")]);
    assert_eq!(ttft, 1.0, "{text}");
}
