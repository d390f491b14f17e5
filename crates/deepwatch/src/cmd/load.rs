//! `deepwatch load`: drive load at an OpenAI-compatible endpoint and measure TTFT, TPOT, ITL,
//! end-to-end latency, throughput and goodput.

use deepwatch_core::config::client::TlsConfig;
use deepwatch_lab::load::{self, progress::Bar, Dist, Endpoint, LoadOptions, Mode, Profile, Slo};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum EndpointArg {
    Chat,
    Completions,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProfileArg {
    Constant,
    Ramp,
    Steps,
    Surge,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000
    #[arg(long, value_name = "URL")]
    target: String,
    /// API to call.
    #[arg(long, value_enum, default_value_t = EndpointArg::Chat)]
    endpoint: EndpointArg,
    /// Model name [default: the first model of the target's /v1/models]
    #[arg(long)]
    model: Option<String>,
    /// Open loop: Poisson arrivals at this many requests per second (the base rate of the profile).
    #[arg(long, value_name = "RPS", conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed loop: keep this many requests in flight.
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// How the open-loop rate changes over the run.
    #[arg(long, value_enum, default_value_t = ProfileArg::Constant)]
    profile: ProfileArg,
    /// ramp: the rate reached at the end of --duration.
    #[arg(long, value_name = "RPS")]
    ramp_to: Option<f64>,
    /// steps: comma-separated rates, one per step.
    #[arg(long, value_name = "RPS,RPS,...", value_delimiter = ',')]
    steps: Vec<f64>,
    /// steps: length of each step.
    #[arg(long, value_name = "DURATION", value_parser = deepwatch_lab::parse_duration, default_value = "30s")]
    step_duration: Duration,
    /// surge: rate multiplier during the surge.
    #[arg(long, value_name = "X", default_value_t = 3.0)]
    surge_factor: f64,
    /// surge: when the surge starts.
    #[arg(long, value_name = "DURATION", value_parser = deepwatch_lab::parse_duration, default_value = "30s")]
    surge_at: Duration,
    /// surge: how long it lasts.
    #[arg(long, value_name = "DURATION", value_parser = deepwatch_lab::parse_duration, default_value = "5m")]
    surge_for: Duration,
    /// Stop after this many requests.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 1000)]
    requests: u64,
    /// Start no request after this long.
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = deepwatch_lab::parse_duration, default_value = "60s")]
    duration: Duration,
    /// Prompt length in tokens: N, uniform:MIN,MAX, normal:MEAN,SD, lognormal:MEDIAN,SIGMA, exp:MEAN
    #[arg(long, value_name = "DIST", default_value = "256")]
    prompt_tokens: Dist,
    /// Output length (max_tokens), same forms as --prompt-tokens.
    #[arg(long, value_name = "DIST", default_value = "128")]
    output_tokens: Dist,
    /// Ask for whole responses instead of SSE streams (no TTFT/TPOT/ITL then).
    #[arg(long)]
    no_stream: bool,
    /// Seed of arrivals, lengths and prompt text.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Goodput SLO: time to first token, milliseconds.
    #[arg(long, value_name = "MS")]
    slo_ttft_ms: Option<f64>,
    /// Goodput SLO: time per output token, milliseconds.
    #[arg(long, value_name = "MS")]
    slo_tpot_ms: Option<f64>,
    /// Goodput SLO: end-to-end latency, milliseconds.
    #[arg(long, value_name = "MS")]
    slo_e2e_ms: Option<f64>,
    /// Per-request time limit.
    #[arg(long, value_name = "DURATION", value_parser = deepwatch_lab::parse_duration, default_value = "60s")]
    timeout: Duration,
    /// Bearer token for the target.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Open loop: skip (and count) arrivals while this many requests are open.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_in_flight: usize,
    /// PEM file of CA certificates to trust for an https target, besides the system roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Write every request and the summary as JSON to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

impl Args {
    fn profile(&self) -> anyhow::Result<Profile> {
        Ok(match self.profile {
            ProfileArg::Constant => Profile::Constant,
            ProfileArg::Ramp => Profile::Ramp {
                to_rate: self
                    .ramp_to
                    .ok_or_else(|| anyhow::anyhow!("--profile ramp needs --ramp-to"))?,
            },
            ProfileArg::Steps => {
                anyhow::ensure!(
                    !self.steps.is_empty(),
                    "--profile steps needs --steps RPS,RPS,..."
                );
                Profile::Steps {
                    rates: self.steps.clone(),
                    step_secs: self.step_duration.as_secs_f64(),
                }
            }
            ProfileArg::Surge => Profile::Surge {
                factor: self.surge_factor,
                at_secs: self.surge_at.as_secs_f64(),
                for_secs: self.surge_for.as_secs_f64(),
            },
        })
    }

    fn tls(&self) -> TlsConfig {
        TlsConfig { ca_file: self.ca_file.clone(), ..TlsConfig::default() }
    }

    fn options(&self, model: String) -> anyhow::Result<LoadOptions> {
        let mode = match (self.rate, self.concurrency) {
            (_, Some(concurrency)) => {
                anyhow::ensure!(
                    matches!(self.profile, ProfileArg::Constant),
                    "--profile applies to open-loop --rate runs, not --concurrency"
                );
                Mode::Closed { concurrency }
            }
            (Some(rate), None) => Mode::Open { rate, profile: self.profile()? },
            (None, None) => match self.profile {
                ProfileArg::Steps => Mode::Open { rate: self.steps[0], profile: self.profile()? },
                _ => anyhow::bail!("give --rate RPS (open loop) or --concurrency N (closed loop)"),
            },
        };
        Ok(LoadOptions {
            target: self.target.clone(),
            endpoint: match self.endpoint {
                EndpointArg::Chat => Endpoint::Chat,
                EndpointArg::Completions => Endpoint::Completions,
            },
            model,
            mode,
            max_requests: self.requests,
            duration: self.duration,
            prompt_tokens: self.prompt_tokens.clone(),
            output_tokens: self.output_tokens.clone(),
            stream: !self.no_stream,
            seed: self.seed,
            slo: Slo {
                ttft_ms: self.slo_ttft_ms,
                tpot_ms: self.slo_tpot_ms,
                e2e_ms: self.slo_e2e_ms,
            },
            timeout: self.timeout,
            api_key: self.api_key.clone(),
            max_in_flight: self.max_in_flight,
            tls: self.tls(),
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::block_on(async move {
        let model = match &args.model {
            Some(m) => m.clone(),
            None => {
                load::discover_model(&args.target, args.api_key.as_deref(), &args.tls()).await?
            }
        };
        let options = args.options(model)?;
        let show_bar = !args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = Arc::new(Bar::new(options.max_requests));
        let progress: Arc<dyn load::Progress> =
            if show_bar { bar.clone() } else { Arc::new(load::Silent) };
        let report = load::run(options, progress).await?;
        bar.finish();
        let json_on_stdout = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
        if json_on_stdout {
            eprint!("{}", report.summary.table());
        } else {
            print!("{}", report.summary.table());
        }
        if let Some(path) = &args.json {
            let json = serde_json_string(&report)?;
            if path.as_os_str() == "-" {
                println!("{json}");
            } else {
                std::fs::write(path, json)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn serde_json_string(report: &load::Report) -> anyhow::Result<String> {
    Ok(report.to_json()?)
}
