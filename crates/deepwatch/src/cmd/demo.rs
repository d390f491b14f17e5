//! `deepwatch demo`: starts the whole stack locally (three simulators, gateway, agent,
//! analyzer, Prometheus and Alertmanager with generated configs), drives load, injects faults
//! and prints a live timeline of alerts, notifications and remediation. Ctrl-C stops
//! everything; `--duration` makes it non-interactive. The orchestration lives in
//! `deepwatch_lab::demo`; this file holds the flags and hands it the rules generator.

use anyhow::Context as _;
use deepwatch_lab::demo::{self, DemoOptions, Fault};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the config, generated files, data, logs, pids and timeline.jsonl go
    /// [default: <temp dir>/deepwatch-demo]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Stop after this long (`90s`, `5m`) instead of waiting for Ctrl-C: non-interactive mode.
    #[arg(long, value_name = "DURATION", value_parser = deepwatch_lab::parse_duration)]
    duration: Option<Duration>,
    /// Faults to inject, in order, comma-separated: latency (blue engine +3 s to first token),
    /// outage (blue and green engines down: P1, the analyzer fails over to standby).
    #[arg(long, value_name = "FAULTS", value_delimiter = ',', default_value = "latency,outage")]
    fault: Vec<Fault>,
    /// No fault at all: just the stack and its load.
    #[arg(long, conflicts_with = "fault")]
    no_fault: bool,
    /// Do not drive load through the gateway.
    #[arg(long)]
    no_load: bool,
    /// Requests per second of the load.
    #[arg(long, default_value_t = 8.0, value_name = "RPS")]
    rate: f64,
    /// Do not run the analyzer (no self-healing, no root-cause reports).
    #[arg(long)]
    no_analyzer: bool,
    /// Use 14 consecutive ports from this one instead of free ports.
    #[arg(long, value_name = "PORT")]
    port_base: Option<u16>,
    /// Divide every rule interval, `for` and hold by this factor (30: a 10-minute hold is 20 s).
    #[arg(long, default_value_t = 30, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=600))]
    time_scale: u64,
    /// Baseline traffic before the first fault.
    #[arg(long, default_value = "15s", value_parser = deepwatch_lab::parse_duration)]
    warmup: Duration,
    /// How long each fault stays in force.
    #[arg(long = "fault-for", default_value = "30s", value_parser = deepwatch_lab::parse_duration)]
    fault_for: Duration,
    /// Prometheus binary [default: on PATH or in /usr/bin]
    #[arg(long, value_name = "PATH")]
    prometheus: Option<PathBuf>,
    /// Alertmanager binary [default: prometheus-alertmanager or alertmanager on PATH or in /usr/bin]
    #[arg(long, value_name = "PATH")]
    alertmanager: Option<PathBuf>,
}

/// The rules generator, handed to the demo (the lab crate does not depend on the rules crate).
pub fn generator() -> demo::Generate {
    Box::new(|spec, time_scale, out| {
        let generated = deepwatch_rules::generate(spec, deepwatch_rules::Options { time_scale })
            .map_err(|e| e.to_string())?;
        generated.write_to(out).map_err(|e| e.to_string())?;
        Ok(generated.files.len())
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let executable = std::env::current_exe().context("cannot find this executable")?;
    if args.rate.is_nan() || args.rate <= 0.0 {
        anyhow::bail!("--rate must be greater than 0, got {}", args.rate);
    }
    let options = DemoOptions {
        state_dir: args.state_dir.unwrap_or_else(|| std::env::temp_dir().join("deepwatch-demo")),
        duration: args.duration,
        faults: if args.no_fault { Vec::new() } else { args.fault },
        load: !args.no_load,
        rate: args.rate,
        port_base: args.port_base,
        time_scale: args.time_scale,
        warmup: args.warmup,
        hold: args.fault_for,
        analyzer: !args.no_analyzer,
        executable,
        prometheus: args.prometheus,
        alertmanager: args.alertmanager,
        gameday: None,
    };
    super::block_on(async move {
        let report = demo::run(options, generator()).await?;
        tracing::debug!(stopped_by = report.stopped_by, events = report.events.len(), "demo ended");
        Ok(ExitCode::SUCCESS)
    })
}
