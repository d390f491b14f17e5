//! `deepwatch agent [--config FILE] [--listen ADDR]`: the node agent. Without a config file it
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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let mut agent_config = config.agent;
    if let Some(listen) = args.listen {
        let mut problems = Problems::default();
        problems.socket_addr(&Path::root("--listen"), &listen);
        problems.into_result()?;
        agent_config.listen = listen;
    }
    super::block_on(async move {
        let agent = Agent::start(&agent_config)?;
        let listener = Agent::bind(&agent_config.listen).await?;
        let addr = listener.local_addr().context("bound address")?;
        tracing::info!(listen = %addr, collectors = ?agent.collectors().names(), "agent serving /metrics and /healthz");
        agent.serve(listener, super::shutdown_signal()).await?;
        tracing::info!("agent stopped");
        Ok(ExitCode::SUCCESS)
    })
}
