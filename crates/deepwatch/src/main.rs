//! The `deepwatch` command line: one binary, one subcommand per component. Each subcommand's
//! flags and entry point live in `cmd/<name>.rs`; the component crates hold the logic.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

#[derive(Debug, Parser)]
#[command(
    name = "deepwatch",
    version,
    about = "Monitoring, alerting and self-healing for self-hosted DeepSeek and OpenAI-compatible inference",
    propagate_version = true
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = cmd::LogFormat::Text, env = "DEEPWATCH_LOG_FORMAT")]
    log_format: cmd::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node agent: GPU, host, process, engine, log and peer metrics on /metrics.
    Agent(cmd::agent::Args),
    /// Run the OpenAI-compatible streaming gateway with failover and rollouts.
    Gateway(cmd::gateway::Args),
    /// Run the analyzer (baselines, detectors, root cause, remediation) or one of its tools.
    Analyze(cmd::analyze::Args),
    /// Generate Prometheus, Alertmanager, Grafana and Kubernetes files from deepwatch.toml.
    Rules(cmd::rules::Args),
    /// Hand batch-job results to a Pushgateway, batched and with change suppression.
    Push(cmd::push::Args),
    /// Run the inference-engine simulator (OpenAI API, vLLM metrics, fault knobs).
    Sim(cmd::sim::Args),
    /// Drive load at an OpenAI-compatible endpoint and measure TTFT, TPOT and goodput.
    Load(cmd::load::Args),
    /// Inject faults into simulators and gateways (latency, errors, hangs, leaks, outages).
    Chaos(cmd::chaos::Args),
    /// Start the whole stack locally, drive load, inject a fault and show alerts live.
    Demo(cmd::demo::Args),
    /// Check this machine: GPUs, Prometheus tools, ports, config.
    Doctor(cmd::doctor::Args),
    /// Print the example config or check a config file.
    Config(cmd::config::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::init_logging(cli.log_format);
    let result = match cli.command {
        Command::Agent(args) => cmd::agent::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::Analyze(args) => cmd::analyze::run(args),
        Command::Rules(args) => cmd::rules::run(args),
        Command::Push(args) => cmd::push::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Load(args) => cmd::load::run(args),
        Command::Chaos(args) => cmd::chaos::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Config(args) => cmd::config::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every reproduction the root-cause report can suggest parses with this very CLI.
    #[test]
    fn rca_suggested_reproductions_parse() {
        let examples = deepwatch_analyzer::rca::report::reproduction_examples();
        let kinds = deepwatch_analyzer::rca::report::REPRODUCIBLE.len();
        assert_eq!(examples.len(), kinds, "one suggestion per reproducible candidate");
        for r in examples {
            let cli = Cli::try_parse_from(&r.argv)
                .unwrap_or_else(|e| panic!("suggested {:?} does not parse:\n{e}", r.command));
            assert!(matches!(cli.command, Command::Chaos(_)), "{}", r.command);
        }
    }
}
