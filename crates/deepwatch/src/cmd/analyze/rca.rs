//! `deepwatch analyze rca`: ranks root causes around a moment (and an alert) from Prometheus,
//! writes the Markdown and JSON reports to the report directory and prints the Markdown.

use anyhow::Context;
use deepwatch_analyzer::prom::PromClient;
use deepwatch_analyzer::rca;
use deepwatch_core::clock::{Clock, TokioClock};
use deepwatch_core::config::{analyzer::AnalyzerConfig, Config};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Incident time: ISO-8601, Unix seconds, or `now`.
    #[arg(long, value_name = "TIME")]
    at: String,
    /// Name of the alert that fired, for the report's title and file name.
    #[arg(long, value_name = "NAME")]
    alert: Option<String>,
    /// deepwatch.toml whose `[analyzer]` section applies (Prometheus URL, RCA settings).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Prometheus base URL (overrides the config).
    #[arg(long, value_name = "URL", env = "DEEPWATCH_PROMETHEUS_URL")]
    prometheus: Option<String>,
    /// Directory for the reports (overrides `analyzer.report_dir`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the JSON report instead of the Markdown one.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::super::block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?.analyzer,
        None => AnalyzerConfig::default(),
    };
    if let Some(url) = args.prometheus {
        config.prometheus_url = url;
    }
    let at = if args.at == "now" {
        TokioClock::new().unix_seconds()
    } else {
        deepwatch_analyzer::offline::parse_timestamp(&args.at).with_context(|| {
            format!("--at {:?} is neither ISO-8601, Unix seconds nor now", args.at)
        })?
    };
    let prom = PromClient::from_config(&config)?;
    let report = rca::rank(&prom, at, args.alert.as_deref(), &config.rca, &config.baseline).await?;
    let dir = args.out.unwrap_or_else(|| PathBuf::from(&config.report_dir));
    let (md, json) =
        report.write_to(&dir).with_context(|| format!("cannot write to {}", dir.display()))?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.markdown());
    }
    tracing::info!(markdown = %md.display(), json = %json.display(), "report written");
    Ok(ExitCode::SUCCESS)
}
