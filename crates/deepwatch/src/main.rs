//! The `deepwatch` command line: one binary, one subcommand per component. Each subcommand's
//! flags and entry point live in `cmd/<name>.rs`; the component crates hold the logic.

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

/// mimalloc instead of glibc malloc: allocation and free were about a sixth of the gateway's CPU
/// per proxied request (`perf` under `bench/gateway_overhead.sh`; docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `deepwatch --version`: the version and the optional features this binary was built with.
const LONG_VERSION: &str = if cfg!(feature = "k8s") {
    concat!(env!("CARGO_PKG_VERSION"), " (features: k8s)")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (features: none; Kubernetes scaling needs --features k8s)")
};

#[derive(Debug, Parser)]
#[command(
    name = "deepwatch",
    version,
    long_version = LONG_VERSION,
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
    Load(Box<cmd::load::Args>),
    /// Inject faults into simulators and gateways (latency, errors, hangs, leaks, outages).
    Chaos(cmd::chaos::Args),
    /// Start the whole stack locally, drive load, inject a fault and show alerts live.
    Demo(cmd::demo::Args),
    /// Check this machine: GPUs, Prometheus tools, ports, config.
    Doctor(cmd::doctor::Args),
    /// Print the example config or check a config file.
    Config(cmd::config::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::Args),
    /// Write man pages for deepwatch and every subcommand.
    Man(cmd::man::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    deepwatch_core::http::install_default_provider();
    cmd::init_logging(cli.log_format);
    let result = match cli.command {
        Command::Agent(args) => cmd::agent::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::Analyze(args) => cmd::analyze::run(args),
        Command::Rules(args) => cmd::rules::run(args),
        Command::Push(args) => cmd::push::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Load(args) => cmd::load::run(*args),
        Command::Chaos(args) => cmd::chaos::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Config(args) => cmd::config::run(args),
        Command::Completions(args) => cmd::completions::run(args, Cli::command()),
        Command::Man(args) => cmd::man::run(args, Cli::command()),
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

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every container of the generated Kubernetes manifests runs a command this CLI accepts.
    #[test]
    fn generated_kubernetes_container_args_parse() {
        let generated = deepwatch_rules::generate(
            &deepwatch_core::config::Config::default().rules,
            deepwatch_rules::Options::default(),
        )
        .unwrap();
        let mut seen = Vec::new();
        for (path, text) in &generated.files {
            if !path.starts_with("kubernetes/") {
                continue;
            }
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).unwrap();
            for doc in docs {
                let Some(containers) = doc["spec"]["template"]["spec"]["containers"].as_array()
                else {
                    continue;
                };
                for c in containers {
                    let mut argv = vec!["deepwatch".to_string()];
                    argv.extend(
                        c["args"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|a| a.as_str().unwrap().to_string()),
                    );
                    let cli = Cli::try_parse_from(&argv)
                        .unwrap_or_else(|e| panic!("{path}: {argv:?} does not parse:\n{e}"));
                    seen.push(match cli.command {
                        Command::Agent(_) => "agent",
                        Command::Gateway(_) => "gateway",
                        Command::Analyze(_) => "analyze",
                        other => panic!("{path}: unexpected {other:?}"),
                    });
                }
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, ["agent", "analyze", "gateway"]);
    }

    /// Every generated systemd unit starts a command this CLI accepts.
    #[test]
    fn generated_systemd_exec_start_parses() {
        let mut seen = Vec::new();
        for (path, text) in deepwatch_rules::systemd::files() {
            let line = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
            let argv: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(argv[0], deepwatch_rules::systemd::BINARY, "{path}");
            let mut argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
            argv[0] = "deepwatch".into();
            let cli = Cli::try_parse_from(&argv)
                .unwrap_or_else(|e| panic!("{path}: {argv:?} does not parse:\n{e}"));
            seen.push(match cli.command {
                Command::Agent(_) => "agent",
                Command::Gateway(_) => "gateway",
                Command::Analyze(_) => "analyze",
                other => panic!("{path}: unexpected {other:?}"),
            });
        }
        seen.sort_unstable();
        assert_eq!(seen, ["agent", "analyze", "gateway"]);
    }

    /// Every reproduction the root-cause report can suggest parses with this very CLI.
    #[test]
    fn rca_suggested_reproductions_parse() {
        let examples = deepwatch_analyzer::rca::reproduce::reproduction_examples();
        let kinds = deepwatch_analyzer::rca::reproduce::REPRODUCIBLE.len();
        assert_eq!(examples.len(), kinds, "one suggestion per reproducible candidate");
        for r in examples {
            let cli = Cli::try_parse_from(&r.argv)
                .unwrap_or_else(|e| panic!("suggested {:?} does not parse:\n{e}", r.command));
            assert!(matches!(cli.command, Command::Chaos(_)), "{}", r.command);
        }
    }
}
