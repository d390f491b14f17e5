//! `deepwatch agent [--config FILE] [--listen ADDR] [--procfs-root DIR]`: the node agent. Without a config file it
//! runs with defaults (gpu and host collectors, the process collector on itself) on
//! 127.0.0.1:9844, serving `/metrics` and `/healthz` until SIGINT or SIGTERM.

use anyhow::Context as _;
use deepwatch_agent::Agent;
use deepwatch_core::config::{Config, Path, Problems};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// deepwatch.toml to read the [agent] section from; defaults apply without one.
    #[arg(long, short, env = "DEEPWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve /metrics and /healthz on (overrides agent.listen).
    #[arg(long, env = "DEEPWATCH_AGENT_LISTEN")]
    pub listen: Option<String>,
    /// Where procfs is read, e.g. the host's /proc mounted at /host/proc (overrides
    /// agent.procfs_root).
    #[arg(long, value_name = "DIR", env = "DEEPWATCH_AGENT_PROCFS_ROOT")]
    pub procfs_root: Option<String>,
    /// Lab only: this many fake GPUs instead of NVML (healthy H100 readings), for game days
    /// and demos on machines without GPUs.
    #[arg(long, value_name = "N", hide = true)]
    pub fake_gpus: Option<u32>,
    /// Lab only: JSON file overriding the fake GPUs' readings, read at every scrape
    /// (`{"0": {"memory_used_bytes": 7.6e10}}`).
    #[arg(long, value_name = "FILE", hide = true, requires = "fake_gpus")]
    pub fake_gpu_script: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let mut agent_config = config.agent;
    let mut problems = Problems::default();
    if let Some(listen) = args.listen {
        problems.socket_addr(&Path::root("--listen"), &listen);
        agent_config.listen = listen;
    }
    if let Some(root) = args.procfs_root {
        if !root.starts_with('/') {
            problems.push(
                &Path::root("--procfs-root"),
                format!("must be an absolute path, got {root:?}"),
            );
        }
        agent_config.procfs_root = root;
    }
    problems.into_result()?;
    super::block_on(async move {
        let agent = match args.fake_gpus {
            Some(n) => {
                let script = args.fake_gpu_script.clone().unwrap_or_default();
                let source: std::sync::Arc<dyn deepwatch_agent::gpu::GpuSource> =
                    deepwatch_agent::gpu::fake::ScriptedGpus::new(n, script);
                Agent::start_with_gpu(&agent_config, Some(Ok(source)))?
            }
            None => Agent::start(&agent_config)?,
        };
        let listener = Agent::bind(&agent_config.listen).await?;
        let addr = listener.local_addr().context("bound address")?;
        tracing::info!(listen = %addr, collectors = ?agent.collectors().names(), "agent serving /metrics and /healthz");
        agent.serve(listener, super::shutdown_signal()).await?;
        tracing::info!("agent stopped");
        Ok(ExitCode::SUCCESS)
    })
}
