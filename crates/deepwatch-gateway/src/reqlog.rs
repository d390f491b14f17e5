//! The structured request log: one JSON line per finished request (ids, model, pool, upstream,
//! timings, token counts, outcome), written by a background thread so the request path never
//! waits on the disk. Prompt and output text appear only with `include_text = true`, and then
//! with every value the sensitive-data detectors find replaced by `[REDACTED:<kind>]`, whatever
//! the scanner's policies (its `enabled` and per-tenant actions decide what reaches the
//! upstream, not what reaches a log). The file
//! is reopened when it is renamed or removed (logrotate's default `create` mode) and on
//! `reopen()` (SIGHUP); lines written, dropped (writer behind) and failed are counted.

use crate::scanner::{detect::Detectors, redact_value};
use deepwatch_core::metrics::Counter;
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// One request, as logged (borrowed from the finished request: nothing is copied but the line).
#[derive(Debug, Default, Serialize)]
pub struct Line<'a> {
    pub ts: String,
    pub request_id: &'a str,
    pub endpoint: &'static str,
    pub tenant: &'a str,
    pub model: &'a str,
    pub model_version: &'a str,
    pub pool: &'a str,
    pub upstream: &'a str,
    /// `pool=<name>` or `model_version=<version>` when a trusted caller pinned the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<&'a str>,
    pub stream: bool,
    pub status: u16,
    pub outcome: &'static str,
    pub duration_ms: f64,
    pub overhead_ms: f64,
    pub upstream_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<&'a str>,
    pub retries: u32,
    pub keepalives: u32,
    pub sensitive_matches: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<&'a str>,
}

/// `deepwatch_gateway_request_log_lines_total` by outcome.
#[derive(Clone)]
pub struct LineCounters {
    pub written: Counter,
    /// The writer thread was behind (16k lines queued): the line was not logged.
    pub dropped: Counter,
    /// The write failed (disk full, file gone and not re-creatable).
    pub failed: Counter,
}

pub struct RequestLog {
    detectors: Detectors,
    tx: SyncSender<Vec<u8>>,
    dropped: AtomicU64,
    reopen: Arc<AtomicBool>,
    counters: LineCounters,
}

impl RequestLog {
    /// Opens (appends to) `path`, or stdout for `-`, and starts the writer thread.
    pub fn open(path: &str, counters: LineCounters) -> std::io::Result<RequestLog> {
        let out = if path == "-" { Output::Stdout } else { Output::file(path)? };
        let (tx, rx) = sync_channel::<Vec<u8>>(16_384);
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer { out, reopen: reopen.clone(), counters: counters.clone() };
        std::thread::Builder::new().name("request-log".into()).spawn(move || writer.run(rx))?;
        let detectors = Detectors::new();
        Ok(RequestLog { detectors, tx, dropped: AtomicU64::new(0), reopen, counters })
    }

    /// Asks the writer to close and reopen the file before its next line (SIGHUP, after an
    /// external rotation that kept the name, such as a `copytruncate` gone wrong or a move
    /// back).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    pub fn write(&self, line: &Line<'_>) {
        let Some(mut bytes) = self.encode(line) else { return };
        bytes.push(b'\n');
        match self.tx.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counters.dropped.inc();
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "request log writer is behind; lines dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl RequestLog {
    /// The line as JSON; prompt and output text (present with `include_text`) redacted.
    fn encode(&self, line: &Line<'_>) -> Option<Vec<u8>> {
        if line.prompt.is_none() && line.output.is_none() {
            return serde_json::to_vec(line).ok();
        }
        let mut value = serde_json::to_value(line).ok()?;
        for field in ["prompt", "output"] {
            if let Some(text) = value.get_mut(field) {
                redact_value(&self.detectors, text);
            }
        }
        serde_json::to_vec(&value).ok()
    }
}

enum Output {
    Stdout,
    File { path: String, file: BufWriter<File>, id: (u64, u64) },
}

impl Output {
    fn file(path: &str) -> std::io::Result<Output> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let meta = file.metadata()?;
        let file = BufWriter::with_capacity(64 * 1024, file);
        Ok(Output::File { path: path.to_string(), file, id: (meta.dev(), meta.ino()) })
    }

    /// True when the path no longer names the open file (renamed or removed by a rotation).
    fn moved(&self) -> bool {
        match self {
            Output::Stdout => false,
            Output::File { path, id, .. } => match std::fs::metadata(path) {
                Ok(meta) => (meta.dev(), meta.ino()) != *id,
                Err(_) => true,
            },
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout => std::io::stdout().write_all(bytes),
            Output::File { file, .. } => file.write_all(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout => std::io::stdout().flush(),
            Output::File { file, .. } => file.flush(),
        }
    }
}

struct Writer {
    out: Output,
    reopen: Arc<AtomicBool>,
    counters: LineCounters,
}

impl Writer {
    fn run(mut self, rx: Receiver<Vec<u8>>) {
        loop {
            // Wakes at least once a second so a rotation is noticed while idle too.
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => Some(line),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            self.reopen_if_needed();
            let Some(first) = first else { continue };
            let mut lines = vec![first];
            while let Ok(more) = rx.try_recv() {
                lines.push(more);
            }
            let mut written = 0u64;
            let mut ok = true;
            for line in &lines {
                if self.out.write_all(line).is_ok() {
                    written += 1;
                } else {
                    ok = false;
                }
            }
            if !(ok && self.out.flush().is_ok()) {
                // Buffered lines that did not reach the file are lost with it.
                self.counters.failed.inc_by(lines.len() as f64 - written as f64);
                tracing::warn!("request log write failed");
            }
            self.counters.written.inc_by(written as f64);
        }
    }

    fn reopen_if_needed(&mut self) {
        let asked = self.reopen.swap(false, Ordering::Relaxed);
        if !(asked || self.out.moved()) {
            return;
        }
        let Output::File { path, .. } = &self.out else { return };
        let path = path.clone();
        let _ = self.out.flush();
        match Output::file(&path) {
            Ok(out) => {
                self.out = out;
                tracing::info!(%path, "request log reopened");
            }
            Err(e) => tracing::warn!(%path, error = %e, "cannot reopen the request log"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepwatch_core::metrics::CounterVec;

    fn counters() -> LineCounters {
        let family = CounterVec::new(&deepwatch_core::catalog::gateway::REQUEST_LOG_LINES);
        LineCounters {
            written: family.with(&["written"]),
            dropped: family.with(&["dropped"]),
            failed: family.with(&["failed"]),
        }
    }

    /// Waits (up to 2 s) until `path` holds `lines` lines.
    fn wait_lines(path: &std::path::Path, lines: usize) -> String {
        for _ in 0..400 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= lines {
                return text;
            }
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn logged_prompt_and_output_text_never_hold_what_the_detectors_find() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("req.jsonl");
        let log = RequestLog::open(path.to_str().unwrap(), counters()).unwrap();
        let prompt = serde_json::json!([{"role": "user",
            "content": "mail zhang.wei@example.com, card 4111 1111 1111 1111, phone 13812345678"}]);
        log.write(&Line {
            request_id: "pii",
            prompt: Some(&prompt),
            output: Some("reply to zhang.wei@example.com"),
            ..Line::default()
        });
        let text = wait_lines(&path, 1);
        for secret in ["zhang.wei@example.com", "4111 1111 1111 1111", "13812345678"] {
            assert!(!text.contains(secret), "{secret} logged: {text}");
        }
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["output"], "reply to [REDACTED:email]");
        let content = v["prompt"][0]["content"].as_str().unwrap();
        assert!(
            content.starts_with("mail [REDACTED:email], card [REDACTED:bank_card]"),
            "{content}"
        );
    }

    #[test]
    fn a_renamed_log_is_reopened_under_its_name_and_sighup_reopens_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("req.jsonl");
        let rotated = dir.path().join("req.jsonl.1");
        let c = counters();
        let log = RequestLog::open(path.to_str().unwrap(), c.clone()).unwrap();
        log.write(&Line { request_id: "before", ..Line::default() });
        wait_lines(&path, 1);
        // logrotate (create mode): rename, then the next lines go to a new file of that name.
        std::fs::rename(&path, &rotated).unwrap();
        log.write(&Line { request_id: "after", ..Line::default() });
        let text = wait_lines(&path, 1);
        assert!(text.contains("\"after\""), "new file: {text:?}");
        let old = std::fs::read_to_string(&rotated).unwrap();
        assert_eq!(old.lines().count(), 1, "rotated file: {old:?}");
        // An explicit reopen (SIGHUP) after the file was replaced under the same name while
        // the writer held it: the replacement is what gets written.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "").unwrap();
        log.reopen();
        log.write(&Line { request_id: "hup", ..Line::default() });
        let text = wait_lines(&path, 1);
        assert!(text.contains("\"hup\""), "{text:?}");
        assert_eq!(c.written.get(), 3.0);
        assert_eq!(c.failed.get() + c.dropped.get(), 0.0);
    }

    #[test]
    fn lines_reach_the_file_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("req.jsonl");
        let log = RequestLog::open(path.to_str().unwrap(), counters()).unwrap();
        log.write(&Line { request_id: "abc", outcome: "ok", ..Line::default() });
        for _ in 0..200 {
            if std::fs::read_to_string(&path).unwrap_or_default().ends_with('\n') {
                break;
            }
            std::thread::yield_now();
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["outcome"], "ok");
        assert!(v.get("prompt").is_none() && v.get("output").is_none());
    }
}
