//! Root-cause reports the daemon wrote, indexed by alert: `<report_dir>/index.jsonl` maps an
//! alert fingerprint to its report files, so a notification can link
//! `/reports/alert/<fingerprint>` before the report exists and the link works once it does.

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const INDEX_FILE: &str = "index.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub fingerprint: String,
    pub alertname: String,
    pub starts_at: String,
    /// File names inside the report directory.
    pub markdown: String,
    pub json: String,
    pub unix_ms: i64,
}

pub struct ReportIndex {
    dir: PathBuf,
    entries: RwLock<Vec<IndexEntry>>,
}

impl ReportIndex {
    /// Loads the index of `dir` (missing or unreadable lines are skipped).
    pub fn open(dir: &Path) -> ReportIndex {
        let text = std::fs::read_to_string(dir.join(INDEX_FILE)).unwrap_or_default();
        let entries = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        ReportIndex { dir: dir.to_path_buf(), entries: RwLock::new(entries) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn add(&self, entry: IndexEntry) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        line.push('\n');
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(INDEX_FILE))?
            .write_all(line.as_bytes())?;
        self.entries.write().push(entry);
        Ok(())
    }

    /// Newest first.
    pub fn list(&self) -> Vec<IndexEntry> {
        let mut all = self.entries.read().clone();
        all.sort_by_key(|e| std::cmp::Reverse(e.unix_ms));
        all
    }

    pub fn latest_for(&self, fingerprint: &str) -> Option<IndexEntry> {
        self.list().into_iter().find(|e| e.fingerprint == fingerprint)
    }

    /// A report file by name; only plain `.md`/`.json` names inside the directory.
    pub fn file(&self, name: &str) -> Option<(String, &'static str)> {
        let plain = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        let content_type = if name.ends_with(".md") {
            "text/markdown; charset=utf-8"
        } else if name.ends_with(".json") {
            "application/json"
        } else {
            return None;
        };
        if !plain {
            return None;
        }
        std::fs::read_to_string(self.dir.join(name)).ok().map(|t| (t, content_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_survives_reopening_and_refuses_paths_outside_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        let index = ReportIndex::open(dir.path());
        std::fs::write(dir.path().join("r1.md"), "# one").unwrap();
        for (fp, ms) in [("a", 1), ("a", 5), ("b", 3)] {
            index
                .add(IndexEntry {
                    fingerprint: fp.into(),
                    alertname: "X".into(),
                    starts_at: "t".into(),
                    markdown: format!("r{ms}.md"),
                    json: format!("r{ms}.json"),
                    unix_ms: ms,
                })
                .unwrap();
        }
        let index = ReportIndex::open(dir.path());
        assert_eq!(index.latest_for("a").unwrap().markdown, "r5.md");
        assert_eq!(index.list().len(), 3);
        assert_eq!(index.file("r1.md").unwrap().0, "# one");
        assert!(index.file("../secret.md").is_none());
        assert!(index.file("index.jsonl").is_none());
    }
}
