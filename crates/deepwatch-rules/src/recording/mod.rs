//! Recording rules (`level:metric:operation`): request rate, error ratio, latency quantiles,
//! TTFT, TPOT and tokens per second by model, model_version and pool; GPU utilization and
//! memory ratios; KV-cache usage; leak rates; CPU iowait; inter-node latency; threshold
//! series for dashboards; and the 1-minute aggregates kept by long-term storage. `panels` holds
//! the rules only dashboard panels read (engine percentiles, collector run time).

mod panels;

pub use panels::{COLLECTOR_QUANTILE, ENGINE_LATENCY};

use crate::model::{labels, ExprCheck, Group, Record, Rule, RuleFile, TestCase};
use crate::promql::{
    mean, num, quantile, quantile_tag, rate, record_name, sel, series, sum_by, Sel,
};
use crate::Ctx;
use deepwatch_core::catalog::{agent, common, gateway, MetricSpec};

/// Identity of request-level series: level `model`.
pub const REQ: &[&str] = &["model", "model_version", "pool"];
/// Outcomes that count as failed requests (client cancels and rate-limit rejections do not).
pub const ERROR_OUTCOMES: &str = "upstream_error|timeout|stream_cut";
/// Names of long-term (1-minute) aggregates end with this, so federation and remote_write
/// can select exactly them.
pub const LTS_SUFFIX: &str = ":1m";

fn owned(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|s| s.to_string()).collect()
}

/// Labels a series scraped from `spec` carries (its own plus `job` and `instance`).
pub fn scraped_labels(spec: &MetricSpec) -> Vec<String> {
    let mut out = owned(spec.labels);
    out.extend(["job".to_string(), "instance".to_string()]);
    out
}

fn rec(name: String, expr: String, output_labels: Vec<String>) -> Rule {
    Rule::Record(Record { name, expr, labels: Vec::new(), output_labels })
}

/// Names of the recorded series other modules read.
pub struct Names;
impl Names {
    pub fn request_rate() -> String {
        record_name("model", &gateway::REQUESTS, "rate1m")
    }
    pub fn error_ratio() -> String {
        record_name("model", &gateway::REQUESTS, "error_ratio_rate1m")
    }
    pub fn latency(q: f64) -> String {
        record_name("model", &gateway::REQUEST_DURATION, &format!("{}_1m", quantile_tag(q)))
    }
    pub fn ttft(q: f64) -> String {
        record_name("model", &gateway::TIME_TO_FIRST_TOKEN, &format!("{}_1m", quantile_tag(q)))
    }
    pub fn tpot_mean() -> String {
        record_name("model", &gateway::TIME_PER_OUTPUT_TOKEN, "mean_1m")
    }
    pub fn tpot(q: f64) -> String {
        record_name("model", &gateway::TIME_PER_OUTPUT_TOKEN, &format!("{}_1m", quantile_tag(q)))
    }
    pub fn completion_tokens_rate() -> String {
        record_name("model", &gateway::COMPLETION_TOKENS, "rate1m")
    }
    pub fn prompt_tokens_rate() -> String {
        record_name("model", &gateway::PROMPT_TOKENS, "rate1m")
    }
    pub fn gpu_utilization() -> String {
        record_name("instance_gpu", &agent::GPU_UTILIZATION, "avg1m")
    }
    pub fn node_gpu_utilization() -> String {
        record_name("instance", &agent::GPU_UTILIZATION, "avg")
    }
    pub fn gpu_memory_ratio() -> String {
        record_name("instance_gpu", &agent::GPU_MEMORY_USED, "ratio")
    }
    pub fn kv_cache() -> String {
        record_name("engine", &agent::ENGINE_KV_CACHE_USAGE, "max1m")
    }
    pub fn model_kv_cache() -> String {
        record_name("model", &agent::ENGINE_KV_CACHE_USAGE, "avg")
    }
    pub fn leak_rate() -> String {
        record_name("instance_process", &agent::PROCESS_MEMORY_GROWTH, "avg5m")
    }
    pub fn iowait_ratio() -> String {
        record_name("instance", &agent::HOST_CPU_SECONDS, "iowait_ratio_rate1m")
    }
    pub fn peer_latency(q: f64) -> String {
        record_name(
            "instance_peer",
            &agent::PEER_CONNECT_LATENCY,
            &format!("{}_1m", quantile_tag(q)),
        )
    }
    pub fn engine_queue_time(q: f64) -> String {
        record_name("engine", &agent::ENGINE_QUEUE_TIME, &format!("{}_1m", quantile_tag(q)))
    }
    pub fn preemption_rate() -> String {
        record_name("engine", &agent::ENGINE_PREEMPTIONS, "rate1m")
    }
    /// PSI: seconds per second some task waited for a CPU.
    pub fn cpu_wait() -> String {
        record_name("instance", &agent::HOST_PRESSURE, "cpu_some_rate1m")
    }
    pub fn host_memory_used() -> String {
        record_name("instance", &agent::HOST_MEMORY_AVAILABLE, "used_ratio")
    }
    pub fn filesystem_used() -> String {
        record_name("instance_mountpoint", &agent::HOST_FILESYSTEM_AVAILABLE, "used_ratio")
    }
    /// Per-model bucket rates of an engine latency histogram (`sum by (model, le)`), from which
    /// the Model dashboard's engine percentiles are a `histogram_quantile` over a few series.
    pub fn model_engine_buckets(spec: &MetricSpec) -> String {
        format!("model:{}:rate1m", Sel::bucket(sel(spec)).name())
    }
    /// Collector run time over the whole fleet, per collector.
    pub fn collector_duration(q: f64) -> String {
        record_name("collector", &common::COLLECTOR_DURATION, &format!("{}_1m", quantile_tag(q)))
    }
    /// Collector run time per instance and collector.
    pub fn instance_collector_duration(q: f64) -> String {
        record_name(
            "instance_collector",
            &common::COLLECTOR_DURATION,
            &format!("{}_1m", quantile_tag(q)),
        )
    }
    /// A dashboard threshold line for a recorded series (`threshold:<metric>:<op>`).
    pub fn threshold(recorded: &str) -> String {
        let rest = recorded.split_once(':').map_or(recorded, |(_, r)| r);
        format!("threshold:{rest}")
    }
}

/// Quantiles recorded for request latency and TTFT: the usual three plus configured ones.
pub fn quantiles(extra: &[f64]) -> Vec<f64> {
    let mut qs = vec![0.5, 0.9, 0.99];
    for q in extra {
        if !qs.iter().any(|x| (x - q).abs() < 1e-12) {
            qs.push(*q);
        }
    }
    qs.sort_by(f64::total_cmp);
    qs
}

fn fast_rules(ctx: &Ctx<'_>) -> Vec<Rule> {
    let t = &ctx.cfg.thresholds;
    let window = ctx.window();
    let w = window.as_str();
    let req = owned(REQ);
    let requests = sel(&gateway::REQUESTS);
    let total = sum_by(REQ, &rate(&requests, w));
    let errors = sum_by(REQ, &rate(&requests.clone().re("outcome", ERROR_OUTCOMES), w));
    let mut rules = vec![
        rec(Names::request_rate(), total.clone(), req.clone()),
        // `or ... * 0` keeps the ratio at 0 (instead of absent) while nothing fails.
        rec(Names::error_ratio(), format!("({errors} or {total} * 0) / {total}"), req.clone()),
    ];
    let latency_qs = quantiles(&[t.latency.quantile, t.inference_latency.quantile.unwrap_or(0.5)]);
    // The critical latency quantile is recorded in the paging group (`page`), next to its alert.
    for q in latency_qs.iter().filter(|q| (**q - t.latency.quantile).abs() > 1e-12) {
        let expr = quantile(*q, REQ, &sel(&gateway::REQUEST_DURATION), w);
        rules.push(rec(Names::latency(*q), expr, req.clone()));
    }
    for q in quantiles(&[t.ttft.quantile.unwrap_or(0.99)]) {
        let expr = quantile(q, REQ, &sel(&gateway::TIME_TO_FIRST_TOKEN), w);
        rules.push(rec(Names::ttft(q), expr, req.clone()));
    }
    rules.push(rec(
        Names::tpot_mean(),
        mean(REQ, &sel(&gateway::TIME_PER_OUTPUT_TOKEN), w),
        req.clone(),
    ));
    for q in [0.5, 0.99] {
        let expr = quantile(q, REQ, &sel(&gateway::TIME_PER_OUTPUT_TOKEN), w);
        rules.push(rec(Names::tpot(q), expr, req.clone()));
    }
    rules.push(rec(
        Names::completion_tokens_rate(),
        sum_by(REQ, &rate(&sel(&gateway::COMPLETION_TOKENS), w)),
        req.clone(),
    ));
    rules.push(rec(
        Names::prompt_tokens_rate(),
        sum_by(REQ, &rate(&sel(&gateway::PROMPT_TOKENS), w)),
        req.clone(),
    ));

    let util = sel(&agent::GPU_UTILIZATION);
    rules.push(rec(
        Names::gpu_utilization(),
        format!("avg_over_time({})", util.range(w)),
        scraped_labels(&agent::GPU_UTILIZATION),
    ));
    rules.push(rec(
        Names::node_gpu_utilization(),
        format!("avg by (job, instance) ({util})"),
        owned(&["job", "instance"]),
    ));
    rules.push(rec(
        Names::gpu_memory_ratio(),
        format!("{} / {}", sel(&agent::GPU_MEMORY_USED), sel(&agent::GPU_MEMORY_TOTAL)),
        scraped_labels(&agent::GPU_MEMORY_USED),
    ));
    let kv = sel(&agent::ENGINE_KV_CACHE_USAGE);
    rules.push(rec(
        Names::kv_cache(),
        format!("max_over_time({})", kv.range(w)),
        scraped_labels(&agent::ENGINE_KV_CACHE_USAGE),
    ));
    rules.push(rec(Names::model_kv_cache(), format!("avg by (model) ({kv})"), owned(&["model"])));
    let growth = sel(&agent::PROCESS_MEMORY_GROWTH);
    rules.push(rec(
        Names::leak_rate(),
        // Five minutes, scaled like every other window (a fixed 5m kept a time-scaled
        // MemoryLeak firing for minutes after the leak stopped).
        format!(
            "avg_over_time({})",
            growth.range(&crate::promql::dur(ctx.scaled(300).max(4 * ctx.scrape())))
        ),
        scraped_labels(&agent::PROCESS_MEMORY_GROWTH),
    ));
    let cpu = sel(&agent::HOST_CPU_SECONDS);
    let node = &["job", "instance"];
    rules.push(rec(
        Names::iowait_ratio(),
        format!(
            "{} / {}",
            sum_by(node, &rate(&cpu.clone().eq("mode", "iowait"), w)),
            sum_by(node, &rate(&cpu, w))
        ),
        owned(node),
    ));
    let engine = &["job", "instance", "engine", "engine_kind", "model"];
    let queue_q = t.queue_time.quantile.unwrap_or(0.9);
    rules.push(rec(
        Names::engine_queue_time(queue_q),
        quantile(queue_q, engine, &sel(&agent::ENGINE_QUEUE_TIME), w),
        owned(engine),
    ));
    rules.push(rec(
        Names::preemption_rate(),
        sum_by(engine, &rate(&sel(&agent::ENGINE_PREEMPTIONS), w)),
        owned(engine),
    ));
    rules.push(rec(
        Names::cpu_wait(),
        sum_by(
            node,
            &rate(&sel(&agent::HOST_PRESSURE).eq("resource", "cpu").eq("kind", "some"), w),
        ),
        owned(node),
    ));
    rules.push(rec(
        Names::host_memory_used(),
        format!("1 - {} / {}", sel(&agent::HOST_MEMORY_AVAILABLE), sel(&agent::HOST_MEMORY_TOTAL)),
        owned(node),
    ));
    rules.push(rec(
        Names::filesystem_used(),
        format!(
            "1 - {} / {}",
            sel(&agent::HOST_FILESYSTEM_AVAILABLE),
            sel(&agent::HOST_FILESYSTEM_SIZE)
        ),
        scraped_labels(&agent::HOST_FILESYSTEM_AVAILABLE),
    ));
    let peer_q = t.inter_node_latency.quantile.unwrap_or(0.99);
    rules.push(rec(
        Names::peer_latency(peer_q),
        quantile(peer_q, &["job", "instance", "peer"], &sel(&agent::PEER_CONNECT_LATENCY), w),
        owned(&["job", "instance", "peer"]),
    ));
    rules
}

/// Threshold lines as series, so Grafana draws them from the same spec the alerts use.
fn threshold_rules(ctx: &Ctx<'_>) -> Vec<Rule> {
    let t = &ctx.cfg.thresholds;
    let mut lines: Vec<(String, &str, f64)> = vec![
        (Names::latency(t.latency.quantile), "critical", t.latency.enter_secs),
        (Names::latency(t.latency.quantile), "recover", t.latency.recover_secs),
    ];
    let levels = [
        (Names::latency(t.inference_latency.quantile.unwrap_or(0.5)), &t.inference_latency),
        (Names::ttft(t.ttft.quantile.unwrap_or(0.99)), &t.ttft),
        (Names::error_ratio(), &t.error_ratio),
        (Names::gpu_utilization(), &t.gpu_utilization),
        (Names::gpu_memory_ratio(), &t.gpu_memory),
        (Names::kv_cache(), &t.kv_cache),
        (Names::iowait_ratio(), &t.cpu_iowait),
        (agent::ENGINE_REQUESTS_WAITING.name.to_string(), &t.queue_depth),
        (Names::engine_queue_time(t.queue_time.quantile.unwrap_or(0.9)), &t.queue_time),
        (Names::preemption_rate(), &t.preemptions_per_sec),
        (Names::cpu_wait(), &t.cpu_wait),
        (Names::host_memory_used(), &t.host_memory),
        (Names::filesystem_used(), &t.disk_space),
    ];
    for (name, level) in levels {
        lines.push((name.clone(), "warning", level.warning));
        lines.push((name.clone(), "critical", level.critical));
        lines.push((name, "recover", level.recover));
    }
    let mut rules = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (recorded, kind, value) in lines {
        let name = Names::threshold(&recorded);
        if !seen.insert((name.clone(), kind, num(value))) {
            continue;
        }
        rules.push(Rule::Record(Record {
            name,
            expr: format!("vector({})", num(value)),
            labels: labels(&[("threshold", kind)]),
            output_labels: owned(&["threshold"]),
        }));
    }
    rules
}

/// Series kept for a year: (fast recorded name, aggregation over 1 minute, labels).
pub fn downsampled(ctx: &Ctx<'_>) -> Vec<(String, &'static str, Vec<String>)> {
    let t = &ctx.cfg.thresholds;
    let req = owned(REQ);
    vec![
        (Names::request_rate(), "avg", req.clone()),
        (Names::error_ratio(), "avg", req.clone()),
        (Names::latency(0.5), "avg", req.clone()),
        (Names::latency(t.latency.quantile), "max", req.clone()),
        (Names::ttft(t.ttft.quantile.unwrap_or(0.99)), "max", req.clone()),
        (Names::tpot_mean(), "avg", req.clone()),
        (Names::completion_tokens_rate(), "avg", req.clone()),
        (Names::prompt_tokens_rate(), "avg", req),
        (Names::gpu_utilization(), "avg", scraped_labels(&agent::GPU_UTILIZATION)),
        (Names::gpu_memory_ratio(), "max", scraped_labels(&agent::GPU_MEMORY_USED)),
        (Names::kv_cache(), "max", scraped_labels(&agent::ENGINE_KV_CACHE_USAGE)),
    ]
}

/// `<fast name>_<agg>:1m`.
pub fn lts_name(fast: &str, agg: &str) -> String {
    format!("{fast}_{agg}{LTS_SUFFIX}")
}

fn lts_rules(ctx: &Ctx<'_>) -> Vec<Rule> {
    downsampled(ctx)
        .into_iter()
        .map(|(fast, agg, labels)| {
            let expr = format!("{agg}_over_time({})", series(&fast).range("1m"));
            rec(lts_name(&fast, agg), expr, labels)
        })
        .collect()
}

/// A promtool test: recorded quantile and error ratio from raw histogram and counter input.
const TEST_ID: &str = r#"model="deepseek-r1", model_version="v1", pool="blue", endpoint="/v1/chat/completions", tenant="default""#;

/// Request-duration buckets for promtool cases, 100 requests per sample: 98 under 1 s, 1
/// under 1.5 s, 1 under 2 s (so p99 sits at 1.5 s).
pub fn request_duration_buckets() -> Vec<(String, String)> {
    let bucket = |le: &str, step: u64| {
        (
            format!(
                "{}{{{TEST_ID}, outcome=\"ok\", le=\"{le}\"}}",
                Sel::bucket(sel(&gateway::REQUEST_DURATION)).name()
            ),
            format!("0+{step}x100"),
        )
    };
    vec![bucket("1", 98), bucket("1.5", 99), bucket("2", 100), bucket("+Inf", 100)]
}

fn tests(ctx: &Ctx<'_>) -> Vec<TestCase> {
    let interval = ctx.scrape();
    let id = TEST_ID;
    let mut series = request_duration_buckets();
    series.extend([
        (format!("{}{{{id}, outcome=\"ok\", code=\"200\"}}", sel(&gateway::REQUESTS).name()), "0+99x100".to_string()),
        (format!("{}{{{id}, outcome=\"timeout\", code=\"504\"}}", sel(&gateway::REQUESTS).name()), "0+1x100".to_string()),
        (format!("{}{{model=\"m2\", model_version=\"v1\", pool=\"green\", endpoint=\"/v1/chat/completions\", tenant=\"default\", outcome=\"ok\", code=\"200\"}}", sel(&gateway::REQUESTS).name()), "0+10x100".to_string()),
    ]);
    let at = interval * 30;
    let ident = |model: &str, pool: &str| {
        format!("{{model=\"{model}\", model_version=\"v1\", pool=\"{pool}\"}}")
    };
    // (The recorded p99, exactly on a bucket edge, is checked with its group in `page`.)
    let exprs = vec![ExprCheck {
        at_secs: at,
        expr: Names::error_ratio(),
        samples: vec![
            (format!("{}{}", Names::error_ratio(), ident("deepseek-r1", "blue")), 0.01),
            (format!("{}{}", Names::error_ratio(), ident("m2", "green")), 0.0),
        ],
    }];
    vec![TestCase {
        name: "recording: error ratio from raw series".into(),
        interval_secs: interval,
        series,
        alerts: vec![],
        exprs,
    }]
}

pub fn file(ctx: &Ctx<'_>) -> RuleFile {
    let mut fast = fast_rules(ctx);
    fast.extend(threshold_rules(ctx));
    RuleFile {
        stem: "recording",
        groups: vec![
            Group { name: "deepwatch-recording".into(), interval_secs: ctx.eval(), rules: fast },
            // Its own group: Prometheus evaluates groups concurrently, so these dashboard-only
            // rules never delay the series the alerts read.
            Group {
                name: "deepwatch-recording-panels".into(),
                interval_secs: ctx.eval(),
                rules: panels::rules(ctx),
            },
            Group {
                name: "deepwatch-downsample-1m".into(),
                interval_secs: ctx.scaled(60),
                rules: lts_rules(ctx),
            },
        ],
        tests: [tests(ctx), panels::tests(ctx)].concat(),
    }
}
