//! The generated dashboards against Grafana's own dashboard model: every dashboard, as the
//! provisioning files and the sidecar ConfigMap carry it, type-checks as @grafana/schema's
//! `Dashboard` (scripts/k8s-validate/grafana-schema.mjs, tsc over the pinned npm packages), and
//! the check rejects a dashboard Grafana would not read, naming the field.

use deepwatch_core::config::rules::RulesConfig;
use deepwatch_rules::{generate, Options};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `node grafana-schema.mjs FILES`, after scripts/node-env.sh installed the packages (the suite
/// installs them before the tests, so a failure here is a failure).
fn check(files: &[PathBuf]) -> (bool, String) {
    let env = Command::new("bash").arg(repo_root().join("scripts/node-env.sh")).output().unwrap();
    assert!(env.status.success(), "node-env.sh: {}", String::from_utf8_lossy(&env.stderr));
    let out = Command::new("node")
        .arg(repo_root().join("scripts/k8s-validate/grafana-schema.mjs"))
        .args(files)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn write_dashboards(dir: &Path) -> Vec<PathBuf> {
    let out = generate(&RulesConfig::default(), Options::default()).unwrap();
    let mut paths = Vec::new();
    for (rel, text) in &out.files {
        if let Some(name) = rel.strip_prefix("grafana/dashboards/") {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            paths.push(path);
        }
    }
    paths
}

#[test]
fn every_dashboard_type_checks_as_grafana_schema_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_dashboards(dir.path());
    assert_eq!(paths.len(), 4);
    let (ok, report) = check(&paths);
    assert!(ok, "dashboards fail @grafana/schema's Dashboard type:\n{report}");
    assert_eq!(report.matches(": ok").count(), 4, "{report}");
}

#[test]
fn the_schema_check_rejects_what_grafana_would_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_dashboards(dir.path());
    let overview = paths.iter().find(|p| p.ends_with("overview.json")).unwrap();
    let text = std::fs::read_to_string(overview).unwrap();
    let broken = [
        ("\"maxDataPoints\": 500", "\"maxDataPoints\": \"500\""),
        ("\"graphTooltip\": 1", "\"graphTooltip\": 7"),
        ("\"refId\": \"A\"", "\"refid\": \"A\""),
    ];
    let mut bad = text.clone();
    for (from, to) in broken {
        assert!(bad.contains(from), "overview.json has no {from}");
        bad = bad.replacen(from, to, 1);
    }
    std::fs::write(overview, bad).unwrap();
    let (ok, report) = check(std::slice::from_ref(overview));
    assert!(!ok, "a broken dashboard passed:\n{report}");
    for expected in [
        "Type 'string' is not assignable to type 'number'",
        "Type '7' is not assignable to type 'DashboardCursorSync",
        "'\"refid\"' does not exist in type 'PrometheusQuery'",
    ] {
        assert!(report.contains(expected), "expected {expected:?} in\n{report}");
    }
}
