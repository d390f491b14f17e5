//! `deepwatch chaos`: inject faults into simulators (`chaos sim`) and gateways
//! (`chaos gateway`), or run a named scenario (`chaos scenario`). With `--for`, a fault is
//! reverted after that long (or on Ctrl-C).

use deepwatch_core::api::admin::FaultRule;
use deepwatch_lab::chaos::scenario::{Scenario, ScenarioRun};
use deepwatch_lab::chaos::{FaultPatch, GatewayFaults, SimAdmin};
use deepwatch_lab::load::{self, Dist, LoadOptions, Mode, Profile};
use std::process::ExitCode;
use std::time::Duration;

/// Prints a value as pretty JSON on stdout.
macro_rules! print_json {
    ($value:expr) => {{
        println!("{}", deepwatch_lab::to_json_pretty($value)?);
        Ok(())
    }};
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Set or clear faults of a simulator through its admin API.
    Sim(SimArgs),
    /// Set or clear per-route fault rules of a gateway (needs gateway.faults.enabled).
    Gateway(GatewayArgs),
    /// Run a named scenario: a fault on a timeline, optionally with load through it.
    Scenario(ScenarioArgs),
    /// Game day: start the whole stack (as `deepwatch demo` does) and run named drills with
    /// real faults against it, measuring per drill the time to the first alert, whether the
    /// root-cause report names the cause, remediation, time to recovery, failed requests and
    /// SLO budget burned; writes gameday.md and gameday.json.
    Gameday(GamedayArgs),
}

#[derive(Debug, clap::Args)]
struct GamedayArgs {
    /// Drills, comma-separated: latency, error-burst, engine-kill, engine-hang, memory-leak,
    /// bad-rollout, gpu-memory-leak, surge [default: all of them]
    #[arg(long, value_name = "DRILLS", value_delimiter = ',')]
    drills: Vec<deepwatch_lab::gameday::Drill>,
    /// Run every drill this many times.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Where gameday.md and gameday.json go [default: the state dir]
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
    /// Where the stack's config, data and logs go [default: <temp dir>/deepwatch-gameday]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<std::path::PathBuf>,
    /// Divide rule intervals, `for`s, holds and fault durations by this factor.
    #[arg(long, default_value_t = 30, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=600))]
    time_scale: u64,
    /// Hold every fault this long in production time (scaled down like the rules)
    /// [default: 10m, 5m for surge]
    #[arg(long = "fault-for", value_name = "DURATION", value_parser = deepwatch_lab::parse_duration)]
    fault_for: Option<Duration>,
    /// Quiet traffic before each drill (the baseline its root-cause ranking compares with)
    /// [default: the ranking's lookback, 30 minutes of production time scaled, + 5 s]
    #[arg(long, value_parser = deepwatch_lab::parse_duration)]
    quiet: Option<Duration>,
    /// Longest wait for a drill's alerts to resolve.
    #[arg(long, default_value = "90s", value_parser = deepwatch_lab::parse_duration)]
    settle: Duration,
    /// Requests per second of the load.
    #[arg(long, default_value_t = 8.0, value_name = "RPS")]
    rate: f64,
    /// Baseline traffic before the first drill.
    #[arg(long, default_value = "30s", value_parser = deepwatch_lab::parse_duration)]
    warmup: Duration,
}

#[derive(Debug, clap::Args)]
struct SimArgs {
    /// Admin base URL of the simulator, e.g. http://127.0.0.1:8001
    #[arg(long, value_name = "URL")]
    admin: String,
    /// Admin bearer token.
    #[arg(long, env = "DEEPWATCH_SIM_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    /// Revert the fault after this long (Ctrl-C reverts early); without it the fault stays.
    #[arg(long = "for", value_name = "DURATION", value_parser = deepwatch_lab::parse_duration, global = true)]
    hold: Option<Duration>,
    #[command(subcommand)]
    fault: SimFault,
}

#[derive(Debug, clap::Subcommand)]
enum SimFault {
    /// Add latency to the first token and to every following token.
    Latency {
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        ttft_ms: u64,
        #[arg(long, value_name = "MS", default_value_t = 0)]
        per_token_ms: u64,
    },
    /// Fail a share of requests with an HTTP status.
    Errors {
        #[arg(long, value_name = "0..1", default_value_t = 0.5)]
        rate: f64,
        #[arg(long, default_value_t = 500)]
        status: u16,
    },
    /// Cut streams after N completion tokens.
    Cut {
        #[arg(long, value_name = "N", default_value_t = 5)]
        after_tokens: u64,
    },
    /// Stop producing tokens (requests hang before their first token; /health stays 200).
    Hang,
    /// Allocate and touch memory at a rate (capped by sim.leak_cap_mb).
    Leak {
        #[arg(long, value_name = "MB", default_value_t = 100.0)]
        mb_per_min: f64,
    },
    /// Close the main listener: connections are refused.
    Down,
    /// Answer fast and well-formed but wrong (a broken model version).
    Wrong,
    /// All faults off, memory released, listener back up.
    Reset,
    /// Print the current faults.
    Show,
}

#[derive(Debug, clap::Args)]
struct GatewayArgs {
    /// Admin base URL of the gateway, e.g. http://127.0.0.1:9845
    #[arg(long, value_name = "URL")]
    admin: String,
    /// Admin bearer token.
    #[arg(long, env = "DEEPWATCH_GATEWAY_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    /// Restore the previous rules after this long (Ctrl-C restores early).
    #[arg(long = "for", value_name = "DURATION", value_parser = deepwatch_lab::parse_duration, global = true)]
    hold: Option<Duration>,
    #[command(subcommand)]
    action: GatewayAction,
}

#[derive(Debug, clap::Subcommand)]
enum GatewayAction {
    /// Set the fault rule of one endpoint (rules of other endpoints are kept).
    Fault {
        #[arg(long, default_value = "/v1/chat/completions")]
        endpoint: String,
        #[arg(long, value_name = "MS")]
        latency_ms: Option<u64>,
        #[arg(long, value_name = "0..1")]
        error_rate: Option<f64>,
        #[arg(long)]
        error_status: Option<u16>,
        #[arg(long, value_name = "N")]
        stream_cut_after_chunks: Option<u64>,
    },
    /// Remove every rule.
    Clear,
    /// Print the current rules.
    Show,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ScenarioName {
    LatencySpike,
    ErrorBurst,
    MemoryLeak,
    Outage,
    Surge,
}

#[derive(Debug, clap::Args)]
struct ScenarioArgs {
    #[arg(value_enum)]
    name: ScenarioName,
    /// Simulator admin URL (repeat for several simulators).
    #[arg(long = "sim-admin", value_name = "URL")]
    sim_admin: Vec<String>,
    /// Simulator admin token.
    #[arg(long, env = "DEEPWATCH_SIM_ADMIN_TOKEN", hide_env_values = true, default_value = "")]
    token: String,
    /// How long the fault (or surge) lasts.
    #[arg(long = "for", value_name = "DURATION", value_parser = deepwatch_lab::parse_duration, default_value = "5m")]
    hold: Duration,
    /// Load before and after the fault (with --target).
    #[arg(long, value_name = "DURATION", value_parser = deepwatch_lab::parse_duration, default_value = "30s")]
    lead: Duration,
    /// Run load at this OpenAI-compatible base URL through the scenario (required for surge).
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// Base request rate of that load.
    #[arg(long, value_name = "RPS", default_value_t = 5.0)]
    rate: f64,
    /// Model for the load [default: the target's first model]
    #[arg(long)]
    model: Option<String>,
    /// latency-spike: added time to first token.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    ttft_ms: u64,
    /// latency-spike: added time per token.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    per_token_ms: u64,
    /// error-burst: share of failed requests.
    #[arg(long, value_name = "0..1", default_value_t = 0.3)]
    error_rate: f64,
    /// error-burst: their status.
    #[arg(long, default_value_t = 500)]
    error_status: u16,
    /// memory-leak: growth rate.
    #[arg(long, value_name = "MB", default_value_t = 200.0)]
    mb_per_min: f64,
    /// memory-leak: free the memory when the scenario ends (as a restart would).
    #[arg(long)]
    release: bool,
    /// surge: rate multiplier.
    #[arg(long, value_name = "X", default_value_t = 3.0)]
    factor: f64,
}

/// Resolves on Ctrl-C (never, if the handler cannot be installed).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::block_on(async move {
        match args.command {
            Command::Sim(a) => sim(a).await?,
            Command::Gateway(a) => gateway(a).await?,
            Command::Scenario(a) => scenario(a).await?,
            Command::Gameday(a) => return gameday(a).await,
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn gameday(a: GamedayArgs) -> anyhow::Result<ExitCode> {
    use deepwatch_lab::demo::{self, DemoOptions};
    use deepwatch_lab::gameday::{self, Plan};
    if a.rate.is_nan() || a.rate <= 0.0 {
        anyhow::bail!("--rate must be greater than 0, got {}", a.rate);
    }
    let state_dir = a.state_dir.unwrap_or_else(|| std::env::temp_dir().join("deepwatch-gameday"));
    let drills = if a.drills.is_empty() { gameday::drill::ALL.to_vec() } else { a.drills };
    let plan = Plan {
        drills,
        runs: a.runs,
        out: a.out.unwrap_or_else(|| state_dir.clone()),
        quiet: a.quiet.unwrap_or_else(|| {
            let (lookback, _) = deepwatch_lab::demo::stack::rca_windows(a.time_scale);
            Duration::from_secs(lookback + 5)
        }),
        settle: a.settle,
        hold_secs: a.fault_for.map(|d| d.as_secs().max(1)),
    };
    let options = DemoOptions {
        state_dir,
        duration: None,
        faults: Vec::new(),
        load: true,
        rate: a.rate,
        port_base: None,
        time_scale: a.time_scale,
        warmup: a.warmup,
        hold: Duration::ZERO,
        analyzer: true,
        executable: std::env::current_exe()?,
        prometheus: None,
        alertmanager: None,
        gameday: Some(plan),
    };
    let report = demo::run(options, super::demo::generator()).await?;
    let Some(results) = report.gameday else {
        eprintln!("the game day stopped early ({})", report.stopped_by);
        return Ok(ExitCode::FAILURE);
    };
    Ok(if results.is_empty() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The fault fields a `chaos sim` command sets; `None` for `reset` and `show`.
fn sim_patch(fault: &SimFault) -> Option<FaultPatch> {
    let patch = match *fault {
        SimFault::Latency { ttft_ms, per_token_ms } => FaultPatch {
            ttft_added_ms: Some(ttft_ms),
            per_token_added_ms: Some(per_token_ms),
            ..FaultPatch::default()
        },
        SimFault::Errors { rate, status } => FaultPatch {
            error_rate: Some(rate),
            error_status: Some(status),
            ..FaultPatch::default()
        },
        SimFault::Cut { after_tokens } => {
            FaultPatch { cut_after_tokens: Some(Some(after_tokens)), ..FaultPatch::default() }
        }
        SimFault::Hang => {
            FaultPatch { hang_before_first_token: Some(true), ..FaultPatch::default() }
        }
        SimFault::Leak { mb_per_min } => {
            FaultPatch { leak_mb_per_min: Some(mb_per_min), ..FaultPatch::default() }
        }
        SimFault::Down => FaultPatch { down: Some(true), ..FaultPatch::default() },
        SimFault::Wrong => FaultPatch { wrong_answers: Some(true), ..FaultPatch::default() },
        SimFault::Reset | SimFault::Show => return None,
    };
    Some(patch)
}

async fn sim(a: SimArgs) -> anyhow::Result<()> {
    let admin = SimAdmin::new(&a.admin, &a.token)?;
    let Some(patch) = sim_patch(&a.fault) else {
        return match a.fault {
            SimFault::Reset => print_json!(&admin.reset().await?),
            _ => print_json!(&admin.faults().await?),
        };
    };
    if let Some(hold) = a.hold {
        eprintln!("fault on for {}; Ctrl-C reverts early", humantime_fmt(hold));
    }
    print_json!(&admin.inject(&patch.to_map(), a.hold, ctrl_c()).await?)
}

async fn gateway(a: GatewayArgs) -> anyhow::Result<()> {
    let admin = GatewayFaults::new(&a.admin, &a.token)?;
    match a.action {
        GatewayAction::Fault {
            endpoint,
            latency_ms,
            error_rate,
            error_status,
            stream_cut_after_chunks,
        } => {
            let rule = FaultRule {
                endpoint,
                latency: std::time::Duration::from_millis(latency_ms.unwrap_or_default()),
                error_rate: error_rate.unwrap_or_default(),
                error_status: error_status.unwrap_or_default(),
                stream_cut_after_chunks,
            };
            print_json!(&admin.inject(rule, a.hold, ctrl_c()).await?)
        }
        GatewayAction::Clear => print_json!(&admin.clear().await?),
        GatewayAction::Show => print_json!(&admin.faults().await?),
    }
}

async fn scenario(a: ScenarioArgs) -> anyhow::Result<()> {
    let scenario = match a.name {
        ScenarioName::LatencySpike => {
            Scenario::LatencySpike { ttft_ms: a.ttft_ms, per_token_ms: a.per_token_ms }
        }
        ScenarioName::ErrorBurst => {
            Scenario::ErrorBurst { rate: a.error_rate, status: a.error_status }
        }
        ScenarioName::MemoryLeak => {
            Scenario::MemoryLeak { mb_per_min: a.mb_per_min, release: a.release }
        }
        ScenarioName::Outage => Scenario::Outage,
        ScenarioName::Surge => Scenario::Surge { factor: a.factor },
    };
    if !matches!(scenario, Scenario::Surge { .. }) {
        anyhow::ensure!(!a.sim_admin.is_empty(), "give at least one --sim-admin URL");
    }
    let sims =
        a.sim_admin.iter().map(|u| SimAdmin::new(u, &a.token)).collect::<Result<Vec<_>, _>>()?;
    let load = match &a.target {
        Some(target) => {
            let model = match &a.model {
                Some(m) => m.clone(),
                None => load::discover_model(target, None, &Default::default()).await?,
            };
            Some(LoadOptions {
                target: target.clone(),
                model,
                mode: Mode::Open { rate: a.rate, profile: Profile::Constant },
                max_requests: u64::MAX,
                prompt_tokens: Dist::Fixed { value: 256 },
                output_tokens: Dist::Fixed { value: 64 },
                ..LoadOptions::default()
            })
        }
        None => None,
    };
    eprintln!(
        "scenario {}: lead {}, hold {}{}",
        scenario.name(),
        humantime_fmt(a.lead),
        humantime_fmt(a.hold),
        if load.is_some() { ", with load" } else { "" }
    );
    let outcome =
        ScenarioRun { scenario, sims, hold: a.hold, lead: a.lead, load }.run(ctrl_c()).await?;
    if let Some(report) = &outcome.load {
        print!("{}", report.summary.table());
    }
    print_json!(&outcome.after)
}

fn humantime_fmt(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("chaos").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
    }

    /// Every `chaos sim` subcommand, run as the CLI runs it against a real simulator, changes
    /// what `GET /admin/faults` reads back; `--for` reverts it.
    #[tokio::test]
    async fn each_sim_subcommand_changes_the_state_read_back() {
        let config = deepwatch_core::config::sim::SimConfig {
            listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
            admin_token: "tok".into(),
            ..Default::default()
        }
        .zero_latency();
        let handle = deepwatch_lab::sim::start(config).await.unwrap();
        let url = handle.admin_url();
        let admin = SimAdmin::new(&url, "tok").unwrap();
        let run = |args: Vec<String>| async move {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            match parse(&argv) {
                Command::Sim(a) => sim(a).await.unwrap(),
                other => panic!("{other:?}"),
            }
        };
        let base = |rest: &[&str]| -> Vec<String> {
            ["sim", "--admin", &url, "--token", "tok"]
                .iter()
                .chain(rest)
                .map(|s| s.to_string())
                .collect()
        };

        run(base(&["latency", "--ttft-ms", "300", "--per-token-ms", "7"])).await;
        let f = admin.faults().await.unwrap();
        assert_eq!((f.ttft_added_ms, f.per_token_added_ms), (300, 7));
        run(base(&["errors", "--rate", "0.25", "--status", "503"])).await;
        let f = admin.faults().await.unwrap();
        assert_eq!((f.error_rate, f.error_status), (0.25, 503));
        run(base(&["cut", "--after-tokens", "4"])).await;
        assert_eq!(admin.faults().await.unwrap().cut_after_tokens, Some(4));
        run(base(&["hang"])).await;
        assert!(admin.faults().await.unwrap().hang_before_first_token);
        run(base(&["leak", "--mb-per-min", "3.5"])).await;
        assert_eq!(admin.faults().await.unwrap().leak_mb_per_min, 3.5);
        run(base(&["down"])).await;
        assert!(admin.faults().await.unwrap().down);
        run(base(&["wrong"])).await;
        assert!(admin.faults().await.unwrap().wrong_answers);
        run(base(&["show"])).await;
        run(base(&["reset"])).await;
        assert!(!admin.faults().await.unwrap().any());

        run(base(&["down", "--for", "100ms"])).await;
        assert!(!admin.faults().await.unwrap().down, "--for reverted the fault");
    }

    #[test]
    fn scenario_and_gateway_flags_parse() {
        let Command::Scenario(s) = parse(&[
            "scenario",
            "surge",
            "--target",
            "http://127.0.0.1:1",
            "--rate",
            "4",
            "--factor",
            "2",
            "--for",
            "2m",
            "--lead",
            "10s",
        ]) else {
            panic!("not a scenario")
        };
        assert_eq!(
            (s.rate, s.factor, s.hold, s.lead),
            (4.0, 2.0, Duration::from_secs(120), Duration::from_secs(10))
        );
        let Command::Gateway(g) = parse(&[
            "gateway",
            "--admin",
            "http://127.0.0.1:1",
            "--token",
            "t",
            "fault",
            "--latency-ms",
            "200",
            "--stream-cut-after-chunks",
            "5",
            "--for",
            "1m",
        ]) else {
            panic!("not a gateway command")
        };
        assert_eq!(g.hold, Some(Duration::from_secs(60)));
        let GatewayAction::Fault { endpoint, latency_ms, stream_cut_after_chunks, .. } = g.action
        else {
            panic!("not a fault")
        };
        assert_eq!(
            (endpoint.as_str(), latency_ms, stream_cut_after_chunks),
            ("/v1/chat/completions", Some(200), Some(5))
        );
        assert!(sim_patch(&SimFault::Show).is_none());
    }
}
