//! `deepwatch sim`: the inference-engine simulator (OpenAI API, vLLM `/metrics`, fault admin API).

use deepwatch_core::config::{sim::SimConfig, Config};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// OpenAI API, /metrics and /health [default: sim.listen, 127.0.0.1:8000]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Fault admin API [default: sim.admin_listen, 127.0.0.1:8001]
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Served model name [default: sim.model]
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Model version, returned in the `x-model-version` header and by /version [default: sim.model_version]
    #[arg(long, value_name = "V")]
    model_version: Option<String>,
    /// deepwatch.toml whose [sim] section is the base; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Seed of every random choice [default: sim.seed]
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Bearer token of the admin API; without one a random token is generated and logged.
    #[arg(long, value_name = "TOKEN", env = "DEEPWATCH_SIM_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Serve a reasoning model: `reasoning_content` deltas before the answer.
    #[arg(long)]
    reasoning: bool,
    /// Zero latency: no prefill or per-token delays (for gateway and load-generator benchmarks).
    #[arg(long)]
    fast: bool,
    /// Expose vLLM's pre-0.9/0.11 metric names (gpu_cache_usage_perc, time_per_output_token_seconds).
    #[arg(long)]
    legacy_metric_names: bool,
    /// Most sequences running at once [default: sim.max_num_seqs]
    #[arg(long, value_name = "N")]
    max_num_seqs: Option<u64>,
    /// KV-cache capacity in tokens [default: sim.kv_cache_tokens]
    #[arg(long, value_name = "TOKENS")]
    kv_cache_tokens: Option<u64>,
}

impl Args {
    fn into_config(self) -> anyhow::Result<SimConfig> {
        let mut c = match &self.config {
            Some(path) => Config::load(path)?.sim,
            None => SimConfig::default(),
        };
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.admin_listen {
            c.admin_listen = v;
        }
        if let Some(v) = self.model {
            c.model = v;
        }
        if let Some(v) = self.model_version {
            c.model_version = v;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if let Some(v) = self.admin_token {
            c.admin_token = v;
        }
        if let Some(v) = self.max_num_seqs {
            c.max_num_seqs = v;
        }
        if let Some(v) = self.kv_cache_tokens {
            c.kv_cache_tokens = v;
        }
        c.reasoning |= self.reasoning;
        c.legacy_metric_names |= self.legacy_metric_names;
        if self.fast {
            c = c.zero_latency();
        }
        Ok(c)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.into_config()?;
    let generated_token = config.admin_token.is_empty();
    super::block_on(async move {
        let sim = deepwatch_lab::sim::start(config).await?;
        if generated_token {
            tracing::info!(token = %sim.token, "sim admin token generated");
        }
        tokio::signal::ctrl_c().await?;
        tracing::info!("sim stopping");
        sim.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}
