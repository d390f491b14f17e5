//! Inference-engine alerts from the agent's normalized engine metrics and log tail
//! (`rules/engine.yml`): an engine that hangs while `/health` answers (stalled), an engine
//! whose metrics endpoint is down or keeps failing, restarts (counter resets), queue depth,
//! queue time and preemptions (KV-cache saturation), CUDA out-of-memory and other configured
//! log patterns.

use crate::condition::{case, Input, Scenario};
use crate::hysteresis::{level_pair, Watched};
use crate::ids::{fired, node_with, RESOURCES};
use crate::model::{Alert, Group, Labels, Rule, RuleFile, TestCase};
use crate::promql::{dur, sel, sum_by};
use crate::recording::Names;
use crate::Ctx;
use deepwatch_core::catalog::agent;

pub const STALLED: &str = "EngineStalled";
pub const DOWN: &str = "EngineDown";
pub const RESTARTED: &str = "EngineRestarted";
pub const SCRAPE_FAILING: &str = "EngineScrapeFailing";
pub const QUEUE_DEPTH: &str = "EngineQueueDepthHigh";
pub const QUEUE_TIME: &str = "EngineQueueTimeHigh";
pub const PREEMPTIONS: &str = "EnginePreemptionsHigh";
pub const CUDA_OOM: &str = "CudaOutOfMemory";
pub const LOG_PATTERN: &str = "LogPatternMatched";

/// The log pattern name (in `[[agent.logs]] patterns`) whose matches are CUDA out-of-memory
/// errors: they page; every other pattern warns.
pub const CUDA_OOM_PATTERN: &str = "cuda_oom";

fn engine_labels() -> Labels {
    node_with(&[("engine", "vllm-0"), ("engine_kind", "vllm")])
}

fn model_engine_labels() -> Labels {
    node_with(&[("engine", "vllm-0"), ("engine_kind", "vllm"), ("model", "deepseek-r1")])
}

fn alert(name: &str, severity: &'static str, expr: String, for_secs: u64, keep: u64) -> Alert {
    Alert {
        name: name.into(),
        expr,
        for_secs,
        keep_firing_secs: keep,
        severity,
        labels: vec![],
        summary: String::new(),
        description: String::new(),
        dashboard: RESOURCES,
        condition: String::new(),
    }
}

fn gauge(good: f64, bad: f64) -> Input {
    Input::Gauge { good: Some(good), bad: Some(bad) }
}

fn health(ctx: &Ctx<'_>, alerts: &mut Vec<Alert>, tests: &mut Vec<TestCase>) {
    let w = ctx.window();
    let lag = ctx.window_secs().div_ceil(ctx.eval()) + 1;

    let mut a = alert(
        STALLED,
        "critical",
        format!("{} == 1", sel(&agent::ENGINE_STALLED)),
        ctx.scaled(10),
        ctx.scaled(60),
    );
    a.summary = "Engine {{ $labels.engine }} on {{ $labels.instance }} is stalled: requests run, no token is produced".into();
    a.description = "Requests are running but the engine's progress counters have not moved for the agent's stall time, while its /health may still answer 200. Clients hang until they time out. Resolves a minute after progress resumes.".into();
    tests.push(case(
        ctx,
        &a,
        Scenario {
            name: "a hung engine pages, progress clears it".into(),
            inputs: vec![(agent::ENGINE_STALLED.name.into(), engine_labels(), gauge(0.0, 1.0))],
            fired: vec![fired(&engine_labels(), "critical")],
            on_lag: 0,
            off_lag: 0,
        },
    ));
    alerts.push(a);

    let mut a = alert(
        DOWN,
        "warning",
        format!("{} == 0", sel(&agent::ENGINE_UP)),
        ctx.scaled(60),
        ctx.scaled(60),
    );
    a.summary =
        "Engine {{ $labels.engine }} on {{ $labels.instance }} does not answer its metrics scrape"
            .into();
    a.description = "The agent cannot read the engine's /metrics (refused, timed out or failing). The engine process is likely down or wedged; the gateway's health checks take it out of rotation.".into();
    tests.push(case(
        ctx,
        &a,
        Scenario {
            name: "an engine that stops answering warns".into(),
            inputs: vec![(agent::ENGINE_UP.name.into(), engine_labels(), gauge(1.0, 0.0))],
            fired: vec![fired(&engine_labels(), "warning")],
            on_lag: 0,
            off_lag: 0,
        },
    ));
    alerts.push(a);

    let restarts_window = dur(ctx.scaled(300).max(4 * ctx.scrape()));
    let mut a = alert(
        RESTARTED,
        "warning",
        format!("resets({}) > 0", sel(&agent::ENGINE_PROMPT_TOKENS).range(&restarts_window)),
        0,
        ctx.scaled(600),
    );
    a.summary = "Engine {{ $labels.engine }} on {{ $labels.instance }} restarted".into();
    a.description = format!("The engine's counters went back to zero within {restarts_window}: the process restarted (crash, OOM kill, or a deploy). Repeated restarts are a crash loop. Clears 10 minutes after the last restart.");
    tests.push(case(
        ctx,
        &a,
        Scenario {
            name: "a crash loop warns until it stops".into(),
            inputs: vec![(
                agent::ENGINE_PROMPT_TOKENS.name.into(),
                model_engine_labels(),
                Input::Restarts,
            )],
            fired: vec![fired(&model_engine_labels(), "warning")],
            on_lag: 0,
            off_lag: ctx.scaled(300).max(4 * ctx.scrape()).div_ceil(ctx.eval()) + 1,
        },
    ));
    alerts.push(a);

    let errors = sel(&agent::ENGINE_SCRAPE_ERRORS);
    let mut a = alert(
        SCRAPE_FAILING,
        "warning",
        format!(
            "{} > 0",
            sum_by(&["job", "instance", "engine"], &format!("increase({})", errors.range(&w)))
        ),
        ctx.scaled(300),
        ctx.scaled(120),
    );
    a.summary =
        "Scrapes of engine {{ $labels.engine }} on {{ $labels.instance }} keep failing".into();
    a.description = "For 5 minutes every window held failed or truncated engine scrapes (connect, timeout, status, too_large, parse, or too_many_series: more samples than max_series): the engine's metrics are partial or stale, and so are its dashboards and alerts.".into();
    let err_labels = node_with(&[("engine", "vllm-0"), ("reason", "timeout")]);
    tests.push(case(
        ctx,
        &a,
        Scenario {
            name: "failing scrapes for five minutes warn".into(),
            inputs: vec![(
                agent::ENGINE_SCRAPE_ERRORS.name.into(),
                err_labels,
                Input::Counter { per_sample: 1.0, appears: false },
            )],
            fired: vec![fired(&node_with(&[("engine", "vllm-0")]), "warning")],
            on_lag: 0,
            off_lag: lag,
        },
    ));
    alerts.push(a);
}

fn load(ctx: &Ctx<'_>, alerts: &mut Vec<Alert>, tests: &mut Vec<TestCase>) {
    let t = &ctx.cfg.thresholds;
    let ids = &["instance", "engine", "model"];
    for (w, level) in [
        (
            Watched {
                alertname: QUEUE_DEPTH,
                series: agent::ENGINE_REQUESTS_WAITING.name.into(),
                ids,
                example: model_engine_labels(),
                scale: 1.0,
                dashboard: RESOURCES,
                what: "Requests waiting in the engine queue",
                unit: "",
            },
            &t.queue_depth,
        ),
        (
            Watched {
                alertname: QUEUE_TIME,
                series: Names::engine_queue_time(t.queue_time.quantile.unwrap_or(0.9)),
                ids,
                example: model_engine_labels(),
                scale: 1.0,
                dashboard: RESOURCES,
                what: "Engine queue time (waiting to be scheduled)",
                unit: "s",
            },
            &t.queue_time,
        ),
        (
            Watched {
                alertname: PREEMPTIONS,
                series: Names::preemption_rate(),
                ids,
                example: model_engine_labels(),
                scale: 1.0,
                dashboard: RESOURCES,
                what: "Preemptions per second (KV cache saturated)",
                unit: "/s",
            },
            &t.preemptions_per_sec,
        ),
    ] {
        let (pair, test) = level_pair(ctx, &w, level);
        alerts.extend(pair);
        tests.push(test);
    }
}

fn logs(ctx: &Ctx<'_>, alerts: &mut Vec<Alert>, tests: &mut Vec<TestCase>) {
    let w = ctx.window();
    let lag = ctx.window_secs().div_ceil(ctx.eval()) + 1;
    let matches = sel(&agent::LOG_PATTERN_MATCHES);
    let keep = ctx.scaled(600);
    let mut oom = alert(
        CUDA_OOM,
        "critical",
        format!("increase({}) > 0", matches.clone().eq("pattern", CUDA_OOM_PATTERN).range(&w)),
        0,
        keep,
    );
    oom.summary = "CUDA out of memory in {{ $labels.file }} on {{ $labels.instance }}".into();
    oom.description = format!("The engine log matched the `{CUDA_OOM_PATTERN}` pattern: allocations on the GPU failed, requests fail or the engine dies. Stays {} after the last match.", dur(keep));
    let mut other = alert(
        LOG_PATTERN,
        "warning",
        format!("increase({}) > 0", matches.ne("pattern", CUDA_OOM_PATTERN).range(&w)),
        0,
        keep,
    );
    other.summary =
        "Log {{ $labels.file }} on {{ $labels.instance }} matched pattern {{ $labels.pattern }}"
            .into();
    other.description = format!("A line matching the configured pattern {{{{ $labels.pattern }}}} appeared. Stays {} after the last match.", dur(keep));
    let file =
        |pattern: &str| node_with(&[("file", "/var/log/vllm/engine.log"), ("pattern", pattern)]);
    let name = agent::LOG_PATTERN_MATCHES.name;
    tests.push(case(
        ctx,
        &oom,
        Scenario {
            name: "CUDA out-of-memory lines page".into(),
            inputs: vec![
                (
                    name.into(),
                    file(CUDA_OOM_PATTERN),
                    Input::Counter { per_sample: 2.0, appears: false },
                ),
                (
                    name.into(),
                    file("nccl_error"),
                    Input::Counter { per_sample: 0.0, appears: false },
                ),
            ],
            fired: vec![fired(&file(CUDA_OOM_PATTERN), "critical")],
            on_lag: 0,
            off_lag: lag,
        },
    ));
    tests.push(case(
        ctx,
        &other,
        Scenario {
            name: "another pattern warns".into(),
            inputs: vec![
                (
                    name.into(),
                    file("nccl_error"),
                    Input::Counter { per_sample: 1.0, appears: false },
                ),
                (
                    name.into(),
                    file(CUDA_OOM_PATTERN),
                    Input::Counter { per_sample: 0.0, appears: false },
                ),
            ],
            fired: vec![fired(&file("nccl_error"), "warning")],
            on_lag: 0,
            off_lag: lag,
        },
    ));
    alerts.extend([oom, other]);
}

pub fn file(ctx: &Ctx<'_>) -> RuleFile {
    let mut alerts = Vec::new();
    let mut tests = Vec::new();
    health(ctx, &mut alerts, &mut tests);
    load(ctx, &mut alerts, &mut tests);
    logs(ctx, &mut alerts, &mut tests);
    RuleFile {
        stem: "engine",
        groups: vec![Group {
            name: "deepwatch-engine".into(),
            interval_secs: ctx.eval(),
            rules: alerts.into_iter().map(Rule::Alert).collect(),
        }],
        tests,
    }
}
