//! `deepwatch rules`: generate Prometheus, Alertmanager, Grafana, Kubernetes and long-term
//! storage files from the `[rules]` section of deepwatch.toml.

use anyhow::Context;
use deepwatch_core::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// deepwatch.toml to read; without it the default spec is used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder to write into (created if missing; existing files are overwritten).
    #[arg(long, default_value = "deploy")]
    out: PathBuf,
    /// Divide every interval, `for` and hold by this factor (tests and demos).
    #[arg(long, default_value_t = 1)]
    time_scale: u64,
    /// Fail when a threshold is not on a bucket edge instead of only warning.
    #[arg(long)]
    strict: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = deepwatch_rules::Options { time_scale: args.time_scale.max(1) };
    let generated = match &args.config {
        Some(path) => {
            let config = Config::load(path)?;
            // Loaded above, so readable: the ConfigMap carries the file as written.
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            deepwatch_rules::generate_with_config(&config.rules_spec(), &text, opts)?
        }
        None => deepwatch_rules::generate(&Config::default().rules, opts)?,
    };
    for warning in &generated.warnings {
        tracing::warn!(%warning, "threshold off bucket edge");
    }
    generated.write_to(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {} files to {}", generated.files.len(), args.out.display());
    if args.strict && !generated.warnings.is_empty() {
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
