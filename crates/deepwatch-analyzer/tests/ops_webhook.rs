//! The Alertmanager webhook end to end with a real Alertmanager 0.25: alerts posted to its API
//! are grouped and delivered to the daemon, which acts once through a mock gateway admin API,
//! deduplicates the re-sent group, reverts on resolve, and keeps its promise across a restart
//! (two daemon instances on the same state dir and port).

use crate::support::mock_gateway::{pool, MockGateway};
use crate::support::*;
use deepwatch_analyzer::webhook::{label_set_fingerprint, Labels};
use deepwatch_core::config::remediation::{ActionConfig, ActionKind, PolicyConfig};
use deepwatch_testkit::{wait_for, Alertmanager};
use serde_json::{json, Value};
use std::time::Duration;

fn am_config(webhook: &str) -> String {
    am_config_with_token(webhook, None)
}

/// Alertmanager grouping by alertname with 1 s waits; `token` goes into the webhook's
/// `http_config.authorization`, as a production config would send it.
fn am_config_with_token(webhook: &str, token: Option<&str>) -> String {
    let auth = token
        .map(|t| {
            format!(
                "        http_config:\n          authorization:\n            credentials: {t}\n"
            )
        })
        .unwrap_or_default();
    format!(
        "route:\n  receiver: selfheal\n  group_by: ['alertname']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: selfheal\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n{auth}"
    )
}

/// Posts alerts to Alertmanager's API (as Prometheus does).
async fn fire(am: &Alertmanager, alerts: Value) {
    let resp = deepwatch_testkit::http_client()
        .post(format!("{}/api/v2/alerts", am.url()))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "alertmanager refused alerts: {}", resp.status());
}

fn am_alert(alertname: &str, instance: &str, ends_at: Option<&str>) -> Value {
    let mut a = json!({
        "labels": {"alertname": alertname, "severity": "critical", "pool": "primary", "instance": instance},
        "annotations": {"summary": format!("no healthy upstream behind {instance}")},
        "generatorURL": "http://prometheus.example/graph"
    });
    if let Some(t) = ends_at {
        a["endsAt"] = json!(t);
    }
    a
}

fn now_rfc3339() -> String {
    // Wall time for Alertmanager's endsAt only; the code under test never reads it.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    chrono::DateTime::<chrono::Utc>::from(now).to_rfc3339()
}

#[tokio::test]
async fn alertmanager_delivers_alerts_and_failover_runs_once_then_fails_back() {
    let gw = MockGateway::start(vec![
        pool("primary", &[("http://10.0.0.1:8000", false)]),
        pool("standby", &[("http://10.0.1.1:8000", true)]),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon_config(dir.path(), &gw.url);
    config.remediation.policies[0].revert_on_resolve = true;
    config.remediation.webhook_token = "hook-secret".into();
    let daemon = start(&config, None).await;
    let base = format!("http://{}", daemon.addr);
    let webhook = format!("{base}/webhook/alertmanager");
    let am = Alertmanager::start(&am_config_with_token(&webhook, Some("hook-secret"))).await;
    // Without the token nobody else can trigger a failover.
    let (status, body) =
        post(&webhook, &payload("firing", vec![alert("ModelUnavailable", "x", "firing", &[])]))
            .await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");

    fire(&am, json!([am_alert("ModelUnavailable", "a", None)])).await;
    wait_for("failover through the admin api", Duration::from_secs(20), || async {
        (!gw.calls("POST", "/admin/failover").is_empty()).then_some(())
    })
    .await;

    // A second alert joins the group: Alertmanager re-sends the first with it.
    fire(&am, json!([am_alert("ModelUnavailable", "b", None)])).await;
    let text = wait_for("the re-sent group", Duration::from_secs(20), || async {
        let m = metrics(&base).await;
        (sample(&m, "deepwatch_webhook_duplicates_total").unwrap_or(0.0) >= 1.0).then_some(m)
    })
    .await;
    assert!(
        sample(
            &text,
            "deepwatch_webhook_alerts_total{alertname=\"ModelUnavailable\",status=\"firing\"}"
        )
        .unwrap()
            >= 3.0,
        "{text}"
    );
    // Give the worker a moment with the second alert, then count.
    wait_for("the second alert handled", Duration::from_secs(10), || async {
        let m = metrics(&base).await;
        let skipped = sample(&m, "deepwatch_remediation_actions_total{action=\"failover_to_standby\",outcome=\"skipped_cooldown\"}");
        skipped.filter(|v| *v >= 1.0).map(|_| ())
    })
    .await;
    assert_eq!(gw.calls("POST", "/admin/failover").len(), 1, "failover ran once");
    let audit = config.remediation.audit_log_path();
    assert_eq!(intents(&audit).len(), 1, "the audit log holds the action once");

    // The fingerprint Alertmanager computed is the one we compute from the labels.
    let mut labels = Labels::new();
    for (k, v) in [
        ("alertname", "ModelUnavailable"),
        ("severity", "critical"),
        ("pool", "primary"),
        ("instance", "a"),
    ] {
        labels.insert(k.into(), v.into());
    }
    assert_eq!(intents(&audit)[0]["fingerprint"], json!(label_set_fingerprint(&labels)));

    // Both resolve: the policy fails back once.
    let ended = now_rfc3339();
    fire(
        &am,
        json!([
            am_alert("ModelUnavailable", "a", Some(&ended)),
            am_alert("ModelUnavailable", "b", Some(&ended))
        ]),
    )
    .await;
    wait_for("fail back on resolve", Duration::from_secs(20), || async {
        (!gw.calls("DELETE", "/admin/failover").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gw.calls("DELETE", "/admin/failover").len(), 1);
    daemon.shutdown().await;
}

#[tokio::test]
async fn a_restarted_daemon_does_not_repeat_an_action_alertmanager_resends() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("restarts.txt");
    let mut config = daemon_config(dir.path(), "http://127.0.0.1:9");
    config.remediation.policies = vec![PolicyConfig {
        name: "leak".into(),
        matchers: vec!["alertname=\"DeepwatchEngineLeak\"".into()],
        actions: vec!["restart_engine".into()],
        revert_on_resolve: false,
    }];
    config.remediation.actions = vec![ActionConfig {
        name: "restart_engine".into(),
        kind: ActionKind::RestartHook,
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            format!("echo \"$DEEPWATCH_LABEL_INSTANCE\" >> {}", out.display()),
        ]),
        timeout: Some(std::time::Duration::from_secs(10)),
        cooldown: std::time::Duration::from_secs(0),
        max_per_hour: 0,
        ..ActionConfig::default()
    }];
    let addr = deepwatch_testkit::free_addr();
    let am = Alertmanager::start(&am_config(&format!("http://{addr}/webhook/alertmanager"))).await;
    let ran = || std::fs::read_to_string(&out).unwrap_or_default();

    let first = start(&config, Some(addr)).await;
    fire(&am, json!([am_alert("DeepwatchEngineLeak", "a", None)])).await;
    wait_for("the first restart", Duration::from_secs(20), || async {
        (ran() == "a\n").then_some(())
    })
    .await;
    first.shutdown().await;

    let second = start(&config, Some(addr)).await;
    fire(&am, json!([am_alert("DeepwatchEngineLeak", "b", None)])).await;
    wait_for("the second restart", Duration::from_secs(20), || async {
        ran().contains("b\n").then_some(())
    })
    .await;
    let m = metrics(&format!("http://{addr}")).await;
    assert!(
        sample(&m, "deepwatch_webhook_duplicates_total").unwrap_or(0.0) >= 1.0,
        "the second instance received alert a again and dropped it:\n{m}"
    );
    assert_eq!(ran(), "a\nb\n", "a ran once across both instances");
    assert_eq!(intents(&config.remediation.audit_log_path()).len(), 2);
    second.shutdown().await;
}

#[tokio::test]
async fn the_receiver_answers_at_once_tolerates_unknown_fields_and_sheds_load_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon_config(dir.path(), "http://127.0.0.1:9");
    config.remediation.queue_capacity = 1;
    config.remediation.policies = vec![PolicyConfig {
        name: "slow".into(),
        matchers: vec!["alertname=\"Slow\"".into()],
        actions: vec!["sleep".into()],
        revert_on_resolve: false,
    }];
    config.remediation.actions = vec![ActionConfig {
        name: "sleep".into(),
        kind: ActionKind::RestartHook,
        command: Some(vec!["sleep".into(), "3".into()]),
        cooldown: std::time::Duration::from_secs(0),
        max_per_hour: 0,
        ..ActionConfig::default()
    }];
    let daemon = start(&config, None).await;
    let url = format!("http://{}/webhook/alertmanager", daemon.addr);

    let (status, body) = post(&url, &json!({"alerts": "nope"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not an Alertmanager webhook payload"));

    let mut p = payload("firing", vec![alert("Slow", "f1", "firing", &[])]);
    p["notification_reason"] = json!("a field from a later Alertmanager");
    let started = tokio::time::Instant::now();
    let (status, body) = post(&url, &p).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)), "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "answered before the 3 s action finished");
    // The worker is busy with f1; f2 fills the one-slot queue; f3 is refused with 503.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) =
        post(&url, &payload("firing", vec![alert("Slow", "f2", "firing", &[])])).await;
    assert_eq!(status, 200);
    let (status, body) =
        post(&url, &payload("firing", vec![alert("Slow", "f3", "firing", &[])])).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("queue is full"), "{body}");
    daemon.shutdown().await;
}
