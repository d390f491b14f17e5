//! The append-only audit log of remediation: JSON lines, an `intent` record written and
//! fsynced before an action runs, a `result` record after, a `skipped` record when cooldown,
//! rate limit or a precondition held it back. The file is never rewritten. Reloaded at start,
//! it tells the engine which (alert, action) pairs were already attempted, so a redelivered
//! alert after a restart does not repeat them, and restores cooldowns and rate limits.

use super::Plan;
use crate::webhook::{AlertKey, AlertStatus};
use deepwatch_core::clock::SharedClock;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use tracing::warn;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Intent,
    Result,
    Skipped,
}

/// Whether the action was carried out or undone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    #[default]
    Run,
    Revert,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub ts: String,
    pub unix_ms: i64,
    pub record: RecordKind,
    /// Links an intent to its result.
    pub id: String,
    #[serde(default)]
    pub op: Op,
    pub action: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub policy: String,
    #[serde(default)]
    pub alertname: String,
    pub fingerprint: String,
    pub status: AlertStatus,
    pub starts_at: String,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl Record {
    pub fn key(&self) -> AlertKey {
        AlertKey {
            fingerprint: self.fingerprint.clone(),
            status: self.status,
            starts_at: self.starts_at.clone(),
        }
    }
}

/// A past run found in the log, for restoring cooldowns and rate limits.
#[derive(Debug, Clone, PartialEq)]
pub struct PastRun {
    pub action: String,
    pub unix_ms: i64,
}

#[derive(Default)]
struct State {
    /// (alert, action, op) with an intent: attempted, whatever came of it.
    attempted: HashSet<(AlertKey, String, Op)>,
    /// (alert, action) whose run ended `ok`: what a revert may undo.
    succeeded: HashSet<(AlertKey, String)>,
    /// Intent ids waiting for their result, to resolve `succeeded`.
    open: HashMap<String, (AlertKey, String, Op)>,
}

impl State {
    fn apply(&mut self, r: &Record) {
        match r.record {
            RecordKind::Intent => {
                let entry = (r.key(), r.action.clone(), r.op);
                self.attempted.insert(entry.clone());
                self.open.insert(r.id.clone(), entry);
            }
            RecordKind::Result => {
                if let Some((key, action, op)) = self.open.remove(&r.id) {
                    if op == Op::Run && r.outcome.as_deref() == Some("ok") {
                        self.succeeded.insert((key, action));
                    }
                }
            }
            RecordKind::Skipped => {}
        }
    }
}

pub struct AuditLog {
    path: PathBuf,
    clock: SharedClock,
    file: Mutex<File>,
    state: Mutex<State>,
    seq: std::sync::atomic::AtomicU64,
    history: Vec<PastRun>,
    interrupted: usize,
}

impl AuditLog {
    /// Opens (creating directories and file) and replays the log.
    pub fn open(path: &Path, clock: SharedClock) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut state = State::default();
        let mut history = Vec::new();
        if path.exists() {
            for (i, line) in BufReader::new(File::open(path)?).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Record>(&line) {
                    Ok(r) => {
                        if r.record == RecordKind::Intent && r.op == Op::Run && !r.dry_run {
                            history.push(PastRun { action: r.action.clone(), unix_ms: r.unix_ms });
                        }
                        state.apply(&r);
                    }
                    Err(err) => {
                        warn!(path = %path.display(), line = i + 1, %err, "audit line unreadable")
                    }
                }
            }
        }
        let interrupted = state.open.len();
        if interrupted > 0 {
            warn!(
                path = %path.display(),
                interrupted,
                "actions were started but have no result (the daemon stopped while they ran); they are not repeated"
            );
        }
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        // A torn last line (crash mid-write) must not swallow the next record.
        let torn = std::fs::read(path).is_ok_and(|b| !b.is_empty() && !b.ends_with(b"\n"));
        if torn {
            file.write_all(b"\n")?;
            file.sync_data()?;
        }
        Ok(AuditLog {
            path: path.to_path_buf(),
            clock,
            file: Mutex::new(file),
            state: Mutex::new(state),
            seq: std::sync::atomic::AtomicU64::new(0),
            history,
            interrupted,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Non-dry-run runs found at start, oldest first.
    pub fn history(&self) -> &[PastRun] {
        &self.history
    }

    /// Intents without a result found at start.
    pub fn interrupted(&self) -> usize {
        self.interrupted
    }

    pub fn attempted(&self, key: &AlertKey, action: &str, op: Op) -> bool {
        self.state.lock().attempted.contains(&(key.clone(), action.to_string(), op))
    }

    pub fn succeeded(&self, key: &AlertKey, action: &str) -> bool {
        self.state.lock().succeeded.contains(&(key.clone(), action.to_string()))
    }

    /// A record stamped now with a fresh id; the caller fills in the rest.
    pub fn stamp(&self) -> (String, i64, String) {
        let unix_ms = self.clock.unix_millis();
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{unix_ms:x}-{}-{seq}", std::process::id());
        let ts = chrono::DateTime::<chrono::Utc>::from(self.clock.wall())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        (id, unix_ms, ts)
    }

    /// Appends one record and fsyncs it before returning.
    pub fn append(&self, record: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        line.push('\n');
        {
            let mut file = self.file.lock();
            file.write_all(line.as_bytes())?;
            file.sync_data()?;
        }
        self.state.lock().apply(record);
        Ok(())
    }

    /// Every record in the file now (for tests and the CLI).
    pub fn read_all(&self) -> std::io::Result<Vec<Record>> {
        let text = std::fs::read_to_string(&self.path)?;
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepwatch_core::clock::TokioClock;

    fn record(log: &AuditLog, kind: RecordKind, id: &str, outcome: Option<&str>) -> Record {
        let (_, unix_ms, ts) = log.stamp();
        Record {
            ts,
            unix_ms,
            record: kind,
            id: id.into(),
            op: Op::Run,
            action: "failover".into(),
            kind: "failover".into(),
            policy: "p".into(),
            alertname: "X".into(),
            fingerprint: "fp".into(),
            status: AlertStatus::Firing,
            starts_at: "t".into(),
            dry_run: false,
            plan: None,
            outcome: outcome.map(str::to_string),
            detail: None,
            duration_ms: None,
        }
    }

    #[test]
    fn replay_knows_attempts_successes_and_interruptions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.jsonl");
        let log = AuditLog::open(&path, TokioClock::shared()).unwrap();
        let r = record(&log, RecordKind::Intent, "1", None);
        let key = r.key();
        log.append(&r).unwrap();
        log.append(&record(&log, RecordKind::Result, "1", Some("ok"))).unwrap();
        assert!(log.succeeded(&key, "failover"));
        let mut other = record(&log, RecordKind::Intent, "2", None);
        other.fingerprint = "fp2".into();
        log.append(&other).unwrap();
        drop(log);
        // Simulate a crash in the middle of the next write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"ts\":").unwrap();
        drop(f);

        let log = AuditLog::open(&path, TokioClock::shared()).unwrap();
        assert!(log.attempted(&key, "failover", Op::Run));
        assert!(log.succeeded(&key, "failover"));
        assert!(log.attempted(&other.key(), "failover", Op::Run));
        assert!(!log.succeeded(&other.key(), "failover"));
        assert_eq!(log.interrupted(), 1);
        assert_eq!(log.history().len(), 2);
        log.append(&record(&log, RecordKind::Result, "2", Some("failed"))).unwrap();
        let lines: Vec<String> =
            std::fs::read_to_string(&path).unwrap().lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(serde_json::from_str::<Record>(&lines[4]).is_ok(), "new record on its own line");
    }
}
