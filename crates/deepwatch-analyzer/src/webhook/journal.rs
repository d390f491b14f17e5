//! The alert journal: one JSON line per alert notification the worker started on, fsynced
//! before any action runs, in `<state_dir>/alerts.jsonl`. Reloaded at start, it is what lets a
//! restarted daemon recognise an alert Alertmanager delivers again (for example because the
//! daemon died before answering) and not act twice. Entries older than the retention are
//! dropped when the journal is opened.

use super::{AlertKey, AlertStatus};
use deepwatch_core::clock::SharedClock;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{info, warn};

pub const FILE_NAME: &str = "alerts.jsonl";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    unix_ms: i64,
    fingerprint: String,
    status: AlertStatus,
    starts_at: String,
    #[serde(default)]
    alertname: String,
}

impl Entry {
    fn key(&self) -> AlertKey {
        AlertKey {
            fingerprint: self.fingerprint.clone(),
            status: self.status,
            starts_at: self.starts_at.clone(),
        }
    }
}

/// Handled alert keys, in memory and on disk.
pub struct Journal {
    path: PathBuf,
    clock: SharedClock,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    seen: HashSet<AlertKey>,
}

impl Journal {
    /// Opens (or creates) the journal in `state_dir`, dropping entries older than `retention`
    /// and any torn last line left by a crash.
    pub fn open(
        state_dir: &Path,
        retention: Duration,
        clock: SharedClock,
    ) -> std::io::Result<Journal> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join(FILE_NAME);
        let cutoff = clock.unix_millis() - retention.as_millis() as i64;
        let mut kept = Vec::new();
        let mut dropped = 0usize;
        if path.exists() {
            for (i, line) in BufReader::new(File::open(&path)?).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Entry>(&line) {
                    Ok(e) if e.unix_ms >= cutoff => kept.push(e),
                    Ok(_) => dropped += 1,
                    Err(err) => {
                        warn!(path = %path.display(), line = i + 1, %err, "journal line skipped");
                        dropped += 1;
                    }
                }
            }
        }
        let torn = std::fs::read(&path).is_ok_and(|b| !b.is_empty() && !b.ends_with(b"\n"));
        if dropped > 0 || torn {
            rewrite(&path, &kept)?;
            info!(path = %path.display(), kept = kept.len(), dropped, "alert journal compacted");
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let seen = kept.iter().map(Entry::key).collect();
        Ok(Journal { path, clock, inner: Mutex::new(Inner { file, seen }) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn contains(&self, key: &AlertKey) -> bool {
        self.inner.lock().seen.contains(key)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends and fsyncs the key; from then on it counts as handled.
    pub fn record(&self, key: &AlertKey, alertname: &str) -> std::io::Result<()> {
        let entry = Entry {
            unix_ms: self.clock.unix_millis(),
            fingerprint: key.fingerprint.clone(),
            status: key.status,
            starts_at: key.starts_at.clone(),
            alertname: alertname.to_string(),
        };
        let mut line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut inner = self.inner.lock();
        inner.file.write_all(line.as_bytes())?;
        inner.file.sync_data()?;
        inner.seen.insert(key.clone());
        Ok(())
    }
}

fn rewrite(path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut f = File::create(&tmp)?;
        for e in entries {
            let mut line = serde_json::to_string(e).map_err(std::io::Error::other)?;
            line.push('\n');
            f.write_all(line.as_bytes())?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepwatch_core::clock::{system_time_from_unix, TokioClock};
    use std::sync::Arc;

    fn key(fp: &str) -> AlertKey {
        AlertKey { fingerprint: fp.into(), status: AlertStatus::Firing, starts_at: "t".into() }
    }

    fn clock_at(unix: f64) -> SharedClock {
        Arc::new(TokioClock::anchored_at(system_time_from_unix(unix)))
    }

    #[test]
    fn keys_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let day = Duration::from_secs(86_400);
        let j = Journal::open(dir.path(), day, clock_at(1_000_000.0)).unwrap();
        j.record(&key("a"), "X").unwrap();
        drop(j);
        let j = Journal::open(dir.path(), day, clock_at(1_000_100.0)).unwrap();
        assert!(j.contains(&key("a")));
        assert!(!j.contains(&key("b")));
    }

    #[test]
    fn old_entries_and_torn_lines_are_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        let j = Journal::open(dir.path(), hour, clock_at(1_000_000.0)).unwrap();
        j.record(&key("old"), "X").unwrap();
        drop(j);
        let j = Journal::open(dir.path(), hour, clock_at(1_003_000.0)).unwrap();
        j.record(&key("new"), "X").unwrap();
        drop(j);
        // A crash in the middle of a write leaves half a line.
        let path = dir.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"unix_ms\":10").unwrap();
        drop(f);
        let j = Journal::open(dir.path(), hour, clock_at(1_004_000.0)).unwrap();
        assert!(!j.contains(&key("old")), "older than the retention");
        assert!(j.contains(&key("new")));
        assert_eq!(j.len(), 1);
        j.record(&key("after"), "X").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.lines().all(|l| serde_json::from_str::<Entry>(l).is_ok()), "{text}");
    }
}
