//! The official `openai` Python SDK (from PyPI, in a venv made by scripts/python-env.sh) through
//! a gateway started in-process: non-streaming and streaming chat, include_usage, an upstream
//! error raised as the SDK's exception type, and a stream cancelled midway.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use std::path::PathBuf;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

async fn python() -> Option<String> {
    let out = tokio::process::Command::new("bash")
        .arg(repo_root().join("scripts/python-env.sh"))
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "\n!!!!!!!! SKIPPING the openai SDK test: scripts/python-env.sh failed:\n{}\n",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).lines().last().map(str::to_string)
}

#[tokio::test]
async fn openai_python_sdk_through_the_gateway() {
    let Some(py) = python().await else { return };
    let up = Upstream::start(Knobs { token_delay_ms: 40, ..Knobs::default() }).await;
    let failing = Upstream::start(Knobs { fail_status: Some(500), ..Knobs::default() }).await;
    let good = start(config(vec![pool("blue", &[up.url()])])).await;
    let bad = start(config(vec![pool("red", &[failing.url()])])).await;
    let out = tokio::process::Command::new(&py)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_test.py"))
        .env("GOOD_BASE_URL", format!("http://{}/v1", good.proxy_addr()))
        .env("BAD_BASE_URL", format!("http://{}/v1", bad.proxy_addr()))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python SDK checks failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all sdk checks passed"), "{stdout}");
    eventually("the cancelled stream is counted", async || {
        let m = metrics(&good).await;
        sum(&m, "deepwatch_requests_total", &[("outcome", "client_cancelled")]) == 1.0
    })
    .await;
    let m = metrics(&good).await;
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "ok")]), 3.0);
    // The two full streams asked upstream for usage; the SDK saw it only when it asked.
    assert_eq!(sample(&m, "deepwatch_completion_tokens_total", &[("pool", "blue")]), Some(15.0));
    let m = metrics(&bad).await;
    assert_eq!(
        sum(&m, "deepwatch_requests_total", &[("outcome", "upstream_error"), ("code", "500")]),
        1.0
    );
}
