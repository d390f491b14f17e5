//! Recorded series that only dashboard panels read. At 1,000 nodes x 8 GPUs the Model
//! dashboard's engine percentiles and the Resources dashboard's collector run time took 25 s
//! to over 120 s computed from raw buckets (docs/scaling.md); these rules sum the buckets once
//! per evaluation, per model (engines) and per collector, so the panels read a few series.

use super::{owned, rec, Names};
use crate::model::{ExprCheck, Rule, TestCase};
use crate::prometheus::jobs;
use crate::promql::{quantile, rate, sel, sum_by, Sel};
use crate::Ctx;
use deepwatch_core::catalog::{agent, common, MetricSpec};

/// Engine latency histograms whose per-model bucket rates are recorded: the Model dashboard's
/// engine percentile panels (TTFT, inter-token, per output token, end to end, running, queue).
pub const ENGINE_LATENCY: [&MetricSpec; 6] = [
    &agent::ENGINE_TTFT,
    &agent::ENGINE_ITL,
    &agent::ENGINE_TPOT,
    &agent::ENGINE_E2E,
    &agent::ENGINE_INFERENCE_TIME,
    &agent::ENGINE_QUEUE_TIME,
];

/// The collector run-time percentile the Resources dashboard shows.
pub const COLLECTOR_QUANTILE: f64 = 0.99;

pub fn rules(ctx: &Ctx<'_>) -> Vec<Rule> {
    let w = ctx.window();
    let mut rules = Vec::new();
    // Bucket rates rather than one percentile: any quantile stays a cheap query, and models
    // whose engines differ in bucket edges merge the same way the raw query merged them.
    for spec in ENGINE_LATENCY {
        rules.push(rec(
            Names::model_engine_buckets(spec),
            sum_by(&["model", "le"], &rate(&Sel::bucket(sel(spec)), &w)),
            owned(&["model", "le"]),
        ));
    }
    let duration = sel(&common::COLLECTOR_DURATION);
    let per_instance = &["job", "instance", "collector"];
    rules.push(rec(
        Names::collector_duration(COLLECTOR_QUANTILE),
        quantile(COLLECTOR_QUANTILE, &["collector"], &duration, &w),
        owned(&["collector"]),
    ));
    rules.push(rec(
        Names::instance_collector_duration(COLLECTOR_QUANTILE),
        quantile(COLLECTOR_QUANTILE, per_instance, &duration, &w),
        owned(per_instance),
    ));
    rules
}

/// One promtool input series: `name{labels, le="…"}` growing by `per_sec` each second.
fn bucket(name: &str, labels: &str, le: &str, per_sec: u64, interval: u64) -> (String, String) {
    (format!("{name}{{{labels}, le=\"{le}\"}}"), format!("0+{}x100", per_sec * interval))
}

/// Two engines of one model summed into its buckets, and collector run time per collector
/// and per instance. Rates are whole numbers per second and every percentile lands on a bucket
/// edge, so promtool compares exact values.
pub fn tests(ctx: &Ctx<'_>) -> Vec<TestCase> {
    let interval = ctx.scrape();
    let at = interval * 30;
    let ttft = Sel::bucket(sel(&agent::ENGINE_TTFT)).name().to_string();
    let engine = |instance: &str, model: &str| {
        format!(
            "job=\"{}\", instance=\"{instance}\", engine=\"vllm-0\", engine_kind=\"vllm\", model=\"{model}\"",
            jobs::AGENT
        )
    };
    // Per second: 19 of 20 requests under 0.25 s on n1, under 0.5 s on n2; summed, 38 of 40
    // under 0.5 s, so the model's p95 is 0.5 s (and m2's, alone like n1, 0.25 s).
    let ttft_rates: [(&str, &str, [u64; 4]); 3] = [
        ("n1:9844", "m1", [19, 19, 20, 20]),
        ("n2:9844", "m1", [0, 19, 20, 20]),
        ("n3:9844", "m2", [19, 19, 20, 20]),
    ];
    // Per second: 99 of 100 runs under 0.25 s on n1, under 0.5 s on n2: per-instance p99 0.25 s
    // and 0.5 s, and over both 198 of 200 under 0.5 s, so the fleet's p99 is 0.5 s.
    let duration = Sel::bucket(sel(&common::COLLECTOR_DURATION)).name().to_string();
    let collector = |instance: &str| {
        format!("job=\"{}\", instance=\"{instance}\", collector=\"gpu\"", jobs::AGENT)
    };
    let duration_rates: [(&str, [u64; 4]); 2] =
        [("n1:9844", [99, 99, 100, 100]), ("n2:9844", [0, 99, 100, 100])];
    let edges = ["0.25", "0.5", "1", "+Inf"];
    let mut series = Vec::new();
    for (instance, model, rates) in ttft_rates {
        for (le, per_sec) in edges.iter().zip(rates) {
            series.push(bucket(&ttft, &engine(instance, model), le, per_sec, interval));
        }
    }
    for (instance, rates) in duration_rates {
        for (le, per_sec) in edges.iter().zip(rates) {
            series.push(bucket(&duration, &collector(instance), le, per_sec, interval));
        }
    }
    let ttft_buckets = Names::model_engine_buckets(&agent::ENGINE_TTFT);
    let fleet = Names::collector_duration(COLLECTOR_QUANTILE);
    let per_instance = Names::instance_collector_duration(COLLECTOR_QUANTILE);
    let exprs = vec![
        ExprCheck {
            at_secs: at,
            expr: format!("{ttft_buckets}{{model=\"m1\"}}"),
            samples: edges
                .iter()
                .zip([19.0, 38.0, 40.0, 40.0])
                .map(|(le, v)| (format!("{ttft_buckets}{{model=\"m1\", le=\"{le}\"}}"), v))
                .collect(),
        },
        ExprCheck {
            at_secs: at,
            expr: format!("histogram_quantile(0.95, {ttft_buckets})"),
            samples: vec![
                ("{model=\"m1\"}".to_string(), 0.5),
                ("{model=\"m2\"}".to_string(), 0.25),
            ],
        },
        ExprCheck {
            at_secs: at,
            expr: fleet.clone(),
            samples: vec![(format!("{fleet}{{collector=\"gpu\"}}"), 0.5)],
        },
        ExprCheck {
            at_secs: at,
            expr: per_instance.clone(),
            samples: vec![
                (format!("{per_instance}{{{}}}", collector("n1:9844")), 0.25),
                (format!("{per_instance}{{{}}}", collector("n2:9844")), 0.5),
            ],
        },
    ];
    vec![TestCase {
        name: "recording: dashboard engine percentiles and collector run time".into(),
        interval_secs: interval,
        series,
        alerts: vec![],
        exprs,
    }]
}
