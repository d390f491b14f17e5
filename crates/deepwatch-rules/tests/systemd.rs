//! The generated systemd units pass `systemd-analyze verify` (Debian's systemd) without a
//! single complaint: unknown keys, bad values and missing executables all print something.

use deepwatch_core::config::rules::RulesConfig;
use deepwatch_rules::{generate, systemd, Options};
use std::path::Path;
use std::process::Command;

/// Verifies units in `dir`; the binary path points at an executable that exists here.
fn verify(dir: &Path, units: &[(String, String)]) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let mut paths = Vec::new();
    for (rel, text) in units {
        let path = dir.join(rel.rsplit('/').next().unwrap());
        std::fs::write(&path, text.replace(systemd::BINARY, exe.to_str().unwrap())).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        // Documentation=man:deepwatch(1) is installed by `deepwatch man`, not on this machine.
        .args(["verify", "--man=no"])
        .args(&paths)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/install-deps.sh)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && text.trim().is_empty(), text)
}

fn units() -> Vec<(String, String)> {
    let out = generate(&RulesConfig::default(), Options::default()).unwrap();
    out.files.into_iter().filter(|(rel, _)| rel.starts_with("systemd/")).collect()
}

#[test]
fn generated_units_pass_systemd_analyze_verify() {
    let units = units();
    let names: Vec<&str> = units.iter().map(|(rel, _)| rel.as_str()).collect();
    assert_eq!(
        names,
        [
            "systemd/deepwatch-agent.service",
            "systemd/deepwatch-analyzer.service",
            "systemd/deepwatch-gateway.service"
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let (ok, report) = verify(dir.path(), &units);
    assert!(ok, "systemd-analyze verify complained:\n{report}");
    for (rel, text) in &units {
        assert!(text.contains(&format!("--config {}", systemd::CONFIG)), "{rel}");
        assert!(text.contains("DynamicUser=yes") && text.contains("NoNewPrivileges=yes"), "{rel}");
    }
}

/// The check is no rubber stamp: a misspelt key and a missing binary are both reported.
#[test]
fn systemd_analyze_reports_a_broken_unit() {
    let mut units = units();
    units[0].1 = units[0].1.replace("RestartSec=", "RestartSecs=");
    let dir = tempfile::tempdir().unwrap();
    let (ok, report) = verify(dir.path(), &units);
    assert!(!ok && report.contains("RestartSecs"), "{report}");

    let missing = units[1].1.replace(systemd::BINARY, "/nonexistent/deepwatch");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg({
            let p = dir.path().join("x.service");
            std::fs::write(&p, &missing).unwrap();
            p
        })
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("/nonexistent/deepwatch"), "{text}");
}
