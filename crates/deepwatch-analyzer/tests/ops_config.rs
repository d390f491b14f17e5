//! The operations config sections through `Config::load`: deliberately wrong fixtures fail
//! with every problem named by its path, and the complete demo-style fixture loads and starts
//! a daemon (every action, channel and prober built from it).

use crate::support;
use deepwatch_core::config::Config;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ops").join(name)
}

fn load_error(name: &str) -> String {
    match Config::load(&fixture(name)) {
        Ok(_) => panic!("{name} loaded but is wrong on purpose"),
        Err(e) => e.to_string(),
    }
}

fn assert_all(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "missing {e:?} in\n{text}");
    }
}

#[test]
fn wrong_remediation_section_names_every_problem() {
    let text = load_error("bad_remediation.toml");
    assert_all(
        &text,
        &[
            "remediation.queue_capacity: must be between 1 and 1000000, got 0",
            "remediation.public_url: must be an http or https URL, got scheme \"analyzer\"",
            "remediation.gateway.url: must be an http or https URL, got scheme \"gateway\"",
            "remediation.scaling.target_load_ratio: must be between 0.05 and 1, got 1.5",
            "remediation.policies[0].matchers[1]: \"severity~\\\"critical\\\"\" has no operator",
            "remediation.policies[0].actions[1]: no [[remediation.actions]] is named \"reboot_everything\"",
            "remediation.actions[0].pool: must not be empty",
            "remediation.actions[1].spare_upstreams: must list at least one URL",
            "remediation.actions[1].command: is not used by kind \"scale\"",
        ],
    );
}

#[test]
fn wrong_notify_section_names_every_problem() {
    let text = load_error("bad_notify.toml");
    assert_all(
        &text,
        &[
            "notify.utc_offset: must be Z or an offset like +08:00, got \"UTC+8\"",
            "notify.channels[0].name: use letters, digits, _ and - only (it is a URL path), got \"oncall/wecom\"",
            "notify.channels[0].url: a WeCom robot URL carries ?key=<robot key>",
            "notify.channels[1].url: a DingTalk robot URL carries ?access_token=<token>",
        ],
    );
}

#[test]
fn wrong_probes_section_names_every_problem() {
    let text = load_error("bad_probes.toml");
    assert_all(
        &text,
        &[
            "probes.gateway_url: must be an http or https URL, got scheme \"localhost\"",
            "probes.interval_secs: must be greater than 0, got 0",
            "probes.targets[0].model_version: must not be empty",
            "probes.targets[0].prompts[0].expect: is not a valid regular expression",
        ],
    );
}

#[test]
fn an_unknown_action_kind_is_a_parse_error_with_file_and_value() {
    let text = load_error("bad_kind.toml");
    assert_all(&text, &["bad_kind.toml", "reboot", "failover"]);
}

#[tokio::test]
async fn the_complete_fixture_loads_and_starts_a_daemon() {
    let mut config = Config::load(&fixture("good_ops.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.remediation.policies.len(), 4);
    assert_eq!(config.notify.channels.len(), 3);
    let dir = tempfile::tempdir().unwrap();
    config.remediation.state_dir = dir.path().join("state").display().to_string();
    config.analyzer.report_dir = dir.path().join("reports").display().to_string();
    config.analyzer.prometheus_url = format!("http://{}", deepwatch_testkit::free_addr());
    let daemon = support::start(&config, None).await;
    let text = support::metrics(&format!("http://{}", daemon.addr)).await;
    for action in [
        "failover_to_standby",
        "scale_sim_pool",
        "degrade_free_tier",
        "rollback_canary",
        "restart_engine",
    ] {
        let series =
            format!("deepwatch_remediation_actions_total{{action=\"{action}\",outcome=\"ok\"}}");
        assert_eq!(support::sample(&text, &series), Some(0.0), "{series}\n{text}");
    }
    assert!(
        text.contains("deepwatch_notifications_total{channel=\"oncall-feishu\",outcome=\"ok\"} 0")
    );
    assert!(text.contains("# TYPE deepwatch_probe_accuracy_ratio gauge"), "{text}");
    daemon.shutdown().await;
}
