//! The alert journal, `<state_dir>/alerts.jsonl`: one fsynced JSON line per alert the webhook
//! accepted (written before it answers 200, with the whole alert) and one per alert the worker
//! started on. Reopened at start, it gives back the accepted alerts no worker started on (a
//! crash or SIGKILL between answering Alertmanager and acting), which the daemon replays, and
//! the started keys, so an alert Alertmanager delivers again is not acted on twice. Entries
//! older than the retention, and accepted lines whose alert was started, are dropped on open.

use super::{Alert, AlertKey, AlertStatus, Job};
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

/// What a line records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Event {
    /// The webhook took the alert; `job` holds it until a worker starts on it.
    Accepted,
    /// A worker started on the alert (journals written before `event` existed hold only these).
    #[default]
    Started,
}

/// The alert and its payload context, as accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredJob {
    alert: Alert,
    receiver: String,
    external_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    unix_ms: i64,
    #[serde(default)]
    event: Event,
    fingerprint: String,
    status: AlertStatus,
    starts_at: String,
    #[serde(default)]
    alertname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job: Option<StoredJob>,
}

impl Entry {
    fn key(&self) -> AlertKey {
        AlertKey {
            fingerprint: self.fingerprint.clone(),
            status: self.status,
            starts_at: self.starts_at.clone(),
        }
    }

    fn to_job(&self) -> Option<Job> {
        let stored = self.job.as_ref()?;
        Some(Job {
            alert: stored.alert.clone(),
            key: self.key(),
            receiver: stored.receiver.clone(),
            external_url: stored.external_url.clone(),
        })
    }
}

/// Started alert keys, in memory and on disk, and the accepted alerts found unstarted at open.
pub struct Journal {
    path: PathBuf,
    clock: SharedClock,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    started: HashSet<AlertKey>,
    unfinished: Vec<Job>,
}

impl Journal {
    /// Opens (or creates) the journal in `state_dir`, dropping entries older than `retention`,
    /// accepted lines whose alert was started, and any torn last line left by a crash.
    pub fn open(
        state_dir: &Path,
        retention: Duration,
        clock: SharedClock,
    ) -> std::io::Result<Journal> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join(FILE_NAME);
        let cutoff = clock.unix_millis().saturating_sub(retention.as_millis() as i64);
        let mut entries = Vec::new();
        let mut dropped = 0usize;
        if path.exists() {
            for (i, line) in BufReader::new(File::open(&path)?).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Entry>(&line) {
                    Ok(e) if e.unix_ms >= cutoff => entries.push(e),
                    Ok(_) => dropped += 1,
                    Err(err) => {
                        warn!(path = %path.display(), line = i + 1, %err, "journal line skipped");
                        dropped += 1;
                    }
                }
            }
        }
        let started: HashSet<AlertKey> =
            entries.iter().filter(|e| e.event == Event::Started).map(Entry::key).collect();
        let mut unfinished_keys = HashSet::new();
        let mut kept = Vec::new();
        for entry in entries {
            let keep = match entry.event {
                Event::Started => true,
                // Accepted twice (a retry after a refused payload) or already started: one
                // copy, or none, is enough.
                Event::Accepted => {
                    !started.contains(&entry.key())
                        && entry.job.is_some()
                        && unfinished_keys.insert(entry.key())
                }
            };
            if keep {
                kept.push(entry);
            } else {
                dropped += 1;
            }
        }
        let torn = std::fs::read(&path).is_ok_and(|b| !b.is_empty() && !b.ends_with(b"\n"));
        if dropped > 0 || torn {
            rewrite(&path, &kept)?;
            info!(path = %path.display(), kept = kept.len(), dropped, "alert journal compacted");
        }
        let unfinished: Vec<Job> =
            kept.iter().filter(|e| e.event == Event::Accepted).filter_map(Entry::to_job).collect();
        if !unfinished.is_empty() {
            info!(path = %path.display(), alerts = unfinished.len(),
                  "accepted alerts no worker started on; replaying them");
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Journal { path, clock, inner: Mutex::new(Inner { file, started, unfinished }) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a worker started on this alert (in this run or an earlier one).
    pub fn contains(&self, key: &AlertKey) -> bool {
        self.inner.lock().started.contains(key)
    }

    /// Started alerts remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().started.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The accepted alerts no worker started on before this journal was opened, oldest first;
    /// empty after the first call.
    pub fn take_unfinished(&self) -> Vec<Job> {
        std::mem::take(&mut self.inner.lock().unfinished)
    }

    /// Appends the accepted alerts and fsyncs once; only then may the webhook answer 200.
    pub fn accept(&self, jobs: &[Job]) -> std::io::Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let unix_ms = self.clock.unix_millis();
        let mut text = String::new();
        for job in jobs {
            let entry = Entry {
                unix_ms,
                event: Event::Accepted,
                fingerprint: job.key.fingerprint.clone(),
                status: job.key.status,
                starts_at: job.key.starts_at.clone(),
                alertname: job.alert.alertname().to_string(),
                job: Some(StoredJob {
                    alert: job.alert.clone(),
                    receiver: job.receiver.clone(),
                    external_url: job.external_url.clone(),
                }),
            };
            text.push_str(&serde_json::to_string(&entry).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        let mut inner = self.inner.lock();
        inner.file.write_all(text.as_bytes())?;
        inner.file.sync_data()
    }

    /// Appends and fsyncs the key; from then on it counts as handled.
    pub fn record(&self, key: &AlertKey, alertname: &str) -> std::io::Result<()> {
        let entry = Entry {
            unix_ms: self.clock.unix_millis(),
            event: Event::Started,
            fingerprint: key.fingerprint.clone(),
            status: key.status,
            starts_at: key.starts_at.clone(),
            alertname: alertname.to_string(),
            job: None,
        };
        let mut line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut inner = self.inner.lock();
        inner.file.write_all(line.as_bytes())?;
        inner.file.sync_data()?;
        inner.started.insert(key.clone());
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

    fn job(fp: &str) -> Job {
        let alert = Alert { fingerprint: fp.into(), starts_at: "t".into(), ..Alert::default() };
        Job { key: alert.key(), alert, receiver: "selfheal".into(), external_url: String::new() }
    }

    #[test]
    fn accepted_alerts_no_worker_started_on_come_back_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let day = Duration::from_secs(86_400);
        let j = Journal::open(dir.path(), day, clock_at(1_000_000.0)).unwrap();
        j.accept(&[job("a"), job("b"), job("c")]).unwrap();
        j.record(&key("a"), "X").unwrap();
        // A refused payload's retry accepts "c" a second time.
        j.accept(&[job("c")]).unwrap();
        drop(j); // the process dies here: b and c were accepted (200) but never started
        let j = Journal::open(dir.path(), day, clock_at(1_000_100.0)).unwrap();
        let replay: Vec<String> =
            j.take_unfinished().into_iter().map(|job| job.key.fingerprint).collect();
        assert_eq!(replay, ["b", "c"]);
        assert!(j.take_unfinished().is_empty(), "given back once");
        assert!(j.contains(&key("a")) && !j.contains(&key("b")));
        // Compaction kept one started line and the two unstarted accepted ones.
        let text = std::fs::read_to_string(j.path()).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        j.record(&key("b"), "X").unwrap();
        j.record(&key("c"), "X").unwrap();
        drop(j);
        let j = Journal::open(dir.path(), day, clock_at(1_000_200.0)).unwrap();
        assert!(j.take_unfinished().is_empty());
        assert_eq!(j.len(), 3);
    }
}
