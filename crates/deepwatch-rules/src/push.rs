//! `deepwatch push`: a batch job hands one result per line (a latency in seconds, or JSON
//! `{"latency_seconds": 0.42, "ok": true, "model": "m"}`; `latency_ms` also accepted) and
//! this module pushes to a Pushgateway once per `batch_size` results, POSTing to
//! `/metrics/job/<job>/instance/<instance>`. The histogram and counter are cumulative and go
//! with every push; a latency gauge family is left out when no series moved by at least
//! `min_change_ratio` since it was last pushed (the Pushgateway keeps the old value).

use deepwatch_core::catalog::{push as cat, MetricSpec};
use deepwatch_core::config::push::PushConfig;
use deepwatch_core::expo::{Format, MetricSink};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("line {line}: {reason}")]
    Parse { line: usize, reason: String },
    #[error("pushgateway {url}: {message}")]
    Http { url: String, message: String },
}

/// One result of the batch job.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult {
    pub latency_seconds: f64,
    pub ok: bool,
    pub model: Option<String>,
}

/// Parses one input line; blank lines and `#` comments give `None`.
pub fn parse_line(text: &str, line: usize) -> Result<Option<BatchResult>, PushError> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let err = |reason: String| PushError::Parse { line, reason };
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

/// What one push carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub body: String,
    /// Gauge families left out because they moved less than `min_change_ratio`.
    pub skipped: Vec<&'static str>,
    pub results: usize,
}

/// Accumulates results and builds push payloads; no I/O, so it is tested directly.
#[derive(Debug)]
pub struct Batcher {
    model: String,
    batch_size: usize,
    min_change_ratio: f64,
    histograms: BTreeMap<String, Histogram>,
    results: BTreeMap<(String, &'static str), u64>,
    batch: Vec<(String, f64)>,
    /// Last pushed value of every gauge series: (family, model) -> value.
    pushed: BTreeMap<(&'static str, String), f64>,
}

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
            pushed: BTreeMap::new(),
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
        *self.results.entry((model.clone(), if r.ok { "ok" } else { "error" })).or_default() += 1;
        self.batch.push((model, r.latency_seconds));
        self.batch.len() >= self.batch_size
    }

    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// Builds the payload for the current batch and starts a new one; `None` when empty.
    pub fn take(&mut self) -> Option<Payload> {
        if self.batch.is_empty() {
            return None;
        }
        let mut sink = MetricSink::new(Format::Text004);
        for (model, h) in &self.histograms {
            sink.histogram(&cat::BATCH_REQUEST_DURATION, &[model], &h.cumulative, h.sum, h.count);
        }
        for ((model, outcome), n) in &self.results {
            sink.counter(&cat::BATCH_RESULTS, &[model, outcome], *n as f64);
        }
        let mut by_model: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (model, v) in self.batch.drain(..) {
            by_model.entry(model).or_default().push(v);
        }
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
                self.pushed.insert((spec.name, model), v);
            }
        }
        Some(Payload { body: sink.render(), skipped, results })
    }
}

/// Sends payloads to the Pushgateway.
pub struct Pusher {
    client: reqwest::Client,
    url: String,
}

impl Pusher {
    pub fn new(cfg: &PushConfig) -> Result<Pusher, PushError> {
        let url = format!(
            "{}/metrics/job/{}/instance/{}",
            cfg.pushgateway_url.trim_end_matches('/'),
            cfg.job,
            cfg.instance
        );
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .build()
            .map_err(|e| PushError::Http { url: url.clone(), message: e.to_string() })?;
        Ok(Pusher { client, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// POST: replaces only the families in the body, so skipped gauges keep their value.
    pub async fn push(&self, payload: &Payload) -> Result<(), PushError> {
        let http = |message: String| PushError::Http { url: self.url.clone(), message };
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", Format::Text004.content_type())
            .body(payload.body.clone())
            .send()
            .await
            .map_err(|e| http(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(http(format!("answered {status}: {}", text.trim())));
        }
        tracing::debug!(url = %self.url, results = payload.results, skipped = ?payload.skipped, "pushed batch");
        Ok(())
    }
}

/// Totals of one `run`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub results: usize,
    pub pushes: usize,
    pub skipped_gauges: usize,
}

/// Reads results line by line, pushes every full batch and flushes the rest at end of input.
/// A bad line stops the run with its line number, after what was read before it is pushed.
pub async fn run<R>(cfg: &PushConfig, input: R) -> Result<Stats, PushError>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    run_until(cfg, input, std::future::pending()).await
}

/// Like `run`, but stops reading when `stop` completes (Ctrl-C) and still flushes.
pub async fn run_until<R, F>(cfg: &PushConfig, input: R, stop: F) -> Result<Stats, PushError>
where
    R: tokio::io::AsyncBufRead + Unpin,
    F: std::future::Future<Output = ()>,
{
    use tokio::io::AsyncBufReadExt;
    let pusher = Pusher::new(cfg)?;
    let mut batcher = Batcher::new(cfg);
    let mut stats = Stats::default();
    let mut lines = input.lines();
    let mut line_no = 0;
    let mut failure = None;
    tokio::pin!(stop);
    loop {
        let next = tokio::select! {
            next = lines.next_line() => next,
            () = &mut stop => {
                tracing::info!(pending = batcher.pending(), "stopping; flushing the unfinished batch");
                break;
            }
        };
        let line = match next {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                failure = Some(PushError::Parse { line: line_no + 1, reason: e.to_string() });
                break;
            }
        };
        line_no += 1;
        match parse_line(&line, line_no) {
            Ok(Some(result)) => {
                stats.results += 1;
                if batcher.add(result) {
                    flush(&pusher, &mut batcher, &mut stats).await?;
                }
            }
            Ok(None) => {}
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    flush(&pusher, &mut batcher, &mut stats).await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

/// `run_until` on the process's standard input.
pub async fn run_stdin<F>(cfg: &PushConfig, stop: F) -> Result<Stats, PushError>
where
    F: std::future::Future<Output = ()>,
{
    run_until(cfg, tokio::io::BufReader::new(tokio::io::stdin()), stop).await
}

async fn flush(pusher: &Pusher, batcher: &mut Batcher, stats: &mut Stats) -> Result<(), PushError> {
    if let Some(payload) = batcher.take() {
        pusher.push(&payload).await?;
        stats.pushes += 1;
        stats.skipped_gauges += payload.skipped.len();
    }
    Ok(())
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
}
