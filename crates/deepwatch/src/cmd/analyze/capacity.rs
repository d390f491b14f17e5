//! `deepwatch analyze capacity`: per model, the peak demand over Prometheus history, the
//! replicas serving it now, the headroom they leave, and the replicas the scaling rules
//! recommend (1.5x the peak at 80 % load per replica, within min..=max). A table, or JSON.

use anyhow::Context as _;
use deepwatch_analyzer::capacity::{self, parse_duration_secs, PlanInput};
use deepwatch_analyzer::prom::PromClient;
use deepwatch_core::clock::{Clock, TokioClock};
use deepwatch_core::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// deepwatch.toml: [analyzer] prometheus_url and [remediation.scaling]; defaults without.
    #[arg(long, short, env = "DEEPWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Prometheus base URL (overrides analyzer.prometheus_url).
    #[arg(long)]
    prometheus: Option<String>,
    /// History to take the peak from, e.g. 7d, 24h (overrides scaling.history_secs).
    #[arg(long)]
    window: Option<String>,
    /// Resolution of the history, e.g. 60s, 5m (overrides scaling.history_step_secs).
    #[arg(long)]
    step: Option<String>,
    /// Concurrent sequences one replica carries at 100 % (overrides scaling.replica_capacity).
    #[arg(long)]
    replica_capacity: Option<f64>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(url) = args.prometheus {
        config.analyzer.prometheus_url = url;
    }
    let scaling = &mut config.remediation.scaling;
    if let Some(w) = &args.window {
        let secs = parse_duration_secs(w).map_err(anyhow::Error::msg).context("--window")?;
        scaling.history = std::time::Duration::from_secs(secs);
    }
    if let Some(s) = &args.step {
        let secs = parse_duration_secs(s).map_err(anyhow::Error::msg).context("--step")?;
        scaling.history_step = std::time::Duration::from_secs(secs.max(1));
    }
    if let Some(c) = args.replica_capacity {
        anyhow::ensure!(c > 0.0, "--replica-capacity must be greater than 0, got {c}");
        scaling.replica_capacity = c;
    }
    config.validate()?;
    super::super::block_on(async move {
        let prom = PromClient::from_config(&config.analyzer)?;
        let input =
            PlanInput::from_config(&config.remediation.scaling, TokioClock::new().unix_seconds());
        let plans = capacity::plan(&prom, &input)
            .await
            .with_context(|| format!("reading history from {}", config.analyzer.prometheus_url))?;
        match args.format {
            OutputFormat::Table => print!("{}", capacity::render_table(&plans, &input)),
            OutputFormat::Json => println!("{}", serde_json_string(&plans)?),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn serde_json_string(plans: &[capacity::ModelCapacity]) -> anyhow::Result<String> {
    // The binary has no serde_json of its own; the analyzer's types serialize through it.
    deepwatch_analyzer::capacity::to_json(plans).context("encoding JSON")
}
