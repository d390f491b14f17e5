//! `deepwatch push`: read batch-job results from stdin (one per line: seconds, or JSON) and
//! push them to a Pushgateway once per batch, flushing the rest at end of input or Ctrl-C.

use deepwatch_core::config::{push::PushConfig, Config};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// deepwatch.toml with a [push] section; flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Pushgateway base URL.
    #[arg(long)]
    pushgateway_url: Option<String>,
    /// Grouping key job.
    #[arg(long)]
    job: Option<String>,
    /// Grouping key instance.
    #[arg(long)]
    instance: Option<String>,
    /// Push once per this many results.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Skip latency gauges that moved less than this fraction since their last push.
    #[arg(long)]
    min_change_ratio: Option<f64>,
}

fn config(args: &Args) -> anyhow::Result<PushConfig> {
    let mut cfg = match &args.config {
        Some(path) => Config::load(path)?.push,
        None => PushConfig::default(),
    };
    if let Some(v) = &args.pushgateway_url {
        cfg.pushgateway_url = v.clone();
    }
    if let Some(v) = &args.job {
        cfg.job = v.clone();
    }
    if let Some(v) = &args.instance {
        cfg.instance = v.clone();
    }
    if let Some(v) = args.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = args.min_change_ratio {
        cfg.min_change_ratio = v;
    }
    let mut problems = deepwatch_core::config::Problems::default();
    cfg.validate(&deepwatch_core::config::Path::root("push"), &mut problems);
    problems.into_result()?;
    Ok(cfg)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = config(&args)?;
    super::block_on(async move {
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let stats = deepwatch_rules::push::run_stdin(&cfg, stop).await?;
        tracing::info!(
            results = stats.results,
            pushes = stats.pushes,
            skipped_gauges = stats.skipped_gauges,
            "push finished"
        );
        Ok(ExitCode::SUCCESS)
    })
}
