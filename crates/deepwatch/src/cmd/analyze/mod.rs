//! `deepwatch analyze`: the analyzer daemon and its one-shot tools. Each subcommand lives in
//! its own file.

use std::process::ExitCode;

mod capacity;
mod detect;
mod rca;
mod run;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    run: run::Args,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Score a CSV of `timestamp,value` rows offline with the online detectors.
    Detect(detect::Args),
    /// Rank root causes around a moment (and an alert), writing Markdown and JSON reports.
    Rca(rca::Args),
    /// Peak load, headroom and recommended replicas per model from Prometheus history.
    Capacity(capacity::Args),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        None => run::run(args.run),
        Some(Action::Detect(a)) => detect::run(a),
        Some(Action::Rca(a)) => rca::run(a),
        Some(Action::Capacity(a)) => capacity::run(a),
    }
}
