//! Alerts on what the gateway and the analyzer report (`rules/events.yml`): traffic failed
//! over to a lower-priority pool, sensitive data seen in prompts or outputs, memory predicted
//! to run out at the current leak rate, a pool whose outputs drift from its peer pool, upstream
//! retries hiding a flaky pool, a rollout that stopped stepping, the analyzer refusing Alertmanager's webhook
//! calls (self-healing stops), a gateway refusing a config reload, and an agent in remote_write push mode losing samples. Each with the promtool case that proves
//! it fires, holds through a gap and recovers.

use crate::condition::{case, Input, Scenario};
use crate::ids::{fired, l, node_with, INCIDENTS, MODEL, OVERVIEW};
use crate::model::{Alert, Group, Labels, Rule, RuleFile, TestCase};
use crate::prometheus::jobs;
use crate::promql::{dur, sel, sum_by};
use crate::Ctx;
use deepwatch_core::catalog::{agent, analyzer, gateway};

pub const POOL_FAILOVER: &str = "PoolFailover";
pub const SENSITIVE_DATA: &str = "SensitiveDataDetected";
pub const MEMORY_EXHAUSTION: &str = "MemoryExhaustionPredicted";
pub const POOL_DRIFT: &str = "PoolOutputDrift";
pub const PUSH_SAMPLES_LOST: &str = "AgentPushSamplesLost";
pub const RETRIES_HIGH: &str = "UpstreamRetriesHigh";
pub const ROLLOUT_STALLED: &str = "RolloutStalled";
pub const WEBHOOK_REFUSED: &str = "AnalyzerWebhookRefused";
pub const REQUEST_LOG_LOSING: &str = "RequestLogLosingLines";
pub const CONFIG_RELOAD_FAILED: &str = "GatewayConfigReloadFailed";

/// A running rollout that logged no deploy event (step, promote, rollback) for this long is
/// stuck: usually its canary gets too few requests to be judged.
pub const ROLLOUT_STALL_SECS: u64 = 1800;

/// Share of requests that needed a retry above which a pool is flaky even though clients
/// still get answers.
pub const RETRY_RATIO: f64 = 0.05;

/// Warn when a leaking process or GPU is predicted to run out of memory within this time at
/// its current slope: long enough to drain and restart it in daylight.
pub const EXHAUSTION_WARN_SECS: u64 = 4 * 3600;

struct Item {
    alert: Alert,
    inputs: Vec<(String, Labels, Input)>,
    fired: Labels,
    on_lag: u64,
    off_lag: u64,
}

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

fn at(job: &str, instance: &str, more: &[(&str, &str)]) -> Labels {
    let mut x = l(&[("job", job), ("instance", instance)]);
    x.extend(l(more));
    x
}

fn counter() -> Input {
    Input::Counter { per_sample: 1.0, appears: false }
}

fn steady(v: f64) -> Input {
    Input::Gauge { good: Some(v), bad: Some(v) }
}

fn items(ctx: &Ctx<'_>) -> Vec<Item> {
    let w = ctx.window();
    let lag = ctx.window_secs().div_ceil(ctx.eval()) + 1;
    let mut out = Vec::new();

    let failover =
        at(jobs::GATEWAY, "gw-1:9845", &[("pool", "standby"), ("reason", "no_healthy_upstream")]);
    let mut a = alert(
        POOL_FAILOVER,
        format!("increase({}) > 0", sel(&gateway::FAILOVERS).range(&w)),
        0,
        ctx.scaled(600),
        OVERVIEW,
    );
    a.summary = "Gateway {{ $labels.instance }} moved traffic to pool {{ $labels.pool }} ({{ $labels.reason }})".into();
    a.description = "The pools ahead of this one had no healthy upstream (or an operator or the analyzer commanded the move): requests are served by the standby, usually with less capacity or an older model version. Find out why the primary pool failed before the standby saturates.".into();
    out.push(Item {
        inputs: vec![(gateway::FAILOVERS.name.into(), failover.clone(), counter())],
        fired: failover,
        alert: a,
        on_lag: 0,
        off_lag: lag,
    });

    let by = &["job", "instance", "tenant", "kind", "direction", "action"];
    let sensitive = at(
        jobs::GATEWAY,
        "gw-1:9845",
        &[("tenant", "acme"), ("kind", "cn_id"), ("direction", "output"), ("action", "redact")],
    );
    let mut a = alert(
        SENSITIVE_DATA,
        format!(
            "{} > 0",
            sum_by(by, &format!("increase({})", sel(&gateway::SENSITIVE_MATCHES).range(&w)))
        ),
        0,
        ctx.scaled(900),
        OVERVIEW,
    );
    a.severity = "info";
    a.summary = "{{ $labels.kind }} found in {{ $labels.direction }} of tenant {{ $labels.tenant }} ({{ $labels.action }})".into();
    a.description = "The gateway's scanner matched sensitive data. In prompts it means a client sends personal data or secrets to the model; in outputs the model returned it. The value itself is never logged; the request log has the request id.".into();
    out.push(Item {
        inputs: vec![(gateway::SENSITIVE_MATCHES.name.into(), sensitive.clone(), counter())],
        fired: sensitive,
        alert: a,
        on_lag: 0,
        off_lag: lag,
    });

    let leak =
        at(jobs::ANALYZER, "analyzer:9466", &[("series", "engine_rss"), ("process", "vllm")]);
    let tte = sel(&analyzer::LEAK_TIME_TO_EXHAUSTION);
    let slope = sel(&analyzer::LEAK_SLOPE);
    let warn = ctx.scaled(EXHAUSTION_WARN_SECS);
    let mut a = alert(
        MEMORY_EXHAUSTION,
        format!("{tte} < {warn} and {slope} > 0"),
        ctx.scaled(300),
        ctx.scaled(600),
        INCIDENTS,
    );
    a.summary = format!(
        "{{{{ $labels.series }}}} on {{{{ $labels.instance }}}} runs out of memory in under {} at its leak rate",
        dur(warn)
    );
    a.description = "The analyzer's robust (Theil-Sen) slope of this memory series points at its limit within the warning time: plan a drain and restart before the OOM killer or a CUDA out-of-memory does it mid-request. deepwatch_leak_slope_bytes_per_second has the rate.".into();
    a.condition = format!(
        "predicted time to exhaustion < {} while the slope is positive, for {}",
        dur(warn),
        dur(ctx.scaled(300))
    );
    out.push(Item {
        inputs: vec![
            (
                analyzer::LEAK_TIME_TO_EXHAUSTION.name.into(),
                leak.clone(),
                Input::Gauge { good: Some((warn * 6) as f64), bad: Some((warn / 4) as f64) },
            ),
            (analyzer::LEAK_SLOPE.name.into(), leak.clone(), steady(200_000.0)),
        ],
        fired: leak,
        alert: a,
        on_lag: 0,
        off_lag: 0,
    });

    let drift = at(
        jobs::ANALYZER,
        "analyzer:9466",
        &[
            ("model", "deepseek-r1"),
            ("pool", "green"),
            ("reference_pool", "blue"),
            ("kind", "length"),
        ],
    );
    let mut a = alert(
        POOL_DRIFT,
        format!(
            "{} > {}",
            sel(&analyzer::DRIFT_POOL_DIVERGENCE),
            sel(&analyzer::DRIFT_POOL_THRESHOLD)
        ),
        ctx.scaled(600),
        ctx.scaled(600),
        MODEL,
    );
    a.summary = "Outputs of pool {{ $labels.pool }} drift from {{ $labels.reference_pool }} ({{ $labels.kind }}, {{ $labels.model }})".into();
    a.description = "Two pools serving the same model answer differently: the output distribution (length, finish reasons, refusals) of one diverges from the other beyond the threshold adjusted for both pools' sample sizes. Typical causes: a different model version, quantization or sampling defaults on one pool, or a broken replica.".into();
    a.condition =
        format!("pool-to-pool divergence above its threshold for {}", dur(ctx.scaled(600)));
    out.push(Item {
        inputs: vec![
            (
                analyzer::DRIFT_POOL_DIVERGENCE.name.into(),
                drift.clone(),
                Input::Gauge { good: Some(0.05), bad: Some(0.6) },
            ),
            (analyzer::DRIFT_POOL_THRESHOLD.name.into(), drift.clone(), steady(0.2)),
        ],
        fired: drift,
        alert: a,
        on_lag: 0,
        off_lag: 0,
    });

    let by = &["job", "instance", "pool"];
    let pool = at(jobs::GATEWAY, "gw-1:9845", &[("pool", "blue")]);
    let mut a = alert(
        RETRIES_HIGH,
        format!(
            "{} / {} > {}",
            sum_by(by, &format!("rate({})", sel(&gateway::RETRIES).range(&w))),
            sum_by(by, &format!("rate({})", sel(&gateway::REQUESTS).range(&w))),
            crate::promql::num(RETRY_RATIO)
        ),
        ctx.scaled(300),
        ctx.scaled(300),
        OVERVIEW,
    );
    a.summary = format!(
        "Over {}% of requests to pool {{{{ $labels.pool }}}} need a retry",
        crate::promql::num(RETRY_RATIO * 100.0)
    );
    a.description = "The gateway retries upstream connects and errors before the first byte, so clients still get answers, but the pool is flaky: one upstream refuses, resets or times out. Each retry adds latency and load. UpstreamDown fires once health takes the upstream out.".into();
    out.push(Item {
        inputs: vec![
            (
                gateway::RETRIES.name.into(),
                at(jobs::GATEWAY, "gw-1:9845", &[("pool", "blue"), ("reason", "connect")]),
                counter(),
            ),
            (
                gateway::REQUESTS.name.into(),
                at(
                    jobs::GATEWAY,
                    "gw-1:9845",
                    &[
                        ("pool", "blue"),
                        ("model", "deepseek-r1"),
                        ("outcome", "ok"),
                        ("code", "200"),
                    ],
                ),
                Input::Counter { per_sample: 10.0, appears: false },
            ),
        ],
        fired: pool,
        alert: a,
        on_lag: lag,
        off_lag: lag,
    });

    let stall = ctx.scaled(ROLLOUT_STALL_SECS);
    let by = &["job", "instance", "pool"];
    let canary = at(jobs::GATEWAY, "gw-1:9845", &[("pool", "green")]);
    let mut a = alert(
        ROLLOUT_STALLED,
        format!(
            "(max by (job, instance, pool) ({}) > 0) and on (job, instance, pool) (time() - {} > {stall})",
            sel(&gateway::ROLLOUT_STEP),
            crate::promql::agg_by("max", by, &sel(&gateway::DEPLOY_LAST_EVENT).to_string()),
        ),
        0,
        ctx.scaled(60),
        OVERVIEW,
    );
    a.summary =
        format!("Rollout of pool {{{{ $labels.pool }}}} has not moved for over {}", dur(stall));
    a.description = "A canary rollout is in progress but logged no step, promotion or rollback: usually the canary receives too few requests to be judged, or the gateway's rollout loop is stuck. Two model versions keep serving side by side meanwhile.".into();
    a.condition = format!("rollout step > 0 and no deploy event for {}", dur(stall));
    let mut event = canary.clone();
    event.push(("event".into(), "step".into()));
    out.push(Item {
        inputs: vec![
            (gateway::ROLLOUT_STEP.name.into(), canary.clone(), steady(2.0)),
            (gateway::DEPLOY_LAST_EVENT.name.into(), event, Input::Clock),
        ],
        fired: canary,
        alert: a,
        on_lag: stall.div_ceil(ctx.eval()) + 1,
        off_lag: 0,
    });

    let refused = at(jobs::ANALYZER, "analyzer:9466", &[("reason", "unauthorized")]);
    let mut a = alert(
        WEBHOOK_REFUSED,
        format!(
            "{} > 0",
            sum_by(
                &["job", "instance", "reason"],
                &format!("increase({})", sel(&analyzer::WEBHOOK_REFUSED).range(&w))
            )
        ),
        0,
        ctx.scaled(600),
        INCIDENTS,
    );
    a.summary =
        "Analyzer {{ $labels.instance }} refuses Alertmanager's webhook calls ({{ $labels.reason }})".into();
    a.description = "The analyzer answered webhook calls with an error (wrong or missing token, a body it cannot read, its queue full, its journal failing, or shutting down). Alertmanager retries and then gives up: the alerts of those calls get no root-cause report and no self-healing action.".into();
    out.push(Item {
        inputs: vec![(analyzer::WEBHOOK_REFUSED.name.into(), refused.clone(), counter())],
        fired: refused,
        alert: a,
        on_lag: 0,
        off_lag: lag,
    });

    let log = at(jobs::GATEWAY, "gw-1:9845", &[("outcome", "dropped")]);
    let mut a = alert(
        REQUEST_LOG_LOSING,
        format!(
            "increase({}) > 0",
            sel(&gateway::REQUEST_LOG_LINES).re("outcome", "dropped|failed").range(&w)
        ),
        0,
        ctx.scaled(600),
        INCIDENTS,
    );
    a.summary =
        "Gateway {{ $labels.instance }} request log is losing lines ({{ $labels.outcome }})".into();
    a.description = "The request log's writer fell behind (dropped) or its writes fail (failed): requests are served but not logged, so audits, cost reports and root-cause reports miss them.".into();
    out.push(Item {
        inputs: vec![(gateway::REQUEST_LOG_LINES.name.into(), log.clone(), counter())],
        fired: log,
        alert: a,
        on_lag: 0,
        off_lag: lag,
    });

    let reload =
        at(jobs::GATEWAY, "gw-1:9845", &[("pool", "all"), ("event", "config_reload_failed")]);
    let mut a = alert(
        CONFIG_RELOAD_FAILED,
        format!(
            "increase({}) > 0",
            sel(&gateway::DEPLOY_EVENTS).eq("event", "config_reload_failed").range(&w)
        ),
        0,
        ctx.scaled(900),
        INCIDENTS,
    );
    a.summary = "Gateway {{ $labels.instance }} refused a config reload".into();
    a.description = "A SIGHUP reload found a config file that does not parse or fails validation: the gateway keeps running on its previous config, so the change someone made (weights, upstreams, prices, budgets) is not in effect. The gateway's event log has the reasons.".into();
    out.push(Item {
        inputs: vec![(gateway::DEPLOY_EVENTS.name.into(), reload.clone(), counter())],
        fired: reload,
        alert: a,
        on_lag: 0,
        off_lag: lag,
    });

    let lost = node_with(&[("outcome", "dropped")]);
    let mut a = alert(
        PUSH_SAMPLES_LOST,
        format!(
            "increase({}) > 0",
            sel(&agent::AGENT_PUSH_SAMPLES).re("outcome", "dropped|rejected").range(&w)
        ),
        0,
        ctx.scaled(600),
        INCIDENTS,
    );
    a.summary = "Agent {{ $labels.instance }} lost pushed samples ({{ $labels.outcome }})".into();
    a.description = "In remote_write push mode the agent either dropped samples because its buffer (agent.push.max_buffer_samples) filled while the receiver was down, or the receiver refused them with a 4xx: those points are gone for good. Gaps in this node's graphs and alerts follow.".into();
    out.push(Item {
        inputs: vec![(agent::AGENT_PUSH_SAMPLES.name.into(), lost.clone(), counter())],
        fired: lost,
        alert: a,
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
        stem: "events",
        groups: vec![Group {
            name: "deepwatch-events".into(),
            interval_secs: ctx.eval(),
            rules: alerts.into_iter().map(Rule::Alert).collect(),
        }],
        tests,
    }
}
