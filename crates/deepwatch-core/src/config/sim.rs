//! The `[sim]` section of `deepwatch.toml`: the inference-engine simulator (`deepwatch sim`).
//! Listeners, the served model, capacity (running sequences, KV cache) and the latency model.
//! Base delays are written in `_ms` keys and held as `Duration`; per-token costs stay integer
//! microseconds (`_us`).

use super::{Path, Problems};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// OpenAI API, `/metrics` and `/health`.
    pub listen: String,
    /// Fault admin API (stays up while the main listener is "down").
    pub admin_listen: String,
    /// Bearer token of the admin API; empty means one is generated at start and logged.
    pub admin_token: String,
    /// Served model name (`model_name` label, `/v1/models`).
    pub model: String,
    pub model_version: String,
    /// Stream `reasoning_content` deltas before the answer, like DeepSeek-R1.
    pub reasoning: bool,
    /// Share of completion tokens that are reasoning tokens, for reasoning models.
    pub reasoning_ratio: f64,
    /// Seed of every random choice (content, lengths, jitter, injected errors).
    pub seed: u64,
    /// Longest prompt + completion accepted, in tokens (longer requests get 400, as vLLM).
    pub max_model_len: u64,
    /// Most sequences decoding at once (vLLM `--max-num-seqs`); more requests wait.
    pub max_num_seqs: u64,
    /// KV-cache capacity in tokens; requests wait when it is full, and decoding sequences that
    /// outgrow it are preempted and recomputed.
    pub kv_cache_tokens: u64,
    /// Fixed part of the prefill time (the first token) of each request.
    #[serde(rename = "ttft_base_ms", with = "crate::config::duration::millis")]
    pub ttft_base: Duration,
    /// Prefill time per prompt token (TTFT grows with prompt length).
    pub prefill_us_per_token: u64,
    /// Time per output token with one running sequence.
    #[serde(rename = "tpot_base_ms", with = "crate::config::duration::millis")]
    pub tpot_base: Duration,
    /// Extra time per output token for each running sequence (TPOT grows with batch size).
    pub tpot_us_per_running_seq: u64,
    /// Uniform jitter on every modelled delay, as a fraction (0.1 = ±10 %).
    pub jitter_ratio: f64,
    /// Median completion length when a request gives no `max_tokens` (lognormal, sigma 0.5).
    pub output_tokens_median: u64,
    /// Upper bound of the memory the leak fault may hold.
    pub leak_cap_mb: u64,
    /// Expose vLLM's pre-0.9/0.11 names (`gpu_cache_usage_perc`, `time_per_output_token_seconds`)
    /// instead of the current ones, to test readers against older engines.
    pub legacy_metric_names: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: "127.0.0.1:8000".into(),
            admin_listen: "127.0.0.1:8001".into(),
            admin_token: String::new(),
            model: "deepseek-r1".into(),
            model_version: "v1".into(),
            reasoning: false,
            reasoning_ratio: 0.5,
            seed: 42,
            max_model_len: 32768,
            max_num_seqs: 64,
            kv_cache_tokens: 262144,
            ttft_base: Duration::from_millis(40),
            prefill_us_per_token: 50,
            tpot_base: Duration::from_millis(20),
            tpot_us_per_running_seq: 150,
            jitter_ratio: 0.1,
            output_tokens_median: 200,
            leak_cap_mb: 512,
            legacy_metric_names: false,
        }
    }
}

impl SimConfig {
    /// The same config with every modelled delay set to zero (`deepwatch sim --fast`).
    pub fn zero_latency(mut self) -> Self {
        self.ttft_base = Duration::ZERO;
        self.prefill_us_per_token = 0;
        self.tpot_base = Duration::ZERO;
        self.tpot_us_per_running_seq = 0;
        self.jitter_ratio = 0.0;
        self
    }

    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        problems.socket_addr(&path.field("listen"), &self.listen);
        problems.socket_addr(&path.field("admin_listen"), &self.admin_listen);
        if self.listen == self.admin_listen && !self.listen.ends_with(":0") {
            problems.push(&path.field("admin_listen"), "must differ from listen");
        }
        problems.non_empty(&path.field("model"), &self.model);
        problems.bearer_token(&path.field("admin_token"), &self.admin_token);
        problems.range(&path.field("reasoning_ratio"), self.reasoning_ratio, 0.0, 1.0);
        problems.positive(&path.field("max_model_len"), self.max_model_len);
        problems.positive(&path.field("max_num_seqs"), self.max_num_seqs);
        if self.kv_cache_tokens < self.max_model_len {
            problems.push(
                &path.field("kv_cache_tokens"),
                format!(
                    "must hold at least one max_model_len sequence ({}), got {}",
                    self.max_model_len, self.kv_cache_tokens
                ),
            );
        }
        problems.range(&path.field("jitter_ratio"), self.jitter_ratio, 0.0, 0.9);
        let max_delay = super::duration::MAX_TIMEOUT;
        problems.duration(&path.field("ttft_base_ms"), self.ttft_base, Duration::ZERO, max_delay);
        problems.duration(&path.field("tpot_base_ms"), self.tpot_base, Duration::ZERO, max_delay);
        problems.positive(&path.field("output_tokens_median"), self.output_tokens_median);
        problems.range(&path.field("leak_cap_mb"), self.leak_cap_mb, 1, 65536);
    }
}

/// Commented default for this section, part of `deepwatch config example`.
pub const EXAMPLE: &str = r#"
# Inference-engine simulator (`deepwatch sim`): OpenAI API, vLLM-named /metrics, fault knobs.
# `deepwatch sim --fast` sets every delay below to zero.
[sim]
listen = "127.0.0.1:8000"
# Fault admin API; stays up while the main listener is "down".
admin_listen = "127.0.0.1:8001"
# Bearer token of the admin API; empty: generated at start and logged.
admin_token = ""
model = "deepseek-r1"
model_version = "v1"
# Stream reasoning_content deltas before the answer (DeepSeek-R1 style).
reasoning = false
# Share of completion tokens spent reasoning, for reasoning models.
reasoning_ratio = 0.5
# Seed of every random choice: content, lengths, jitter, injected errors.
seed = 42
# Longest prompt + completion accepted, in tokens.
max_model_len = 32768
# Most sequences decoding at once; more requests wait (vLLM --max-num-seqs).
max_num_seqs = 64
# KV-cache capacity in tokens; full cache makes requests wait and preempts growing sequences.
kv_cache_tokens = 262144
# Latency model: TTFT = queue wait + ttft_base_ms + prefill_us_per_token * prompt tokens;
# TPOT = tpot_base_ms + tpot_us_per_running_seq * running sequences; each delay gets +-jitter.
ttft_base_ms = 40
prefill_us_per_token = 50
tpot_base_ms = 20
tpot_us_per_running_seq = 150
jitter_ratio = 0.1
# Median completion length when a request sets no max_tokens (lognormal, sigma 0.5).
output_tokens_median = 200
# Most memory the leak fault may hold.
leak_cap_mb = 512
# Expose vLLM's old names (gpu_cache_usage_perc, time_per_output_token_seconds) instead.
legacy_metric_names = false
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_validates_and_bad_values_name_their_field() {
        let mut problems = Problems::default();
        SimConfig::default().validate(&Path::root("sim"), &mut problems);
        assert!(problems.is_empty(), "{problems}");

        let bad = SimConfig {
            listen: "nope".into(),
            kv_cache_tokens: 10,
            reasoning_ratio: 2.0,
            max_num_seqs: 0,
            ..SimConfig::default()
        };
        let mut problems = Problems::default();
        bad.validate(&Path::root("sim"), &mut problems);
        let text = problems.to_string();
        for field in
            ["sim.listen", "sim.kv_cache_tokens", "sim.reasoning_ratio", "sim.max_num_seqs"]
        {
            assert!(text.contains(field), "{field} missing in {text}");
        }
    }

    #[test]
    fn zero_latency_clears_every_delay() {
        let fast = SimConfig::default().zero_latency();
        assert_eq!((fast.ttft_base, fast.tpot_base), (Duration::ZERO, Duration::ZERO));
        assert_eq!(fast.prefill_us_per_token, 0);
        assert_eq!((fast.tpot_us_per_running_seq, fast.jitter_ratio), (0, 0.0));
    }
}
