//! The streamed response body. Each upstream frame is scanned (sans IO) and forwarded as soon
//! as its events are complete: nothing is buffered beyond an unfinished event. It timestamps
//! content chunks (TTFT, inter-token gaps), reads usage and finish_reason, drops the usage chunk
//! the client did not ask for, scans output for sensitive data, sends SSE keep-alive comments
//! while the upstream is silent, and ends every broken stream with an SSE error event.

use super::conn::{AttemptError, UpstreamBody};
use super::record::Record;
use super::relay::RelayOptions;
use crate::error::ApiError;
use crate::metrics::labels::{FaultIds, PoolIds};
use crate::metrics::Outcome;
use crate::scanner::stream::StreamScanner;
use crate::scanner::Policy;
use crate::sse::{EventKind, SseEvent, SseScanner, TextField};
use crate::state::Shared;
use bytes::Bytes;
use deepwatch_core::config::gateway::ScanAction;
use deepwatch_core::error::ErrorCode;
use futures_util::Stream;
use hyper::body::Body as _;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

mod scan;

const KEEPALIVE: &[u8] = b": keep-alive\n\n";

type FramePoll = Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>>;

/// The upstream attempt whose response headers are still awaited.
pub type PendingHead =
    Pin<Box<dyn Future<Output = Result<http::Response<UpstreamBody>, AttemptError>> + Send>>;

pub struct ProxyStream {
    shared: Arc<Shared>,
    record: Record,
    /// Response headers not here yet (the stream was committed to keep the client alive).
    head: Option<PendingHead>,
    upstream: Option<UpstreamBody>,
    /// Frames read before the stream was committed (up to the first content), with their
    /// arrival times; relayed before anything else.
    prefix: VecDeque<(Bytes, Instant)>,
    scanner: SseScanner,
    events: Vec<SseEvent>,
    queue: VecDeque<Bytes>,
    idle: Pin<Box<Sleep>>,
    keepalive: Option<Pin<Box<Sleep>>>,
    strip_usage: bool,
    cut_after: Option<u64>,
    output: ScanAction,
    policy: Policy,
    out_scanner: StreamScanner,
    saw_done: bool,
    upstream_error: Option<String>,
    /// When the wait for late headers began (it counts as upstream wait).
    head_started: Option<Instant>,
    /// No more reading from upstream; drain the queue, then end.
    closing: bool,
    /// Fires when the upstream is ejected as hung: a stalled stream then ends at once with an
    /// error event instead of waiting out the idle timeout.
    hung: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl ProxyStream {
    /// A stream whose upstream answer is still to come: keep-alives flow meanwhile, and an
    /// upstream failure becomes an SSE error event (bytes went out, so no retry).
    pub fn awaiting(
        shared: Arc<Shared>,
        record: Record,
        head: PendingHead,
        opts: &RelayOptions,
    ) -> Self {
        let mut s = ProxyStream::build(shared, record, None, opts);
        s.head_started = Some(s.shared.clock.now());
        s.head = Some(head);
        s
    }

    pub fn new(
        shared: Arc<Shared>,
        record: Record,
        upstream: UpstreamBody,
        opts: &RelayOptions,
    ) -> Self {
        ProxyStream::build(shared, record, Some(upstream), opts)
    }

    /// A stream whose first frames (up to its first content) were read while a first-token
    /// deadline still allowed moving the request elsewhere.
    pub fn with_prefix(
        shared: Arc<Shared>,
        record: Record,
        upstream: UpstreamBody,
        prefix: Vec<(Bytes, Instant)>,
        opts: &RelayOptions,
    ) -> Self {
        let mut s = ProxyStream::build(shared, record, Some(upstream), opts);
        s.prefix = prefix.into();
        s
    }

    fn build(
        shared: Arc<Shared>,
        record: Record,
        upstream: Option<UpstreamBody>,
        opts: &RelayOptions,
    ) -> Self {
        let now = shared.clock.now();
        let output =
            if opts.policy.kinds.is_empty() { ScanAction::Off } else { opts.output_action };
        let want_text = output != ScanAction::Off || shared.cfg.request_log.include_text;
        let hung = record.route.as_ref().map(|r| {
            let mut rx = r.upstream.health.hung_signal();
            let fired: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            });
            fired
        });
        ProxyStream {
            hung,
            idle: Box::pin(tokio::time::sleep_until(now + shared.idle_timeout)),
            keepalive: shared.keepalive.map(|k| Box::pin(tokio::time::sleep_until(now + k))),
            shared,
            record,
            head: None,
            head_started: None,
            upstream,
            prefix: VecDeque::new(),
            scanner: SseScanner::new(want_text),
            events: Vec::new(),
            queue: VecDeque::new(),
            strip_usage: opts.strip_usage,
            cut_after: opts.cut_after_chunks,
            output,
            policy: opts.policy.clone(),
            out_scanner: StreamScanner::new(),
            saw_done: false,
            upstream_error: None,
            closing: false,
        }
    }

    /// Ends the stream with an SSE error event and `outcome`.
    fn fail(&mut self, outcome: Outcome, err: ApiError) {
        self.queue.push_back(err.sse_event());
        self.record.error = Some(err.message);
        self.record.outcome = Some(outcome);
        self.record.status = 200;
        self.closing = true;
    }

    fn on_frame(&mut self, frame: Bytes, t: Instant) {
        let queued_before = self.queue.len();
        self.scanner.push(&frame, &mut self.events);
        let events = std::mem::take(&mut self.events);
        let whole = events.len() == 1 && events[0].raw.len() == frame.len();
        let mut events = events;
        for ev in events.drain(..) {
            if self.closing {
                break;
            }
            match ev.kind {
                EventKind::Comment => self.queue.push_back(ev.raw),
                EventKind::Done => {
                    self.flush_output(None);
                    self.saw_done = true;
                    self.queue.push_back(ev.raw);
                }
                EventKind::Error(message) => {
                    self.upstream_error = Some(message);
                    self.queue.push_back(ev.raw);
                }
                EventKind::Garbage => {
                    let err = ApiError::new(
                        ErrorCode::BadGateway,
                        "upstream_error",
                        "upstream sent an invalid server-sent event",
                    );
                    self.fail(Outcome::UpstreamError, err);
                }
                EventKind::Chunk(info) => {
                    if let Some(u) = info.usage {
                        self.record.usage = Some(u);
                    }
                    if info.usage_only && self.strip_usage {
                        continue;
                    }
                    if info.content {
                        self.record.on_content(t);
                    }
                    if let Some(r) = &info.finish_reason {
                        self.record.finish_reason = Some(r.clone());
                    }
                    if self.shared.cfg.request_log.include_text {
                        let out = self.record.output_text.get_or_insert_with(String::new);
                        for d in info.deltas.iter().filter(|d| d.field != TextField::Reasoning) {
                            out.push_str(&d.text);
                        }
                    }
                    let raw = if self.output == ScanAction::Off {
                        ev.raw
                    } else {
                        match self.scan_chunk(ev.raw, &info) {
                            Some(raw) => raw,
                            None => break,
                        }
                    };
                    if whole && self.output == ScanAction::Off {
                        self.queue.push_back(frame.clone());
                    } else {
                        self.queue.push_back(raw);
                    }
                    if info.content
                        && self.cut_after.is_some_and(|n| self.record.content_chunks >= n)
                    {
                        self.shared.metrics.faults.inc(&FaultIds {
                            endpoint: self.record.endpoint.path(),
                            kind: "stream_cut",
                        });
                        let err = ApiError::new(
                            ErrorCode::BadGateway,
                            "stream_cut",
                            "injected fault: stream cut",
                        );
                        self.fail(Outcome::StreamCut, err);
                    }
                }
            }
        }
        self.events = events;
        // Several events from one read go out as one chunk: one write, fewer iovecs.
        if self.queue.len() > queued_before + 1 {
            if let Some(len) = verbatim_prefix(&frame, self.queue.range(queued_before..)) {
                // Forwarded unchanged and in order: one slice of the frame, no copy.
                self.queue.truncate(queued_before);
                self.queue.push_back(frame.slice(..len));
                return;
            }
            let parts: Vec<Bytes> = self.queue.drain(queued_before..).collect();
            let mut joined = bytes::BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
            for p in &parts {
                joined.extend_from_slice(p);
            }
            self.queue.push_back(joined.freeze());
        }
    }
}

/// When `parts` are consecutive slices of `frame` from its first byte (events passed through
/// untouched), the length they cover; `None` as soon as one was rewritten, added or skipped.
fn verbatim_prefix<'a>(frame: &Bytes, parts: impl Iterator<Item = &'a Bytes>) -> Option<usize> {
    let base = frame.as_ptr() as usize;
    let mut len = 0;
    for p in parts {
        if p.as_ptr() as usize != base + len || len + p.len() > frame.len() {
            return None;
        }
        len += p.len();
    }
    Some(len)
}

impl ProxyStream {
    /// Sends a keep-alive comment when the keep-alive timer fired; true when one was queued.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> bool {
        let (Some(k), Some(every)) = (self.keepalive.as_mut(), self.shared.keepalive) else {
            return false;
        };
        if k.as_mut().poll(cx).is_pending() {
            return false;
        }
        let now = self.shared.clock.now();
        k.as_mut().reset(now + every);
        self.record.keepalives += 1;
        let pool = self.record.route.as_ref().map(|r| r.pool.name.as_str()).unwrap_or_default();
        self.shared.metrics.keepalives.inc(&PoolIds { pool });
        self.queue.push_back(Bytes::from_static(KEEPALIVE));
        true
    }

    /// The late response headers arrived (or the attempt failed).
    fn on_head(&mut self, result: Result<http::Response<UpstreamBody>, AttemptError>) {
        let now = self.shared.clock.now();
        if let Some(started) = self.head_started.take() {
            self.record.upstream_wait += now.saturating_duration_since(started);
        }
        self.idle.as_mut().reset(now + self.shared.idle_timeout);
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                let (code, reason, outcome) = match &e {
                    AttemptError::HeaderTimeout(_) => {
                        (ErrorCode::GatewayTimeout, "upstream_timeout", Outcome::Timeout)
                    }
                    _ => (ErrorCode::BadGateway, "upstream_error", Outcome::UpstreamError),
                };
                self.fail(outcome, ApiError::new(code, reason, e.to_string()));
                return;
            }
        };
        let status = resp.status().as_u16();
        let is_sse = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if resp.status().is_success() && is_sse {
            self.upstream = Some(resp.into_body());
            return;
        }
        let outcome =
            if (400..500).contains(&status) { Outcome::Rejected } else { Outcome::UpstreamError };
        let err = ApiError::new(
            ErrorCode::BadGateway,
            "upstream_error",
            format!("upstream answered {status} instead of an event stream"),
        );
        self.fail(outcome, err);
    }

    fn on_broken(&mut self, e: hyper::Error) {
        if self.closing {
            return;
        }
        let err = ApiError::new(
            ErrorCode::BadGateway,
            "stream_cut",
            format!("upstream connection broke mid-stream: {e}"),
        );
        self.fail(Outcome::StreamCut, err);
    }

    fn on_end(&mut self) {
        if self.closing {
            return;
        }
        self.flush_output(None);
        if self.closing {
            return;
        }
        self.closing = true;
        if let Some(message) = self.upstream_error.take() {
            self.record.error = Some(message);
            self.record.outcome = Some(Outcome::UpstreamError);
        } else if self.saw_done && self.scanner.pending() == 0 {
            self.record.outcome = Some(Outcome::Ok);
        } else {
            let err = ApiError::new(
                ErrorCode::BadGateway,
                "stream_cut",
                "upstream closed the stream before it was complete",
            );
            self.queue.push_back(err.sse_event());
            self.record.error = Some(err.message);
            self.record.outcome = Some(Outcome::StreamCut);
        }
        self.record.status = 200;
    }
}

/// A client that closes as soon as `[DONE]` reaches it (the openai SDK does, after a stop
/// sequence ends a stream early) can go before the upstream's end of body is read: the answer
/// was whole, so the request is `ok`, not `client_cancelled`.
impl Drop for ProxyStream {
    fn drop(&mut self) {
        if self.record.outcome.is_none()
            && self.saw_done
            && self.queue.is_empty()
            && self.upstream_error.is_none()
            && self.scanner.pending() == 0
        {
            self.record.finish(Outcome::Ok, 200);
        }
    }
}

impl Stream for ProxyStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(bytes) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(bytes)));
            }
            if this.closing {
                if let Some(outcome) = this.record.outcome {
                    this.record.finish(outcome, 200);
                }
                return Poll::Ready(None);
            }
            if let Some(head) = this.head.as_mut() {
                match head.as_mut().poll(cx) {
                    Poll::Ready(result) => {
                        this.head = None;
                        this.on_head(result);
                        continue;
                    }
                    Poll::Pending => {
                        if this.poll_keepalive(cx) {
                            continue;
                        }
                        return Poll::Pending;
                    }
                }
            }
            if let Some((data, t)) = this.prefix.pop_front() {
                this.on_frame(data, t);
                continue;
            }
            let Some(upstream) = this.upstream.as_mut() else {
                this.closing = true;
                continue;
            };
            match Pin::new(&mut *upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(first) = frame.into_data() else { continue };
                    let t = this.shared.clock.now();
                    // Everything the upstream already sent leaves together: one write, and
                    // the events inside are still forwarded unchanged and in order.
                    let mut more: Option<bytes::BytesMut> = None;
                    let mut after: Option<FramePoll> = None;
                    loop {
                        match Pin::new(&mut *upstream).poll_frame(cx) {
                            Poll::Ready(Some(Ok(f))) => {
                                if let Ok(d) = f.into_data() {
                                    more.get_or_insert_with(|| bytes::BytesMut::from(&first[..]))
                                        .extend_from_slice(&d);
                                }
                            }
                            Poll::Pending => break,
                            end => {
                                after = Some(end);
                                break;
                            }
                        }
                    }
                    let data = match more {
                        Some(m) => m.freeze(),
                        None => first,
                    };
                    this.idle.as_mut().reset(t + this.shared.idle_timeout);
                    if let (Some(k), Some(every)) = (this.keepalive.as_mut(), this.shared.keepalive)
                    {
                        k.as_mut().reset(t + every);
                    }
                    this.on_frame(data, t);
                    this.record.stream_overhead +=
                        this.shared.clock.now().saturating_duration_since(t);
                    match after {
                        Some(Poll::Ready(None)) => this.on_end(),
                        Some(Poll::Ready(Some(Err(e)))) => this.on_broken(e),
                        _ => {}
                    }
                }
                Poll::Ready(Some(Err(e))) => this.on_broken(e),
                Poll::Ready(None) => this.on_end(),
                Poll::Pending => {
                    if this.hung.as_mut().is_some_and(|h| h.as_mut().poll(cx).is_ready()) {
                        this.hung = None;
                        let err = ApiError::new(
                            ErrorCode::BadGateway,
                            "stream_cut",
                            "upstream stopped generating mid-stream (ejected as hung)",
                        );
                        this.fail(Outcome::StreamCut, err);
                        continue;
                    }
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let err = ApiError::new(
                            ErrorCode::GatewayTimeout,
                            "upstream_timeout",
                            format!(
                                "upstream sent nothing for {} ms",
                                this.shared.idle_timeout.as_millis()
                            ),
                        );
                        this.fail(Outcome::Timeout, err);
                        continue;
                    }
                    if this.poll_keepalive(cx) {
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::verbatim_prefix;
    use bytes::Bytes;

    #[test]
    fn untouched_events_cover_a_prefix_of_the_frame() {
        let frame = Bytes::from_static(b"data: a\n\ndata: b\n\ndata: c");
        let parts = [frame.slice(0..9), frame.slice(9..18)];
        assert_eq!(verbatim_prefix(&frame, parts.iter()), Some(18));
    }

    #[test]
    fn a_skipped_rewritten_or_added_event_breaks_the_prefix() {
        let frame = Bytes::from_static(b"data: a\n\ndata: b\n\ndata: c\n\n");
        // The middle event was dropped (a stripped usage chunk).
        let skipped = [frame.slice(0..9), frame.slice(18..27)];
        assert_eq!(verbatim_prefix(&frame, skipped.iter()), None);
        // The second event was rewritten (redaction): same bytes, another buffer.
        let rewritten = [frame.slice(0..9), Bytes::copy_from_slice(&frame[9..18])];
        assert_eq!(verbatim_prefix(&frame, rewritten.iter()), None);
        // An error event was appended after the frame's events.
        let added = [frame.slice(0..27), Bytes::from_static(b"data: {\"error\":{}}\n\n")];
        assert_eq!(verbatim_prefix(&frame, added.iter()), None);
        // Out of order.
        let swapped = [frame.slice(9..18), frame.slice(0..9)];
        assert_eq!(verbatim_prefix(&frame, swapped.iter()), None);
    }
}
