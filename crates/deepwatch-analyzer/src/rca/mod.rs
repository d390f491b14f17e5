//! Root-cause ranking around an incident, on each alert and on demand. Candidate metrics (a
//! built-in set over the catalog plus configured queries) are compared with their own
//! pre-incident window: how anomalous each became (robust z against median and MAD, as BARO
//! does) and how early it moved. Events (deploys, rollouts, config reloads) and log-pattern
//! counters share one timeline; the last changes before the onset are listed; a reproduction
//! is suggested; and where two pools serve one model they are compared statistically.
//!
//! The core works on a `DataSource`, so injected-fault scenarios are ranked without a live
//! Prometheus; `PromSource` is the production source. With little history (a stack that just
//! started) the ranking shortens its windows and the report says how much history it had.

pub mod candidates;
pub mod chart;
pub mod compare;
pub mod rank;
pub mod report;
pub mod reproduce;
pub mod scenarios;
pub mod source;

pub use candidates::Role;
pub use rank::{rank_series, RankedCandidate};
pub use report::{Report, TimelineEntry};
pub use source::{CandidateSeries, DataSource, Event, MemorySource, PromSource};

use crate::prom::{PromClient, PromError};
use deepwatch_core::config::analyzer::{BaselineConfig, RcaConfig};

#[derive(Debug, thiserror::Error)]
pub enum RcaError {
    /// The detail is in the message, not a `source`, so error chains do not print it twice.
    #[error("candidate data unavailable: {0}")]
    Source(PromError),
    #[error("no candidate metric had data between {start} and {end}")]
    NoData { start: f64, end: f64 },
    #[error("{0}")]
    Config(String),
}

impl From<PromError> for RcaError {
    fn from(e: PromError) -> RcaError {
        RcaError::Source(e)
    }
}

/// Ranks root causes for an incident at `at` (Unix seconds), reading Prometheus; the symptom's
/// band comes from the `baseline` model.
pub async fn rank(
    prom: &PromClient,
    at: f64,
    alert: Option<&str>,
    config: &RcaConfig,
    baseline: &BaselineConfig,
) -> Result<Report, RcaError> {
    let source = PromSource::new(prom.clone(), config.rate_window, &config.extra_queries)
        .map_err(RcaError::Config)?;
    rank_with(&source, at, alert, config, baseline).await
}

/// Ranks root causes with any data source (scenarios in tests, Prometheus in production).
pub async fn rank_with<S: DataSource>(
    source: &S,
    at: f64,
    alert: Option<&str>,
    config: &RcaConfig,
    baseline: &BaselineConfig,
) -> Result<Report, RcaError> {
    let start = at - config.lookback.as_secs_f64();
    let end = at + config.after.as_secs_f64();
    let step = config.step.as_secs_f64();
    let (series, mut warnings) = source.candidates(start, end, step).await?;
    if series.iter().all(|s| s.points.is_empty()) {
        return Err(RcaError::NoData { start, end });
    }
    let events = match source.events(start, end).await {
        Ok(events) => events,
        Err(e) => {
            warnings.push(format!("deploy events unavailable: {e}"));
            Vec::new()
        }
    };
    let ranked = rank_series(&series, at, config);
    let comparisons = compare::compare_pools(&series, &ranked, at, config);
    let window = rank::window(&series, at, config);
    let inputs = report::Inputs { at, alert, config, baseline, series: &series, window };
    Ok(Report::build(inputs, ranked, events, comparisons, warnings))
}
