//! The notification bridge against local servers speaking WeCom's, DingTalk's and Feishu's
//! robot APIs (the real services cannot be reached here). The mocks verify signatures with
//! their own HMAC code, so a wrong scheme fails; a real Alertmanager routes to the bridge.

use crate::support::*;
use axum::extract::{Path, Query, State};
use axum::routing::post as route_post;
use axum::{Json, Router};
use base64::Engine as _;
use deepwatch_core::config::notify::{ChannelConfig, ChannelKind, Language, MessageFormat};
use deepwatch_testkit::{wait_for, Alertmanager};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const DING_SECRET: &str = "SEC0123456789abcdef";
const FEISHU_SECRET: &str = "feishu-secret";

#[derive(Default)]
struct Inbox {
    wecom: Vec<Value>,
    dingtalk: Vec<(HashMap<String, String>, Value)>,
    feishu: Vec<Value>,
}

type St = State<Arc<Mutex<Inbox>>>;

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn wecom(
    State(s): St,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    s.lock().wecom.push(body);
    match q.get("key").map(String::as_str) {
        Some("robot-key") => Json(json!({"errcode": 0, "errmsg": "ok"})),
        Some("throttled") => Json(json!({"errcode": 45009, "errmsg": "api freq out of limit"})),
        _ => Json(json!({"errcode": 93000, "errmsg": "invalid webhook url"})),
    }
}

/// DingTalk: `sign` must be base64(HMAC-SHA256(secret, "timestamp\nsecret")); axum's Query has
/// already URL-decoded it once, as DingTalk's server does.
async fn dingtalk(
    State(s): St,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    s.lock().dingtalk.push((q.clone(), body));
    let (Some(ts), Some(sign)) = (q.get("timestamp"), q.get("sign")) else {
        return Json(json!({"errcode": 310000, "errmsg": "sign missing"}));
    };
    let expected = hmac_b64(DING_SECRET.as_bytes(), format!("{ts}\n{DING_SECRET}").as_bytes());
    if *sign != expected {
        return Json(json!({"errcode": 310000, "errmsg": "sign not match"}));
    }
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

/// Feishu: `sign` must be base64(HMAC-SHA256(key = "timestamp\nsecret", message = "")).
async fn feishu(State(s): St, Path(_token): Path<String>, Json(body): Json<Value>) -> Json<Value> {
    s.lock().feishu.push(body.clone());
    let ts = body["timestamp"].as_str().unwrap_or("");
    let expected = hmac_b64(format!("{ts}\n{FEISHU_SECRET}").as_bytes(), b"");
    if body["sign"].as_str() != Some(expected.as_str()) {
        return Json(
            json!({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}),
        );
    }
    Json(
        json!({"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}),
    )
}

async fn chat_services() -> (String, Arc<Mutex<Inbox>>) {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let app = Router::new()
        .route("/cgi-bin/webhook/send", route_post(wecom))
        .route("/robot/send", route_post(dingtalk))
        .route("/open-apis/bot/v2/hook/{token}", route_post(feishu))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

fn channel(name: &str, kind: ChannelKind, url: String) -> ChannelConfig {
    ChannelConfig { name: name.into(), kind, url, ..ChannelConfig::default() }
}

fn channels(chat: &str) -> Vec<ChannelConfig> {
    vec![
        channel(
            "oncall-wecom",
            ChannelKind::Wecom,
            format!("{chat}/cgi-bin/webhook/send?key=robot-key"),
        ),
        ChannelConfig {
            secret: DING_SECRET.into(),
            language: Some(Language::En),
            mention_mobiles: vec!["13800000000".into()],
            ..channel(
                "oncall-dingtalk",
                ChannelKind::Dingtalk,
                format!("{chat}/robot/send?access_token=tok"),
            )
        },
        ChannelConfig {
            secret: FEISHU_SECRET.into(),
            format: MessageFormat::Text,
            mention_all: true,
            ..channel(
                "oncall-feishu",
                ChannelKind::Feishu,
                format!("{chat}/open-apis/bot/v2/hook/abc"),
            )
        },
        ChannelConfig {
            secret: "wrong".into(),
            ..channel(
                "bad-dingtalk",
                ChannelKind::Dingtalk,
                format!("{chat}/robot/send?access_token=tok"),
            )
        },
        channel(
            "throttled-wecom",
            ChannelKind::Wecom,
            format!("{chat}/cgi-bin/webhook/send?key=throttled"),
        ),
        ChannelConfig {
            max_per_minute: 2,
            send_resolved: false,
            ..channel(
                "small-wecom",
                ChannelKind::Wecom,
                format!("{chat}/cgi-bin/webhook/send?key=robot-key"),
            )
        },
    ]
}

fn firing() -> Value {
    let mut p = payload(
        "firing",
        vec![alert("ModelUnavailable", "fp-1", "firing", &[("pool", "primary")])],
    );
    p["commonLabels"] = json!({"alertname": "ModelUnavailable", "severity": "critical"});
    p
}

#[tokio::test]
async fn each_service_gets_a_signed_message_in_its_language_and_format() {
    let (chat, inbox) = chat_services().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon_config(dir.path(), "http://127.0.0.1:9");
    config.notify.channels = channels(&chat);
    let daemon = start(&config, None).await;
    let base = format!("http://{}", daemon.addr);
    for name in ["oncall-wecom", "oncall-dingtalk", "oncall-feishu"] {
        let (status, body) = post(&format!("{base}/notify/{name}"), &firing()).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("sent")), "{name}: {body}");
    }
    let (wecom, dingtalk, feishu) = {
        let i = inbox.lock();
        (i.wecom.clone(), i.dingtalk.clone(), i.feishu.clone())
    };
    let report_link = format!("{base}/incidents/alert/fp-1");

    // WeCom: markdown in Chinese (the default), colored title, report link.
    let w = &wecom[0];
    assert_eq!(w["msgtype"], "markdown");
    let content = w["markdown"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("<font color=\"warning\">**【告警中 1 条】ModelUnavailable**</font>"),
        "{content}"
    );
    assert!(content.contains("开始时间: 2026-11-23 14:40:00 +08:00"), "{content}");
    assert!(content.contains(&format!("[根因分析报告]({report_link})")), "{content}");

    // DingTalk: signed (the mock verified it), English, mentions the mobile in text and `at`.
    let (query, d) = &dingtalk[0];
    assert_eq!(query["access_token"], "tok");
    assert_eq!(d["msgtype"], "markdown");
    assert_eq!(d["markdown"]["title"], "[FIRING:1] ModelUnavailable");
    let text = d["markdown"]["text"].as_str().unwrap();
    assert!(text.starts_with("### [FIRING:1] ModelUnavailable"), "{text}");
    assert!(
        text.contains("Started: 2026-11-23 14:40:00 +08:00") && text.contains("@13800000000"),
        "{text}"
    );
    assert_eq!(d["at"], json!({"atMobiles": ["13800000000"], "isAtAll": false}));

    // Feishu: signed text with @all.
    let f = &feishu[0];
    assert_eq!(f["msg_type"], "text");
    let text = f["content"]["text"].as_str().unwrap();
    assert!(text.starts_with("【告警中 1 条】ModelUnavailable"), "{text}");
    assert!(text.ends_with("<at user_id=\"all\">所有人</at>"), "{text}");

    let m = metrics(&base).await;
    for name in ["oncall-wecom", "oncall-dingtalk", "oncall-feishu"] {
        let series = format!("deepwatch_notifications_total{{channel=\"{name}\",outcome=\"ok\"}}");
        assert_eq!(sample(&m, &series), Some(1.0), "{series}\n{m}");
    }
    daemon.shutdown().await;
}

#[tokio::test]
async fn refusals_map_to_statuses_alertmanager_retries_and_limits_hold() {
    let (chat, _inbox) = chat_services().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon_config(dir.path(), "http://127.0.0.1:9");
    config.notify.channels = channels(&chat);
    let daemon = start(&config, None).await;
    let base = format!("http://{}", daemon.addr);

    let (status, body) = post(&format!("{base}/notify/bad-dingtalk"), &firing()).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("errcode 310000 sign not match"),
        "{body}"
    );
    let (status, body) = post(&format!("{base}/notify/throttled-wecom"), &firing()).await;
    assert_eq!(status, 503, "a throttled robot is worth retrying: {body}");
    let (status, _) = post(&format!("{base}/notify/nobody"), &firing()).await;
    assert_eq!(status, 404);
    let (status, _) = post(&format!("{base}/notify/oncall-wecom"), &json!({"alerts": 1})).await;
    assert_eq!(status, 400);

    // Two a minute: the third answers 503 with Retry-After.
    for _ in 0..2 {
        assert_eq!(post(&format!("{base}/notify/small-wecom"), &firing()).await.0, 200);
    }
    let resp = deepwatch_testkit::http_client()
        .post(format!("{base}/notify/small-wecom"))
        .json(&firing())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Resolved-only payloads are skipped on a channel with send_resolved = false.
    let resolved = payload("resolved", vec![alert("ModelUnavailable", "fp-1", "resolved", &[])]);
    let (status, body) = post(&format!("{base}/notify/small-wecom"), &resolved).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("skipped")), "{body}");

    let m = metrics(&base).await;
    let value = |c: &str, o: &str| {
        sample(&m, &format!("deepwatch_notifications_total{{channel=\"{c}\",outcome=\"{o}\"}}"))
    };
    assert_eq!(value("bad-dingtalk", "failed"), Some(1.0), "{m}");
    assert_eq!(value("small-wecom", "rate_limited"), Some(1.0), "{m}");
    assert_eq!(value("small-wecom", "skipped"), Some(1.0), "{m}");
    daemon.shutdown().await;
}

#[tokio::test]
async fn alertmanager_routes_alerts_through_the_bridge() {
    let (chat, inbox) = chat_services().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon_config(dir.path(), "http://127.0.0.1:9");
    config.notify.channels = channels(&chat);
    let daemon = start(&config, None).await;
    let am = Alertmanager::start(&format!(
        "route:\n  receiver: chat\n  group_by: ['alertname']\n  group_wait: 1s\n  group_interval: 1s\n\
         receivers:\n  - name: chat\n    webhook_configs:\n      - url: http://{}/notify/oncall-feishu\n",
        daemon.addr
    ))
    .await;
    let alerts = json!([{
        "labels": {"alertname": "DeepwatchTtftHigh", "severity": "warning", "model": "deepseek-chat"},
        "annotations": {"summary": "TTFT p90 above 2 s"}
    }]);
    deepwatch_testkit::http_client()
        .post(format!("{}/api/v2/alerts", am.url()))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    let text = wait_for("feishu message", Duration::from_secs(20), || async {
        inbox.lock().feishu.first().map(|m| m["content"]["text"].as_str().unwrap_or("").to_string())
    })
    .await;
    assert!(text.contains("DeepwatchTtftHigh") && text.contains("TTFT p90 above 2 s"), "{text}");
    assert!(text.contains("model=deepseek-chat"), "{text}");
    daemon.shutdown().await;
}

/// The robots are https-only: the bridge delivers to an https stand-in whose certificate comes
/// from a CA made in the test and trusted through `notify.tls.ca_file`; without it, the
/// delivery fails with the TLS cause and without leaking the robot key.
#[tokio::test]
async fn delivers_to_https_robots_trusting_notify_tls_ca_file() {
    use deepwatch_testkit::tls::{server_config, TestCa, TlsFront};
    let (chat, inbox) = chat_services().await;
    let backend = chat.trim_start_matches("http://").parse().unwrap();
    let ca = TestCa::new("robot CA");
    let front =
        TlsFront::start(server_config(&ca.server_cert(&["127.0.0.1"]), None), backend).await;
    let dir = tempfile::tempdir().unwrap();

    let mut config = daemon_config(dir.path(), "http://127.0.0.1:9");
    config.notify.channels = channels(&front.url());
    config.notify.tls.ca_file = Some(ca.ca_file.clone());
    config.validate().unwrap();
    let daemon = start(&config, None).await;
    let base = format!("http://{}", daemon.addr);
    for name in ["oncall-wecom", "oncall-dingtalk", "oncall-feishu"] {
        let (status, body) = post(&format!("{base}/notify/{name}"), &firing()).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("sent")), "{name}: {body}");
    }
    {
        let i = inbox.lock();
        assert_eq!((i.wecom.len(), i.dingtalk.len(), i.feishu.len()), (1, 1, 1));
        assert_eq!(i.dingtalk[0].0["access_token"], "tok", "signed query survived TLS");
    }
    daemon.shutdown().await;

    // System roots only: the robot's certificate is not trusted.
    config.notify.tls.ca_file = None;
    let daemon = start(&config, None).await;
    let base = format!("http://{}", daemon.addr);
    let (status, body) = post(&format!("{base}/notify/oncall-wecom"), &firing()).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("invalid peer certificate: UnknownIssuer"), "{message}");
    assert!(!message.contains("robot-key"), "the robot key leaked: {message}");
    assert_eq!(inbox.lock().wecom.len(), 1, "nothing more was delivered");
    assert!(front.failed_handshakes.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    daemon.shutdown().await;
}
