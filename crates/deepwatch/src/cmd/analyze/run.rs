//! `deepwatch analyze --config FILE`: the analyzer daemon. Serves `/metrics`, `/healthz`,
//! `POST /webhook/alertmanager`, `POST /notify/{channel}` and `/reports` on `analyzer.listen`,
//! ticks the baselines and detectors, runs golden-prompt probes and remediation, until SIGINT
//! or SIGTERM. Prometheus being unreachable is not fatal; a bad config is.

use anyhow::Context as _;
use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::{Config, Path, Problems};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
// Flattened into `deepwatch analyze`'s own `Args`: no second argument group of the same name.
#[group(skip)]
pub struct Args {
    /// deepwatch.toml with the [analyzer], [remediation], [notify] and [probes] sections.
    #[arg(long, short, env = "DEEPWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve on (overrides analyzer.listen).
    #[arg(long, env = "DEEPWATCH_ANALYZER_LISTEN")]
    pub listen: Option<String>,
    /// Check and audit every action but change nothing (overrides remediation.dry_run).
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = args.config.context(
        "the analyzer daemon needs a config: deepwatch analyze --config deepwatch.toml \
         (deepwatch config example prints one)",
    )?;
    let mut config = Config::load(&path)?;
    if let Some(listen) = args.listen {
        let mut problems = Problems::default();
        problems.socket_addr(&Path::root("--listen"), &listen);
        problems.into_result()?;
        config.analyzer.listen = listen;
    }
    if args.dry_run {
        config.remediation.dry_run = true;
    }
    super::super::block_on(async move {
        let running = deepwatch_analyzer::server::bind_and_start(&config, TokioClock::shared())
            .await
            .context("starting the analyzer daemon")?;
        let stop = running.stopper();
        tokio::spawn(async move {
            crate::cmd::shutdown_signal().await;
            tracing::info!("shutting down: finishing the alert in progress");
            let _ = stop.send(true);
        });
        running.wait().await.context("analyzer daemon")?;
        tracing::info!("analyzer daemon stopped");
        Ok(ExitCode::SUCCESS)
    })
}
