//! `alertmanager/alertmanager.yml` (Alertmanager 0.25): routing by severity (critical -> phone
//! webhook and the analyzer's webhook after a 1 s `group_wait`, warning -> WeCom, info -> e-mail;
//! warnings the analyzer remediates by default -> its webhook too), grouping, inhibition
//! (critical mutes warning/info of the same alertname and instance; a node down mutes its GPU
//! alerts), maintenance windows as `time_intervals`; plus `amtool config routes test` cases
//! for every severity, written as a script and run by the test suite.

use crate::ids::names;
use crate::promql::dur;
use crate::yaml::Y;
use crate::{ymap, yseq, Ctx};
use deepwatch_core::config::remediation::{MatchOp, Matcher, RemediationConfig};
use deepwatch_core::config::rules::{Receivers, WebhookAuthorization};

/// `group_wait` of the critical routes: long enough for the alerts of one rule evaluation
/// (sent in one batch) to go out in one notification, short enough that a page leaves within
/// 20 s of the fault (the rest of the budget is the seed's three 5 s samples).
pub const CRITICAL_GROUP_WAIT_SECS: u64 = 1;

pub const PHONE: &str = "phone-sms";
pub const ANALYZER: &str = "analyzer-webhook";
pub const WECOM: &str = "wecom";
pub const EMAIL: &str = "email";

/// One routing case: alert labels and the receivers they must reach, in order.
#[derive(Debug, Clone)]
pub struct RouteCase {
    pub labels: Vec<(&'static str, &'static str)>,
    pub receivers: Vec<&'static str>,
}

/// Alert names a default `[remediation]` policy acts on: below critical they are routed to
/// the analyzer's webhook as well as to their severity's receiver (critical alerts reach it
/// anyway). Taken from the defaults, so a new default policy is routed without a second list.
pub fn remediable() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for policy in RemediationConfig::default().policies {
        for m in policy.matchers.iter().filter_map(|m| Matcher::parse(m).ok()) {
            if m.name == "alertname" && m.op == MatchOp::Equal && !out.contains(&m.value) {
                out.push(m.value);
            }
        }
    }
    out
}

pub fn route_cases() -> Vec<RouteCase> {
    vec![
        RouteCase {
            labels: vec![
                ("alertname", names::LATENCY),
                ("severity", "critical"),
                ("model", "deepseek-r1"),
            ],
            receivers: vec![PHONE, ANALYZER],
        },
        RouteCase {
            labels: vec![
                ("alertname", names::MODEL_UNAVAILABLE),
                ("severity", "critical"),
                ("priority", "P1"),
            ],
            receivers: vec![PHONE, ANALYZER],
        },
        RouteCase {
            labels: vec![
                ("alertname", names::GPU_UTILIZATION),
                ("severity", "warning"),
                ("instance", "gpu-node-1:9844"),
            ],
            receivers: vec![WECOM],
        },
        RouteCase {
            labels: vec![
                ("alertname", names::CANARY_FAILING),
                ("severity", "warning"),
                ("pool", "green"),
            ],
            receivers: vec![ANALYZER, WECOM],
        },
        RouteCase {
            labels: vec![
                ("alertname", names::PERFORMANCE_DROP),
                ("severity", "warning"),
                ("priority", "P2"),
            ],
            receivers: vec![ANALYZER, WECOM],
        },
        RouteCase {
            labels: vec![("alertname", "AccuracyDrop"), ("severity", "info")],
            receivers: vec![EMAIL],
        },
        // No severity at all: the root's default receiver, so nothing is lost.
        RouteCase { labels: vec![("alertname", "Unlabelled")], receivers: vec![EMAIL] },
    ]
}

fn matchers(list: &[&str]) -> Y {
    Y::Seq(list.iter().map(|m| Y::from(*m)).collect())
}

fn time_intervals(ctx: &Ctx<'_>) -> Y {
    Y::Seq(
        ctx.cfg
            .maintenance
            .iter()
            .map(|m| {
                ymap! {
                    "name" => &m.name,
                    "time_intervals" => yseq![ymap! {
                        "weekdays" => m.weekdays.clone(),
                        "times" => yseq![ymap! { "start_time" => &m.start, "end_time" => &m.end }],
                        "location" => &m.location,
                    }],
                }
            })
            .collect(),
    )
}

/// The analyzer's webhook config: no `max_alerts` cut, resolved alerts included, and the
/// bearer token the daemon demands (`remediation.webhook_token`) when one is set; without it
/// every call would be refused with 401 and self-healing would stop silently.
fn analyzer_webhook(r: &Receivers) -> Y {
    let mut hook =
        ymap! { "url" => &r.analyzer_webhook_url, "send_resolved" => true, "max_alerts" => 0 };
    let authorization = match &r.analyzer_authorization {
        None => return hook,
        Some(WebhookAuthorization::Credentials(token)) => {
            ymap! { "type" => "Bearer", "credentials" => token }
        }
        Some(WebhookAuthorization::CredentialsFile(path)) => {
            ymap! { "type" => "Bearer", "credentials_file" => path }
        }
    };
    hook.push("http_config", ymap! { "authorization" => authorization });
    hook
}

pub fn config(ctx: &Ctx<'_>) -> String {
    let r = &ctx.cfg.receivers;
    let mute: Vec<String> = ctx.cfg.maintenance.iter().map(|m| m.name.clone()).collect();
    let with_mute = |mut route: Y| {
        if !mute.is_empty() {
            route.push("mute_time_intervals", mute.clone());
        }
        route
    };
    let route = ymap! {
        "receiver" => EMAIL,
        "group_by" => yseq!["alertname", "instance", "model"],
        "group_wait" => dur(ctx.scaled(30)),
        "group_interval" => dur(ctx.scaled(300)),
        "repeat_interval" => dur(ctx.scaled(4 * 3600)),
        "routes" => yseq![
            ymap! {
                "receiver" => PHONE,
                "matchers" => matchers(&["severity=\"critical\""]),
                "group_wait" => dur(ctx.scaled(CRITICAL_GROUP_WAIT_SECS)),
                "group_interval" => dur(ctx.scaled(60)),
                "repeat_interval" => dur(ctx.scaled(3600)),
                "continue" => true,
            },
            ymap! {
                "receiver" => ANALYZER,
                "matchers" => matchers(&["severity=\"critical\""]),
                "group_wait" => dur(ctx.scaled(CRITICAL_GROUP_WAIT_SECS)),
                "group_interval" => dur(ctx.scaled(60)),
            },
            // Warnings with a default remediation policy also reach the analyzer (and go on
            // to WeCom); muted in maintenance windows like the rest of the warnings.
            with_mute(ymap! {
                "receiver" => ANALYZER,
                "matchers" => matchers(&[&format!("alertname=~\"{}\"", remediable().join("|"))]),
                "group_wait" => dur(ctx.scaled(10)),
                "group_interval" => dur(ctx.scaled(60)),
                "continue" => true,
            }),
            with_mute(ymap! { "receiver" => WECOM, "matchers" => matchers(&["severity=\"warning\""]) }),
            with_mute(ymap! { "receiver" => EMAIL, "matchers" => matchers(&["severity=\"info\""]) }),
        ],
    };
    let inhibit = yseq![
        ymap! {
            "source_matchers" => matchers(&["severity=\"critical\""]),
            "target_matchers" => matchers(&["severity=~\"warning|info\""]),
            "equal" => yseq!["alertname", "instance"],
        },
        ymap! {
            "source_matchers" => matchers(&["severity=\"warning\""]),
            "target_matchers" => matchers(&["severity=\"info\""]),
            "equal" => yseq!["alertname", "instance"],
        },
        ymap! {
            "source_matchers" => matchers(&[&format!("alertname=\"{}\"", names::NODE_DOWN)]),
            "target_matchers" => matchers(&[&format!("alertname=~\"{}\"", names::GPU_ALERTS_RE)]),
            "equal" => yseq!["instance"],
        },
    ];
    let w = &r.wecom;
    let e = &r.email;
    let receivers = yseq![
        ymap! { "name" => PHONE, "webhook_configs" => yseq![ymap! { "url" => &r.phone_webhook_url, "send_resolved" => true }] },
        ymap! { "name" => ANALYZER, "webhook_configs" => yseq![analyzer_webhook(r)] },
        ymap! { "name" => WECOM, "wechat_configs" => yseq![ymap! {
            "send_resolved" => true,
            "api_url" => &w.api_url,
            "corp_id" => &w.corp_id,
            "agent_id" => &w.agent_id,
            "api_secret" => &w.api_secret,
            "to_party" => &w.to_party,
            "message_type" => "markdown",
        }] },
        ymap! { "name" => EMAIL, "email_configs" => yseq![ymap! {
            "to" => &e.to,
            "from" => &e.from,
            "smarthost" => &e.smarthost,
            "require_tls" => e.require_tls,
            "send_resolved" => true,
        }] },
    ];
    let mut doc = ymap! {
        "global" => ymap! { "resolve_timeout" => dur(ctx.scaled(300)) },
        "route" => route,
        "inhibit_rules" => inhibit,
        "receivers" => receivers,
    };
    if !ctx.cfg.maintenance.is_empty() {
        doc.push("time_intervals", time_intervals(ctx));
    }
    "# Generated by `deepwatch rules` from deepwatch.toml; do not edit.\n\
     # Check: amtool check-config alertmanager.yml; routes: sh test-routes.sh\n"
        .to_string()
        + &doc.render()
}

/// amtool arguments for one case (run from the folder holding alertmanager.yml).
pub fn amtool_args(case: &RouteCase) -> Vec<String> {
    let mut args = vec![
        "config".to_string(),
        "routes".to_string(),
        "test".to_string(),
        "--config.file=alertmanager.yml".to_string(),
        format!("--verify.receivers={}", case.receivers.join(",")),
    ];
    args.extend(case.labels.iter().map(|(k, v)| format!("{k}={v}")));
    args
}

pub fn test_script() -> String {
    let mut out = String::from(
        "#!/bin/sh\n# Generated by `deepwatch rules`: every severity reaches its receivers.\nset -e\ncd \"$(dirname \"$0\")\"\namtool check-config alertmanager.yml\n",
    );
    for case in route_cases() {
        out.push_str("amtool ");
        out.push_str(&amtool_args(&case).join(" "));
        out.push('\n');
    }
    out
}
