//! Names and bucket layouts of the inference engines' own metrics, as the engines expose them.
//! The agent's normalizer reads these and the simulator writes them, so both sides agree on
//! one definition. Sources: vLLM `vllm/v1/metrics/loggers.py` (≈0.12), SGLang
//! `srt/metrics/collector.py`, TGI `router/src/server.rs`, llama.cpp `tools/server/README.md`.

/// vLLM metric names (counters as exposed, with `_total`).
pub mod vllm {
    pub const NUM_REQUESTS_RUNNING: &str = "vllm:num_requests_running";
    pub const NUM_REQUESTS_WAITING: &str = "vllm:num_requests_waiting";
    /// Waiting requests split by `reason` (`WAITING_REASONS`); new in 0.3x.
    pub const NUM_REQUESTS_WAITING_BY_REASON: &str = "vllm:num_requests_waiting_by_reason";
    /// Prompt tokens looked up in / found in the prefix cache.
    pub const PREFIX_CACHE_QUERIES_TOTAL: &str = "vllm:prefix_cache_queries_total";
    pub const PREFIX_CACHE_HITS_TOTAL: &str = "vllm:prefix_cache_hits_total";
    pub const KV_CACHE_USAGE_PERC: &str = "vllm:kv_cache_usage_perc";
    /// Name before vLLM 0.9 for `KV_CACHE_USAGE_PERC`.
    pub const GPU_CACHE_USAGE_PERC: &str = "vllm:gpu_cache_usage_perc";
    pub const NUM_PREEMPTIONS_TOTAL: &str = "vllm:num_preemptions_total";
    pub const PROMPT_TOKENS_TOTAL: &str = "vllm:prompt_tokens_total";
    pub const GENERATION_TOKENS_TOTAL: &str = "vllm:generation_tokens_total";
    pub const REQUEST_SUCCESS_TOTAL: &str = "vllm:request_success_total";
    pub const ITERATION_TOKENS_TOTAL: &str = "vllm:iteration_tokens_total";
    pub const TIME_TO_FIRST_TOKEN_SECONDS: &str = "vllm:time_to_first_token_seconds";
    pub const INTER_TOKEN_LATENCY_SECONDS: &str = "vllm:inter_token_latency_seconds";
    /// Deprecated in 0.11 for `INTER_TOKEN_LATENCY_SECONDS`.
    pub const TIME_PER_OUTPUT_TOKEN_SECONDS: &str = "vllm:time_per_output_token_seconds";
    pub const REQUEST_TIME_PER_OUTPUT_TOKEN_SECONDS: &str =
        "vllm:request_time_per_output_token_seconds";
    pub const E2E_REQUEST_LATENCY_SECONDS: &str = "vllm:e2e_request_latency_seconds";
    pub const REQUEST_QUEUE_TIME_SECONDS: &str = "vllm:request_queue_time_seconds";
    pub const REQUEST_PROMPT_TOKENS: &str = "vllm:request_prompt_tokens";
    pub const REQUEST_GENERATION_TOKENS: &str = "vllm:request_generation_tokens";
    pub const REQUEST_PREFILL_TIME_SECONDS: &str = "vllm:request_prefill_time_seconds";
    pub const REQUEST_DECODE_TIME_SECONDS: &str = "vllm:request_decode_time_seconds";
    pub const REQUEST_INFERENCE_TIME_SECONDS: &str = "vllm:request_inference_time_seconds";
    /// Info gauge (value 1) with the cache config as labels (`block_size`, `num_gpu_blocks`).
    pub const CACHE_CONFIG_INFO: &str = "vllm:cache_config_info";

    /// Labels on every vLLM series, in vLLM's order (`engine` is the data-parallel rank).
    pub const LABELS: &[&str] = &["model_name", "engine"];
    /// Extra label of `REQUEST_SUCCESS_TOTAL`.
    pub const FINISHED_REASON_LABEL: &str = "finished_reason";

    /// Extra label of `NUM_REQUESTS_WAITING_BY_REASON` and its values.
    pub const WAITING_REASON_LABEL: &str = "reason";
    pub const WAITING_REASONS: &[&str] = &["capacity", "deferred"];
    /// Tokens per KV-cache block (vLLM's default block size), the prefix cache's unit.
    pub const BLOCK_SIZE: u64 = 16;

    /// `finished_reason` label values of `request_success_total`.
    pub const FINISHED_REASONS: &[&str] = &["stop", "length", "abort", "error", "repetition"];

    pub const TTFT_BUCKETS: &[f64] = &[
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
    ];
    /// Inter-token latency and per-request TPOT.
    pub const ITL_BUCKETS: &[f64] = &[
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0,
    ];
    /// End-to-end, queue, inference, prefill and decode times.
    pub const REQUEST_LATENCY_BUCKETS: &[f64] = &[
        0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
        240.0, 480.0, 960.0, 1920.0, 7680.0,
    ];
    pub const ITERATION_TOKENS_BUCKETS: &[f64] =
        &[1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0];

    /// Buckets of the per-request token-count histograms (`request_prompt_tokens`,
    /// `request_generation_tokens`): vLLM's `build_1_2_5_buckets(max_model_len)`, i.e.
    /// 1, 2, 5, 10, 20, 50, ... up to and including `max_model_len`.
    pub fn length_buckets(max_model_len: u64) -> Vec<f64> {
        let mut out = Vec::new();
        let mut exponent = 1u64;
        loop {
            for mantissa in [1, 2, 5] {
                let value = mantissa * exponent;
                if value > max_model_len {
                    return out;
                }
                out.push(value as f64);
            }
            exponent *= 10;
        }
    }
}

/// SGLang metric names.
pub mod sglang {
    pub const NUM_RUNNING_REQS: &str = "sglang:num_running_reqs";
    pub const NUM_QUEUE_REQS: &str = "sglang:num_queue_reqs";
    pub const TOKEN_USAGE: &str = "sglang:token_usage";
    pub const PROMPT_TOKENS_TOTAL: &str = "sglang:prompt_tokens_total";
    pub const GENERATION_TOKENS_TOTAL: &str = "sglang:generation_tokens_total";
    pub const NUM_RETRACTED_REQUESTS_TOTAL: &str = "sglang:num_retracted_requests_total";
    pub const REALTIME_TOKENS_TOTAL: &str = "sglang:realtime_tokens_total";
    pub const TIME_TO_FIRST_TOKEN_SECONDS: &str = "sglang:time_to_first_token_seconds";
    pub const INTER_TOKEN_LATENCY_SECONDS: &str = "sglang:inter_token_latency_seconds";
    pub const E2E_REQUEST_LATENCY_SECONDS: &str = "sglang:e2e_request_latency_seconds";
}

/// TGI metric names (no model label, no TTFT histogram).
pub mod tgi {
    pub const QUEUE_SIZE: &str = "tgi_queue_size";
    pub const BATCH_CURRENT_SIZE: &str = "tgi_batch_current_size";
    pub const REQUEST_DURATION: &str = "tgi_request_duration";
    pub const REQUEST_QUEUE_DURATION: &str = "tgi_request_queue_duration";
    pub const REQUEST_MEAN_TIME_PER_TOKEN_DURATION: &str =
        "tgi_request_mean_time_per_token_duration";
    pub const REQUEST_INPUT_LENGTH: &str = "tgi_request_input_length";
    pub const REQUEST_GENERATED_TOKENS: &str = "tgi_request_generated_tokens";
    pub const REQUEST_SUCCESS: &str = "tgi_request_success";
    pub const REQUEST_FAILURE: &str = "tgi_request_failure";
    pub const BATCH_INFERENCE_DURATION: &str = "tgi_batch_inference_duration";
}

/// llama.cpp `llama-server --metrics` names (no histograms).
pub mod llamacpp {
    pub const PROMPT_TOKENS_TOTAL: &str = "llamacpp:prompt_tokens_total";
    pub const TOKENS_PREDICTED_TOTAL: &str = "llamacpp:tokens_predicted_total";
    pub const N_DECODE_TOTAL: &str = "llamacpp:n_decode_total";
    pub const REQUESTS_PROCESSING: &str = "llamacpp:requests_processing";
    pub const REQUESTS_DEFERRED: &str = "llamacpp:requests_deferred";
    pub const KV_CACHE_USAGE_RATIO: &str = "llamacpp:kv_cache_usage_ratio";
}

#[cfg(test)]
mod tests {
    use super::vllm;

    #[test]
    fn length_buckets_are_vllm_1_2_5_series() {
        assert_eq!(
            vllm::length_buckets(1000),
            [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        );
        assert_eq!(vllm::length_buckets(4096).last(), Some(&2000.0));
    }
}
