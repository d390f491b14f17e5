//! Nothing Alertmanager handed over is lost: the real analyzer binary behind a real
//! Alertmanager configured by `deepwatch rules` (which must carry the webhook token), SIGKILLed
//! while its worker is busy with the first of 100 alerts it has already answered 200 for.
//! Alertmanager does not resend before its repeat interval, so the restarted analyzer has to
//! replay the other 99 from its journal, and must not act on the first one twice.

use crate::support::poll;
use crate::support::procs::{args, binary, deepwatch};
use deepwatch_testkit::{free_addr, http_client, Alertmanager};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const ALERTS: usize = 100;
const TOKEN: &str = "hook-token-7f3a";

/// The restart hook appends the alert's instance to `handled`, then waits while `block` exists.
fn config_text(analyzer: &str, dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"
[analyzer]
listen = "{analyzer}"
prometheus_url = "http://{prom}"
retries = 0
report_dir = "{d}/reports"

[remediation]
state_dir = "{d}/state"
webhook_token = "{TOKEN}"
max_actions_per_hour = 0

[[remediation.policies]]
name = "note"
matchers = ['alertname="ModelUnavailable"']
actions = ["note"]

[[remediation.actions]]
name = "note"
kind = "restart_hook"
cooldown_secs = 0
max_per_hour = 0
timeout_secs = 60
command = ["sh", "-c", "echo \"$DEEPWATCH_LABEL_INSTANCE\" >> {d}/handled; while [ -e {d}/block ]; do sleep 0.1; done"]

[rules]
maintenance = []
[rules.receivers]
phone_webhook_url = "http://127.0.0.1:9/sms"
analyzer_webhook_url = "http://{analyzer}/webhook/alertmanager"
"#,
        prom = free_addr(),
    )
}

fn handled(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("handled")).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(base: &str) -> String {
    let resp = http_client().get(format!("{base}/metrics")).send().await;
    match resp {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test]
async fn alerts_answered_before_a_sigkill_are_all_handled_after_restart_and_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config_path = dir.path().join("deepwatch.toml");
    std::fs::write(&config_path, config_text(&addr.to_string(), dir.path())).unwrap();
    let config_arg = config_path.display().to_string();

    // The receiver Alertmanager gets comes from the real CLI, token included.
    let out_dir = dir.path().join("generated");
    let status = std::process::Command::new(binary())
        .args(["rules", "--config", &config_arg, "--out", &out_dir.display().to_string()])
        .args(["--time-scale", "10"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let am_config = std::fs::read_to_string(out_dir.join("alertmanager/alertmanager.yml")).unwrap();
    assert!(am_config.contains(TOKEN), "no token in the analyzer receiver:\n{am_config}");

    std::fs::write(dir.path().join("block"), "").unwrap();
    let mut analyzer =
        deepwatch("analyzer", &args(&["analyze", "--config", &config_arg]), addr, "/healthz").await;
    let base = analyzer.url();
    let am = Alertmanager::start(&am_config).await;

    // A caller without the token is refused, and counted.
    let refused = http_client()
        .post(format!("{base}/webhook/alertmanager"))
        .json(&json!({"version": "4", "alerts": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);

    let alerts: Vec<Value> = (0..ALERTS)
        .map(|i| {
            json!({"labels": {"alertname": "ModelUnavailable", "severity": "critical",
                              "instance": format!("node-{i:03}:8000")},
                   "annotations": {"summary": "no healthy upstream"}})
        })
        .collect();
    let resp = http_client()
        .post(format!("{}/api/v2/alerts", am.url()))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "alertmanager refused alerts: {}", resp.status());

    // Alertmanager got 200 for every alert; the worker is stuck in the first hook.
    let received =
        "deepwatch_webhook_alerts_total{alertname=\"ModelUnavailable\",status=\"firing\"}";
    let all_in = poll(Duration::from_secs(60), || async {
        let m = metrics(&base).await;
        (sample(&m, received) >= ALERTS as f64).then_some(m)
    })
    .await;
    let m = all_in.unwrap_or_else(|| panic!("alerts did not all arrive:\n{}", analyzer.log()));
    assert_eq!(sample(&m, "deepwatch_webhook_refused_total{reason=\"unauthorized\"}"), 1.0, "{m}");
    let busy =
        poll(Duration::from_secs(10), || async { (!handled(dir.path()).is_empty()).then_some(()) })
            .await;
    assert!(busy.is_some(), "the worker never started:\n{}", analyzer.log());
    assert_eq!(handled(dir.path()).len(), 1, "the worker is busy with the first alert");

    analyzer.kill();
    std::fs::remove_file(dir.path().join("block")).unwrap();
    analyzer.restart("/healthz", Duration::from_secs(30)).await;

    let done = poll(Duration::from_secs(60), || async {
        let h = handled(dir.path());
        (h.len() >= ALERTS).then_some(h)
    })
    .await;
    let seen = handled(dir.path());
    assert!(
        done.is_some(),
        "{} of {ALERTS} handled after restart:\n{}",
        seen.len(),
        analyzer.log()
    );
    // A moment for any duplicate to show up, then: every alert exactly once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = handled(dir.path());
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), ALERTS, "{seen:?}");
    assert_eq!(seen.len(), ALERTS, "an alert was acted on twice: {seen:?}");
    let m = metrics(&base).await;
    assert_eq!(sample(&m, "deepwatch_webhook_replayed_total"), (ALERTS - 1) as f64, "{m}");
    assert_eq!(sample(&m, "deepwatch_webhook_refused_total{reason=\"unauthorized\"}"), 0.0, "{m}");
}
