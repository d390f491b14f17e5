//! `deepwatch analyze detect`: scores a CSV of `timestamp,value` rows offline with the same
//! baseline and detectors as the online analyzer, writing
//! `timestamp,value,anomaly_score,warming_up`.

use anyhow::Context;
use deepwatch_analyzer::offline::{self, Period};
use deepwatch_core::config::{analyzer::AnalyzerConfig, Config};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// CSV of `timestamp,value` rows (ISO-8601 or Unix seconds; header optional); `-` is stdin.
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// Seasonality: `auto` (daily and weekly where the data shows them), `none`, or a period in
    /// seconds.
    #[arg(long, default_value = "auto", value_name = "auto|SECONDS")]
    period: String,
    /// Detectors to run, comma-separated: surprise (the default: how unusual each point is
    /// now, against the series' own recent history), band (outside the seasonal band), shift
    /// (sustained changes), leak (steady climb), accuracy (probe ratios). The score is the
    /// highest of them.
    #[arg(long, default_value = "surprise", value_delimiter = ',')]
    detectors: Vec<String>,
    /// Rows that repeat the previous row's timestamp: `keep` scores each (with a warning naming
    /// the lines), `error` stops at the first with its line number.
    #[arg(long, default_value = "keep", value_parser = ["keep", "error"])]
    duplicates: String,
    /// deepwatch.toml whose `[analyzer]` baseline and detector settings apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path)?.analyzer,
        None => AnalyzerConfig::default(),
    };
    let period: Period = args.period.parse()?;
    let text = if args.csv.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.csv)
            .with_context(|| format!("cannot read {}", args.csv.display()))?
    };
    let rows = offline::parse_csv(&text).with_context(|| format!("{}", args.csv.display()))?;
    if args.duplicates == "error" {
        offline::reject_duplicates(&rows).with_context(|| format!("{}", args.csv.display()))?;
    }
    for (first, repeat) in offline::duplicates(&rows) {
        tracing::warn!(file = %args.csv.display(), line = repeat, repeats_line = first, "timestamp repeated, both rows scored");
    }
    let scored = offline::score(&rows, &period, &args.detectors, &config)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    offline::write_csv(&rows, &scored.scores, &mut out)?;
    out.flush()?;
    let warming = scored.scores.iter().filter(|s| s.is_none()).count();
    let anomalous = scored.scores.iter().filter(|s| s.is_some_and(|s| s >= 0.5)).count();
    tracing::info!(
        rows = rows.len(),
        step_secs = scored.step,
        periods_secs = ?scored.periods,
        warming_up = warming,
        anomalous,
        "scored"
    );
    Ok(ExitCode::SUCCESS)
}
