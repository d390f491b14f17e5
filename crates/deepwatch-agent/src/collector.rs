//! The one trait every collector implements, and the runner that times each run and turns its
//! outcome into `deepwatch_collector_up` / `deepwatch_collector_duration_seconds`.

use deepwatch_core::catalog::common::{BUILD_INFO, COLLECTOR_DURATION, COLLECTOR_UP};
use deepwatch_core::expo::{Format, MetricSink};
use deepwatch_core::metrics::{Encode, HistogramVec};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// A source of metrics read at scrape time.
pub trait Collector: Send + Sync {
    /// Stable snake_case noun, used as the `collector` label.
    fn name(&self) -> &'static str;
    /// Writes current values into `sink`. An error marks the collector down for this scrape;
    /// whatever it wrote before failing is still served.
    fn collect(&self, sink: &mut MetricSink) -> Result<(), CollectError>;
    /// Whether a run may take milliseconds (NVML calls): such collectors run on their own
    /// blocking thread, concurrently with the others.
    fn slow(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CollectError {
    /// The source does not exist on this node (no NVML, no /proc/pressure, ...).
    #[error("{what} unavailable: {reason}")]
    Unavailable { what: &'static str, reason: String },
    /// The source exists but a read failed.
    #[error("{what}: {reason}")]
    Failed { what: String, reason: String },
}

impl CollectError {
    pub fn failed(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        CollectError::Failed { what: what.into(), reason: reason.to_string() }
    }
}

/// Runs collectors and exports their up/duration series. Logs a collector's error only when
/// its state changes, so a node without GPUs logs one warning, not one per scrape.
pub struct CollectorSet {
    collectors: Vec<Arc<dyn Collector>>,
    durations: HistogramVec,
    last_ok: Mutex<HashMap<&'static str, bool>>,
}

/// One collector's output from one scrape.
pub struct Outcome {
    pub name: &'static str,
    pub sink: MetricSink,
    pub result: Result<(), CollectError>,
    pub seconds: f64,
}

impl CollectorSet {
    pub fn new(collectors: Vec<Arc<dyn Collector>>) -> Self {
        CollectorSet {
            collectors,
            durations: HistogramVec::new(&COLLECTOR_DURATION),
            last_ok: Mutex::new(HashMap::new()),
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.collectors.iter().map(|c| c.name()).collect()
    }

    /// Runs one collector into a fresh sink, timing it.
    pub fn run_one(collector: &dyn Collector, format: Format) -> Outcome {
        let mut sink = MetricSink::new(format);
        let start = tokio::time::Instant::now();
        let result = collector.collect(&mut sink);
        let seconds = start.elapsed().as_secs_f64();
        Outcome { name: collector.name(), sink, result, seconds }
    }

    /// Runs every collector: slow ones (NVML) on their own blocking threads, fast ones inline
    /// meanwhile. Fast collectors read procfs or in-memory state (well under a millisecond), so
    /// handing them to another thread would cost more in wake-ups than it saves.
    pub async fn scrape(self: &Arc<Self>, format: Format) -> String {
        let mut slow_tasks = Vec::new();
        for c in self.collectors.iter().filter(|c| c.slow()) {
            let c = c.clone();
            slow_tasks.push(tokio::task::spawn_blocking(move || Self::run_one(c.as_ref(), format)));
        }
        let mut outcomes: Vec<Outcome> = self
            .collectors
            .iter()
            .filter(|c| !c.slow())
            .map(|c| Self::run_one(c.as_ref(), format))
            .collect();
        for t in slow_tasks {
            if let Ok(o) = t.await {
                outcomes.push(o);
            }
        }
        self.render(outcomes, format)
    }

    /// Same as `scrape` without a runtime: every collector in turn (tests, benches).
    pub fn scrape_blocking(&self, format: Format) -> String {
        let outcomes = self.collectors.iter().map(|c| Self::run_one(c.as_ref(), format)).collect();
        self.render(outcomes, format)
    }

    fn render(&self, mut outcomes: Vec<Outcome>, format: Format) -> String {
        // Keep the configured order whatever finished first.
        let order = self.names();
        outcomes.sort_by_key(|o| order.iter().position(|n| *n == o.name));
        let mut out = MetricSink::new(format);
        out.gauge(&BUILD_INFO, &[env!("CARGO_PKG_VERSION"), "agent"], 1.0);
        out.declare(&COLLECTOR_UP);
        for o in &outcomes {
            let ok = o.result.is_ok();
            out.gauge(&COLLECTOR_UP, &[o.name], if ok { 1.0 } else { 0.0 });
            self.durations.observe(&[o.name], o.seconds);
            self.log_transition(o.name, &o.result);
        }
        self.durations.encode(&mut out);
        for o in outcomes {
            out.merge(o.sink);
        }
        out.render()
    }

    fn log_transition(&self, name: &'static str, result: &Result<(), CollectError>) {
        let ok = result.is_ok();
        let previous = self.last_ok.lock().insert(name, ok);
        match (previous, result) {
            (Some(false), Ok(())) => tracing::info!(collector = name, "collector recovered"),
            (Some(true) | None, Err(e)) => {
                tracing::warn!(collector = name, error = %e, "collector failed")
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepwatch_core::catalog::agent::HOST_CPU_COUNT;

    struct Fixed(Result<(), CollectError>);
    impl Collector for Fixed {
        fn name(&self) -> &'static str {
            if self.0.is_ok() {
                "good"
            } else {
                "bad"
            }
        }
        fn collect(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
            sink.gauge(&HOST_CPU_COUNT, &[], 4.0);
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn each_collector_gets_up_and_duration_and_failures_do_not_hide_others() {
        let bad = CollectError::Unavailable { what: "nvml", reason: "no library".into() };
        let set =
            Arc::new(CollectorSet::new(vec![Arc::new(Fixed(Err(bad))), Arc::new(Fixed(Ok(())))]));
        let text = set.scrape(Format::Text004).await;
        assert!(text.contains("deepwatch_collector_up{collector=\"bad\"} 0\n"), "{text}");
        assert!(text.contains("deepwatch_collector_up{collector=\"good\"} 1\n"), "{text}");
        assert!(text.contains("deepwatch_collector_duration_seconds_count{collector=\"bad\"} 1"));
        assert!(text.contains("deepwatch_collector_duration_seconds_count{collector=\"good\"} 1"));
        // Both wrote the same family: the samples are merged under one header.
        assert_eq!(text.matches("# TYPE deepwatch_host_cpus gauge").count(), 1, "{text}");
        assert_eq!(text.matches("deepwatch_host_cpus 4").count(), 2, "{text}");
    }
}
