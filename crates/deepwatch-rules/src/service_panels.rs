//! Detail panels of the request path and of the pipeline behind it. Overview: the gateway's
//! own cost (overhead, inter-token latency), what it sends upstream (in flight, keep-alives,
//! upstream error ratios, pool weights, the active pool, degraded mode), what it
//! answers (response length, reasoning share, finish reasons) and batch jobs. Incidents: what
//! the analyzer saw and did (baselines warming up, findings, probes, alerts received, RCA
//! reports, its Prometheus queries, capacity advice) and which deepwatch versions run.

use crate::panel::{panel, topk, PanelSpec, WINDOW};
use crate::promql::{quantile, sel, sum_by, Sel};
use deepwatch_core::catalog::{analyzer, common, gateway, push, MetricSpec};

/// A gateway request series filtered by the dashboard's model variables.
fn req(spec: &MetricSpec) -> Sel {
    sel(spec).re("model", "$model").re("model_version", "$model_version")
}

fn increase_by(labels: &[&str], s: &Sel) -> String {
    sum_by(labels, &format!("increase({})", s.range(WINDOW)))
}

fn rate_by(labels: &[&str], s: &Sel) -> String {
    sum_by(labels, &crate::promql::rate(s, WINDOW))
}

/// Overview: the gateway and the batch jobs.
pub fn gateway() -> Vec<PanelSpec> {
    let by_pool: &[&str] = &["model", "pool"];
    vec![
        panel(
            "Gateway overhead p99",
            "timeseries",
            "s",
            vec![(
                topk(&quantile(
                    0.99,
                    by_pool,
                    &sel(&gateway::GATEWAY_OVERHEAD).re("model", "$model"),
                    WINDOW,
                )),
                "{{model}} {{pool}}",
            )],
        ),
        panel(
            "Inter-token latency p50 / p99",
            "timeseries",
            "s",
            vec![
                (
                    topk(&quantile(0.5, by_pool, &req(&gateway::INTER_TOKEN_LATENCY), WINDOW)),
                    "p50 {{model}} {{pool}}",
                ),
                (
                    topk(&quantile(0.99, by_pool, &req(&gateway::INTER_TOKEN_LATENCY), WINDOW)),
                    "p99 {{model}} {{pool}}",
                ),
            ],
        ),
        panel(
            "Requests in flight",
            "timeseries",
            "none",
            vec![(
                topk(&sum_by(&["pool"], &sel(&gateway::REQUESTS_IN_FLIGHT).to_string())),
                "{{pool}}",
            )],
        ),
        panel(
            "SSE keep-alives sent while waiting",
            "timeseries",
            "none",
            vec![(topk(&increase_by(&["pool"], &sel(&gateway::KEEPALIVES))), "{{pool}}")],
        ),
        panel(
            "Upstream error ratio",
            "timeseries",
            "percentunit",
            vec![(topk(&sel(&gateway::UPSTREAM_ERROR_RATIO).to_string()), "{{pool}} {{upstream}}")],
        ),
        panel(
            "Pool traffic weight and active pool",
            "timeseries",
            "none",
            vec![
                (topk(&sel(&gateway::POOL_WEIGHT).to_string()), "weight {{pool}}"),
                (topk(&sel(&gateway::POOL_ACTIVE).to_string()), "active {{pool}}"),
            ],
        ),
        panel(
            "Degraded mode",
            "state-timeline",
            "none",
            vec![(topk(&sel(&gateway::DEGRADE_ACTIVE).to_string()), "{{kind}}")],
        ),
        panel(
            "Response length (completion tokens) p50 / p99",
            "timeseries",
            "none",
            vec![
                (
                    topk(&quantile(
                        0.5,
                        by_pool,
                        &req(&gateway::RESPONSE_COMPLETION_TOKENS),
                        WINDOW,
                    )),
                    "p50 {{model}} {{pool}}",
                ),
                (
                    topk(&quantile(
                        0.99,
                        by_pool,
                        &req(&gateway::RESPONSE_COMPLETION_TOKENS),
                        WINDOW,
                    )),
                    "p99 {{model}} {{pool}}",
                ),
            ],
        ),
        panel(
            "Reasoning tokens",
            "timeseries",
            "none",
            vec![
                (
                    topk(&rate_by(&["model"], &req(&gateway::REASONING_TOKENS))),
                    "tokens/s {{model}}",
                ),
                (
                    topk(&quantile(
                        0.5,
                        &["model"],
                        &req(&gateway::RESPONSE_REASONING_SHARE),
                        WINDOW,
                    )),
                    "median share {{model}}",
                ),
            ],
        ),
        panel(
            "Spend by tenant",
            "timeseries",
            "none",
            vec![(
                topk(&increase_by(
                    &["tenant", "model"],
                    &sel(&gateway::SPEND).re("model", "$model"),
                )),
                "{{tenant}} {{model}}",
            )],
        ),
        panel(
            "Prompt tokens served from the prefix cache",
            "timeseries",
            "percentunit",
            vec![(
                topk(&format!(
                    "{} / {}",
                    rate_by(&["model", "pool"], &req(&gateway::CACHED_PROMPT_TOKENS)),
                    rate_by(&["model", "pool"], &req(&gateway::PROMPT_TOKENS))
                )),
                "{{model}} {{pool}}",
            )],
        ),
        panel(
            "Finish reasons",
            "timeseries",
            "none",
            vec![(
                topk(&increase_by(&["finish_reason"], &req(&gateway::RESPONSE_FINISH_REASON))),
                "{{finish_reason}}",
            )],
        ),
        panel(
            "Batch job latency and errors",
            "timeseries",
            "s",
            vec![
                (
                    topk(&quantile(
                        0.99,
                        &["job", "model"],
                        &sel(&push::BATCH_REQUEST_DURATION),
                        WINDOW,
                    )),
                    "p99 {{job}} {{model}}",
                ),
                (topk(&sel(&push::BATCH_LATENCY_MEAN).to_string()), "last batch mean {{job}}"),
                (topk(&sel(&push::BATCH_LATENCY_P99).to_string()), "last batch p99 {{job}}"),
                (topk(&sel(&push::BATCH_LATENCY_MAX).to_string()), "last batch max {{job}}"),
            ],
        ),
        panel(
            "Batch job results, skipped lines and failed pushes",
            "timeseries",
            "none",
            vec![
                (
                    topk(&increase_by(&["job", "outcome"], &sel(&push::BATCH_RESULTS))),
                    "{{outcome}} {{job}}",
                ),
                (
                    topk(&increase_by(&["job"], &sel(&push::BATCH_MALFORMED_LINES))),
                    "malformed lines {{job}}",
                ),
                (
                    topk(&increase_by(&["job"], &sel(&push::BATCH_PUSH_FAILURES))),
                    "failed pushes {{job}}",
                ),
            ],
        ),
        panel(
            "Gateway open-file limit",
            "stat",
            "none",
            vec![(topk(&sel(&gateway::OPEN_FILES_LIMIT).to_string()), "{{kind}} {{instance}}")],
        ),
    ]
}

/// Incidents: what the analyzer saw and did.
pub fn analyzer() -> Vec<PanelSpec> {
    vec![
        panel(
            "Baselines warming up",
            "stat",
            "none",
            vec![(format!("sum({})", sel(&analyzer::BASELINE_WARMING_UP)), "series")],
        ),
        panel(
            "Detector findings",
            "timeseries",
            "none",
            vec![(
                topk(&increase_by(&["detector", "series"], &sel(&analyzer::DETECTOR_FINDINGS))),
                "{{detector}} {{series}}",
            )],
        ),
        panel(
            "Probe results and duration",
            "timeseries",
            "none",
            vec![
                (
                    topk(&increase_by(&["model", "outcome"], &req(&analyzer::PROBE_RESULTS))),
                    "{{outcome}} {{model}}",
                ),
                (
                    topk(&quantile(0.99, &["model"], &req(&analyzer::PROBE_DURATION), WINDOW)),
                    "p99 seconds {{model}}",
                ),
            ],
        ),
        panel(
            "Alerts received by the analyzer",
            "timeseries",
            "none",
            vec![
                (
                    topk(&increase_by(&["alertname", "status"], &sel(&analyzer::WEBHOOK_ALERTS))),
                    "{{alertname}} {{status}}",
                ),
                (topk(&increase_by(&[], &sel(&analyzer::WEBHOOK_DUPLICATES))), "duplicates"),
                (topk(&increase_by(&[], &sel(&analyzer::WEBHOOK_REPLAYED))), "replayed at start"),
            ],
        ),
        panel(
            "Root-cause reports",
            "timeseries",
            "none",
            vec![(
                topk(&increase_by(&["alertname"], &sel(&analyzer::RCA_REPORTS))),
                "{{alertname}}",
            )],
        ),
        panel(
            "Analyzer queries to Prometheus",
            "timeseries",
            "none",
            vec![(
                topk(&rate_by(&["outcome"], &sel(&analyzer::PROMETHEUS_QUERIES))),
                "{{outcome}}",
            )],
        ),
        panel(
            "Recommended replicas",
            "timeseries",
            "none",
            vec![(
                topk(
                    &sel(&analyzer::CAPACITY_RECOMMENDED_REPLICAS)
                        .re("model", "$model")
                        .to_string(),
                ),
                "{{model}}",
            )],
        ),
        panel(
            "deepwatch versions running",
            "table",
            "none",
            vec![(
                topk(&format!("count by (component, version) ({})", sel(&common::BUILD_INFO))),
                "{{component}} {{version}}",
            )],
        ),
    ]
}
