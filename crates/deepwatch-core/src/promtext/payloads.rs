//! Real engine `/metrics` payloads, for tests in every crate (the agent's normalizer, the
//! simulator's fidelity checks). Written by `fixtures/generate.py`: vLLM ~0.12 and SGLang by the
//! real `prometheus_client`, TGI and llama.cpp following their writers' formatting. Being
//! `const`s, they take no space in a binary that does not use them.

/// vLLM ~0.12, DP=2 (`engine` "0" and "1"), model `deepseek-ai/DeepSeek-V3`, 0.0.4 text with
/// the Python client's `_created` gauges, HTTP (prometheus_fastapi_instrumentator) and process
/// metrics.
pub const VLLM_0_12_TEXT: &str = include_str!("fixtures/vllm-0.12.txt");
/// The same registry rendered as OpenMetrics, including prometheus/client_python#1177 (sample
/// names with `_` where HELP/TYPE have `:`), which the parser repairs.
pub const VLLM_0_12_OPENMETRICS: &str = include_str!("fixtures/vllm-0.12.openmetrics.txt");
/// SGLang in multiprocess mode, TP=2 (`tp_rank` "0" and "1"), 0.0.4 text.
pub const SGLANG_TEXT: &str = include_str!("fixtures/sglang.txt");
/// TGI (metrics-exporter-prometheus: no HELP, counters without `_total`, blank lines).
pub const TGI_TEXT: &str = include_str!("fixtures/tgi.txt");
/// llama.cpp `llama-server --metrics` (older build with `kv_cache_usage_ratio`).
pub const LLAMACPP_TEXT: &str = include_str!("fixtures/llamacpp.txt");
