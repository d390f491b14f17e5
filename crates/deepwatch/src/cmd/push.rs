//! `deepwatch push`: read batch-job results from stdin (one per line: seconds, or JSON) and
//! push them to a Pushgateway once per batch, flushing the rest at end of input or Ctrl-C.
//! Input is always read to its end (a bad line or a down Pushgateway never breaks the job's
//! pipe); failed pushes are retried with backoff, and the exit status says whether every
//! result was delivered (0) or not (1, with a summary on stderr).

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
    /// After the end of input, keep retrying a failed final push this many seconds.
    #[arg(long, default_value_t = 30)]
    give_up_after_secs: u64,
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
    let retry = deepwatch_agent::push::batch::Retry {
        give_up_after: std::time::Duration::from_secs(args.give_up_after_secs),
        ..Default::default()
    };
    super::block_on(async move {
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let stats = deepwatch_agent::push::batch::run_stdin(&cfg, retry, stop).await?;
        tracing::info!(
            results = stats.results,
            pushes = stats.pushes,
            failed_pushes = stats.failed_pushes,
            malformed_lines = stats.malformed,
            skipped_gauges = stats.skipped_gauges,
            "push finished"
        );
        if stats.malformed > 0 {
            eprintln!("deepwatch push: {} malformed input lines skipped", stats.malformed);
        }
        if stats.dropped_latencies > 0 {
            eprintln!(
                "deepwatch push: {} latencies left out of the batch gauges while the pushgateway was down",
                stats.dropped_latencies
            );
        }
        if stats.undelivered > 0 {
            eprintln!(
                "deepwatch push: {} of {} results not delivered to {} ({} failed pushes)",
                stats.undelivered, stats.results, cfg.pushgateway_url, stats.failed_pushes
            );
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    })
}
