//! The analyzer's default `[remediation]` policies act on alerts this generator produces, and
//! the generated Alertmanager config delivers those alerts to the analyzer's webhook (checked
//! with the real amtool). A policy naming an alert nobody emits would never run.

use deepwatch_core::config::remediation::{Matcher, PolicyConfig, RemediationConfig};
use deepwatch_core::config::rules::RulesConfig;
use deepwatch_rules::{alertmanager, generate, rule_files, Ctx, Options};
use deepwatch_testkit::{require_binary, run_tool};

/// Static labels of one generated alert rule: alertname, severity and the rule's own labels.
type Labels = Vec<(String, String)>;

fn generated_alerts() -> Vec<Labels> {
    let cfg = RulesConfig::default();
    let ctx = Ctx { cfg: &cfg, opts: Options::default() };
    let mut out = Vec::new();
    for file in rule_files(&ctx) {
        for a in file.alerts() {
            let mut labels = vec![
                ("alertname".to_string(), a.name.clone()),
                ("severity".into(), a.severity.into()),
            ];
            labels.extend(a.labels.iter().cloned());
            out.push(labels);
        }
    }
    out
}

/// The generated alerts a policy matches. Matchers on labels the rule does not set statically
/// (`pool`, `model`, ...) are taken as satisfiable: their values come from the series.
fn matched(policy: &PolicyConfig, alerts: &[Labels]) -> Result<Vec<Labels>, String> {
    let matchers: Vec<Matcher> =
        policy.matchers.iter().map(|m| Matcher::parse(m)).collect::<Result<_, _>>()?;
    if !matchers.iter().any(|m| m.name == "alertname") {
        return Err(format!("policy {} has no alertname matcher", policy.name));
    }
    let hits: Vec<Labels> = alerts
        .iter()
        .filter(|labels| {
            matchers.iter().all(|m| match labels.iter().find(|(k, _)| *k == m.name) {
                Some((_, v)) => m.matches_value(v),
                None => m.name != "alertname" && m.name != "severity",
            })
        })
        .cloned()
        .collect();
    if hits.is_empty() {
        return Err(format!(
            "policy {} ({:?}) matches no alert the rules generator produces",
            policy.name, policy.matchers
        ));
    }
    Ok(hits)
}

#[test]
fn every_default_policy_matches_a_generated_alert_routed_to_the_analyzer() {
    let alerts = generated_alerts();
    let defaults = RemediationConfig::default();
    assert!(defaults.policies.len() >= 3, "{:?}", defaults.policies);

    let dir = tempfile::tempdir().unwrap();
    generate(&RulesConfig::default(), Options::default()).unwrap().write_to(dir.path()).unwrap();
    let am_dir = dir.path().join("alertmanager");
    let amtool = require_binary(&["amtool"], "prometheus-alertmanager");

    for policy in &defaults.policies {
        let hits = matched(policy, &alerts).unwrap_or_else(|e| panic!("{e}"));
        for labels in hits {
            let mut args = vec![
                "config".to_string(),
                "routes".to_string(),
                "test".to_string(),
                "--config.file=alertmanager.yml".to_string(),
            ];
            args.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, text) = run_tool(&amtool, &args, &am_dir);
            assert!(ok, "amtool {args:?}: {text}");
            let receivers = text.lines().next().unwrap_or_default().trim().to_string();
            assert!(
                receivers.split(',').any(|r| r == alertmanager::ANALYZER),
                "policy {}: alert {labels:?} reaches {receivers:?}, not the analyzer's webhook",
                policy.name
            );
        }
    }
}

#[test]
fn a_policy_for_an_alert_nobody_emits_is_caught() {
    let alerts = generated_alerts();
    let policy = |matchers: &[&str]| PolicyConfig {
        name: "p".into(),
        matchers: matchers.iter().map(|m| m.to_string()).collect(),
        actions: vec!["a".into()],
        revert_on_resolve: false,
    };
    // The names the defaults carried before they were aligned with the generator.
    for old in ["DeepwatchModelUnavailable", "DeepwatchPerformanceDrop", "DeepwatchCanaryFailing"] {
        let err = matched(&policy(&[&format!("alertname=\"{old}\"")]), &alerts).unwrap_err();
        assert!(err.contains("matches no alert"), "{err}");
    }
    // Right name, impossible severity; no alertname at all.
    assert!(matched(&policy(&["alertname=\"ModelUnavailable\"", "severity=\"info\""]), &alerts)
        .is_err());
    assert!(matched(&policy(&["severity=\"critical\""]), &alerts).is_err());
    // Dynamic labels do not prevent a match; regular expressions are anchored.
    assert_eq!(
        matched(&policy(&["alertname=\"CanaryFailing\"", "pool!=\"\""]), &alerts).unwrap().len(),
        2
    );
    assert!(matched(&policy(&["alertname=~\"Canary\""]), &alerts).is_err());
}
