//! Validation tests of the `[remediation]` section: every bad field named with its path.

use super::*;
use crate::config::Config;

fn problems_of(toml: &str) -> String {
    match Config::from_toml_str(toml).unwrap().validate() {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_bad_field_is_named_with_its_path() {
    let text = problems_of(
        r#"
[remediation]
public_url = "nowhere"
[remediation.gateway]
url = "ftp://gw"
[remediation.scaling]
min_replicas = 5
max_replicas = 2
[[remediation.policies]]
name = "p"
matchers = ['alertname=~"("']
actions = ["missing"]
[[remediation.actions]]
name = "s"
kind = "scale"
pool = "primary"
spare_upstreams = ["localhost:1"]
max_tokens_cap = 5
[[remediation.actions]]
name = "h"
kind = "restart_hook"
command = []
[[remediation.actions]]
name = "h"
kind = "degrade"
tenants = ["free"]
"#,
    );
    for expected in [
        "remediation.public_url: is not a valid URL",
        "remediation.gateway.url: must be an http or https URL",
        "remediation.scaling.max_replicas: must be at least min_replicas (5), got 2",
        "remediation.policies[0].matchers[0]: ",
        "remediation.policies[0].actions[0]: no [[remediation.actions]] is named \"missing\"",
        "remediation.actions[0].spare_upstreams[0]: must be an http or https URL",
        "remediation.actions[0].max_tokens_cap: is not used by kind \"scale\"",
        "remediation.actions[1].command: must name a program to run",
        "remediation.actions[2].name: duplicate action name \"h\"",
        "remediation.actions[2]: tenants and requests_per_second go together",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn unknown_action_kind_is_a_parse_error_naming_the_value() {
    let err = Config::from_toml_str("[[remediation.actions]]\nname = \"x\"\nkind = \"reboot\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("reboot"), "{err}");
}

#[test]
fn audit_log_defaults_into_the_state_dir() {
    let c = RemediationConfig { state_dir: "/s".into(), ..Default::default() };
    assert_eq!(c.audit_log_path(), std::path::PathBuf::from("/s/audit.jsonl"));
}
