//! `deepwatch push` (the `[push]` section): a batch job hands one result per line (a latency in seconds, or JSON
//! `{"latency_seconds": 0.42, "ok": true, "model": "m"}`; `latency_ms` also accepted) and
//! this module pushes to a Pushgateway once per `batch_size` results, POSTing to
//! `/metrics/job/<job>/instance/<instance>`. The histogram and counter are cumulative and go
//! with every push; a latency gauge family is left out when no series moved by at least
//! `min_change_ratio` since it was last pushed (the Pushgateway keeps the old value).

use deepwatch_core::api::pushgateway::{PushError, Pushgateway};
use deepwatch_core::catalog::{push as cat, MetricSpec};
use deepwatch_core::config::push::PushConfig;
use deepwatch_core::expo::{Format, MetricSink};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("line {line}: {reason}")]
    Parse { line: usize, reason: String },
    #[error("{0}")]
    Push(#[from] PushError),
}

/// One result of the batch job.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult {
    pub latency_seconds: f64,
    pub ok: bool,
    pub model: Option<String>,
}

/// Parses one input line; blank lines and `#` comments give `None`.
pub fn parse_line(text: &str, line: usize) -> Result<Option<BatchResult>, BatchError> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let err = |reason: String| BatchError::Parse { line, reason };
    let valid = |v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(err(format!("latency must be a finite number >= 0, got {v}")))
        }
    };
    if let Ok(v) = text.parse::<f64>() {
        return Ok(Some(BatchResult { latency_seconds: valid(v)?, ok: true, model: None }));
    }
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| err(format!("neither a number nor JSON ({e})")))?;
    let obj = json.as_object().ok_or_else(|| err("JSON must be an object".into()))?;
    for key in obj.keys() {
        if !["latency_seconds", "latency_ms", "ok", "model"].contains(&key.as_str()) {
            return Err(err(format!("unknown field {key:?}")));
        }
    }
    let latency = match (obj.get("latency_seconds"), obj.get("latency_ms")) {
        (Some(s), None) => {
            s.as_f64().ok_or_else(|| err("latency_seconds must be a number".into()))?
        }
        (None, Some(ms)) => {
            ms.as_f64().ok_or_else(|| err("latency_ms must be a number".into()))? / 1000.0
        }
        _ => return Err(err("exactly one of latency_seconds or latency_ms is required".into())),
    };
    let ok = match obj.get("ok") {
        None => true,
        Some(v) => v.as_bool().ok_or_else(|| err("ok must be true or false".into()))?,
    };
    let model = match obj.get("model") {
        None => None,
        Some(v) => {
            Some(v.as_str().ok_or_else(|| err("model must be a string".into()))?.to_string())
        }
    };
    Ok(Some(BatchResult { latency_seconds: valid(latency)?, ok, model }))
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    cumulative: Vec<u64>,
    sum: f64,
    count: u64,
}

/// What one push carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub body: String,
    /// Gauge families left out because they moved less than `min_change_ratio`.
    pub skipped: Vec<&'static str>,
    /// Results of this batch.
    pub results: usize,
    /// Results read so far, all of them in the cumulative histogram and counter of `body`.
    pub total_results: usize,
    /// The batch's latencies, put back by `Batcher::requeue` when the push fails.
    batch: Vec<(String, f64)>,
    /// Gauge values in `body`, remembered by `Batcher::confirm` once pushed.
    gauges: Vec<((&'static str, String), f64)>,
}

/// Accumulates results and builds push payloads; no I/O, so it is tested directly.
#[derive(Debug)]
pub struct Batcher {
    model: String,
    batch_size: usize,
    min_change_ratio: f64,
    histograms: BTreeMap<String, Histogram>,
    results: BTreeMap<(String, &'static str), u64>,
    /// The batch being filled.
    batch: Vec<(String, f64)>,
    /// Full batches waiting for their push, oldest first (more than one only while the
    /// Pushgateway is slow or down).
    ready: VecDeque<Vec<(String, f64)>>,
    /// Last pushed value of every gauge series: (family, model) -> value.
    pushed: BTreeMap<(&'static str, String), f64>,
    total_results: usize,
    malformed: u64,
    failed_pushes: u64,
    /// Latencies dropped from the gauges' batch while pushes failed (see `requeue`).
    pub dropped_latencies: usize,
}

/// Latencies kept for the per-batch gauges while pushes fail; older ones are dropped (the
/// cumulative histogram and counter still count them).
const MAX_WAITING_LATENCIES: usize = 100_000;

const GAUGES: &[&MetricSpec] =
    &[&cat::BATCH_LATENCY_MEAN, &cat::BATCH_LATENCY_P99, &cat::BATCH_LATENCY_MAX];

fn stat(spec: &MetricSpec, sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if spec.name == cat::BATCH_LATENCY_MEAN.name {
        sorted.iter().sum::<f64>() / n as f64
    } else if spec.name == cat::BATCH_LATENCY_P99.name {
        let rank = ((0.99 * n as f64).ceil() as usize).clamp(1, n);
        sorted[rank - 1]
    } else {
        sorted[n - 1]
    }
}

impl Batcher {
    pub fn new(cfg: &PushConfig) -> Batcher {
        Batcher {
            model: cfg.model.clone(),
            batch_size: cfg.batch_size.max(1),
            min_change_ratio: cfg.min_change_ratio,
            histograms: BTreeMap::new(),
            results: BTreeMap::new(),
            batch: Vec::new(),
            ready: VecDeque::new(),
            pushed: BTreeMap::new(),
            total_results: 0,
            malformed: 0,
            failed_pushes: 0,
            dropped_latencies: 0,
        }
    }

    /// Counts an input line that was not a result (pushed as `deepwatch_batch_malformed_lines_total`).
    pub fn malformed(&mut self) {
        self.malformed += 1;
    }

    /// True when a full batch waits.
    pub fn full(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The payload reached the Pushgateway: its gauges become the base of the next change test.
    pub fn confirm(&mut self, payload: &Payload) {
        for (key, value) in &payload.gauges {
            self.pushed.insert(key.clone(), *value);
        }
    }

    /// The push failed: its latencies go back in front of the current batch (the newest
    /// `MAX_WAITING_LATENCIES` are kept) so the next push covers them.
    pub fn requeue(&mut self, payload: Payload) {
        self.failed_pushes += 1;
        self.ready.push_front(payload.batch);
        self.bound();
    }

    /// Drops the oldest waiting batches beyond `MAX_WAITING_LATENCIES` latencies.
    fn bound(&mut self) {
        let mut waiting: usize = self.ready.iter().map(Vec::len).sum();
        while waiting > MAX_WAITING_LATENCIES && self.ready.len() > 1 {
            let oldest = self.ready.pop_front().unwrap_or_default();
            waiting -= oldest.len();
            self.dropped_latencies += oldest.len();
        }
    }

    /// Adds a result; true when the batch is full and should be pushed.
    pub fn add(&mut self, r: BatchResult) -> bool {
        let model = r.model.unwrap_or_else(|| self.model.clone());
        let h = self.histograms.entry(model.clone()).or_insert_with(|| Histogram {
            cumulative: vec![0; cat::BATCH_REQUEST_DURATION.buckets.len()],
            ..Histogram::default()
        });
        for (edge, n) in cat::BATCH_REQUEST_DURATION.buckets.iter().zip(h.cumulative.iter_mut()) {
            if r.latency_seconds <= *edge {
                *n += 1;
            }
        }
        h.sum += r.latency_seconds;
        h.count += 1;
        self.total_results += 1;
        *self.results.entry((model.clone(), if r.ok { "ok" } else { "error" })).or_default() += 1;
        self.batch.push((model, r.latency_seconds));
        if self.batch.len() < self.batch_size {
            return false;
        }
        self.ready.push_back(std::mem::take(&mut self.batch));
        self.bound();
        true
    }

    pub fn pending(&self) -> usize {
        self.ready.iter().map(Vec::len).sum::<usize>() + self.batch.len()
    }

    /// Builds the payload for the oldest full batch, else for the unfinished one (end of
    /// input); `None` when nothing waits.
    pub fn take(&mut self) -> Option<Payload> {
        let batch = match self.ready.pop_front() {
            Some(full) => full,
            None if self.batch.is_empty() => return None,
            None => std::mem::take(&mut self.batch),
        };
        let mut sink = MetricSink::new(Format::Text004);
        for (model, h) in &self.histograms {
            sink.histogram(&cat::BATCH_REQUEST_DURATION, &[model], &h.cumulative, h.sum, h.count);
        }
        for ((model, outcome), n) in &self.results {
            sink.counter(&cat::BATCH_RESULTS, &[model, outcome], *n as f64);
        }
        sink.counter(&cat::BATCH_MALFORMED_LINES, &[], self.malformed as f64);
        sink.counter(&cat::BATCH_PUSH_FAILURES, &[], self.failed_pushes as f64);
        let mut by_model: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (model, v) in &batch {
            by_model.entry(model.clone()).or_default().push(*v);
        }
        let mut gauges = Vec::new();
        let mut skipped = Vec::new();
        let results = by_model.values().map(Vec::len).sum();
        for spec in GAUGES {
            let mut values: BTreeMap<String, f64> = self
                .pushed
                .iter()
                .filter(|((family, _), _)| *family == spec.name)
                .map(|((_, m), v)| (m.clone(), *v))
                .collect();
            let mut changed = false;
            for (model, latencies) in &mut by_model {
                latencies.sort_by(f64::total_cmp);
                let new = stat(spec, latencies);
                let moved = match values.get(model) {
                    None => true,
                    Some(old) => (new - old).abs() >= self.min_change_ratio * old.abs(),
                };
                if moved {
                    changed = true;
                    values.insert(model.clone(), new);
                }
            }
            if !changed {
                skipped.push(spec.name);
                continue;
            }
            for (model, v) in values {
                sink.gauge(spec, &[&model], v);
                gauges.push(((spec.name, model), v));
            }
        }
        let total_results = self.total_results;
        Some(Payload { body: sink.render(), skipped, results, total_results, batch, gauges })
    }
}

/// Sends payloads to the Pushgateway group `job/<job>/instance/<instance>`.
pub struct Pusher(Pushgateway);

impl Pusher {
    pub fn new(cfg: &PushConfig) -> Result<Pusher, BatchError> {
        let grouping = [("job", cfg.job.as_str()), ("instance", cfg.instance.as_str())];
        let timeout = cfg.timeout;
        Ok(Pusher(Pushgateway::new(&cfg.pushgateway_url, &grouping, timeout)?))
    }

    pub fn url(&self) -> &str {
        self.0.url()
    }

    /// POST: replaces only the families in the body, so skipped gauges keep their value.
    pub async fn push(&self, payload: &Payload) -> Result<(), BatchError> {
        self.0.replace_families(payload.body.clone()).await?;
        tracing::debug!(url = %self.url(), results = payload.results, skipped = ?payload.skipped, "pushed batch");
        Ok(())
    }
}

/// How `run` retries pushes the Pushgateway refused or never answered.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Wait after the first failed push; doubled after each further failure.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// After the end of input (or Ctrl-C), keep retrying the final push this long.
    pub give_up_after: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            give_up_after: Duration::from_secs(30),
        }
    }
}

/// Totals of one `run`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Results read.
    pub results: usize,
    /// Lines that were neither a number nor a result object (skipped, counted, warned).
    pub malformed: usize,
    pub pushes: usize,
    pub failed_pushes: usize,
    pub skipped_gauges: usize,
    /// Results that no successful push carried when the run ended (the Pushgateway stayed
    /// down past `give_up_after`).
    pub undelivered: usize,
    /// Batch latencies left out of the per-batch gauges because too many waited while the
    /// Pushgateway was down (the histogram and counter still hold them).
    pub dropped_latencies: usize,
}

/// Reads results line by line to the end of input, pushes every full batch and flushes the
/// rest at end of input. Reading never waits for the Pushgateway and never stops on a bad
/// line, so the job writing into the pipe never blocks on it or dies of SIGPIPE.
pub async fn run<R>(cfg: &PushConfig, input: R) -> Result<Stats, BatchError>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    run_until(cfg, Retry::default(), input, std::future::pending()).await
}

/// A push in flight: the payload comes back with its result, to be confirmed or requeued.
type InFlight<'a> = Pin<Box<dyn Future<Output = (Payload, Result<(), BatchError>)> + 'a>>;

/// Like `run`, but stops reading when `stop` completes (Ctrl-C) and still flushes.
pub async fn run_until<R, F>(
    cfg: &PushConfig,
    retry: Retry,
    mut input: R,
    stop: F,
) -> Result<Stats, BatchError>
where
    R: tokio::io::AsyncBufRead + Unpin,
    F: Future<Output = ()>,
{
    use tokio::io::AsyncBufReadExt;
    let pusher = Pusher::new(cfg)?;
    let mut batcher = Batcher::new(cfg);
    let mut stats = Stats::default();
    let mut line = Vec::new();
    let mut line_no = 0usize;
    let mut reading = true;
    let mut in_flight: Option<InFlight<'_>> = None;
    let mut backoff = retry.initial_backoff;
    let mut retry_at: Option<Instant> = None;
    let mut give_up_at: Option<Instant> = None;
    let mut delivered = 0usize;
    tokio::pin!(stop);
    loop {
        let may_push = in_flight.is_none() && retry_at.is_none();
        let due = batcher.full() || (!reading && batcher.pending() > 0);
        if may_push && due {
            if let Some(payload) = batcher.take() {
                let pusher = &pusher;
                in_flight = Some(Box::pin(async move {
                    let result = pusher.push(&payload).await;
                    (payload, result)
                }));
            }
        }
        if !reading && in_flight.is_none() && batcher.pending() == 0 {
            break;
        }
        let retry_sleep = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let give_up = async {
            match give_up_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = input.read_until(b'\n', &mut line), if reading => {
                match read {
                    Ok(0) => reading = false,
                    Ok(_) => {
                        line_no += 1;
                        let text = String::from_utf8_lossy(&line).into_owned();
                        line.clear();
                        match parse_line(&text, line_no) {
                            Ok(Some(result)) => {
                                stats.results += 1;
                                batcher.add(result);
                            }
                            Ok(None) => {}
                            Err(e) => {
                                stats.malformed += 1;
                                batcher.malformed();
                                tracing::warn!(error = %truncated(&e.to_string()), "input line skipped");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read input; flushing what was read");
                        reading = false;
                    }
                }
                if !reading {
                    give_up_at = Some(Instant::now() + retry.give_up_after);
                }
            }
            () = &mut stop, if reading => {
                tracing::info!(pending = batcher.pending(), "stopping; flushing the unfinished batch");
                reading = false;
                give_up_at = Some(Instant::now() + retry.give_up_after);
            }
            (payload, result) = async { in_flight.as_mut().expect("guarded").await }, if in_flight.is_some() => {
                in_flight = None;
                match result {
                    Ok(()) => {
                        stats.pushes += 1;
                        stats.skipped_gauges += payload.skipped.len();
                        delivered = payload.total_results;
                        batcher.confirm(&payload);
                        backoff = retry.initial_backoff;
                    }
                    Err(e) => {
                        stats.failed_pushes += 1;
                        tracing::warn!(error = %e, retry_in = ?backoff, pending = payload.results, "push failed; will retry");
                        batcher.requeue(payload);
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(retry.max_backoff);
                    }
                }
            }
            () = retry_sleep => retry_at = None,
            () = give_up => {
                tracing::warn!(after = ?retry.give_up_after, "giving up on the pushgateway");
                break;
            }
        }
    }
    stats.undelivered = stats.results - delivered;
    stats.dropped_latencies = batcher.dropped_latencies;
    Ok(stats)
}

/// Long input lines are echoed only in part.
fn truncated(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// `run_until` on the process's standard input.
pub async fn run_stdin<F>(cfg: &PushConfig, retry: Retry, stop: F) -> Result<Stats, BatchError>
where
    F: Future<Output = ()>,
{
    run_until(cfg, retry, tokio::io::BufReader::new(tokio::io::stdin()), stop).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: f64) -> BatchResult {
        BatchResult { latency_seconds: v, ok: true, model: None }
    }

    #[test]
    fn parses_numbers_and_json_and_names_bad_lines() {
        assert_eq!(parse_line("0.5", 1).unwrap(), Some(r(0.5)));
        assert_eq!(parse_line("  ", 2).unwrap(), None);
        let j =
            parse_line(r#"{"latency_ms": 250, "ok": false, "model": "m"}"#, 3).unwrap().unwrap();
        assert_eq!(j, BatchResult { latency_seconds: 0.25, ok: false, model: Some("m".into()) });
        let e = parse_line(r#"{"latency": 1}"#, 7).unwrap_err().to_string();
        assert!(e.starts_with("line 7: unknown field \"latency\""), "{e}");
        assert!(parse_line("-1", 8).unwrap_err().to_string().contains("line 8"));
        assert!(parse_line("abc", 9).unwrap_err().to_string().contains("line 9: neither"));
    }

    #[test]
    fn batches_and_skips_gauges_that_barely_moved() {
        let cfg = PushConfig { batch_size: 2, ..PushConfig::default() };
        let mut b = Batcher::new(&cfg);
        assert!(!b.add(r(1.0)));
        assert!(b.add(r(1.0)));
        let first = b.take().unwrap();
        b.confirm(&first);
        assert!(first.skipped.is_empty());
        assert!(
            first.body.contains("deepwatch_batch_latency_mean_seconds{model=\"deepseek-r1\"} 1\n"),
            "{}",
            first.body
        );
        // 2 % slower: below the 5 % default, no gauge is re-pushed; the histogram still is.
        b.add(r(1.02));
        b.add(r(1.02));
        let second = b.take().unwrap();
        b.confirm(&second);
        assert_eq!(second.skipped.len(), 3, "{second:?}");
        assert!(!second.body.contains("latency_mean"), "{}", second.body);
        assert!(second
            .body
            .contains("deepwatch_batch_request_duration_seconds_count{model=\"deepseek-r1\"} 4"));
        // 10 % slower than the last *pushed* value: pushed.
        b.add(r(1.1));
        b.add(r(1.1));
        let third = b.take().unwrap();
        assert!(third
            .body
            .contains("deepwatch_batch_latency_mean_seconds{model=\"deepseek-r1\"} 1.1"));
        assert!(b.take().is_none());
    }

    #[test]
    fn a_failed_push_puts_its_batch_back_and_confirms_nothing() {
        let cfg = PushConfig { batch_size: 2, ..PushConfig::default() };
        let mut b = Batcher::new(&cfg);
        b.add(r(1.0));
        b.add(r(3.0));
        let failed = b.take().unwrap();
        assert_eq!((failed.results, failed.total_results), (2, 2));
        b.requeue(failed);
        b.malformed();
        b.add(r(2.0));
        let retry = b.take().unwrap();
        assert_eq!((retry.results, retry.total_results), (2, 3));
        assert!(retry
            .body
            .contains("deepwatch_batch_latency_max_seconds{model=\"deepseek-r1\"} 3"));
        assert!(retry.body.contains("deepwatch_batch_malformed_lines_total 1"), "{}", retry.body);
        assert!(retry.body.contains("deepwatch_batch_push_failures_total 1"), "{}", retry.body);
        assert!(b.pushed.is_empty(), "nothing confirmed yet");
        b.confirm(&retry);
        assert_eq!(b.pushed.len(), GAUGES.len());
        assert_eq!(b.take().unwrap().results, 1, "the unfinished batch at end of input");
    }
}
