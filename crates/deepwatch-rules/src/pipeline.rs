//! Alerts on the monitoring and self-healing pipeline itself (`rules/pipeline.yml`): a
//! failing collector, a batch job that stopped pushing (stale Pushgateway group), agent pushes
//! failing, remediation actions failing, the analyzer degraded or no longer evaluating, the
//! notification bridge failing, one gateway upstream out of rotation, and fault injection
//! left on in a gateway.

use crate::condition::{case, Input, Scenario};
use crate::ids::{fired, l, node_with, INCIDENTS, OVERVIEW, PUSH_TIME};
use crate::model::{Alert, Group, Labels, Rule, RuleFile, TestCase};
use crate::prometheus::jobs;
use crate::promql::{dur, sel, series, sum_by};
use crate::Ctx;
use deepwatch_core::catalog::{agent, analyzer, common, gateway};

pub const COLLECTOR_FAILING: &str = "CollectorFailing";
pub const PUSH_STALE: &str = "PushgatewayJobStale";
pub const AGENT_PUSH_FAILING: &str = "AgentPushFailing";
pub const REMEDIATION_FAILED: &str = "RemediationFailed";
pub const ANALYZER_DEGRADED: &str = "AnalyzerDegraded";
pub const ANALYZER_STALE: &str = "AnalyzerEvaluationStale";
pub const NOTIFICATIONS_FAILING: &str = "NotificationsFailing";
pub const UPSTREAM_DOWN: &str = "UpstreamDown";
pub const FAULT_INJECTION: &str = "FaultInjectionActive";

/// How long the analyzer may go without finishing an evaluation round (its default round is
/// a minute; ten missed rounds).
pub const ANALYZER_STALE_SECS: u64 = 600;

fn alert(name: &str, expr: String, for_secs: u64, keep: u64, dashboard: &'static str) -> Alert {
    Alert {
        name: name.into(),
        expr,
        for_secs,
        keep_firing_secs: keep,
        severity: "warning",
        labels: vec![],
        summary: String::new(),
        description: String::new(),
        dashboard,
        condition: String::new(),
    }
}

fn gauge(good: f64, bad: f64) -> Input {
    Input::Gauge { good: Some(good), bad: Some(bad) }
}

fn counter() -> Input {
    Input::Counter { per_sample: 1.0, appears: false }
}

fn at(job: &str, instance: &str, more: &[(&str, &str)]) -> Labels {
    let mut x = l(&[("job", job), ("instance", instance)]);
    x.extend(l(more));
    x
}

fn analyzer_at(more: &[(&str, &str)]) -> Labels {
    at(jobs::ANALYZER, "analyzer:9466", more)
}

/// One alert and the scenario proving it.
struct Item {
    alert: Alert,
    inputs: Vec<(String, Labels, Input)>,
    fired: Labels,
    on_lag: u64,
    off_lag: u64,
}

fn items(ctx: &Ctx<'_>) -> Vec<Item> {
    let t = &ctx.cfg.thresholds;
    let w = ctx.window();
    let lag = ctx.window_secs().div_ceil(ctx.eval()) + 1;
    let mut out = Vec::new();

    let collector = node_with(&[("collector", "engine")]);
    let mut a = alert(
        COLLECTOR_FAILING,
        format!("{} == 0", sel(&common::COLLECTOR_UP).ne("collector", "gpu")),
        ctx.scaled(300),
        ctx.scaled(60),
        INCIDENTS,
    );
    a.summary = "Collector {{ $labels.collector }} of {{ $labels.job }} on {{ $labels.instance }} keeps failing".into();
    a.description = "Its source is unavailable or every run fails: the series it exports are missing or stale, and so are the alerts built on them. (The GPU collector has its own alert, GPUDriverUnavailable.)".into();
    out.push(Item {
        alert: a,
        inputs: vec![(common::COLLECTOR_UP.name.into(), collector.clone(), gauge(1.0, 0.0))],
        fired: collector,
        on_lag: 0,
        off_lag: 0,
    });

    let stale = ctx.scaled(t.push_stale_secs);
    let group = at("batch_inference", "batch-1", &[]);
    let mut a = alert(
        PUSH_STALE,
        format!("time() - {} > {}", series(PUSH_TIME), stale),
        0,
        ctx.scaled(60),
        INCIDENTS,
    );
    a.summary = "Batch job {{ $labels.job }} ({{ $labels.instance }}) has not pushed for over "
        .to_string()
        + &dur(stale);
    a.description = format!("The Pushgateway still serves the group's last values, so dashboards look current, but nothing was pushed for more than {}: the batch job stopped, hangs, or cannot reach the Pushgateway. Delete the group once the job is retired.", dur(stale));
    out.push(Item {
        alert: a,
        inputs: vec![(PUSH_TIME.into(), group.clone(), Input::Clock)],
        fired: group,
        on_lag: stale.div_ceil(ctx.eval()) + 1,
        off_lag: 0,
    });

    let pushes = sel(&agent::AGENT_PUSHES);
    let mut a = alert(
        AGENT_PUSH_FAILING,
        format!("increase({}) > 0", pushes.eq("outcome", "error").range(&w)),
        ctx.scaled(300),
        ctx.scaled(60),
        INCIDENTS,
    );
    a.summary = "Agent {{ $labels.instance }} fails to push its metrics".into();
    a.description = "Push mode (Pushgateway or remote_write) has failed for 5 minutes: where Prometheus cannot scrape this node, its metrics are not arriving. With remote_write the agent buffers up to agent.push.max_buffer_samples and counts what it drops in deepwatch_agent_push_samples_total{outcome=\"dropped\"}.".into();
    out.push(Item {
        alert: a,
        inputs: vec![(
            agent::AGENT_PUSHES.name.into(),
            node_with(&[("outcome", "error")]),
            counter(),
        )],
        fired: node_with(&[("outcome", "error")]),
        on_lag: 0,
        off_lag: lag,
    });

    let actions = sel(&analyzer::REMEDIATION_ACTIONS);
    let action = analyzer_at(&[("action", "failover_to_standby")]);
    let mut a = alert(
        REMEDIATION_FAILED,
        format!(
            "{} > 0",
            sum_by(
                &["job", "instance", "action"],
                &format!("increase({})", actions.re("outcome", "failed|revert_failed").range(&w))
            )
        ),
        0,
        ctx.scaled(900),
        INCIDENTS,
    );
    a.summary = "Remediation action {{ $labels.action }} failed".into();
    a.description = "The analyzer ran a self-healing action and it failed (or its undo failed): the fault it was meant to fix is still there and needs a person. The audit log holds the error.".into();
    out.push(Item {
        alert: a,
        inputs: vec![(
            analyzer::REMEDIATION_ACTIONS.name.into(),
            analyzer_at(&[("action", "failover_to_standby"), ("outcome", "failed")]),
            counter(),
        )],
        fired: action,
        on_lag: 0,
        off_lag: lag,
    });

    let degraded = analyzer_at(&[("reason", "prometheus_unreachable")]);
    let mut a = alert(
        ANALYZER_DEGRADED,
        format!("{} == 1", sel(&analyzer::ANALYZER_DEGRADED)),
        ctx.scaled(120),
        ctx.scaled(60),
        INCIDENTS,
    );
    a.summary = "Analyzer {{ $labels.instance }} is degraded: {{ $labels.reason }}".into();
    a.description = "The analyzer cannot do its job fully: baselines, detectors and root-cause reports are paused or partial until the reason clears.".into();
    out.push(Item {
        alert: a,
        inputs: vec![(analyzer::ANALYZER_DEGRADED.name.into(), degraded.clone(), gauge(0.0, 1.0))],
        fired: degraded,
        on_lag: 0,
        off_lag: 0,
    });

    let stale_secs = ctx.scaled(ANALYZER_STALE_SECS);
    let last = analyzer_at(&[]);
    let mut a = alert(
        ANALYZER_STALE,
        format!("time() - {} > {stale_secs}", sel(&analyzer::ANALYZER_LAST_EVALUATION)),
        0,
        ctx.scaled(60),
        INCIDENTS,
    );
    a.summary = format!(
        "Analyzer {{{{ $labels.instance }}}} has not finished an evaluation for over {}",
        dur(stale_secs)
    );
    a.description = "Its evaluation loop is stuck or far behind: anomaly scores, baselines and leak slopes on the dashboards are frozen.".into();
    out.push(Item {
        alert: a,
        inputs: vec![(analyzer::ANALYZER_LAST_EVALUATION.name.into(), last.clone(), Input::Clock)],
        fired: last,
        on_lag: stale_secs.div_ceil(ctx.eval()) + 1,
        off_lag: 0,
    });

    let notifications = sel(&analyzer::NOTIFICATIONS);
    let by = &["job", "instance", "channel"];
    let channel = analyzer_at(&[("channel", "wecom-oncall")]);
    let mut a = alert(
        NOTIFICATIONS_FAILING,
        format!(
            "{} / {} > 0.5",
            sum_by(
                by,
                &format!("rate({})", notifications.clone().eq("outcome", "failed").range(&w))
            ),
            sum_by(by, &format!("rate({})", notifications.range(&w)))
        ),
        ctx.scaled(300),
        ctx.scaled(60),
        INCIDENTS,
    );
    a.summary = "Notification channel {{ $labels.channel }} fails most messages".into();
    a.description = "More than half the messages the analyzer's notification bridge sent to this channel failed for 5 minutes: people are not being told.".into();
    out.push(Item {
        alert: a,
        inputs: vec![
            (
                analyzer::NOTIFICATIONS.name.into(),
                analyzer_at(&[("channel", "wecom-oncall"), ("outcome", "failed")]),
                counter(),
            ),
            (
                analyzer::NOTIFICATIONS.name.into(),
                analyzer_at(&[("channel", "wecom-oncall"), ("outcome", "ok")]),
                Input::Counter { per_sample: 0.0, appears: false },
            ),
        ],
        fired: channel,
        on_lag: lag,
        off_lag: lag,
    });

    let upstream =
        at(jobs::GATEWAY, "gw-1:9845", &[("pool", "blue"), ("upstream", "http://10.0.0.1:8000")]);
    let mut a = alert(
        UPSTREAM_DOWN,
        format!("{} == 0", sel(&gateway::UPSTREAM_UP)),
        ctx.scaled(60),
        ctx.scaled(60),
        OVERVIEW,
    );
    a.summary =
        "Upstream {{ $labels.upstream }} of pool {{ $labels.pool }} is out of rotation".into();
    a.description = "The gateway's passive or active health took the upstream out: its pool serves with less capacity (ModelUnavailable fires if no upstream is left).".into();
    out.push(Item {
        alert: a,
        inputs: vec![(gateway::UPSTREAM_UP.name.into(), upstream.clone(), gauge(1.0, 0.0))],
        fired: upstream,
        on_lag: 0,
        off_lag: 0,
    });

    let faults = sel(&gateway::FAULTS_INJECTED);
    let kind = at(
        jobs::GATEWAY,
        "gw-1:9845",
        &[("endpoint", "/v1/chat/completions"), ("kind", "latency")],
    );
    let mut a = alert(
        FAULT_INJECTION,
        format!("increase({}) > 0", faults.range(&w)),
        0,
        ctx.scaled(300),
        INCIDENTS,
    );
    a.summary = "Gateway {{ $labels.instance }} is injecting {{ $labels.kind }} faults".into();
    a.description = "A fault-injection rule is live: real requests are being delayed, failed or cut on purpose. Fine during a chaos test; otherwise remove the rule (DELETE /admin/faults).".into();
    out.push(Item {
        alert: a,
        inputs: vec![(gateway::FAULTS_INJECTED.name.into(), kind.clone(), counter())],
        fired: kind,
        on_lag: 0,
        off_lag: lag,
    });
    out
}

pub fn file(ctx: &Ctx<'_>) -> RuleFile {
    let mut alerts = Vec::new();
    let mut tests: Vec<TestCase> = Vec::new();
    for item in items(ctx) {
        tests.push(case(
            ctx,
            &item.alert,
            Scenario {
                name: "fires, holds through a gap, recovers".into(),
                inputs: item.inputs,
                fired: vec![fired(&item.fired, item.alert.severity)],
                on_lag: item.on_lag,
                off_lag: item.off_lag,
            },
        ));
        alerts.push(item.alert);
    }
    RuleFile {
        stem: "pipeline",
        groups: vec![Group {
            name: "deepwatch-pipeline".into(),
            interval_secs: ctx.eval(),
            rules: alerts.into_iter().map(Rule::Alert).collect(),
        }],
        tests,
    }
}
