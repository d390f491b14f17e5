//! `deploy/` holds the output for the default spec and `docs/alerts.md` its alert table.
//! Regenerating must reproduce both exactly; bless with
//! `DEEPWATCH_BLESS=1 cargo test -p deepwatch-rules --test integration drift`. Every generated
//! alert has a runbook under `docs/runbooks/` that its `runbook_url` points at.

use deepwatch_core::config::rules::RulesConfig;
use deepwatch_rules::{generate, Options};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy_dir() -> PathBuf {
    repo().join("deploy")
}

fn read_tree(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            read_tree(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            out.insert(rel, std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

#[test]
fn deploy_matches_the_generator() {
    let generated = generate(&RulesConfig::default(), Options::default()).unwrap();
    let dir = deploy_dir();
    if std::env::var_os("DEEPWATCH_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        generated.write_to(&dir).unwrap();
        return;
    }
    let mut committed = BTreeMap::new();
    read_tree(&dir, &dir, &mut committed);
    let mut problems = Vec::new();
    for (rel, text) in &generated.files {
        match committed.get(rel) {
            None => problems.push(format!("missing: deploy/{rel}")),
            Some(old) if old != text => {
                let line = old.lines().zip(text.lines()).position(|(a, b)| a != b);
                problems.push(format!(
                    "changed: deploy/{rel} (first difference at line {})",
                    line.map_or(0, |l| l + 1)
                ));
            }
            Some(_) => {}
        }
    }
    for rel in committed.keys().filter(|k| !generated.files.contains_key(*k)) {
        problems.push(format!("stale: deploy/{rel}"));
    }
    assert!(
        problems.is_empty(),
        "deploy/ drifted from the generator; regenerate with\n  DEEPWATCH_BLESS=1 cargo test -p deepwatch-rules --test integration drift\n{}",
        problems.join("\n")
    );
}

#[test]
fn default_spec_generates_without_warnings() {
    let generated = generate(&RulesConfig::default(), Options::default()).unwrap();
    assert!(generated.warnings.is_empty(), "{:?}", generated.warnings);
}

#[test]
fn alert_table_in_docs_matches_the_generator() {
    let text = deepwatch_rules::docs::alerts_table(&RulesConfig::default());
    let path = repo().join("docs/alerts.md");
    if std::env::var_os("DEEPWATCH_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "docs/alerts.md drifted from the generator; regenerate with\n  DEEPWATCH_BLESS=1 cargo test -p deepwatch-rules --test integration drift"
    );
    // The seed's thresholds, in config units, as the docs show them.
    for row in [
        "GPU utilization > 0.85 (`instance_gpu:deepwatch_gpu_utilization_ratio:avg1m`); stays firing until below 0.75",
        "GPU utilization > 0.95 (`instance_gpu:deepwatch_gpu_utilization_ratio:avg1m`); stays firing until below 0.75",
        "Request latency > 0.18s (`model:deepwatch_request_duration_seconds:p50_1m`); stays firing until below 0.15s",
        "Request latency > 0.25s (`model:deepwatch_request_duration_seconds:p50_1m`); stays firing until below 0.15s",
        "Resident memory growth (MB/min) > 10 (`instance_process:deepwatch_process_memory_growth_bytes_per_second:avg5m`); stays firing until below 5",
        "Resident memory growth (MB/min) > 50 (`instance_process:deepwatch_process_memory_growth_bytes_per_second:avg5m`); stays firing until below 5",
    ] {
        assert!(text.contains(row), "docs/alerts.md lost the seed's threshold row {row:?}");
    }
}

/// Every generated alert has `docs/runbooks/<Alert>.md` with the four sections a runbook
/// needs, its `runbook_url` annotation points there, and no runbook is left for an alert
/// the generator no longer makes.
#[test]
fn every_alert_has_a_runbook_its_annotation_links() {
    let cfg = RulesConfig::default();
    let ctx = deepwatch_rules::Ctx { cfg: &cfg, opts: Options::default() };
    let links = deepwatch_rules::model::Links {
        runbook_base_url: &cfg.runbook_base_url,
        grafana_url: &cfg.grafana_url,
    };
    let dir = repo().join("docs/runbooks");
    let mut names = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for file in deepwatch_rules::rule_files(&ctx) {
        for alert in file.alerts() {
            names.insert(alert.name.clone());
            let url = alert
                .annotations(&links)
                .into_iter()
                .find(|(k, _)| k == "runbook_url")
                .map(|(_, v)| v)
                .unwrap_or_default();
            let expected =
                format!("{}/{}.md", cfg.runbook_base_url.trim_end_matches('/'), alert.name);
            if url != expected {
                problems
                    .push(format!("{}: runbook_url {url:?}, expected {expected:?}", alert.name));
            }
        }
    }
    assert!(names.len() >= 35, "only {} alert names", names.len());
    for name in &names {
        let path = dir.join(format!("{name}.md"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            problems.push(format!("{name}: no docs/runbooks/{name}.md"));
            continue;
        };
        if !text.starts_with(&format!("# {name}\n")) {
            problems.push(format!("{name}: the runbook must start with \"# {name}\""));
        }
        for section in
            ["## What it means", "## First checks", "## deepwatch commands", "## When to escalate"]
        {
            let Some(at) = text.find(section) else {
                problems.push(format!("{name}: no \"{section}\" section"));
                continue;
            };
            let body = text[at + section.len()..].split("\n## ").next().unwrap_or("");
            if body.trim().len() < 40 {
                problems.push(format!("{name}: \"{section}\" is empty"));
            }
        }
        let checks = text
            .split("## First checks")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or("");
        let numbered = checks
            .lines()
            .filter(|l| l.starts_with("1. ") || l.starts_with("2. ") || l.starts_with("3. "))
            .count();
        if numbered < 3 {
            problems.push(format!("{name}: \"First checks\" needs three numbered checks"));
        }
        let commands = text.split("## deepwatch commands").nth(1).unwrap_or("");
        if !commands.contains("deepwatch ") {
            problems.push(format!("{name}: no deepwatch command in \"deepwatch commands\""));
        }
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        if let Some(stem) = file.strip_suffix(".md") {
            if stem != "README" && !names.contains(stem) {
                problems.push(format!("docs/runbooks/{file}: no generated alert has this name"));
            }
        }
    }
    assert!(problems.is_empty(), "{} runbook problems:\n{}", problems.len(), problems.join("\n"));
}

/// Seconds of a promtool duration as the generator writes them (`90s`, `5m`, `2h`, `1d`).
fn eval_secs(text: &str) -> u64 {
    let (n, unit) = text.split_at(text.len() - 1);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("eval_time {text:?}"));
    n * match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        other => panic!("eval_time unit {other:?} in {text:?}"),
    }
}

/// True when one test (the first field) of `cases` (test, eval seconds, fired) shows the alert
/// quiet, then firing, then quiet again.
fn holds_fires_and_recovers(cases: &[(String, u64, bool)]) -> bool {
    let tests: std::collections::BTreeSet<&String> = cases.iter().map(|c| &c.0).collect();
    tests.iter().any(|t| {
        let mut run: Vec<(u64, bool)> =
            cases.iter().filter(|c| &c.0 == *t).map(|c| (c.1, c.2)).collect();
        run.sort();
        run.iter().position(|c| c.1).is_some_and(|f| f > 0 && run[f..].iter().any(|c| !c.1))
    })
}

/// Every generated alert has promtool unit tests in `deploy/prometheus/tests/` that show it
/// quiet before it fires (the `for` holds it), firing, and quiet again after it fired (it
/// recovers). The drift test keeps those files equal to what the generator writes.
#[test]
fn every_alert_has_unit_tests_that_hold_fire_and_recover() {
    let cfg = RulesConfig::default();
    let ctx = deepwatch_rules::Ctx { cfg: &cfg, opts: Options::default() };
    let names: std::collections::BTreeSet<String> = deepwatch_rules::rule_files(&ctx)
        .iter()
        .flat_map(|f| f.alerts().map(|a| a.name.clone()).collect::<Vec<_>>())
        .collect();
    // Per alert and test file: (eval seconds, fired) in file order.
    let mut cases: BTreeMap<String, Vec<(String, u64, bool)>> = BTreeMap::new();
    let tests = deploy_dir().join("prometheus/tests");
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: Vec<&str> = text.lines().collect();
        let lines: Vec<&str> = raw.iter().map(|l| l.trim()).collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(at) = line.strip_prefix("- eval_time: ") else { continue };
            let name = lines.get(i + 1).and_then(|l| l.strip_prefix("alertname: "));
            let expected = lines.get(i + 2).copied().unwrap_or_default();
            let Some(name) = name else { continue };
            // The test (an item of the top-level `tests:` list) keeps cases of different
            // series apart.
            let group = raw[..i].iter().filter(|l| l.starts_with("- ")).count();
            cases.entry(name.to_string()).or_default().push((
                format!("{file}#{group}"),
                eval_secs(at),
                expected != "exp_alerts: []",
            ));
        }
    }
    let mut problems = Vec::new();
    for name in &names {
        let Some(seen) = cases.get(name) else {
            problems.push(format!("{name}: no promtool unit test"));
            continue;
        };
        if !holds_fires_and_recovers(seen) {
            problems.push(format!(
                "{name}: no test group shows it quiet, then firing, then quiet again: {seen:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The scanner read what it should: a removed case would show above.
    assert!(cases.len() >= names.len(), "{} alerts in tests for {}", cases.len(), names.len());
}
