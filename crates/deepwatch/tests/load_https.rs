//! `deepwatch load` against an https target: the simulator behind a TLS front whose
//! certificate comes from a CA made in the test. With `--ca-file` the model is discovered and
//! every request succeeds over TLS; without it the run stops with the certificate named.

use crate::support::procs::{binary, sim};
use deepwatch_testkit::free_addr;
use deepwatch_testkit::tls::{server_config, TestCa, TlsFront};
use serde_json::Value;
use std::process::Command;
use std::sync::atomic::Ordering;

fn load(target: &str, extra: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(["load", "--target", target, "--rate", "40", "-n", "20", "--json", "-"])
        .args(["--prompt-tokens", "16", "--output-tokens", "8", "--no-progress"])
        .args(extra)
        .output()
        .expect("run deepwatch load")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_discovers_the_model_and_runs_over_tls_with_its_ca_file() {
    let (up, up_admin) = (free_addr(), free_addr());
    let _sim = sim("sim", up, up_admin, "tls-model", "tls-token", 5).await;
    let ca = TestCa::new("deepwatch load test CA");
    let front = TlsFront::start(server_config(&ca.server_cert(&["127.0.0.1"]), None), up).await;
    let target = front.url();

    let ca_file = ca.ca_file.to_str().unwrap().to_string();
    let ok = tokio::task::spawn_blocking({
        let target = target.clone();
        move || load(&target, &["--ca-file", &ca_file])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "load over TLS failed: {}\n{stdout}\n{stderr}", ok.status);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("report is not JSON ({e}):\n{stdout}");
    });
    let summary = &report["summary"];
    assert_eq!(summary["sent"], 20, "{summary}");
    assert_eq!(summary["succeeded"], 20, "{summary}");
    assert!(summary["output_tokens"].as_u64().unwrap_or(0) > 0, "{summary}");
    assert_eq!(front.failed_handshakes.load(Ordering::SeqCst), 0);

    // The same target without the CA: the model lookup fails and says why.
    let refused = tokio::task::spawn_blocking(move || load(&target, &[])).await.unwrap();
    assert!(!refused.status.success(), "an untrusted certificate was accepted");
    let stderr = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(stderr.contains("certificate"), "the error does not name the certificate:\n{stderr}");
    assert!(front.failed_handshakes.load(Ordering::SeqCst) >= 1);
}
