//! The fast alert rules: the warning/critical threshold pairs (the critical latency alert with
//! its recovery hold is in `page`), P1 model unavailable, a failing canary (`canary`), tenant
//! budgets (`cost`), and target absent / scrape failing / node down. Every alert comes with
//! its promtool cases (see `hysteresis` and `condition`), and every expression reads recorded
//! series or catalog metrics only.

use crate::condition::{case, Input, Scenario};
use crate::hysteresis::{level_pair, Watched};
use crate::ids::{fired, l, names, req_example, INCIDENTS, OVERVIEW, RESOURCES};
use crate::model::{Alert, Group, Labels, Rule, RuleFile, TestCase};
use crate::prometheus::jobs;
use crate::promql::{dur, rate, sel, series, sum_by};
use crate::recording::{Names, REQ};
use crate::Ctx;
use deepwatch_core::catalog::gateway;

fn node_example() -> Vec<(&'static str, &'static str)> {
    vec![("job", jobs::AGENT), ("instance", "gpu-node-1:9844")]
}

fn with(base: Vec<(&'static str, &'static str)>, more: &[(&'static str, &'static str)]) -> Labels {
    let mut all = base;
    all.extend_from_slice(more);
    l(&all)
}

fn threshold_alerts(ctx: &Ctx<'_>, alerts: &mut Vec<Alert>, tests: &mut Vec<TestCase>) {
    let t = &ctx.cfg.thresholds;
    let gpu = with(
        node_example(),
        &[("gpu", "0"), ("gpu_uuid", "GPU-0000"), ("gpu_name", "NVIDIA H100")],
    );
    let watched = [
        (
            Watched {
                alertname: "InferenceLatencyHigh",
                series: Names::latency(t.inference_latency.quantile.unwrap_or(0.5)),
                ids: REQ,
                example: req_example(),
                scale: 1.0,
                dashboard: OVERVIEW,
                what: "Request latency",
                unit: "s",
            },
            &t.inference_latency,
        ),
        (
            Watched {
                alertname: "TimeToFirstTokenHigh",
                series: Names::ttft(t.ttft.quantile.unwrap_or(0.99)),
                ids: REQ,
                example: req_example(),
                scale: 1.0,
                dashboard: OVERVIEW,
                what: "Time to first token",
                unit: "s",
            },
            &t.ttft,
        ),
        (
            Watched {
                alertname: "ErrorRatioHigh",
                series: Names::error_ratio(),
                ids: REQ,
                example: req_example(),
                scale: 1.0,
                dashboard: OVERVIEW,
                what: "Error ratio",
                unit: "",
            },
            &t.error_ratio,
        ),
        (
            Watched {
                alertname: names::GPU_UTILIZATION,
                series: Names::gpu_utilization(),
                ids: &["instance", "gpu"],
                example: gpu.clone(),
                scale: 1.0,
                dashboard: RESOURCES,
                what: "GPU utilization",
                unit: "",
            },
            &t.gpu_utilization,
        ),
        (
            Watched {
                alertname: names::GPU_MEMORY,
                series: Names::gpu_memory_ratio(),
                ids: &["instance", "gpu"],
                example: gpu,
                scale: 1.0,
                dashboard: RESOURCES,
                what: "GPU memory used",
                unit: "",
            },
            &t.gpu_memory,
        ),
        (
            Watched {
                alertname: "KVCacheUsageHigh",
                series: Names::kv_cache(),
                ids: &["instance", "engine"],
                example: with(
                    node_example(),
                    &[("engine", "vllm-0"), ("engine_kind", "vllm"), ("model", "deepseek-r1")],
                ),
                scale: 1.0,
                dashboard: RESOURCES,
                what: "KV-cache usage",
                unit: "",
            },
            &t.kv_cache,
        ),
        (
            Watched {
                alertname: "MemoryLeak",
                series: Names::leak_rate(),
                ids: &["instance", "process", "pid"],
                example: with(node_example(), &[("process", "vllm"), ("pid", "4242")]),
                scale: 1e6 / 60.0,
                dashboard: RESOURCES,
                what: "Resident memory growth (MB/min)",
                unit: "",
            },
            &t.memory_leak_mb_per_min,
        ),
        (
            Watched {
                alertname: "CPUIowaitHigh",
                series: Names::iowait_ratio(),
                ids: &["instance"],
                example: l(&node_example()),
                scale: 1.0,
                dashboard: RESOURCES,
                what: "CPU iowait share",
                unit: "",
            },
            &t.cpu_iowait,
        ),
        (
            Watched {
                alertname: "InterNodeLatencyHigh",
                series: Names::peer_latency(t.inter_node_latency.quantile.unwrap_or(0.99)),
                ids: &["instance", "peer"],
                example: with(node_example(), &[("peer", "gpu-node-2:9844")]),
                scale: 1.0,
                dashboard: RESOURCES,
                what: "Inter-node connect latency",
                unit: "s",
            },
            &t.inter_node_latency,
        ),
    ];
    for (w, level) in watched {
        let (pair, test) = level_pair(ctx, &w, level);
        alerts.extend(pair);
        tests.push(test);
    }
}

/// P1: requests arrive but none succeeds, or every upstream of a gateway is down.
fn unavailable(ctx: &Ctx<'_>, alerts: &mut Vec<Alert>, tests: &mut Vec<TestCase>) {
    let window = ctx.window();
    let requests = sel(&gateway::REQUESTS);
    let any = sum_by(&["model"], &rate(&requests, &window));
    let ok = sum_by(&["model"], &rate(&requests.clone().eq("outcome", "ok"), &window));
    let for_secs = ctx.scaled(60);
    let p1 = |reason: &str| l(&[("priority", "P1"), ("reason", reason)]);
    let no_success = Alert {
        name: names::MODEL_UNAVAILABLE.into(),
        expr: format!("({any} > 0) unless on (model) ({ok} > 0)"),
        for_secs,
        keep_firing_secs: 0,
        severity: "critical",
        labels: p1("no_successful_requests"),
        summary: "P1: model {{ $labels.model }} answers no request successfully".into(),
        description: format!("Requests for {{{{ $labels.model }}}} keep arriving but none succeeded over the last {window}."),
        dashboard: OVERVIEW,
        condition: format!("requests for a model arrive but none succeeded over {window}"),
    };
    let upstream = sel(&gateway::UPSTREAM_UP);
    let all_down = Alert {
        name: names::MODEL_UNAVAILABLE.into(),
        expr: format!("max by (job, instance) ({upstream}) == 0"),
        for_secs,
        keep_firing_secs: 0,
        severity: "critical",
        labels: p1("all_upstreams_down"),
        summary: "P1: every upstream behind gateway {{ $labels.instance }} is down".into(),
        description: "No pool of gateway {{ $labels.instance }} has a healthy upstream: the model is unavailable.".into(),
        dashboard: OVERVIEW,
        condition: "every upstream behind a gateway is out of rotation (`deepwatch_upstream_up` all 0)".into(),
    };

    let req_labels = |outcome: &str, code: &str| {
        l(&[
            ("model", "deepseek-r1"),
            ("model_version", "v1"),
            ("pool", "blue"),
            ("endpoint", "/v1/chat/completions"),
            ("tenant", "default"),
            ("outcome", outcome),
            ("code", code),
        ])
    };
    let mut no_success_labels = l(&[("model", "deepseek-r1")]);
    no_success_labels.extend(p1("no_successful_requests"));
    // Successes stop while failures go on; the rate window delays both edges.
    tests.push(case(
        ctx,
        &no_success,
        Scenario::windowed(
            "no request succeeds while requests arrive",
            vec![
                (
                    requests.name().into(),
                    req_labels("ok", "200"),
                    Input::Stalls { per_sample: 10.0 },
                ),
                (
                    requests.name().into(),
                    req_labels("upstream_error", "502"),
                    Input::Counter { per_sample: 5.0, appears: false },
                ),
            ],
            vec![fired(&no_success_labels, "critical")],
            ctx.window_secs().div_ceil(ctx.eval()),
        ),
    ));
    let upstream_labels = |u: &str| {
        l(&[("job", jobs::GATEWAY), ("instance", "gw-1:9845"), ("pool", "blue"), ("upstream", u)])
    };
    let mut down_labels = l(&[("job", jobs::GATEWAY), ("instance", "gw-1:9845")]);
    down_labels.extend(p1("all_upstreams_down"));
    // One upstream stays down throughout: only the second one going down too fires.
    tests.push(case(
        ctx,
        &all_down,
        Scenario::exact(
            "every upstream down; one down is not enough",
            vec![
                (
                    upstream.name().into(),
                    upstream_labels("http://10.0.0.1:8000"),
                    Input::Gauge { good: Some(0.0), bad: Some(0.0) },
                ),
                (
                    upstream.name().into(),
                    upstream_labels("http://10.0.0.2:8000"),
                    Input::Gauge { good: Some(1.0), bad: Some(0.0) },
                ),
            ],
            vec![fired(&down_labels, "critical")],
        ),
    ));
    alerts.extend([no_success, all_down]);
}

/// Shortest `for` of `TargetAbsent` in time-scaled runs: Prometheus start-up (first target
/// set after up to 5 s, then a first scrape) must not read as a vanished target.
pub const ABSENT_STARTUP_GRACE_SECS: u64 = 30;

/// `for` of `TargetAbsent`: the configured `target_down_for_secs`, scaled, but at least the
/// start-up grace (or the configured value, if that is shorter).
pub fn absent_for_secs(ctx: &Ctx<'_>) -> u64 {
    let configured = ctx.cfg.thresholds.target_down_for_secs;
    ctx.scaled(configured).max(configured.min(ABSENT_STARTUP_GRACE_SECS))
}

/// Scrape failing (per target), node down (agent target), target absent (per job).
fn targets(ctx: &Ctx<'_>, alerts: &mut Vec<Alert>, tests: &mut Vec<TestCase>) {
    let for_secs = ctx.scaled(ctx.cfg.thresholds.target_down_for_secs);
    let up = series("up");
    let node_down = Alert {
        name: names::NODE_DOWN.into(),
        expr: format!("{} == 0", up.clone().eq("job", jobs::AGENT)),
        for_secs,
        keep_firing_secs: 0,
        severity: "critical",
        labels: vec![],
        summary: "Node {{ $labels.instance }} is down (its agent cannot be scraped)".into(),
        description: format!("The deepwatch agent on {{{{ $labels.instance }}}} has failed every scrape for {}; GPU alerts of this node are muted meanwhile.", dur(for_secs)),
        dashboard: RESOURCES,
        condition: "the agent target fails its scrapes (`up == 0`)".into(),
    };
    let target_down = Alert {
        name: names::TARGET_DOWN.into(),
        expr: format!("{} == 0", up.clone().ne("job", jobs::AGENT)),
        for_secs,
        keep_firing_secs: 0,
        severity: "warning",
        labels: vec![],
        summary: "Scrape of {{ $labels.job }} target {{ $labels.instance }} failing".into(),
        description: format!("Prometheus could not scrape {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}) for {}.", dur(for_secs)),
        dashboard: INCIDENTS,
        condition: "a target other than an agent fails its scrapes (`up == 0`)".into(),
    };
    let agent = l(&[("job", jobs::AGENT), ("instance", "gpu-node-1:9844")]);
    let gw = l(&[("job", jobs::GATEWAY), ("instance", "gw-1:9845")]);
    let fails = Input::Gauge { good: Some(1.0), bad: Some(0.0) };
    // Both targets fail together: each alert takes only its own.
    let both_fail =
        vec![("up".to_string(), agent.clone(), fails), ("up".into(), gw.clone(), fails)];
    tests.push(case(
        ctx,
        &node_down,
        Scenario::exact(
            "the agent target fails its scrapes",
            both_fail.clone(),
            vec![fired(&agent, "critical")],
        ),
    ));
    tests.push(case(
        ctx,
        &target_down,
        Scenario::exact(
            "a gateway target fails its scrapes",
            both_fail,
            vec![fired(&gw, "warning")],
        ),
    ));
    alerts.extend([node_down, target_down]);

    let absent_jobs: Vec<&str> = jobs::with_targets(ctx.cfg)
        .into_iter()
        .filter(|(_, t)| !t.is_empty())
        .map(|(j, _)| j)
        .collect();
    if absent_jobs.is_empty() {
        return;
    }
    // A fresh Prometheus has no `up` series until it applied its targets (its discovery
    // manager sends the first target set after up to 5 s) and scraped them once; a `for`
    // scaled down to a second or two would fire on every start. Scaled runs keep at least
    // `ABSENT_STARTUP_GRACE_SECS` (never more than the configured value, so scale 1 is exact).
    let absent_for = absent_for_secs(ctx);
    let expr = absent_jobs
        .iter()
        .map(|job| format!("absent({})", up.clone().eq("job", job)))
        .collect::<Vec<_>>()
        .join(" or ");
    let absent = Alert {
        name: names::TARGET_ABSENT.into(),
        expr,
        for_secs: absent_for,
        keep_firing_secs: 0,
        severity: "warning",
        labels: vec![],
        summary: "No {{ $labels.job }} target is known to Prometheus".into(),
        description: format!("Prometheus has no `up` series for job {{{{ $labels.job }}}} for {}: the target is gone from the config or from service discovery.", dur(absent_for)),
        dashboard: INCIDENTS,
        condition: "a configured job has no `up` series at all (target gone from the config or discovery)".into(),
    };
    // The first job's only target vanishes (its `up` goes stale) and comes back; every other
    // job keeps its target.
    let target = |job: &str| l(&[("job", job), ("instance", "target-1:9000")]);
    let inputs = absent_jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let bad = if i == 0 { None } else { Some(1.0) };
            ("up".to_string(), target(job), Input::Gauge { good: Some(1.0), bad })
        })
        .collect();
    tests.push(case(
        ctx,
        &absent,
        Scenario::exact(
            "a job's only target vanishes and comes back",
            inputs,
            vec![fired(&l(&[("job", absent_jobs[0])]), "warning")],
        ),
    ));
    alerts.push(absent);
}

pub fn file(ctx: &Ctx<'_>) -> RuleFile {
    let mut alerts = Vec::new();
    let mut tests = Vec::new();
    threshold_alerts(ctx, &mut alerts, &mut tests);
    unavailable(ctx, &mut alerts, &mut tests);
    alerts.extend(crate::canary::rules(ctx));
    tests.extend(crate::canary::tests(ctx));
    alerts.extend(crate::cost::rules(ctx));
    tests.extend(crate::cost::tests(ctx));
    targets(ctx, &mut alerts, &mut tests);
    RuleFile {
        stem: "alerts",
        groups: vec![Group {
            name: "deepwatch-alerts".into(),
            interval_secs: ctx.eval(),
            rules: alerts.into_iter().map(Rule::Alert).collect(),
        }],
        tests,
    }
}
