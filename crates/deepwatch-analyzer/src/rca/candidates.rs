//! The built-in candidate metrics of root-cause ranking, built with the catalog's PromQL builder
//! (`deepwatch_core::promql`) and parse-checked: from traffic in, changes (deploys, rollouts,
//! config reloads) and health (targets, engines, upstreams, processes, GPUs, peers) through
//! resources and components to what users see.

use deepwatch_core::catalog::{agent, gateway};
use deepwatch_core::promql::{self, agg_by, over, quantile, rate, sel, series, sum_by};
use serde::{Deserialize, Serialize};

/// What part a candidate plays in an incident, for the ranking and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Traffic arriving: changes here explain changes downstream.
    Input,
    /// Deploys, rollout steps, config reloads, traffic weights: what someone changed.
    Change,
    /// Whether a thing is there at all: targets, engines, upstreams, processes, GPUs, peers.
    Health,
    /// GPUs, memory, processes.
    Resource,
    /// One engine or upstream (its latency, errors, queue, cache).
    Component,
    /// What users see through the gateway: usually what the alert already says.
    Symptom,
    /// Log-pattern counters.
    Log,
}

/// A PromQL query whose every result series is a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateQuery {
    pub name: String,
    pub query: String,
    pub role: Role,
    /// The `rate()` / `increase()` window of the query, 0 for gauges.
    pub smoothing_secs: f64,
    /// A series that is missing means zero (counters that appear with their first event:
    /// errors, XIDs, deploy events); before it appears it is filled with zeros.
    pub absent_is_zero: bool,
}

impl CandidateQuery {
    /// A candidate over scraped series; fails when the expression does not parse or names a
    /// metric or label the catalog does not declare.
    pub fn checked(
        name: &str,
        role: Role,
        query: String,
        smoothing_secs: f64,
        absent_is_zero: bool,
    ) -> Result<CandidateQuery, String> {
        promql::check::check_scraped(&query).map_err(|e| format!("candidate {name}: {e}"))?;
        Ok(CandidateQuery { name: name.to_string(), query, role, smoothing_secs, absent_is_zero })
    }
}

/// The built-in set; `window_secs` is the `rate()` window (a minute in production, a few
/// seconds on a time-scaled lab stack).
pub fn builtin(window_secs: u64) -> Vec<CandidateQuery> {
    let w = promql::dur(window_secs.max(1));
    let smooth = window_secs.max(1) as f64;
    let requests = sel(&gateway::REQUESTS);
    let p90 = |spec, labels: &[&str]| quantile(0.9, labels, &sel(spec), &w);
    // (name, role, query, smoothed, absent means zero)
    let specs: Vec<(&str, Role, String, bool, bool)> = vec![
        (
            "request_rate",
            Role::Input,
            sum_by(&["model", "pool"], &rate(&requests, &w)),
            true,
            false,
        ),
        // --- changes ---
        (
            "deploy_events",
            Role::Change,
            sum_by(&["pool", "event"], &over("increase", &sel(&gateway::DEPLOY_EVENTS), &w)),
            true,
            true,
        ),
        (
            "pool_weight",
            Role::Change,
            agg_by("max", &["pool"], &sel(&gateway::POOL_WEIGHT).to_string()),
            false,
            false,
        ),
        // --- health ---
        (
            "target_up",
            Role::Health,
            agg_by("min", &["job", "instance"], &series("up").to_string()),
            false,
            false,
        ),
        (
            "engine_up",
            Role::Health,
            agg_by("min", &["engine"], &sel(&agent::ENGINE_UP).to_string()),
            false,
            false,
        ),
        (
            "engine_stalled",
            Role::Health,
            agg_by("max", &["engine"], &sel(&agent::ENGINE_STALLED).to_string()),
            false,
            true,
        ),
        (
            "engine_scrape_errors",
            Role::Health,
            sum_by(&["engine"], &rate(&sel(&agent::ENGINE_SCRAPE_ERRORS), &w)),
            true,
            true,
        ),
        (
            "upstream_up",
            Role::Health,
            agg_by("min", &["pool", "upstream"], &sel(&gateway::UPSTREAM_UP).to_string()),
            false,
            false,
        ),
        (
            "process_up",
            Role::Health,
            agg_by("min", &["instance", "process"], &sel(&agent::PROCESS_MATCHED).to_string()),
            false,
            false,
        ),
        // A restart gives the process a new pid: two pid series inside one window.
        (
            "process_restarts",
            Role::Health,
            format!(
                "{} - 1",
                agg_by(
                    "count",
                    &["instance", "process"],
                    &over("last_over_time", &sel(&agent::PROCESS_RSS), &w)
                )
            ),
            true,
            true,
        ),
        (
            "gpu_up",
            Role::Health,
            agg_by("min", &["instance", "gpu"], &sel(&agent::GPU_UP).to_string()),
            false,
            false,
        ),
        (
            "peer_up",
            Role::Health,
            agg_by("min", &["instance", "peer"], &sel(&agent::PEER_UP).to_string()),
            false,
            false,
        ),
        (
            "peer_connect_failures",
            Role::Health,
            sum_by(&["instance", "peer"], &rate(&sel(&agent::PEER_CONNECT_FAILURES), &w)),
            true,
            true,
        ),
        // --- resources ---
        (
            "gpu_utilization",
            Role::Resource,
            agg_by("max", &["instance", "gpu"], &sel(&agent::GPU_UTILIZATION).to_string()),
            false,
            false,
        ),
        (
            "gpu_memory_used",
            Role::Resource,
            agg_by("max", &["instance", "gpu"], &sel(&agent::GPU_MEMORY_USED).to_string()),
            false,
            false,
        ),
        (
            "gpu_xid_errors",
            Role::Resource,
            sum_by(
                &["instance", "gpu", "xid"],
                &over("increase", &sel(&agent::GPU_XID_ERRORS), &w),
            ),
            true,
            true,
        ),
        (
            "gpu_ecc_errors",
            Role::Resource,
            sum_by(
                &["instance", "gpu", "error_type"],
                &over("increase", &sel(&agent::GPU_ECC_ERRORS).eq("counter_type", "volatile"), &w),
            ),
            true,
            true,
        ),
        (
            "gpu_throttling",
            Role::Resource,
            agg_by(
                "max",
                &["instance", "gpu", "reason"],
                &sel(&agent::GPU_THROTTLE_REASON).to_string(),
            ),
            false,
            false,
        ),
        (
            "process_rss",
            Role::Resource,
            sum_by(&["instance", "process"], &sel(&agent::PROCESS_RSS).to_string()),
            false,
            false,
        ),
        // --- components ---
        ("engine_ttft_p90", Role::Component, p90(&agent::ENGINE_TTFT, &["engine"]), true, false),
        ("engine_e2e_p90", Role::Component, p90(&agent::ENGINE_E2E, &["engine"]), true, false),
        (
            "engine_requests_waiting",
            Role::Component,
            sum_by(&["engine"], &sel(&agent::ENGINE_REQUESTS_WAITING).to_string()),
            false,
            false,
        ),
        (
            "engine_kv_cache_usage",
            Role::Component,
            agg_by("max", &["engine"], &sel(&agent::ENGINE_KV_CACHE_USAGE).to_string()),
            false,
            false,
        ),
        (
            "engine_preemption_rate",
            Role::Component,
            sum_by(&["engine"], &rate(&sel(&agent::ENGINE_PREEMPTIONS), &w)),
            true,
            true,
        ),
        (
            "upstream_error_ratio",
            Role::Component,
            agg_by("max", &["pool", "upstream"], &sel(&gateway::UPSTREAM_ERROR_RATIO).to_string()),
            false,
            false,
        ),
        (
            "peer_latency_p90",
            Role::Component,
            p90(&agent::PEER_CONNECT_LATENCY, &["instance", "peer"]),
            true,
            false,
        ),
        // --- what users see ---
        (
            "ttft_p90",
            Role::Symptom,
            p90(&gateway::TIME_TO_FIRST_TOKEN, &["model", "pool"]),
            true,
            false,
        ),
        (
            "request_duration_p90",
            Role::Symptom,
            p90(&gateway::REQUEST_DURATION, &["model", "pool"]),
            true,
            false,
        ),
        (
            "error_ratio",
            Role::Symptom,
            format!(
                "{} / {}",
                sum_by(&["model", "pool"], &rate(&requests.clone().ne("outcome", "ok"), &w)),
                sum_by(&["model", "pool"], &rate(&requests, &w))
            ),
            true,
            true,
        ),
        // --- logs (CUDA out-of-memory and the other configured patterns) ---
        (
            "log_pattern_rate",
            Role::Log,
            sum_by(&["file", "pattern"], &rate(&sel(&agent::LOG_PATTERN_MATCHES), &w)),
            true,
            true,
        ),
    ];
    specs
        .into_iter()
        .map(|(name, role, query, smoothed, absent_is_zero)| CandidateQuery {
            name: name.to_string(),
            query,
            role,
            smoothing_secs: if smoothed { smooth } else { 0.0 },
            absent_is_zero,
        })
        .collect()
}

/// Queries a config adds (role component). They may read any metric (node_exporter's, an
/// engine's own), so they are only parsed, which `RcaConfig::validate` already did.
pub fn extra(queries: &[String]) -> Result<Vec<CandidateQuery>, String> {
    let mut out = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        promql::check::selectors(q).map_err(|e| format!("analyzer.rca.extra_queries[{i}]: {e}"))?;
        out.push(CandidateQuery {
            name: format!("extra_{i}"),
            query: q.clone(),
            role: Role::Component,
            // The window of the first range selector, when there is one, is its smoothing.
            smoothing_secs: range_secs(q).unwrap_or(0.0),
            absent_is_zero: false,
        });
    }
    Ok(out)
}

/// Seconds of the first `[..]` range in a query (`[1m]` -> 60), if any.
fn range_secs(query: &str) -> Option<f64> {
    let start = query.find('[')? + 1;
    let end = start + query[start..].find(']')?;
    let text = &query[start..end];
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some(n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_query_parses_and_names_catalog_metrics_and_labels_only() {
        for window in [1, 5, 60] {
            for c in builtin(window) {
                let checked = CandidateQuery::checked(
                    &c.name,
                    c.role,
                    c.query.clone(),
                    c.smoothing_secs,
                    c.absent_is_zero,
                );
                assert!(checked.is_ok(), "{checked:?}");
            }
        }
        let names: Vec<String> = builtin(60).into_iter().map(|c| c.name).collect();
        for needed in [
            "target_up",
            "engine_up",
            "engine_stalled",
            "engine_scrape_errors",
            "process_restarts",
            "gpu_xid_errors",
            "gpu_ecc_errors",
            "gpu_throttling",
            "log_pattern_rate",
            "engine_requests_waiting",
            "engine_kv_cache_usage",
            "peer_latency_p90",
            "deploy_events",
        ] {
            assert!(names.iter().any(|n| n == needed), "{needed} missing from {names:?}");
        }
    }

    #[test]
    fn the_window_is_the_given_one() {
        let c = builtin(5).into_iter().find(|c| c.name == "request_rate").unwrap();
        assert!(c.query.contains("[5s]"), "{}", c.query);
        assert_eq!(c.smoothing_secs, 5.0);
        let c = builtin(60).into_iter().find(|c| c.name == "engine_ttft_p90").unwrap();
        assert!(c.query.contains("[1m]"), "{}", c.query);
    }

    #[test]
    fn extra_queries_are_parsed_and_name_their_position() {
        let ok = extra(&["sum by (engine) (rate(deepwatch_engine_preemptions_total[2m]))".into()])
            .unwrap();
        assert_eq!(ok[0].smoothing_secs, 120.0);
        assert!(extra(&["rate(node_network_receive_errs_total[1m])".into()]).is_ok());
        let err = extra(&["up".into(), "sum(rate(up[1m]".into()]).unwrap_err();
        assert!(err.starts_with("analyzer.rca.extra_queries[1]"), "{err}");
        let err = extra(&["sum by (x (up)".into()]).unwrap_err();
        assert!(err.contains("extra_queries[0]"), "{err}");
    }
}
