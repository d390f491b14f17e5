//! Push over Prometheus remote_write 1.0 (snappy-compressed protobuf, `deepwatch_core::
//! remote_write`), to VictoriaMetrics or Prometheus' `--web.enable-remote-write-receiver`.
//! Every interval one collection becomes one batch: every sample of `/metrics` stamped with the
//! collection time, plus `job`, `instance` and the configured labels. Batches wait in a bounded
//! buffer and a sender delivers them oldest first: a connection error, timeout, 429 or 5xx
//! keeps the batch and retries with backoff (so nothing within the buffer is lost while the
//! receiver is down); another 4xx drops it as rejected. When the buffer holds more than
//! `max_buffer_samples`, the oldest batches are dropped and counted.

use crate::collector::CollectorSet;
use bytes::Bytes;
use deepwatch_core::catalog::agent as cat;
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::agent::AgentPushConfig;
use deepwatch_core::expo::{Format, MetricSink};
use deepwatch_core::http::redact_urls;
use deepwatch_core::metrics::{CounterVec, Encode, GaugeVec};
use deepwatch_core::promtext::{self, Dialect};
use deepwatch_core::remote_write::{self as rw, Label, Sample, TimeSeries, WriteRequest};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// First retry delay after a failed send; doubles up to the push interval (at most 30 s).
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One collection, encoded and ready to send.
#[derive(Clone)]
struct Batch {
    seq: u64,
    samples: u64,
    body: Bytes,
}

#[derive(Default)]
struct Buffer {
    batches: VecDeque<Batch>,
    samples: u64,
    next_seq: u64,
}

impl Buffer {
    /// Appends a batch, then drops the oldest while over `max`; returns the samples dropped.
    fn push(&mut self, samples: u64, body: Bytes, max: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.batches.push_back(Batch { seq, samples, body });
        self.samples += samples;
        let mut dropped = 0;
        while self.samples > max {
            let Some(old) = self.batches.pop_front() else { break };
            self.samples -= old.samples;
            dropped += old.samples;
        }
        dropped
    }

    /// Removes batch `seq` if it is still the oldest (a full buffer may have dropped it while
    /// it was being sent); returns its samples.
    fn remove_front(&mut self, seq: u64) -> Option<u64> {
        if self.batches.front().is_some_and(|b| b.seq == seq) {
            let b = self.batches.pop_front()?;
            self.samples -= b.samples;
            return Some(b.samples);
        }
        None
    }
}

/// Why a send did not deliver.
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// Worth retrying: the receiver is down, slow, overloaded or failing.
    #[error("remote write to {url} failed: {message}")]
    Retry { url: String, message: String },
    /// The receiver refused the data itself (out of order, too old, malformed): never retried.
    #[error("remote write to {url} rejected with HTTP {status}: {body}")]
    Rejected { url: String, status: u16, body: String },
}

pub struct RemoteWriter {
    url: String,
    timeout: Duration,
    interval: Duration,
    max_buffer: u64,
    /// `job`, `instance` and the configured labels, set on every series.
    target_labels: Vec<(String, String)>,
    client: reqwest::Client,
    clock: SharedClock,
    buffer: Mutex<Buffer>,
    wake: Notify,
    pushes: CounterVec,
    samples: CounterVec,
    buffered: GaugeVec,
}

impl RemoteWriter {
    pub fn new(
        config: &AgentPushConfig,
        clock: SharedClock,
    ) -> Result<RemoteWriter, reqwest::Error> {
        let mut target_labels = vec![
            ("job".to_string(), config.job.clone()),
            ("instance".to_string(), super::instance(config)),
        ];
        target_labels.extend(config.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let pushes = CounterVec::new(&cat::AGENT_PUSHES);
        let samples = CounterVec::new(&cat::AGENT_PUSH_SAMPLES);
        for outcome in ["ok", "error"] {
            pushes.with(&[outcome]);
        }
        for outcome in ["sent", "dropped", "rejected"] {
            samples.with(&[outcome]);
        }
        let buffered = GaugeVec::new(&cat::AGENT_PUSH_BUFFERED);
        buffered.set(&[], 0.0);
        Ok(RemoteWriter {
            url: config.url.clone(),
            timeout: config.timeout,
            interval: config.interval.max(Duration::from_millis(1)),
            max_buffer: config.max_buffer_samples,
            target_labels,
            client: deepwatch_core::http::builder().build()?,
            clock,
            buffer: Mutex::new(Buffer::default()),
            wake: Notify::new(),
            pushes,
            samples,
            buffered,
        })
    }

    /// Samples waiting to be sent.
    pub fn buffered_samples(&self) -> u64 {
        self.buffer.lock().samples
    }

    /// Samples by outcome: sent, dropped, rejected.
    pub fn samples(&self, outcome: &str) -> f64 {
        self.samples.get(&[outcome])
    }

    /// Collects once: every sample of `/metrics` (and this writer's own counters) stamped now,
    /// appended to the buffer as one batch. Returns the number of samples collected.
    pub async fn collect_once(&self, collectors: &Arc<CollectorSet>) -> u64 {
        let now_ms = self.clock.unix_millis();
        let mut text = collectors.scrape(Format::Text004).await;
        let mut own = MetricSink::new(Format::Text004);
        self.pushes.encode(&mut own);
        self.samples.encode(&mut own);
        self.buffered.encode(&mut own);
        text.push_str(&own.render());
        let (families, errors) = promtext::parse_lenient(&text, Dialect::Text004);
        if let Some(e) = errors.first() {
            tracing::debug!(error = %e, "own exposition line skipped in remote_write");
        }
        let mut request = WriteRequest::default();
        for sample in families.iter().flat_map(|f| &f.samples) {
            request.timeseries.push(self.series(sample, now_ms));
        }
        let count = request.timeseries.len() as u64;
        let body = Bytes::from(request.to_body());
        let dropped = {
            let mut buffer = self.buffer.lock();
            let dropped = buffer.push(count, body, self.max_buffer);
            self.buffered.set(&[], buffer.samples as f64);
            dropped
        };
        if dropped > 0 {
            self.samples.inc_by(&["dropped"], dropped as f64);
            tracing::warn!(
                dropped,
                max = self.max_buffer,
                "remote_write buffer full: oldest samples dropped"
            );
        }
        self.wake.notify_one();
        count
    }

    /// One series: the sample's labels, then the target labels (which win), sorted by name.
    fn series(&self, sample: &promtext::Sample, now_ms: i64) -> TimeSeries {
        let mut labels: Vec<Label> = Vec::with_capacity(sample.labels.len() + 4);
        labels.push(Label { name: "__name__".into(), value: sample.name.clone() });
        for (name, value) in &sample.labels {
            if !self.target_labels.iter().any(|(n, _)| n == name) {
                labels.push(Label { name: name.clone(), value: value.clone() });
            }
        }
        for (name, value) in &self.target_labels {
            labels.push(Label { name: name.clone(), value: value.clone() });
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let timestamp = sample.timestamp_ms.unwrap_or(now_ms);
        TimeSeries { labels, samples: vec![Sample { value: sample.value, timestamp }] }
    }

    /// Sends the oldest batch, if any. `Ok(false)` when the buffer is empty.
    async fn send_oldest(&self) -> Result<bool, SendError> {
        let Some(batch) = self.buffer.lock().batches.front().cloned() else {
            return Ok(false);
        };
        let result = self.post(batch.body.clone()).await;
        self.pushes.inc(&[if result.is_ok() { "ok" } else { "error" }]);
        let delivered = match &result {
            Ok(()) => Some("sent"),
            Err(SendError::Rejected { .. }) => Some("rejected"),
            Err(SendError::Retry { .. }) => None,
        };
        if let Some(outcome) = delivered {
            let removed = {
                let mut buffer = self.buffer.lock();
                let removed = buffer.remove_front(batch.seq);
                self.buffered.set(&[], buffer.samples as f64);
                removed
            };
            // A batch dropped from a full buffer while in flight was counted as dropped.
            if removed.is_some() {
                self.samples.inc_by(&[outcome], batch.samples as f64);
            }
        }
        result.map(|()| true)
    }

    async fn post(&self, body: Bytes) -> Result<(), SendError> {
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, rw::CONTENT_TYPE)
            .header(reqwest::header::CONTENT_ENCODING, rw::CONTENT_ENCODING)
            .header(rw::VERSION_HEADER.0, rw::VERSION_HEADER.1)
            .timeout(self.timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Retry {
                url: redact_urls(&self.url).into_owned(),
                message: redact_urls(&e.to_string()).into_owned(),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let code = status.as_u16();
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(512).collect();
        if code == 429 || status.is_server_error() {
            Err(SendError::Retry {
                url: redact_urls(&self.url).into_owned(),
                message: format!("HTTP {code}: {text}"),
            })
        } else {
            Err(SendError::Rejected {
                url: redact_urls(&self.url).into_owned(),
                status: code,
                body: text,
            })
        }
    }

    /// The collection ticker and the sender; both run until aborted.
    pub fn spawn(self: Arc<Self>, collectors: Arc<CollectorSet>) -> Vec<JoinHandle<()>> {
        let collector = {
            let this = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(this.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    this.collect_once(&collectors).await;
                }
            })
        };
        vec![collector, self.spawn_sender()]
    }

    /// The sender alone (batches come from `collect_once`).
    pub fn spawn_sender(self: Arc<Self>) -> JoinHandle<()> {
        tokio::spawn(async move { self.run_sender().await })
    }

    /// Delivers batches as they come; on a retryable failure waits (doubling from 100 ms up to
    /// the push interval) and tries the same batch again.
    async fn run_sender(&self) {
        let max_backoff = self.interval.min(MAX_BACKOFF).max(MIN_BACKOFF);
        let mut backoff = MIN_BACKOFF;
        let mut failing = false;
        loop {
            match self.send_oldest().await {
                Ok(true) => {
                    if failing {
                        failing = false;
                        tracing::info!(url = %redact_urls(&self.url), buffered = self.buffered_samples(), "remote_write recovered");
                    }
                    backoff = MIN_BACKOFF;
                }
                Ok(false) => self.wake.notified().await,
                Err(e @ SendError::Rejected { .. }) => {
                    tracing::warn!(error = %e, "remote_write batch rejected and dropped");
                }
                Err(e @ SendError::Retry { .. }) => {
                    if !failing {
                        failing = true;
                        tracing::warn!(error = %e, "remote_write failing; buffering and retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_drops_the_oldest_batches_and_counts_them() {
        let mut buffer = Buffer::default();
        assert_eq!(buffer.push(4, Bytes::new(), 10), 0);
        assert_eq!(buffer.push(4, Bytes::new(), 10), 0);
        // 12 > 10: the first batch (4 samples) goes.
        assert_eq!(buffer.push(4, Bytes::new(), 10), 4);
        assert_eq!(buffer.samples, 8);
        assert_eq!(buffer.batches.front().map(|b| b.seq), Some(1));
        // The batch in flight was dropped meanwhile: removing it by sequence does nothing.
        assert_eq!(buffer.remove_front(0), None);
        assert_eq!(buffer.remove_front(1), Some(4));
        assert_eq!(buffer.samples, 4);
    }

    #[test]
    fn one_batch_larger_than_the_buffer_is_dropped_whole() {
        let mut buffer = Buffer::default();
        assert_eq!(buffer.push(11, Bytes::new(), 10), 11);
        assert!(buffer.batches.is_empty());
        assert_eq!(buffer.samples, 0);
    }
}
