//! From an engine's own metric families to the catalog's `deepwatch_engine_*` names: engine
//! kind detection from metric prefixes, and one alias table that maps every canonical metric to
//! the native names of each engine, old and new (vLLM `gpu_cache_usage_perc` →
//! `kv_cache_usage_perc`, `time_per_output_token_seconds` → `inter_token_latency_seconds`).
//! Series are aggregated per model: counters, histogram buckets and request gauges are summed
//! over ranks (vLLM `engine`, SGLang `tp_rank`), KV-cache usage is averaged.

use deepwatch_core::catalog::agent as cat;
use deepwatch_core::catalog::{MetricSpec, MetricType};
use deepwatch_core::config::agent::EngineKind;
use deepwatch_core::promtext::Family;
use std::collections::BTreeMap;

/// How an aliased family turns into its canonical metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Gauge summed over ranks.
    Sum,
    /// Gauge averaged over ranks (a usage ratio).
    Mean,
    /// Counter summed over ranks.
    Counter,
    /// The `_sum` of a histogram, as a counter (TGI token-length histograms).
    HistogramSum,
    /// Histogram with the engine's own bucket edges.
    Histogram,
    /// Counter or gauge split by one of the engine's labels (finish reason, waiting reason),
    /// which becomes the catalog metric's last label.
    ByLabel(&'static str),
}

/// One row of the alias table: the native names of a canonical metric, newest first.
pub struct Alias {
    pub kind: EngineKind,
    pub spec: &'static MetricSpec,
    pub names: &'static [&'static str],
    pub take: Take,
}

macro_rules! alias {
    ($kind:ident, $spec:ident, [$($n:literal),+], $take:ident) => {
        Alias { kind: EngineKind::$kind, spec: &cat::$spec, names: &[$($n),+], take: Take::$take }
    };
    ($kind:ident, $spec:ident, [$($n:literal),+], ByLabel($label:literal)) => {
        Alias {
            kind: EngineKind::$kind,
            spec: &cat::$spec,
            names: &[$($n),+],
            take: Take::ByLabel($label),
        }
    };
}

/// Every mapping the normalizer knows. Sources: vLLM `vllm/v1/metrics/loggers.py` and a live
/// vLLM 0.32 scrape (`tests/fixtures/vllm_v0_32_real.txt`), SGLang `srt/metrics/collector.py`,
/// TGI `docs/source/reference/metrics.md`, llama.cpp `tools/server/README.md`, NIM
/// observability docs.
pub const ALIASES: &[Alias] = &[
    alias!(Vllm, ENGINE_REQUESTS_RUNNING, ["vllm:num_requests_running"], Sum),
    alias!(Vllm, ENGINE_REQUESTS_WAITING, ["vllm:num_requests_waiting"], Sum),
    alias!(
        Vllm,
        ENGINE_KV_CACHE_USAGE,
        ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
        Mean
    ),
    alias!(Vllm, ENGINE_PROMPT_TOKENS, ["vllm:prompt_tokens_total"], Counter),
    alias!(Vllm, ENGINE_GENERATION_TOKENS, ["vllm:generation_tokens_total"], Counter),
    alias!(Vllm, ENGINE_PREEMPTIONS, ["vllm:num_preemptions_total"], Counter),
    alias!(
        Vllm,
        ENGINE_REQUESTS_WAITING_BY_REASON,
        ["vllm:num_requests_waiting_by_reason"],
        ByLabel("reason")
    ),
    alias!(
        Vllm,
        ENGINE_REQUEST_SUCCESS,
        ["vllm:request_success_total"],
        ByLabel("finished_reason")
    ),
    alias!(
        Vllm,
        ENGINE_PREFIX_CACHE_QUERIES,
        ["vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"],
        Counter
    ),
    alias!(
        Vllm,
        ENGINE_PREFIX_CACHE_HITS,
        ["vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"],
        Counter
    ),
    alias!(Vllm, ENGINE_TTFT, ["vllm:time_to_first_token_seconds"], Histogram),
    alias!(Vllm, ENGINE_E2E, ["vllm:e2e_request_latency_seconds"], Histogram),
    alias!(
        Vllm,
        ENGINE_ITL,
        ["vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"],
        Histogram
    ),
    alias!(Vllm, ENGINE_TPOT, ["vllm:request_time_per_output_token_seconds"], Histogram),
    alias!(Vllm, ENGINE_QUEUE_TIME, ["vllm:request_queue_time_seconds"], Histogram),
    alias!(Vllm, ENGINE_PREFILL_TIME, ["vllm:request_prefill_time_seconds"], Histogram),
    alias!(Vllm, ENGINE_DECODE_TIME, ["vllm:request_decode_time_seconds"], Histogram),
    alias!(Vllm, ENGINE_INFERENCE_TIME, ["vllm:request_inference_time_seconds"], Histogram),
    alias!(Vllm, ENGINE_PROMPT_LENGTH, ["vllm:request_prompt_tokens"], Histogram),
    alias!(Vllm, ENGINE_GENERATION_LENGTH, ["vllm:request_generation_tokens"], Histogram),
    alias!(Nim, ENGINE_REQUESTS_RUNNING, ["num_requests_running"], Sum),
    alias!(Nim, ENGINE_REQUESTS_WAITING, ["num_requests_waiting"], Sum),
    alias!(Nim, ENGINE_KV_CACHE_USAGE, ["kv_cache_usage_perc", "gpu_cache_usage_perc"], Mean),
    alias!(Nim, ENGINE_PROMPT_TOKENS, ["prompt_tokens_total"], Counter),
    alias!(Nim, ENGINE_GENERATION_TOKENS, ["generation_tokens_total"], Counter),
    alias!(Nim, ENGINE_PREEMPTIONS, ["num_preemptions_total"], Counter),
    alias!(Nim, ENGINE_REQUEST_SUCCESS, ["request_success_total"], ByLabel("finished_reason")),
    alias!(
        Nim,
        ENGINE_PREFIX_CACHE_QUERIES,
        ["prefix_cache_queries_total", "gpu_prefix_cache_queries_total"],
        Counter
    ),
    alias!(
        Nim,
        ENGINE_PREFIX_CACHE_HITS,
        ["prefix_cache_hits_total", "gpu_prefix_cache_hits_total"],
        Counter
    ),
    alias!(Nim, ENGINE_TTFT, ["time_to_first_token_seconds"], Histogram),
    alias!(Nim, ENGINE_E2E, ["e2e_request_latency_seconds"], Histogram),
    alias!(
        Nim,
        ENGINE_ITL,
        ["inter_token_latency_seconds", "time_per_output_token_seconds"],
        Histogram
    ),
    alias!(Nim, ENGINE_TPOT, ["request_time_per_output_token_seconds"], Histogram),
    alias!(Nim, ENGINE_QUEUE_TIME, ["request_queue_time_seconds"], Histogram),
    alias!(Nim, ENGINE_PREFILL_TIME, ["request_prefill_time_seconds"], Histogram),
    alias!(Nim, ENGINE_DECODE_TIME, ["request_decode_time_seconds"], Histogram),
    alias!(Nim, ENGINE_INFERENCE_TIME, ["request_inference_time_seconds"], Histogram),
    alias!(Nim, ENGINE_PROMPT_LENGTH, ["request_prompt_tokens"], Histogram),
    alias!(Nim, ENGINE_GENERATION_LENGTH, ["request_generation_tokens"], Histogram),
    alias!(Sglang, ENGINE_REQUESTS_RUNNING, ["sglang:num_running_reqs"], Sum),
    alias!(Sglang, ENGINE_REQUESTS_WAITING, ["sglang:num_queue_reqs"], Sum),
    alias!(Sglang, ENGINE_KV_CACHE_USAGE, ["sglang:token_usage"], Mean),
    alias!(Sglang, ENGINE_PROMPT_TOKENS, ["sglang:prompt_tokens_total"], Counter),
    alias!(Sglang, ENGINE_GENERATION_TOKENS, ["sglang:generation_tokens_total"], Counter),
    alias!(Sglang, ENGINE_PREEMPTIONS, ["sglang:num_retracted_requests_total"], Counter),
    alias!(Sglang, ENGINE_TTFT, ["sglang:time_to_first_token_seconds"], Histogram),
    alias!(Sglang, ENGINE_E2E, ["sglang:e2e_request_latency_seconds"], Histogram),
    alias!(Sglang, ENGINE_ITL, ["sglang:inter_token_latency_seconds"], Histogram),
    alias!(Sglang, ENGINE_QUEUE_TIME, ["sglang:queue_time_seconds"], Histogram),
    // Only with `--collect-tokens-histogram`.
    alias!(Sglang, ENGINE_PROMPT_LENGTH, ["sglang:prompt_tokens_histogram"], Histogram),
    alias!(Sglang, ENGINE_GENERATION_LENGTH, ["sglang:generation_tokens_histogram"], Histogram),
    // TGI has no TTFT histogram and no model label; its ITL is the per-request mean.
    alias!(Tgi, ENGINE_REQUESTS_RUNNING, ["tgi_batch_current_size"], Sum),
    alias!(Tgi, ENGINE_REQUESTS_WAITING, ["tgi_queue_size"], Sum),
    alias!(Tgi, ENGINE_PROMPT_TOKENS, ["tgi_request_input_length"], HistogramSum),
    alias!(Tgi, ENGINE_GENERATION_TOKENS, ["tgi_request_generated_tokens"], HistogramSum),
    alias!(Tgi, ENGINE_E2E, ["tgi_request_duration"], Histogram),
    alias!(Tgi, ENGINE_ITL, ["tgi_request_mean_time_per_token_duration"], Histogram),
    alias!(Tgi, ENGINE_TPOT, ["tgi_request_mean_time_per_token_duration"], Histogram),
    alias!(Tgi, ENGINE_QUEUE_TIME, ["tgi_request_queue_duration"], Histogram),
    alias!(Tgi, ENGINE_INFERENCE_TIME, ["tgi_request_inference_duration"], Histogram),
    alias!(Tgi, ENGINE_PROMPT_LENGTH, ["tgi_request_input_length"], Histogram),
    alias!(Tgi, ENGINE_GENERATION_LENGTH, ["tgi_request_generated_tokens"], Histogram),
    // llama.cpp has no histograms; kv_cache_usage_ratio exists in older builds only.
    alias!(Llamacpp, ENGINE_REQUESTS_RUNNING, ["llamacpp:requests_processing"], Sum),
    alias!(Llamacpp, ENGINE_REQUESTS_WAITING, ["llamacpp:requests_deferred"], Sum),
    alias!(Llamacpp, ENGINE_KV_CACHE_USAGE, ["llamacpp:kv_cache_usage_ratio"], Mean),
    alias!(Llamacpp, ENGINE_PROMPT_TOKENS, ["llamacpp:prompt_tokens_total"], Counter),
    alias!(Llamacpp, ENGINE_GENERATION_TOKENS, ["llamacpp:tokens_predicted_total"], Counter),
];

/// Counters whose movement proves the engine is making progress, per kind (any of them moving
/// is progress). vLLM's iteration histogram is observed every engine step.
pub fn progress_names(kind: EngineKind) -> &'static [&'static str] {
    match kind {
        EngineKind::Vllm => &[
            "vllm:iteration_tokens_total_count",
            "vllm:generation_tokens_total",
            "vllm:prompt_tokens_total",
        ],
        EngineKind::Nim => &["generation_tokens_total", "prompt_tokens_total"],
        EngineKind::Sglang => &[
            "sglang:realtime_tokens_total",
            "sglang:generation_tokens_total",
            "sglang:prompt_tokens_total",
        ],
        EngineKind::Tgi => &["tgi_batch_inference_count", "tgi_request_generated_tokens_sum"],
        EngineKind::Llamacpp => &["llamacpp:n_decode_total", "llamacpp:tokens_predicted_total"],
        EngineKind::Auto => &[],
    }
}

/// The engine kind from metric prefixes; `None` when nothing is recognized.
pub fn detect(families: &[Family]) -> Option<EngineKind> {
    let has_prefix = |p: &str| families.iter().any(|f| f.name.starts_with(p));
    if has_prefix("vllm:") {
        Some(EngineKind::Vllm)
    } else if has_prefix("sglang:") {
        Some(EngineKind::Sglang)
    } else if has_prefix("llamacpp:") {
        Some(EngineKind::Llamacpp)
    } else if has_prefix("tgi_") {
        Some(EngineKind::Tgi)
    } else if families.iter().any(|f| {
        ["num_requests_running", "gpu_cache_usage_perc", "kv_cache_usage_perc"]
            .contains(&f.name.as_str())
    }) {
        Some(EngineKind::Nim)
    } else {
        None
    }
}

/// A catalog histogram for one model with the engine's edges.
#[derive(Debug, Clone, PartialEq)]
pub struct Hist {
    pub edges: Vec<f64>,
    pub cumulative: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// The normalized view of one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Normalized {
    /// (spec, model, value) for gauges and counters.
    pub values: Vec<(&'static MetricSpec, String, f64)>,
    /// (spec, model, value of the split label, value) for `Take::ByLabel` metrics.
    pub labelled: Vec<(&'static MetricSpec, String, String, f64)>,
    pub histograms: Vec<(&'static MetricSpec, String, Hist)>,
    /// Which native name answered for each canonical metric (to log alias use).
    pub matched: Vec<(&'static str, &'static str)>,
}

fn model_of<'a>(labels: &'a [(String, String)], fallback: &'a str) -> &'a str {
    labels
        .iter()
        .find(|(k, _)| k == "model_name" || k == "model")
        .map(|(_, v)| v.as_str())
        .unwrap_or(fallback)
}

/// Maps `families` of an engine of `kind`; `model` labels engines whose metrics carry none.
pub fn normalize(kind: EngineKind, families: &[Family], model: &str) -> Normalized {
    let mut out = Normalized::default();
    for alias in ALIASES.iter().filter(|a| a.kind == kind) {
        let Some((native, family)) = alias
            .names
            .iter()
            .find_map(|n| families.iter().find(|f| f.is_named(n)).map(|f| (*n, f)))
        else {
            continue;
        };
        out.matched.push((alias.spec.name, native));
        match alias.take {
            Take::Sum | Take::Mean | Take::Counter => {
                let mut per_model: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
                for s in &family.samples {
                    let e = per_model.entry(model_of(&s.labels, model)).or_default();
                    e.0 += s.value;
                    e.1 += 1;
                }
                for (m, (total, n)) in per_model {
                    let v = if alias.take == Take::Mean { total / n as f64 } else { total };
                    out.values.push((alias.spec, m.to_string(), v));
                }
            }
            Take::HistogramSum => {
                let sum_name = format!("{}_sum", family.name);
                let mut per_model: BTreeMap<&str, f64> = BTreeMap::new();
                for s in family.samples.iter().filter(|s| s.name == sum_name) {
                    *per_model.entry(model_of(&s.labels, model)).or_default() += s.value;
                }
                for (m, v) in per_model {
                    out.values.push((alias.spec, m.to_string(), v));
                }
            }
            Take::ByLabel(label) => {
                let mut per: BTreeMap<(&str, &str), f64> = BTreeMap::new();
                for s in &family.samples {
                    let value = s.label(label).unwrap_or("unknown");
                    *per.entry((model_of(&s.labels, model), value)).or_default() += s.value;
                }
                for ((m, v), total) in per {
                    out.labelled.push((alias.spec, m.to_string(), v.to_string(), total));
                }
            }
            Take::Histogram => {
                if family.kind != MetricType::Histogram {
                    continue;
                }
                for (m, h) in histograms(family, model) {
                    out.histograms.push((alias.spec, m, h));
                }
            }
        }
    }
    out
}

/// Sums a histogram family's buckets per model over every other label, keeping its edges.
fn histograms(family: &Family, fallback: &str) -> BTreeMap<String, Hist> {
    #[derive(Default)]
    struct Acc {
        by_edge: BTreeMap<u64, (f64, f64)>,
        sum: f64,
        count: f64,
    }
    let bucket = format!("{}_bucket", family.name);
    let sum = format!("{}_sum", family.name);
    let count = format!("{}_count", family.name);
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    for s in &family.samples {
        let a = acc.entry(model_of(&s.labels, fallback).to_string()).or_default();
        if s.name == bucket {
            let Some(le) = s.label("le").and_then(|v| v.parse::<f64>().ok()) else { continue };
            if le.is_infinite() {
                continue;
            }
            // Order edges numerically; f64 bits of non-negative numbers sort like the numbers.
            let e = a.by_edge.entry(le.to_bits()).or_insert((le, 0.0));
            e.1 += s.value;
        } else if s.name == sum {
            a.sum += s.value;
        } else if s.name == count {
            a.count += s.value;
        }
    }
    acc.into_iter()
        .map(|(m, a)| {
            let mut edges: Vec<(f64, f64)> = a.by_edge.into_values().collect();
            edges.sort_by(|x, y| x.0.total_cmp(&y.0));
            let hist = Hist {
                edges: edges.iter().map(|e| e.0).collect(),
                cumulative: edges.iter().map(|e| e.1.round().max(0.0) as u64).collect(),
                sum: a.sum,
                count: a.count.round().max(0.0) as u64,
            };
            (m, hist)
        })
        .collect()
}

/// Sum of every sample named in `names` (a progress fingerprint for stall detection).
pub fn progress(kind: EngineKind, families: &[Family]) -> Vec<f64> {
    progress_names(kind)
        .iter()
        .map(|name| {
            families
                .iter()
                .flat_map(|f| f.samples.iter())
                .filter(|s| s.name == *name)
                .map(|s| s.value)
                .sum()
        })
        .collect()
}

/// Requests running right now (sum over ranks), for stall detection.
pub fn running(n: &Normalized) -> f64 {
    n.values
        .iter()
        .filter(|(spec, _, _)| spec.name == cat::ENGINE_REQUESTS_RUNNING.name)
        .map(|(_, _, v)| v)
        .sum()
}
