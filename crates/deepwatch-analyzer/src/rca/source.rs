//! Where root-cause ranking reads its data: candidate series over a time range and the change
//! events (deploys, rollouts, config reloads). `PromSource` runs the candidate queries against
//! Prometheus; `MemorySource` serves prepared series (injected-fault scenarios, tests).

pub use super::candidates::Role;
use super::candidates::{builtin, extra, CandidateQuery};
use super::RcaError;
use crate::prom::{Labels, PromClient, PromError};
use deepwatch_core::catalog::gateway;
use serde::{Deserialize, Serialize};
use std::future::Future;

/// One candidate series with its points in the analysed range.
#[derive(Debug, Clone)]
pub struct CandidateSeries {
    /// Candidate name (`engine_ttft_p90`, `process_rss`, ...).
    pub name: String,
    pub query: String,
    pub role: Role,
    pub labels: Labels,
    /// `(unix seconds, value)` in time order.
    pub points: Vec<(f64, f64)>,
    /// Window a `rate()` in its query smooths over (0 for plain gauges), for reports and for
    /// scenarios that emulate it.
    pub smoothing_secs: f64,
    /// A missing point means zero (counters that appear with their first event).
    pub absent_is_zero: bool,
}

/// A change event: a deploy step, rollback, promote, failover, config reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: f64,
    /// The event kind (`start`, `step`, `rollback`, `promote`, `config_reload`, ...).
    pub kind: String,
    pub pool: String,
}

/// A source of candidate series and events.
pub trait DataSource: Sync {
    /// Candidate series over `start..=end` at `step`, plus warnings about candidates that
    /// could not be read. Fails only when the source itself is unreachable.
    fn candidates(
        &self,
        start: f64,
        end: f64,
        step: f64,
    ) -> impl Future<Output = Result<(Vec<CandidateSeries>, Vec<String>), RcaError>> + Send;

    /// Change events between `start` and `end`.
    fn events(
        &self,
        start: f64,
        end: f64,
    ) -> impl Future<Output = Result<Vec<Event>, RcaError>> + Send;
}

/// Candidates from Prometheus.
#[derive(Debug, Clone)]
pub struct PromSource {
    prom: PromClient,
    queries: Vec<CandidateQuery>,
}

impl PromSource {
    /// The built-in candidates (their `rate()` over `window_secs`) plus `extra_queries` (role
    /// component); fails, naming it, on an extra query that does not parse.
    pub fn new(
        prom: PromClient,
        rate_window: std::time::Duration,
        extra_queries: &[String],
    ) -> Result<PromSource, String> {
        let mut queries = builtin(rate_window.as_secs());
        queries.extend(extra(extra_queries)?);
        Ok(PromSource { prom, queries })
    }
}

impl DataSource for PromSource {
    async fn candidates(
        &self,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<(Vec<CandidateSeries>, Vec<String>), RcaError> {
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        for q in &self.queries {
            match self.prom.query_range(&q.query, start, end, step).await {
                Ok(series) => out.extend(series.into_iter().map(|s| CandidateSeries {
                    name: q.name.clone(),
                    query: q.query.clone(),
                    role: q.role,
                    smoothing_secs: q.smoothing_secs,
                    absent_is_zero: q.absent_is_zero,
                    labels: s.labels,
                    points: s.points.into_iter().filter(|p| p.1.is_finite()).collect(),
                })),
                Err(e @ (PromError::Api { .. } | PromError::Decode { .. })) => {
                    warnings.push(format!("candidate {} skipped: {e}", q.name));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((out, warnings))
    }

    async fn events(&self, start: f64, end: f64) -> Result<Vec<Event>, RcaError> {
        // The gauge holds the Unix time of the last event of each kind; every distinct value
        // seen in the range is one event.
        let step = ((end - start) / 500.0).max(15.0);
        let series =
            self.prom.query_range(gateway::DEPLOY_LAST_EVENT.name, start, end, step).await?;
        let mut events = Vec::new();
        for s in series {
            let kind = s.labels.get("event").cloned().unwrap_or_default();
            let pool = s.labels.get("pool").cloned().unwrap_or_default();
            let mut seen: Vec<f64> = Vec::new();
            for (_, t) in s.points {
                if t >= start && t <= end && !seen.contains(&t) {
                    seen.push(t);
                    events.push(Event { time: t, kind: kind.clone(), pool: pool.clone() });
                }
            }
        }
        events.sort_by(|a, b| a.time.total_cmp(&b.time));
        Ok(events)
    }
}

/// Prepared candidates and events, served for any range.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    pub series: Vec<CandidateSeries>,
    pub events: Vec<Event>,
}

impl DataSource for MemorySource {
    async fn candidates(
        &self,
        start: f64,
        end: f64,
        _step: f64,
    ) -> Result<(Vec<CandidateSeries>, Vec<String>), RcaError> {
        let series = self
            .series
            .iter()
            .map(|s| CandidateSeries {
                points: s.points.iter().copied().filter(|p| p.0 >= start && p.0 <= end).collect(),
                ..s.clone()
            })
            .collect();
        Ok((series, Vec::new()))
    }

    async fn events(&self, start: f64, end: f64) -> Result<Vec<Event>, RcaError> {
        Ok(self.events.iter().filter(|e| e.time >= start && e.time <= end).cloned().collect())
    }
}
