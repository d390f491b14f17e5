//! The engine collector: scrapes configured inference engines (vLLM, SGLang, TGI, llama.cpp,
//! NIM) on their own interval, keeps the last good payload, and at Prometheus scrape time
//! re-exports it raw (original names and labels plus `deepwatch_engine="<name>"`, so two
//! engines on one node never produce the same series) and normalized into the catalog's
//! `deepwatch_engine_*` names. A dead, hung or garbled engine never delays `/metrics`: the
//! scrape serves the cached state with `deepwatch_engine_up 0`. Stall detection: requests
//! running while the engine's progress counters stand still for `stall_after_secs`.

pub mod fetch;
pub mod normalize;

use crate::collector::{CollectError, Collector};
use deepwatch_core::catalog::agent as cat;
use deepwatch_core::catalog::MetricType;
use deepwatch_core::config::agent::{EngineConfig, EngineKind};
use deepwatch_core::expo::{Format, MetricSink};
use deepwatch_core::metrics::{CounterVec, Encode};
use deepwatch_core::promtext::{self, Dialect, Family};
use fetch::ScrapeError;
use normalize::Normalized;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Label added to every raw re-exported sample; `engine` itself is vLLM's data-parallel rank.
pub const RAW_ENGINE_LABEL: &str = "deepwatch_engine";
/// Parse errors logged per scrape; the rest are only counted.
const LOGGED_PARSE_ERRORS: usize = 3;
/// A dead engine's cached samples are served for this many intervals, then dropped so its
/// series go stale in Prometheus instead of flat-lining.
const STALE_AFTER_INTERVALS: u32 = 5;

/// One configured engine and what the agent last learned about it.
pub struct EngineWatch {
    config: EngineConfig,
    errors: Arc<CounterVec>,
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    up: bool,
    kind: Option<EngineKind>,
    families: Arc<Vec<Family>>,
    normalized: Arc<Normalized>,
    last_success: Option<Instant>,
    progress: Vec<f64>,
    last_progress_at: Option<Instant>,
    stalled: bool,
    aliases_logged: bool,
    /// The last scrape held more samples than `max_series` (warned once per episode).
    over_cap: bool,
    last_error: Option<String>,
}

impl EngineWatch {
    pub fn new(config: EngineConfig, errors: Arc<CounterVec>) -> Self {
        for reason in ["connect", "timeout", "status", "too_large", "parse", "too_many_series"] {
            errors.with(&[&config.name, reason]);
        }
        EngineWatch { config, errors, state: Mutex::new(WatchState::default()) }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The last scrape's problem (a failure, or lines skipped), for diagnostics.
    pub fn last_error(&self) -> Option<String> {
        self.state.lock().last_error.clone()
    }

    pub fn is_up(&self) -> bool {
        self.state.lock().up
    }

    /// Takes one fetch result into the state; `now` is when it completed.
    pub fn ingest(&self, fetched: Result<(String, Option<String>), ScrapeError>, now: Instant) {
        let mut line_errors = None;
        let parsed = fetched.and_then(|(body, content_type)| {
            self.parse(&body, Dialect::from_content_type(content_type.as_deref()), &mut line_errors)
        });
        let mut st = self.state.lock();
        st.last_error = line_errors;
        let mut families = match parsed {
            Ok(f) => f,
            Err(e) => {
                self.errors.inc(&[&self.config.name, e.reason()]);
                st.last_error = Some(e.to_string());
                if st.up || st.last_success.is_none() {
                    tracing::warn!(engine = %self.config.name, error = %e, "engine scrape failed");
                } else {
                    tracing::debug!(engine = %self.config.name, error = %e, "engine scrape failed");
                }
                st.up = false;
                return;
            }
        };
        let kind = match self.config.kind {
            EngineKind::Auto => normalize::detect(&families),
            k => Some(k),
        };
        let normalized = match kind {
            Some(k) => normalize::normalize(k, &families, &self.config.model),
            None => Normalized::default(),
        };
        if !st.aliases_logged {
            st.aliases_logged = true;
            let kind_name = kind.map(EngineKind::as_str).unwrap_or("unknown");
            tracing::info!(engine = %self.config.name, kind = kind_name, matched = ?normalized.matched, "engine metrics mapped");
        }
        // Stall: running > 0 and every progress counter flat for stall_after_secs.
        let progress = kind.map(|k| normalize::progress(k, &families)).unwrap_or_default();
        let running = normalize::running(&normalized);
        if progress != st.progress || running <= 0.0 || st.last_progress_at.is_none() {
            st.last_progress_at = Some(now);
        }
        st.progress = progress;
        let flat_for =
            st.last_progress_at.map(|t| now.saturating_duration_since(t)).unwrap_or_default();
        let stalled = running > 0.0 && flat_for >= self.config.stall_after;
        if stalled && !st.stalled {
            tracing::warn!(engine = %self.config.name, running, flat_secs = flat_for.as_secs(), "engine stalled: requests running, no progress");
        }
        st.stalled = stalled;
        st.up = true;
        st.kind = kind;
        let dropped = cap_samples(&mut families, self.config.max_series);
        if dropped > 0 {
            self.errors.inc(&[&self.config.name, "too_many_series"]);
            let message = format!(
                "{dropped} samples over max_series = {} dropped from the raw re-export",
                self.config.max_series
            );
            if !st.over_cap {
                tracing::warn!(engine = %self.config.name, dropped, max_series = self.config.max_series, "engine exposes more series than max_series; the rest are dropped");
            }
            st.last_error = Some(message);
        }
        st.over_cap = dropped > 0;
        st.families = Arc::new(families);
        st.normalized = Arc::new(normalized);
        st.last_success = Some(now);
    }

    /// Lenient parse: good lines are kept, each bad line is logged with its number and the
    /// scrape counted once under `reason="parse"`. Nothing usable at all is a failed scrape.
    fn parse(
        &self,
        body: &str,
        dialect: Dialect,
        first_error: &mut Option<String>,
    ) -> Result<Vec<Family>, ScrapeError> {
        let (families, errors) = promtext::parse_lenient(body, dialect);
        if errors.is_empty() {
            return Ok(families);
        }
        *first_error = Some(format!(
            "{}: {} lines skipped, first at {}",
            deepwatch_core::http::redact_urls(&self.config.url),
            errors.len(),
            errors[0]
        ));
        for e in errors.iter().take(LOGGED_PARSE_ERRORS) {
            tracing::warn!(engine = %self.config.name, line = e.line, reason = %e.reason, "engine metrics line skipped");
        }
        if errors.len() > LOGGED_PARSE_ERRORS {
            tracing::warn!(engine = %self.config.name, more = errors.len() - LOGGED_PARSE_ERRORS, "more engine metrics lines skipped");
        }
        if families.iter().all(|f| f.samples.is_empty()) {
            return Err(ScrapeError::Parse {
                url: deepwatch_core::http::redact_urls(&self.config.url).into_owned(),
                first: errors[0].to_string(),
            });
        }
        self.errors.inc(&[&self.config.name, "parse"]);
        Ok(families)
    }

    /// Fetches once and ingests the result.
    pub async fn scrape_once(self: &Arc<Self>, client: &reqwest::Client) {
        let result =
            fetch::fetch(client, &self.config.url, self.config.timeout, self.config.max_body_bytes)
                .await;
        let this = self.clone();
        let now = Instant::now();
        // Parsing a 16 MB payload takes a while: keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || this.ingest(result, now)).await;
    }

    fn emit(&self, sink: &mut MetricSink, now: Instant) {
        let st = self.state.lock();
        let name = self.config.name.as_str();
        let kind = st.kind.map(EngineKind::as_str).unwrap_or(match self.config.kind {
            EngineKind::Auto => "unknown",
            k => k.as_str(),
        });
        sink.gauge(&cat::ENGINE_UP, &[name, kind], if st.up { 1.0 } else { 0.0 });
        sink.gauge(&cat::ENGINE_STALLED, &[name, kind], if st.stalled { 1.0 } else { 0.0 });
        let stale_after = self.config.interval * STALE_AFTER_INTERVALS;
        let fresh = st
            .last_success
            .is_some_and(|t| st.up || now.saturating_duration_since(t) <= stale_after);
        if !fresh {
            return;
        }
        let (normalized, families) = (st.normalized.clone(), st.families.clone());
        drop(st);
        for (spec, model, v) in &normalized.values {
            let labels = [name, kind, model.as_str()];
            if spec.kind == MetricType::Counter {
                sink.counter(spec, &labels, *v);
            } else {
                sink.gauge(spec, &labels, *v);
            }
        }
        for (spec, model, label_value, v) in &normalized.labelled {
            let labels = [name, kind, model.as_str(), label_value.as_str()];
            if spec.kind == MetricType::Counter {
                sink.counter(spec, &labels, *v);
            } else {
                sink.gauge(spec, &labels, *v);
            }
        }
        for (spec, model, h) in &normalized.histograms {
            sink.histogram_with_edges(
                spec,
                &[name, kind, model],
                &h.edges,
                &h.cumulative,
                h.sum,
                h.count,
            );
        }
        if self.config.raw {
            emit_raw(sink, name, &families);
        }
    }
}

/// Keeps the first `max` samples of `families` (in payload order, whole families first) and
/// returns how many were dropped.
fn cap_samples(families: &mut Vec<Family>, max: usize) -> usize {
    let total: usize = families.iter().map(|f| f.samples.len()).sum();
    if total <= max {
        return 0;
    }
    let mut left = max;
    for f in families.iter_mut() {
        let keep = f.samples.len().min(left);
        f.samples.truncate(keep);
        f.samples.shrink_to_fit();
        left -= keep;
    }
    families.retain(|f| !f.samples.is_empty());
    total - max
}

/// Re-exports scraped families under their own names, adding `deepwatch_engine`.
pub fn emit_raw(sink: &mut MetricSink, engine: &str, families: &[Family]) {
    let mut labels: Vec<(&str, &str)> = Vec::new();
    for f in families {
        if f.samples.is_empty() {
            continue;
        }
        let mut kind = f.kind;
        let mut key = f.name.clone();
        if kind == MetricType::Counter {
            let all_total = f.samples.iter().all(|s| s.name.ends_with("_total"));
            if all_total && !key.ends_with("_total") {
                key.push_str("_total");
            }
            // OpenMetrics counters must be exposed as `<family>_total`; TGI's are not.
            if !all_total && sink.format() == Format::OpenMetrics {
                kind = MetricType::Untyped;
            }
        }
        if kind == MetricType::Info {
            kind = MetricType::Gauge;
        }
        let family = sink.raw_family(&key, f.help.as_deref().unwrap_or(""), kind, "");
        for s in &f.samples {
            labels.clear();
            labels.push((RAW_ENGINE_LABEL, engine));
            labels.extend(
                s.labels
                    .iter()
                    .filter(|(k, _)| k != RAW_ENGINE_LABEL)
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            sink.raw_sample(family, &s.name, &labels, s.value, s.timestamp_ms);
        }
    }
}

pub struct EngineCollector {
    watches: Vec<Arc<EngineWatch>>,
    errors: Arc<CounterVec>,
    client: reqwest::Client,
}

impl EngineCollector {
    pub fn new(configs: &[EngineConfig]) -> Result<Self, reqwest::Error> {
        let errors = Arc::new(CounterVec::new(&cat::ENGINE_SCRAPE_ERRORS));
        let watches =
            configs.iter().map(|c| Arc::new(EngineWatch::new(c.clone(), errors.clone()))).collect();
        // Engines are local: never route their scrapes through an environment proxy.
        let client = deepwatch_core::http::builder().no_proxy().build()?;
        Ok(EngineCollector { watches, errors, client })
    }

    pub fn watches(&self) -> &[Arc<EngineWatch>] {
        &self.watches
    }

    /// One task per engine, scraping at its own interval.
    pub fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.watches
            .iter()
            .map(|w| {
                let w = w.clone();
                let client = self.client.clone();
                tokio::spawn(async move {
                    let mut tick =
                        tokio::time::interval(w.config.interval.max(Duration::from_millis(1)));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        w.scrape_once(&client).await;
                    }
                })
            })
            .collect()
    }
}

impl Collector for EngineCollector {
    fn name(&self) -> &'static str {
        "engine"
    }

    fn collect(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        let now = Instant::now();
        sink.declare(&cat::ENGINE_UP);
        sink.declare(&cat::ENGINE_STALLED);
        for w in &self.watches {
            w.emit(sink, now);
        }
        self.errors.encode(sink);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
