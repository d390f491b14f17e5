//! The real gateway's request log under logrotate: after the file is renamed the next lines go
//! to a new file of the configured name (not into the rotated one), SIGHUP reopens it as
//! `postrotate` expects, and the lines of all files together equal the requests served, as
//! `deepwatch_gateway_request_log_lines_total{outcome="written"}` says.

use crate::support::poll;
use crate::support::procs::{args, deepwatch, sim};
use deepwatch_testkit::{free_addr, http_client};
use std::path::Path;
use std::time::Duration;

const MODEL: &str = "deepseek-r1";

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

async fn requests(proxy: &str, n: usize) {
    for _ in 0..n {
        let resp = http_client()
            .post(format!("http://{proxy}/v1/chat/completions"))
            .json(&serde_json::json!({
                "model": MODEL, "max_tokens": 2,
                "messages": [{"role": "user", "content": "hello"}]
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

#[tokio::test]
async fn the_request_log_follows_a_rename_and_reopens_on_sighup_without_losing_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, engine_admin) = (free_addr(), free_addr());
    let (proxy, admin) = (free_addr(), free_addr());
    let log = dir.path().join("requests.jsonl");
    let config = format!(
        r#"
[gateway]
listen = "{proxy}"
admin_listen = "{admin}"
admin_token = "admin-token"
[gateway.request_log]
path = "{log}"
[[gateway.pools]]
name = "blue"
weight = 100
upstreams = ["http://{engine}"]
"#,
        log = log.display()
    );
    let config_path = dir.path().join("deepwatch.toml");
    std::fs::write(&config_path, config).unwrap();
    let _engine = sim("sim", engine, engine_admin, MODEL, "sim-token", 1).await;
    let gateway = deepwatch(
        "gateway",
        &args(&["gateway", "--config", &config_path.display().to_string()]),
        admin,
        "/healthz",
    )
    .await;

    let proxy = proxy.to_string();
    requests(&proxy, 5).await;
    assert!(poll(Duration::from_secs(5), || async { (lines(&log) == 5).then_some(()) })
        .await
        .is_some());
    let rotated = dir.path().join("requests.jsonl.1");
    std::fs::rename(&log, &rotated).unwrap();
    requests(&proxy, 7).await;
    let reopened = poll(Duration::from_secs(5), || async { (lines(&log) == 7).then_some(()) });
    assert!(reopened.await.is_some(), "new file has {} lines:\n{}", lines(&log), gateway.log());
    assert_eq!(lines(&rotated), 5, "nothing more went into the rotated file");

    // Rotation by copy and replace under the same name, then SIGHUP (postrotate).
    let second = dir.path().join("requests.jsonl.2");
    std::fs::copy(&log, &second).unwrap();
    let replacement = dir.path().join("requests.jsonl.new");
    std::fs::write(&replacement, "").unwrap();
    std::fs::rename(&replacement, &log).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &gateway.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    requests(&proxy, 3).await;
    let after_hup = poll(Duration::from_secs(5), || async { (lines(&log) == 3).then_some(()) });
    assert!(after_hup.await.is_some(), "{} lines after SIGHUP:\n{}", lines(&log), gateway.log());

    let metrics = http_client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let written = metrics
        .lines()
        .find(|l| l.starts_with("deepwatch_gateway_request_log_lines_total{outcome=\"written\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(written.ends_with(" 15"), "{written}");
    assert_eq!(lines(&rotated) + lines(&second) + lines(&log), 15);
}
