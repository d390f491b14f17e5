//! The online analyzer's analytics: each `tick` fetches what is new of every configured series
//! from Prometheus (the whole history on the first round, the missed range after an outage),
//! judges the new points with the series' baseline and detectors, compares output
//! distributions for drift, and keeps the gauges `encode` exports. Prometheus failing never
//! stops it: it reports itself degraded and catches up when Prometheus answers again.

use super::drift::{DriftDetector, DriftInput};
use super::leak::{FIGURE_SLOPE, FIGURE_TIME_TO_EXHAUSTION};
use super::{scorer::SeriesScorer, Verdict};
use crate::baseline::{Grid, SeasonalMedian};
use crate::prom::{Labels, PromClient, PromError};
use deepwatch_core::catalog::analyzer as cat;
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::analyzer::{AnalyzerConfig, SeriesConfig};
use deepwatch_core::expo::MetricSink;
use deepwatch_core::metrics::{CounterVec, Encode, GaugeVec};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use tracing::{info, warn};

mod drift_fetch;

/// Identity of one baselined series: its configured name and the identity label values.
type SeriesKey = (String, Vec<String>);

struct SeriesState {
    grid: Grid,
    scorer: SeriesScorer,
    /// Index of the last judged point in `grid`.
    judged: Option<usize>,
    /// Detectors anomalous on the last judged point (to count findings once per episode).
    anomalous: Vec<&'static str>,
    labels: Labels,
}

#[derive(Default)]
struct State {
    series: BTreeMap<SeriesKey, SeriesState>,
    /// Up to where each configured series was fetched (Unix seconds).
    fetched_until: BTreeMap<String, f64>,
    drift: BTreeMap<(String, String, String, String), DriftDetector>,
    /// Drift series exported by the last round (per version, between pools), so a comparison
    /// that no longer holds (too few responses, a pool gone quiet) stops being exported.
    drift_exported: BTreeSet<[String; 4]>,
    pool_drift_exported: BTreeSet<[String; 4]>,
    degraded: bool,
}

/// Baselines, detectors and drift for the daemon; see the module doc.
pub struct Analytics {
    config: AnalyzerConfig,
    /// The series this analyzer baselines among the analyzers sharing the fleet.
    shard: deepwatch_core::shard::Shard,
    prom: PromClient,
    clock: SharedClock,
    state: Mutex<State>,
    metrics: Metrics,
}

struct Metrics {
    expected: GaugeVec,
    lower: GaugeVec,
    upper: GaugeVec,
    score: GaugeVec,
    warming_up: GaugeVec,
    findings: CounterVec,
    leak_slope: GaugeVec,
    leak_tte: GaugeVec,
    drift: GaugeVec,
    drift_threshold: GaugeVec,
    pool_drift: GaugeVec,
    pool_drift_threshold: GaugeVec,
    degraded: GaugeVec,
    last_evaluation: GaugeVec,
}

impl Analytics {
    pub fn new(config: &AnalyzerConfig, prom: PromClient, clock: SharedClock) -> Analytics {
        let metrics = Metrics {
            expected: GaugeVec::new(&cat::BASELINE_EXPECTED),
            lower: GaugeVec::new(&cat::BASELINE_LOWER),
            upper: GaugeVec::new(&cat::BASELINE_UPPER),
            score: GaugeVec::new(&cat::ANOMALY_SCORE),
            warming_up: GaugeVec::new(&cat::BASELINE_WARMING_UP),
            findings: CounterVec::new(&cat::DETECTOR_FINDINGS),
            leak_slope: GaugeVec::new(&cat::LEAK_SLOPE),
            leak_tte: GaugeVec::new(&cat::LEAK_TIME_TO_EXHAUSTION),
            drift: GaugeVec::new(&cat::DRIFT_DIVERGENCE),
            drift_threshold: GaugeVec::new(&cat::DRIFT_THRESHOLD),
            pool_drift: GaugeVec::new(&cat::DRIFT_POOL_DIVERGENCE),
            pool_drift_threshold: GaugeVec::new(&cat::DRIFT_POOL_THRESHOLD),
            degraded: GaugeVec::new(&cat::ANALYZER_DEGRADED),
            last_evaluation: GaugeVec::new(&cat::ANALYZER_LAST_EVALUATION),
        };
        metrics.degraded.set(&["prometheus_unreachable"], 0.0);
        Analytics {
            config: config.clone(),
            shard: config.shard(),
            prom,
            clock,
            state: Mutex::new(State::default()),
            metrics,
        }
    }

    pub fn prom(&self) -> &PromClient {
        &self.prom
    }

    /// True while the last round could not reach Prometheus.
    pub fn is_degraded(&self) -> bool {
        self.state.lock().degraded
    }

    /// Series currently baselined (configured name and identity labels).
    pub fn series_count(&self) -> usize {
        self.state.lock().series.len()
    }

    /// One evaluation round: fetch, update baselines, run detectors, compare distributions.
    pub async fn tick(&self) {
        let step = self.config.step.as_secs_f64();
        let now = (self.clock.unix_seconds() / step).floor() * step;
        let mut failure: Option<PromError> = None;
        for series in &self.config.series {
            if let Err(e) = self.update_series(series, now).await {
                let transient = !matches!(e, PromError::Api { .. } | PromError::Decode { .. });
                if transient {
                    failure = Some(e);
                    break;
                }
                warn!(series = %series.name, error = %e, "series query failed");
            }
        }
        // Drift compares a handful of (model, pool) distributions: the leader does it alone.
        if failure.is_none() && self.config.drift.enabled && self.shard.is_leader() {
            if let Err(e) = self.update_drift(self.clock.unix_seconds()).await {
                if !matches!(e, PromError::Api { .. } | PromError::Decode { .. }) {
                    failure = Some(e);
                }
            }
        }
        let mut state = self.state.lock();
        match failure {
            Some(e) => {
                if !state.degraded {
                    warn!(error = %e, "analyzer degraded: prometheus unreachable, will catch up");
                }
                state.degraded = true;
                self.metrics.degraded.set(&["prometheus_unreachable"], 1.0);
            }
            None => {
                if state.degraded {
                    info!("prometheus reachable again, analyzer caught up");
                }
                state.degraded = false;
                self.metrics.degraded.set(&["prometheus_unreachable"], 0.0);
                self.metrics.last_evaluation.set(&[], now);
            }
        }
    }

    async fn update_series(&self, config: &SeriesConfig, now: f64) -> Result<(), PromError> {
        let step = self.config.step.as_secs_f64();
        let template = self.scorer_for(config);
        let history =
            template.history_points(step, self.config.leak.window.as_secs_f64()) as f64 * step;
        let since = self.state.lock().fetched_until.get(&config.name).copied();
        let start = match since {
            Some(t) => (t + step).max(now - history),
            None => now - history,
        };
        if start > now {
            return Ok(());
        }
        let result = self.prom.query_range(&config.query, start, now, step).await?;
        let limits = self.limits_for(config).await;
        let mut state = self.state.lock();
        state.fetched_until.insert(config.name.clone(), now);
        for series in result {
            let key = (config.name.clone(), identity(&config.name, &series.labels));
            if !self.shard.owns_parts(key.1.iter().map(String::as_str)) {
                continue;
            }
            let entry = state.series.entry(key.clone()).or_insert_with(|| SeriesState {
                grid: Grid::new(series.points.first().map_or(start, |p| p.0), step),
                scorer: self.scorer_for(config),
                judged: None,
                anomalous: Vec::new(),
                labels: series.labels.clone(),
            });
            for (t, v) in &series.points {
                entry.grid.set(*t, *v);
            }
            let keep = entry.scorer.history_points(step, self.config.leak.window.as_secs_f64());
            let dropped = entry.grid.trim_front(keep);
            entry.judged = entry.judged.and_then(|j| j.checked_sub(dropped));
            let limit = limits.as_ref().and_then(|l| l.get(&label(&series.labels, "gpu")).copied());
            let limit = limit.or_else(|| {
                let bytes = self.config.leak.process_limit_bytes;
                (config.query.contains(deepwatch_core::catalog::agent::PROCESS_RSS.name)
                    && bytes > 0)
                    .then_some(bytes as f64)
            });
            for d in &mut entry.scorer.detectors {
                d.set_limit(limit);
            }
            let from = entry.judged.map_or(0, |j| j + 1);
            let verdicts = entry.scorer.score_from(&entry.grid, from);
            if let Some(last) = verdicts.last() {
                entry.judged = Some(last.index);
            }
            for v in &verdicts {
                let now_anomalous: Vec<&'static str> = v.anomalous().map(|(n, _)| *n).collect();
                for name in &now_anomalous {
                    if !entry.anomalous.contains(name) {
                        self.metrics.findings.inc(&[name, &config.name]);
                        if let Some((_, Verdict::Anomalous { reason, .. })) =
                            v.verdicts.iter().find(|(n, _)| n == name)
                        {
                            info!(series = %config.name, labels = ?entry.labels, detector = name, %reason, "anomaly");
                        }
                    }
                }
                entry.anomalous = now_anomalous;
            }
            if let Some(last) = verdicts.last() {
                self.export(&key, entry, last);
            }
        }
        // A series that stopped reporting (a removed pool, a gone process) stops being exported
        // once it has been silent for `STALE_SECS`, so dashboards do not draw a frozen band.
        let stale: Vec<SeriesKey> = state
            .series
            .iter()
            .filter(|(k, s)| {
                k.0 == config.name && last_present(&s.grid).is_none_or(|t| t < now - STALE_SECS)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some(s) = state.series.remove(&key) {
                self.forget(&key, &s);
            }
        }
        Ok(())
    }

    /// GPU memory limits by `gpu` label, for the time to exhaustion of GPU memory series.
    async fn limits_for(&self, config: &SeriesConfig) -> Option<BTreeMap<String, f64>> {
        let gpu_used = deepwatch_core::catalog::agent::GPU_MEMORY_USED.name;
        if !config.query.contains(gpu_used) || self.config.leak.gpu_limit_query.is_empty() {
            return None;
        }
        let samples = self.prom.query(&self.config.leak.gpu_limit_query, None).await.ok()?;
        Some(samples.into_iter().map(|s| (label(&s.labels, "gpu"), s.value)).collect())
    }

    fn scorer_for(&self, config: &SeriesConfig) -> SeriesScorer {
        let baseline = SeasonalMedian::from_config(&self.config.baseline, config.min_band);
        let detectors = config
            .detectors
            .iter()
            .filter_map(|d| super::series_detector(d, &self.config, config.min_band))
            .collect();
        SeriesScorer::new(baseline, detectors)
    }

    fn forget(&self, key: &SeriesKey, entry: &SeriesState) {
        let ids: Vec<&str> = key.1.iter().map(String::as_str).collect();
        let m = &self.metrics;
        for vec in [&m.expected, &m.lower, &m.upper, &m.score, &m.warming_up] {
            vec.remove(&ids);
        }
        let leak_ids = leak_ids(&key.0, &entry.labels);
        let leak_ids: Vec<&str> = leak_ids.iter().map(String::as_str).collect();
        m.leak_slope.remove(&leak_ids);
        m.leak_tte.remove(&leak_ids);
        info!(series = %key.0, labels = ?entry.labels, "series stopped reporting, no longer baselined");
    }

    fn export(&self, key: &SeriesKey, entry: &SeriesState, last: &super::SeriesVerdict) {
        let ids: Vec<&str> = key.1.iter().map(String::as_str).collect();
        let m = &self.metrics;
        match last.expectation.band() {
            Some(band) => {
                m.warming_up.set(&ids, 0.0);
                m.expected.set(&ids, band.expected);
                m.lower.set(&ids, band.lower);
                m.upper.set(&ids, band.upper);
            }
            None => {
                m.warming_up.set(&ids, 1.0);
                m.expected.remove(&ids);
                m.lower.remove(&ids);
                m.upper.remove(&ids);
            }
        }
        match last.score() {
            Some(score) => m.score.set(&ids, score),
            None => m.score.remove(&ids),
        }
        let leak_ids = leak_ids(&key.0, &entry.labels);
        let leak_ids: Vec<&str> = leak_ids.iter().map(String::as_str).collect();
        for d in &entry.scorer.detectors {
            for (name, value) in d.figures() {
                match name {
                    FIGURE_SLOPE => m.leak_slope.set(&leak_ids, value),
                    FIGURE_TIME_TO_EXHAUSTION => m.leak_tte.set(&leak_ids, value),
                    _ => {}
                }
            }
            if d.name() == "leak" && !d.figures().iter().any(|f| f.0 == FIGURE_TIME_TO_EXHAUSTION) {
                m.leak_tte.remove(&leak_ids);
            }
        }
    }
}

/// Seconds without a sample after which a series is dropped.
const STALE_SECS: f64 = 3_600.0;

/// Label values of the leak gauges (series, instance, process, gpu).
fn leak_ids(name: &str, labels: &Labels) -> [String; 4] {
    [name.to_string(), label(labels, "instance"), label(labels, "process"), label(labels, "gpu")]
}

/// Time of the last present value of a grid.
fn last_present(grid: &Grid) -> Option<f64> {
    grid.values.iter().rposition(|v| !v.is_nan()).map(|i| grid.time_of(i))
}

/// Values of `SERIES_LABELS` for a result series: `series` is the configured name, missing
/// labels are empty, and a `process` or `gpu` label (memory series) is appended to `instance`
/// as `instance/process` so that two processes of one host stay two series; a `cluster` label
/// is put in front (`cluster:instance`).
fn identity(name: &str, labels: &Labels) -> Vec<String> {
    let sub = [label(labels, "process"), label(labels, "gpu")].into_iter().find(|s| !s.is_empty());
    cat::SERIES_LABELS
        .iter()
        .map(|l| match *l {
            "series" => name.to_string(),
            "instance" => {
                let instance = match &sub {
                    Some(sub) => format!("{}/{sub}", label(labels, "instance")),
                    None => label(labels, "instance"),
                };
                // On a global view (federation, VictoriaMetrics) two clusters may run the same
                // model, pool and instance names: the `cluster` label keeps them apart.
                match labels.get("cluster").filter(|c| !c.is_empty()) {
                    Some(cluster) => format!("{cluster}:{instance}"),
                    None => instance,
                }
            }
            other => label(labels, other),
        })
        .collect()
}

fn label(labels: &Labels, name: &str) -> String {
    labels.get(name).cloned().unwrap_or_default()
}

impl Encode for Analytics {
    fn encode(&self, sink: &mut MetricSink) {
        let m = &self.metrics;
        for part in [
            &m.expected,
            &m.lower,
            &m.upper,
            &m.score,
            &m.warming_up,
            &m.leak_slope,
            &m.leak_tte,
            &m.drift,
            &m.drift_threshold,
            &m.pool_drift,
            &m.pool_drift_threshold,
            &m.degraded,
            &m.last_evaluation,
        ] {
            part.encode(sink);
        }
        m.findings.encode(sink);
        // The client's query counter is exported here, so the daemon registers only Analytics.
        self.prom.encode(sink);
    }
}
