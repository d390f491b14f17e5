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

#[test]
fn alertmanager_config_and_routes_pass_amtool() {
    let dir = write(Options::default());
    let am = dir.path().join("alertmanager");
    let bin = require_binary(&["amtool"], "prometheus-alertmanager");
    let (ok, text) = run_tool(&bin, &["check-config", "alertmanager.yml"], &am);
    assert!(ok, "amtool check-config failed:\n{text}");
    let cases = deepwatch_rules::alertmanager::route_cases();
    assert!(["critical", "warning", "info"]
        .iter()
        .all(|s| cases.iter().any(|c| c.labels.contains(&("severity", s)))));
    for case in cases {
        let args = deepwatch_rules::alertmanager::amtool_args(&case);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = run_tool(&bin, &args, &am);
        assert!(ok, "route case {:?} failed:\n{text}", case.labels);
        assert_eq!(
            text.lines().next().unwrap_or("").trim(),
            case.receivers.join(","),
            "{:?}",
            case.labels
        );
    }
    // A wrong expectation must fail, or the cases above prove nothing.
    let wrong = deepwatch_rules::alertmanager::RouteCase {
        labels: vec![("severity", "warning")],
        receivers: vec![deepwatch_rules::alertmanager::EMAIL],
    };
    let args = deepwatch_rules::alertmanager::amtool_args(&wrong);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(!run_tool(&bin, &args, &am).0);
}

/// The e2e tests and the demo shrink every interval (the demo by 30, the e2e tests by 60);
/// the generated tests still hold, SLO burn-rate windows included.
/// `remediation.webhook_token(_file)` reaches the analyzer receiver (and only it) as bearer
/// credentials Alertmanager accepts; without it the daemon answers every notification 401.
#[test]
fn the_analyzer_receiver_carries_the_webhook_token_and_passes_amtool() {
    let bin = require_binary(&["amtool"], "prometheus-alertmanager");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("webhook.token");
    std::fs::write(&token_file, "from-a-file\n").unwrap();
    let mut config = deepwatch_core::config::Config::default();
    config.remediation.webhook_token = "s3cret-hook".into();
    let by_value = config.rules_spec();
    config.remediation.webhook_token_file = token_file.display().to_string();
    let by_file = config.rules_spec();
    for (spec, wanted) in [(by_value, "credentials: s3cret-hook"), (by_file, "credentials_file: ")]
    {
        let out = generate(&spec, Options::default()).unwrap();
        out.write_to(dir.path()).unwrap();
        let text = &out.files["alertmanager/alertmanager.yml"];
        assert_eq!(text.matches(wanted).count(), 1, "{text}");
        let am = dir.path().join("alertmanager");
        let (ok, checked) = run_tool(&bin, &["check-config", "alertmanager.yml"], &am);
        assert!(ok, "amtool check-config failed:\n{checked}\n{text}");
    }
    let plain =
        generate(&deepwatch_core::config::Config::default().rules_spec(), Options::default());
    assert!(!plain.unwrap().files["alertmanager/alertmanager.yml"].contains("authorization"));
}

#[test]
fn time_scaled_alert_tests_pass() {
    for time_scale in [5, 60] {
        let dir = write(Options { time_scale });
        let prom = dir.path().join("prometheus");
        let text = std::fs::read_to_string(prom.join("rules/alerts.yml")).unwrap();
        assert!(text.contains("interval: 1s"), "{text}");
        // Every test file but the week-long trend ones.
        let mut args = vec!["test".to_string(), "rules".to_string()];
        for e in std::fs::read_dir(prom.join("tests")).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            if name != "trend.test.yml" {
                args.push(format!("tests/{name}"));
            }
        }
        assert!(args.len() >= 9, "{args:?}");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        promtool(&args, &prom);
    }
}

/// Scaled runs scale the burn-rate windows too (a 5-minute fault must not page for an hour
/// of scaled time), and `TargetAbsent` keeps a start-up grace; scale 1 is untouched.
#[test]
fn time_scale_shrinks_burn_windows_and_keeps_the_absent_grace() {
    let read = |time_scale: u64, file: &str| {
        let out = generate(&RulesConfig::default(), Options { time_scale }).unwrap();
        out.files[&format!("prometheus/rules/{file}.yml")].clone()
    };
    let slo_1 = read(1, "slo");
    for w in ["[5m]", "[1h]", "[6h]", "[3d]", "[30d]"] {
        assert!(slo_1.contains(w), "scale 1 lost window {w}");
    }
    let slo_60 = read(60, "slo");
    for w in ["[5s]", "[1m]", "[6m]", "[72m]", "[12h]"] {
        assert!(slo_60.contains(w), "scale 60 has no window {w}:\n{slo_60}");
    }
    for w in ["[1h]", "[6h]", "[1d]", "[3d]", "[30d]"] {
        assert!(!slo_60.contains(w), "scale 60 still uses window {w}");
    }
    let absent_for = |text: &str| {
        let at = text.find("alert: TargetAbsent").expect("TargetAbsent rule");
        let rest = &text[at..];
        let line = rest.lines().find(|l| l.trim_start().starts_with("for:")).unwrap();
        line.trim().trim_start_matches("for:").trim().to_string()
    };
    assert_eq!(absent_for(&read(1, "alerts")), "1m");
    assert_eq!(absent_for(&read(60, "alerts")), "30s");
}

/// The committed deploy/ passes the tools directly (the drift test keeps it equal to the generator).
#[test]
fn committed_deploy_passes_the_tools() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    promtool(&["check", "config", "prometheus.yml"], &deploy.join("prometheus"));
    let bin = require_binary(&["amtool"], "prometheus-alertmanager");
    let (ok, text) =
        run_tool(&bin, &["check-config", "alertmanager.yml"], &deploy.join("alertmanager"));
    assert!(ok, "{text}");
}

/// The long-term variants are valid Prometheus configs too.
#[test]
fn long_term_configs_pass_promtool() {
    let dir = write(Options::default());
    let lt = dir.path().join("long-term");
    promtool(&["check", "config", "prometheus-edge.yml"], &lt);
    promtool(&["check", "config", "prometheus-global.yml"], &lt);
}
