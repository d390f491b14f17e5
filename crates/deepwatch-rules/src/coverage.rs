//! Which collected signals nothing reads. Every metric in the catalog (agent, gateway,
//! analyzer, `deepwatch push`) should feed at least one generated rule or dashboard panel, or a
//! signal is collected, stored and paid for without anyone looking at it. `UNUSED_BY_DESIGN`
//! names the few exceptions, each with its reason; `docs/alerts.md` lists them and the
//! integration test `coverage::` fails on any other unused signal.

use crate::check::selectors;
use crate::{grafana, rule_files, Ctx};
use deepwatch_core::catalog::{self, MetricSpec};
use serde_json::Value;
use std::collections::BTreeSet;

/// A catalog metric deliberately read by no rule or panel, and why.
pub struct Exemption {
    pub metric: &'static str,
    pub why: &'static str,
}

pub const UNUSED_BY_DESIGN: &[Exemption] = &[
    Exemption {
        metric: "deepwatch_gpu_fan_speed_ratio",
        why: "absent on passively cooled data-center boards (H100/H200/A100 SXM, L40S), where NVML answers NotSupported; cooling trouble shows in the GPU temperature panel and the throttle-reason alerts",
    },
    Exemption {
        metric: "deepwatch_analyzer_shard_skipped_total",
        why: "a diagnostic of the `analyzer.shard` split (what this shard left to the others), counted only on sharded analyzers; a missing shard shows as AnalyzerEvaluationStale",
    },
    Exemption {
        metric: "deepwatch_agent_push_buffered_samples",
        why: "the push buffer only fills while pushes fail and only loses samples when it overflows: AgentPushFailing and AgentPushSamplesDropped report both; read it ad hoc when sizing agent.push.max_buffer_samples",
    },
];

/// Grafana's built-in variables that sit where PromQL expects a duration.
fn concrete(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$__interval", "1m")
}

/// Every PromQL expression of a dashboard: panel targets, annotations and the metric of each
/// `label_values(metric, label)` variable.
fn dashboard_exprs(dash: &Value, out: &mut Vec<String>) {
    match dash {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(e)) => out.push(concrete(e)),
                    ("query", Value::String(q)) => {
                        if let Some(inner) =
                            q.strip_prefix("label_values(").and_then(|r| r.rsplit_once(','))
                        {
                            out.push(inner.0.to_string());
                        }
                    }
                    _ => dashboard_exprs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// Every expression the generator writes: recording and alert rules, dashboards.
pub fn expressions(ctx: &Ctx<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for f in rule_files(ctx) {
        out.extend(f.records().map(|r| r.expr.clone()));
        out.extend(f.alerts().map(|a| a.expr.clone()));
    }
    for (_, dash) in grafana::dashboards(ctx) {
        dashboard_exprs(&dash, &mut out);
    }
    out
}

/// Catalog metrics some generated expression selects.
pub fn used(ctx: &Ctx<'_>) -> Result<BTreeSet<&'static str>, String> {
    let mut names = BTreeSet::new();
    for expr in expressions(ctx) {
        let (sels, _) = selectors(&expr)?;
        for s in sels {
            if let Some(spec) = catalog::lookup(&s.name) {
                names.insert(spec.name);
            }
        }
    }
    Ok(names)
}

/// Catalog metrics that no rule or panel reads and that are not exempt.
pub fn unused(ctx: &Ctx<'_>) -> Result<Vec<&'static MetricSpec>, String> {
    let used = used(ctx)?;
    let exempt: BTreeSet<&str> = UNUSED_BY_DESIGN.iter().map(|e| e.metric).collect();
    Ok(catalog::all().filter(|m| !used.contains(m.name) && !exempt.contains(m.name)).collect())
}
