//! The logs collector: tails configured log files like `tail -F` (follows rename and truncate
//! rotation, survives the file disappearing and coming back) and counts lines by level and by
//! named patterns (`cuda_oom`, `shape_mismatch`, ...). Every counter starts at 0 so the first
//! matching line is an `increase()` Prometheus can see.

use crate::collector::{CollectError, Collector};
use deepwatch_core::catalog::agent as cat;
use deepwatch_core::config::agent::LogFileConfig;
use deepwatch_core::expo::MetricSink;
use deepwatch_core::metrics::{CounterVec, Encode, GaugeVec};
use parking_lot::Mutex;
use regex::{Regex, RegexSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

pub const LEVELS: &[&str] = &["error", "warning", "info", "debug", "other"];
/// Longest line kept whole; longer lines are counted once, by their first bytes.
const MAX_LINE_BYTES: usize = 64 * 1024;

static LEVEL_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(error|err|fatal|critical|crit|panic|warning|warn|info|debug|trace)\b")
        .expect("level regex")
});

/// The level of a log line: its first level word, else `other`.
pub fn level_of(line: &str) -> &'static str {
    match LEVEL_WORD.find(line).map(|m| m.as_str().to_ascii_lowercase()) {
        Some(w) => match w.as_str() {
            "error" | "err" | "fatal" | "critical" | "crit" | "panic" => "error",
            "warning" | "warn" => "warning",
            "info" => "info",
            _ => "debug",
        },
        None => "other",
    }
}

/// Counters shared by every tailed file.
pub struct LogMetrics {
    lines: CounterVec,
    patterns: CounterVec,
    file_up: GaugeVec,
}

impl Default for LogMetrics {
    fn default() -> Self {
        LogMetrics {
            lines: CounterVec::new(&cat::LOG_LINES),
            patterns: CounterVec::new(&cat::LOG_PATTERN_MATCHES),
            file_up: GaugeVec::new(&cat::LOG_FILE_UP),
        }
    }
}

/// One tailed file.
pub struct LogTail {
    path: PathBuf,
    label: String,
    names: Vec<String>,
    set: RegexSet,
    metrics: Arc<LogMetrics>,
    state: Mutex<TailState>,
}

struct TailState {
    file: Option<File>,
    /// (device, inode) of the open file.
    id: (u64, u64),
    offset: u64,
    partial: Vec<u8>,
    /// Only the very first open may skip existing content; files that appear later are new.
    first_open: bool,
    from_start: bool,
}

impl LogTail {
    pub fn new(config: &LogFileConfig, metrics: Arc<LogMetrics>) -> Result<LogTail, regex::Error> {
        let label = if config.name.is_empty() { config.path.clone() } else { config.name.clone() };
        let names: Vec<String> = config.patterns.keys().cloned().collect();
        let set = RegexSet::new(config.patterns.values())?;
        for level in LEVELS {
            metrics.lines.with(&[&label, level]);
        }
        for name in &names {
            metrics.patterns.with(&[&label, name]);
        }
        metrics.file_up.set(&[&label], 0.0);
        Ok(LogTail {
            path: PathBuf::from(&config.path),
            label,
            names,
            set,
            metrics,
            state: Mutex::new(TailState {
                file: None,
                id: (0, 0),
                offset: 0,
                partial: Vec::new(),
                first_open: true,
                from_start: config.from_start,
            }),
        })
    }

    /// Reads whatever is new; call it every poll interval.
    pub fn poll(&self) {
        let mut st = self.state.lock();
        if st.file.is_none() && !self.open(&mut st) {
            // A file that does not exist yet is new when it appears: read it whole.
            st.first_open = false;
            self.metrics.file_up.set(&[&self.label], 0.0);
            return;
        }
        self.drain(&mut st);
        match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) != st.id => {
                // Renamed away and replaced: the old file is drained, follow the new one.
                self.finish_partial(&mut st);
                st.file = None;
                if self.open(&mut st) {
                    self.drain(&mut st);
                }
            }
            Ok(_) => self.metrics.file_up.set(&[&self.label], 1.0),
            Err(_) => {
                // Deleted (or renamed with nothing in its place yet): reopen when it returns.
                self.finish_partial(&mut st);
                st.file = None;
                self.metrics.file_up.set(&[&self.label], 0.0);
            }
        }
    }

    fn open(&self, st: &mut TailState) -> bool {
        let Ok(mut file) = File::open(&self.path) else { return false };
        let Ok(meta) = file.metadata() else { return false };
        st.offset = 0;
        if st.first_open && !st.from_start {
            st.offset = meta.len();
            if file.seek(SeekFrom::Start(st.offset)).is_err() {
                return false;
            }
        }
        st.first_open = false;
        st.id = (meta.dev(), meta.ino());
        st.partial.clear();
        st.file = Some(file);
        self.metrics.file_up.set(&[&self.label], 1.0);
        true
    }

    fn drain(&self, st: &mut TailState) {
        let Some(file) = st.file.as_mut() else { return };
        if let Ok(meta) = file.metadata() {
            if meta.len() < st.offset {
                // Truncated in place (copytruncate): start over from the top.
                st.offset = 0;
                st.partial.clear();
                if file.seek(SeekFrom::Start(0)).is_err() {
                    return;
                }
            }
        }
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            st.offset += n as u64;
            let mut rest = &buf[..n];
            while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
                if st.partial.is_empty() {
                    self.count_line(&rest[..pos]);
                } else {
                    st.partial.extend_from_slice(&rest[..pos]);
                    let line = std::mem::take(&mut st.partial);
                    self.count_line(&line);
                }
                rest = &rest[pos + 1..];
            }
            let room = MAX_LINE_BYTES.saturating_sub(st.partial.len());
            st.partial.extend_from_slice(&rest[..rest.len().min(room)]);
        }
    }

    /// A last line without a newline counts when its file goes away.
    fn finish_partial(&self, st: &mut TailState) {
        if !st.partial.is_empty() {
            let line = std::mem::take(&mut st.partial);
            self.count_line(&line);
        }
    }

    fn count_line(&self, bytes: &[u8]) {
        let bytes = &bytes[..bytes.len().min(MAX_LINE_BYTES)];
        let line = String::from_utf8_lossy(bytes);
        let line = line.trim_end_matches('\r');
        self.metrics.lines.inc(&[&self.label, level_of(line)]);
        for i in self.set.matches(line).iter() {
            self.metrics.patterns.inc(&[&self.label, &self.names[i]]);
        }
    }
}

pub struct LogsCollector {
    tails: Vec<(Arc<LogTail>, Duration)>,
    metrics: Arc<LogMetrics>,
}

impl LogsCollector {
    pub fn new(configs: &[LogFileConfig]) -> Result<LogsCollector, regex::Error> {
        let metrics = Arc::new(LogMetrics::default());
        let mut tails = Vec::new();
        for c in configs {
            let tail = Arc::new(LogTail::new(c, metrics.clone())?);
            tails.push((tail, c.poll_interval.max(Duration::from_millis(1))));
        }
        Ok(LogsCollector { tails, metrics })
    }

    /// Polls every file now (tests), instead of waiting for the background tasks.
    pub fn poll_all(&self) {
        for (t, _) in &self.tails {
            t.poll();
        }
    }

    /// One background task per file, polling at its interval until the handles are aborted.
    pub fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.tails
            .iter()
            .map(|(tail, period)| {
                let tail = tail.clone();
                let period = *period;
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let t = tail.clone();
                        let _ = tokio::task::spawn_blocking(move || t.poll()).await;
                    }
                })
            })
            .collect()
    }
}

impl Collector for LogsCollector {
    fn name(&self) -> &'static str {
        "logs"
    }

    fn collect(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        self.metrics.lines.encode(sink);
        self.metrics.patterns.encode(sink);
        self.metrics.file_up.encode(sink);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
