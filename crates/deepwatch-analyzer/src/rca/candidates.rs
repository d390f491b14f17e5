//! The built-in candidate metrics of root-cause ranking, built from the catalog: every engine,
//! upstream, GPU and process the agent and gateway report, from traffic in to what users see.

use super::source::Role;
use deepwatch_core::catalog::{agent, gateway};

/// A PromQL query whose every result series is a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateQuery {
    pub name: String,
    pub query: String,
    pub role: Role,
    /// The `rate()` window of the query, 0 for gauges.
    pub smoothing_secs: f64,
}

fn q(name: &str, role: Role, query: String) -> CandidateQuery {
    let smoothing_secs = if query.contains("[1m]") { 60.0 } else { 0.0 };
    CandidateQuery { name: name.to_string(), query, role, smoothing_secs }
}

fn p90(metric: &str, by: &str) -> String {
    format!("histogram_quantile(0.9, sum by ({by}, le) (rate({metric}_bucket[1m])))")
}

/// The built-in set.
pub fn builtin() -> Vec<CandidateQuery> {
    let requests = gateway::REQUESTS.name;
    vec![
        q("request_rate", Role::Input, format!("sum by (model, pool) (rate({requests}[1m]))")),
        q("gpu_utilization", Role::Resource, format!("max by (instance, gpu) ({})", agent::GPU_UTILIZATION.name)),
        q("gpu_memory_used", Role::Resource, format!("max by (instance, gpu) ({})", agent::GPU_MEMORY_USED.name)),
        q("process_rss", Role::Resource, format!("sum by (instance, process) ({})", agent::PROCESS_RSS.name)),
        q("engine_ttft_p90", Role::Component, p90(agent::ENGINE_TTFT.name, "engine")),
        q("engine_e2e_p90", Role::Component, p90(agent::ENGINE_E2E.name, "engine")),
        q("engine_requests_waiting", Role::Component, format!("sum by (engine) ({})", agent::ENGINE_REQUESTS_WAITING.name)),
        q("engine_kv_cache_usage", Role::Component, format!("max by (engine) ({})", agent::ENGINE_KV_CACHE_USAGE.name)),
        q("engine_preemption_rate", Role::Component, format!("sum by (engine) (rate({}[1m]))", agent::ENGINE_PREEMPTIONS.name)),
        q("upstream_error_ratio", Role::Component, format!("max by (pool, upstream) ({})", gateway::UPSTREAM_ERROR_RATIO.name)),
        q("ttft_p90", Role::Symptom, p90(gateway::TIME_TO_FIRST_TOKEN.name, "model, pool")),
        q("request_duration_p90", Role::Symptom, p90(gateway::REQUEST_DURATION.name, "model, pool")),
        q(
            "error_ratio",
            Role::Symptom,
            format!(
                "sum by (model, pool) (rate({requests}{{outcome!=\"ok\"}}[1m])) / sum by (model, pool) (rate({requests}[1m]))"
            ),
        ),
        q("log_pattern_rate", Role::Log, format!("sum by (file, pattern) (rate({}[1m]))", agent::LOG_PATTERN_MATCHES.name)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_query_names_catalog_metrics_only() {
        let names: Vec<&str> = deepwatch_core::catalog::all().map(|m| m.name).collect();
        for c in builtin() {
            let metric = c
                .query
                .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .find(|w| w.starts_with("deepwatch_"))
                .expect("names a deepwatch metric");
            let base = metric.trim_end_matches("_bucket");
            assert!(names.contains(&base), "{} uses {base}, not in the catalog", c.name);
        }
    }
}
