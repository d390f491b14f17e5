//! The Model dashboard's engine panels: what vLLM's own example dashboard shows (scheduler
//! state, queue time, the prefill/decode split, prompt and generation length heatmaps,
//! prefix-cache hit rate, preemptions, finish reasons, the engine's own latency histograms and
//! token throughput), built on the agent's normalized
//! `deepwatch_engine_*` metrics so the same panels serve vLLM, NIM, SGLang and TGI.

use crate::panel::{panel, topk, PanelSpec, WINDOW};
use crate::promql::{mean, sel, series, sum_by, Sel};
use crate::recording::Names;
use deepwatch_core::catalog::{agent, MetricSpec};

/// A normalized engine metric filtered by the dashboard's `$model` variable (engines carry no
/// `model_version`).
fn eng(spec: &MetricSpec) -> Sel {
    sel(spec).re("model", "$model")
}

/// The p95 per model of an engine latency histogram, the top series, from the per-model bucket
/// rates the recording rules keep (`recording::ENGINE_LATENCY`): computed from every engine's
/// raw buckets it took 25-32 s a panel at 1,000 nodes (docs/scaling.md). Their window is the
/// rules' 1 minute, not the panel's `$__rate_interval`.
fn p95(spec: &MetricSpec) -> String {
    let buckets = series(&Names::model_engine_buckets(spec)).re("model", "$model");
    topk(&format!("histogram_quantile(0.95, {buckets})"))
}

/// Tokens per request, by bucket, for a heatmap of request lengths.
fn length_heatmap(title: &'static str, spec: &MetricSpec) -> PanelSpec {
    let increase = format!("increase({}[{WINDOW}])", eng(spec).bucket());
    PanelSpec {
        title,
        kind: "heatmap",
        unit: "none",
        targets: vec![(sum_by(&["le"], &increase), "{{le}}")],
        bucket_heatmap: true,
    }
}

pub fn panels() -> Vec<PanelSpec> {
    let by_model: &[&str] = &["model"];
    let rate = |spec: &MetricSpec| format!("rate({}[{WINDOW}])", eng(spec));
    vec![
        panel(
            "Engine scheduler state",
            "timeseries",
            "none",
            vec![
                (
                    sum_by(by_model, &eng(&agent::ENGINE_REQUESTS_RUNNING).to_string()),
                    "running {{model}}",
                ),
                (
                    sum_by(by_model, &eng(&agent::ENGINE_REQUESTS_WAITING).to_string()),
                    "waiting {{model}}",
                ),
                (
                    sum_by(
                        &["model", "reason"],
                        &eng(&agent::ENGINE_REQUESTS_WAITING_BY_REASON).to_string(),
                    ),
                    "waiting for {{reason}} {{model}}",
                ),
            ],
        ),
        panel(
            "Engine queue time",
            "timeseries",
            "s",
            vec![
                (p95(&agent::ENGINE_QUEUE_TIME), "p95 {{model}}"),
                (mean(by_model, &eng(&agent::ENGINE_QUEUE_TIME), WINDOW), "mean {{model}}"),
            ],
        ),
        panel(
            "Engine prefill and decode time per request",
            "timeseries",
            "s",
            vec![
                (mean(by_model, &eng(&agent::ENGINE_PREFILL_TIME), WINDOW), "prefill {{model}}"),
                (mean(by_model, &eng(&agent::ENGINE_DECODE_TIME), WINDOW), "decode {{model}}"),
            ],
        ),
        panel(
            "Engine latency p95 (engine's own view)",
            "timeseries",
            "s",
            vec![
                (p95(&agent::ENGINE_TTFT), "TTFT {{model}}"),
                (p95(&agent::ENGINE_ITL), "inter-token {{model}}"),
                (p95(&agent::ENGINE_TPOT), "per output token {{model}}"),
            ],
        ),
        panel(
            "Engine request time p95: end to end and running",
            "timeseries",
            "s",
            vec![
                (p95(&agent::ENGINE_E2E), "e2e {{model}}"),
                (p95(&agent::ENGINE_INFERENCE_TIME), "running {{model}}"),
            ],
        ),
        panel(
            "Engine token throughput",
            "timeseries",
            "none",
            vec![
                (
                    sum_by(by_model, &rate(&agent::ENGINE_GENERATION_TOKENS)),
                    "generated/s {{model}}",
                ),
                (sum_by(by_model, &rate(&agent::ENGINE_PROMPT_TOKENS)), "prompt/s {{model}}"),
            ],
        ),
        length_heatmap("Prompt length (tokens)", &agent::ENGINE_PROMPT_LENGTH),
        length_heatmap("Generation length (tokens)", &agent::ENGINE_GENERATION_LENGTH),
        panel(
            "Prefix-cache hit rate",
            "timeseries",
            "percentunit",
            vec![(
                format!(
                    "{} / {}",
                    sum_by(by_model, &rate(&agent::ENGINE_PREFIX_CACHE_HITS)),
                    sum_by(by_model, &rate(&agent::ENGINE_PREFIX_CACHE_QUERIES))
                ),
                "hit rate {{model}}",
            )],
        ),
        panel(
            "Prefix-cache queried tokens",
            "timeseries",
            "none",
            vec![(
                sum_by(by_model, &rate(&agent::ENGINE_PREFIX_CACHE_QUERIES)),
                "tokens/s {{model}}",
            )],
        ),
        panel(
            "Engine preemptions",
            "timeseries",
            "none",
            vec![(
                topk(&sum_by(&["model", "engine"], &rate(&agent::ENGINE_PREEMPTIONS))),
                "{{engine}} {{model}}",
            )],
        ),
        panel(
            "Engine finish reasons",
            "timeseries",
            "none",
            vec![(
                topk(&sum_by(
                    &["finish_reason"],
                    &format!("increase({}[{WINDOW}])", eng(&agent::ENGINE_REQUEST_SUCCESS)),
                )),
                "{{finish_reason}}",
            )],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_panel_filters_by_model_and_heatmaps_read_buckets() {
        for p in panels() {
            assert!(!p.targets.is_empty(), "{}", p.title);
            for (expr, _) in &p.targets {
                assert!(expr.contains(r#"model=~"$model""#), "{}: {expr}", p.title);
                assert_eq!(p.bucket_heatmap, expr.contains("_bucket{") && p.kind == "heatmap");
            }
        }
    }
}
