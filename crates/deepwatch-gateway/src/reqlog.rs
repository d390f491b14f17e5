//! The structured request log: one JSON line per finished request (ids, model, pool, upstream,
//! timings, token counts, outcome), written by a background thread so the request path never
//! waits on the disk. Prompt and output text appear only with `include_text = true`.

use serde::Serialize;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

/// One request, as logged.
#[derive(Debug, Default, Serialize)]
pub struct Line {
    pub ts: String,
    pub request_id: String,
    pub endpoint: &'static str,
    pub tenant: String,
    pub model: String,
    pub model_version: String,
    pub pool: String,
    pub upstream: String,
    /// `pool=<name>` or `model_version=<version>` when a trusted caller pinned the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
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
    pub finish_reason: Option<String>,
    pub retries: u32,
    pub keepalives: u32,
    pub sensitive_matches: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

pub struct RequestLog {
    tx: SyncSender<Vec<u8>>,
    dropped: AtomicU64,
}

impl RequestLog {
    /// Opens (appends to) `path`, or stdout for `-`, and starts the writer thread.
    pub fn open(path: &str) -> std::io::Result<RequestLog> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?)
        };
        let (tx, rx) = sync_channel::<Vec<u8>>(16_384);
        std::thread::Builder::new()
            .name("request-log".into())
            .spawn(move || write_loop(rx, out))?;
        Ok(RequestLog { tx, dropped: AtomicU64::new(0) })
    }

    pub fn write(&self, line: &Line) {
        let Ok(mut bytes) = serde_json::to_vec(line) else { return };
        bytes.push(b'\n');
        match self.tx.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "request log writer is behind; lines dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn write_loop(rx: Receiver<Vec<u8>>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let mut ok = out.write_all(&line).is_ok();
        while let Ok(more) = rx.try_recv() {
            ok &= out.write_all(&more).is_ok();
        }
        if !(ok && out.flush().is_ok()) {
            tracing::warn!("request log write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("req.jsonl");
        let log = RequestLog::open(path.to_str().unwrap()).unwrap();
        log.write(&Line { request_id: "abc".into(), outcome: "ok", ..Line::default() });
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
