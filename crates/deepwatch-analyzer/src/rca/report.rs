//! The root-cause report: ranked candidates, how much history they were ranked with, one
//! timeline of onsets, log patterns and change events, the last changes before the onset, a
//! suggested reproduction, the pool comparison and the charts (the symptom against its
//! baseline, the top candidates with their onsets); rendered as Markdown for people and JSON
//! for tools (and the incident pages), and kept on disk.

use super::candidates::Role;
use super::chart::{self, Chart};
use super::compare::PoolComparison;
use super::rank::{RankedCandidate, Window};
use super::reproduce::{reproduce, Reproduction};
use super::source::{CandidateSeries, Event};
use deepwatch_core::config::analyzer::{BaselineConfig, RcaConfig};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What a timeline entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Alert,
    /// A deploy, rollout step, rollback, failover or config reload.
    Event,
    /// A top candidate started to move.
    Onset,
    /// A log-pattern counter started to move.
    Log,
}

/// One line of the incident timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub time: f64,
    pub kind: EntryKind,
    pub text: String,
}

/// What a report was computed from, besides the candidates.
pub struct Inputs<'a> {
    pub at: f64,
    pub alert: Option<&'a str>,
    pub config: &'a RcaConfig,
    pub baseline: &'a BaselineConfig,
    pub series: &'a [CandidateSeries],
    pub window: Window,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Incident time (Unix seconds) and its ISO-8601 form.
    pub at: f64,
    pub at_iso: String,
    pub alert: Option<String>,
    /// Onset of the incident: the first strong mover.
    pub onset: Option<f64>,
    pub window_start: f64,
    pub window_end: f64,
    /// How much history the ranking had and where it searched for the onset.
    pub history: Window,
    pub candidates: Vec<RankedCandidate>,
    pub timeline: Vec<TimelineEntry>,
    /// Most recent first.
    pub changes_before_onset: Vec<Event>,
    pub reproduction: Option<Reproduction>,
    pub comparisons: Vec<PoolComparison>,
    /// The symptom against its baseline band.
    pub symptom: Option<Chart>,
    /// The top candidates, each with the band it was judged by.
    pub charts: Vec<Chart>,
    pub warnings: Vec<String>,
}

pub fn iso(t: f64) -> String {
    chrono::DateTime::from_timestamp_millis((t * 1000.0) as i64)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{t}"))
}

impl Report {
    pub fn build(
        inputs: Inputs<'_>,
        ranked: Vec<RankedCandidate>,
        events: Vec<Event>,
        comparisons: Vec<PoolComparison>,
        warnings: Vec<String>,
    ) -> Report {
        let Inputs { at, alert, config, baseline, series, window } = inputs;
        let strong = 2.0 * config.onset_sigmas;
        let onset = ranked
            .iter()
            .filter(|c| c.max_z.abs() >= strong && c.persistence >= 0.5)
            .filter_map(|c| c.onset)
            .reduce(f64::min);
        let mut timeline = vec![TimelineEntry {
            time: at,
            kind: EntryKind::Alert,
            text: alert.map_or("incident time given".to_string(), |a| format!("alert {a}")),
        }];
        for e in &events {
            timeline.push(TimelineEntry {
                time: e.time,
                kind: EntryKind::Event,
                text: format!("{} on pool {}", e.kind, e.pool),
            });
        }
        let top = config.top as usize;
        for c in ranked.iter().filter(|c| c.onset.is_some()) {
            let is_log = c.role == Role::Log;
            if !is_log && c.rank > top {
                continue;
            }
            timeline.push(TimelineEntry {
                time: c.onset.unwrap_or(at),
                kind: if is_log { EntryKind::Log } else { EntryKind::Onset },
                text: format!(
                    "#{} {} moved {} (z {:.1}, {:.4} -> {:.4})",
                    c.rank,
                    c.display(),
                    c.direction.as_str(),
                    c.max_z,
                    c.pre_median,
                    c.peak_value
                ),
            });
        }
        timeline.sort_by(|a, b| a.time.total_cmp(&b.time));
        let cutoff = onset.unwrap_or(at) + config.step.as_secs_f64();
        let mut changes: Vec<Event> = events.into_iter().filter(|e| e.time <= cutoff).collect();
        changes.sort_by(|a, b| b.time.total_cmp(&a.time));
        let reproduction =
            ranked.first().and_then(|c| reproduce(c, onset.unwrap_or(at), at, config));
        let step = config.step.as_secs_f64();
        let symptom = chart::symptom_chart(
            alert,
            series,
            &ranked,
            &window,
            step,
            baseline,
            config.onset_sigmas,
        );
        let charts = ranked
            .iter()
            .take(chart::CANDIDATE_CHARTS)
            .filter_map(|c| chart::candidate_chart(series, c, config.onset_sigmas))
            .collect();
        Report {
            at,
            at_iso: iso(at),
            alert: alert.map(str::to_string),
            onset,
            window_start: at - config.lookback.as_secs_f64(),
            window_end: at + config.after.as_secs_f64(),
            history: window,
            candidates: ranked.into_iter().take(top).collect(),
            timeline,
            changes_before_onset: changes,
            reproduction,
            comparisons,
            symptom,
            charts,
            warnings,
        }
    }

    /// The top candidate, if any.
    pub fn top(&self) -> Option<&RankedCandidate> {
        self.candidates.first()
    }

    /// File stem: `rca-<time>-<alert>`.
    pub fn file_stem(&self) -> String {
        let alert: String = self
            .alert
            .as_deref()
            .unwrap_or("on-demand")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        format!("rca-{}-{alert}", self.at_iso.replace([':', '-'], ""))
    }

    /// Writes `<stem>.md` and `<stem>.json` into `dir` (created if missing).
    pub fn write_to(&self, dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let stem = self.file_stem();
        let md = dir.join(format!("{stem}.md"));
        let json = dir.join(format!("{stem}.json"));
        std::fs::write(&md, self.markdown())?;
        std::fs::write(&json, self.json())?;
        Ok((md, json))
    }

    /// The report as pretty JSON.
    pub fn json(&self) -> String {
        // Serializing plain data with string keys cannot fail; keep the message if it ever does.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let title = self.alert.as_deref().unwrap_or("incident");
        let _ = writeln!(out, "# Root cause ranking: {title} at {}\n", self.at_iso);
        match (self.top(), self.onset) {
            (Some(top), Some(onset)) => {
                let _ = writeln!(
                    out,
                    "Most likely cause: **{}** moved {} at {} ({:+.0} s from the alert), z {:.1}.\n",
                    top.display(),
                    top.direction.as_str(),
                    iso(onset),
                    top.onset.unwrap_or(onset) - self.at,
                    top.max_z
                );
            }
            _ => out.push_str("No candidate moved clearly before or around the incident.\n\n"),
        }
        let _ = writeln!(out, "Window: {} to {}.\n", iso(self.window_start), iso(self.window_end));
        let _ = writeln!(out, "{}\n", self.history_sentence());
        out.push_str("## Ranked candidates\n\n| # | candidate | role | score | z | onset | before -> peak |\n|---|---|---|---|---|---|---|\n");
        for c in &self.candidates {
            let onset = c.onset.map_or("-".to_string(), |t| format!("{:+.0} s", t - self.at));
            let _ = writeln!(
                out,
                "| {} | `{}` | {:?} | {:.2} | {:.1} | {} | {:.4} -> {:.4} |",
                c.rank,
                c.display(),
                c.role,
                c.score,
                c.max_z,
                onset,
                c.pre_median,
                c.peak_value
            );
        }
        out.push_str("\n## Timeline\n\n");
        for e in &self.timeline {
            let _ = writeln!(
                out,
                "- {} ({:+.0} s) **{}** {}",
                iso(e.time),
                e.time - self.at,
                e.kind.as_str(),
                e.text
            );
        }
        out.push_str("\n## Last changes before the onset\n\n");
        if self.changes_before_onset.is_empty() {
            out.push_str("No deploy, rollout or config reload in the window.\n");
        }
        for e in &self.changes_before_onset {
            let _ = writeln!(out, "- {} {} on pool {}", iso(e.time), e.kind, e.pool);
        }
        out.push_str("\n## Suggested reproduction\n\n");
        match &self.reproduction {
            Some(r) => {
                let _ = writeln!(out, "```sh\n{}\n```\n{}", r.command, r.why);
            }
            None => out.push_str("None: no candidate maps to a fault the lab can inject.\n"),
        }
        if !self.comparisons.is_empty() {
            out.push_str("\n## Pools serving the same model\n\n| model | metric | pool | median | other pool | median | p-value | verdict |\n|---|---|---|---|---|---|---|---|\n");
            for c in &self.comparisons {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.4} | {} | {:.4} | {:.2e} | {} |",
                    c.model,
                    c.metric,
                    c.pool,
                    c.median,
                    c.other_pool,
                    c.other_median,
                    c.p_value,
                    c.verdict
                );
            }
        }
        if !self.warnings.is_empty() {
            out.push_str("\n## Warnings\n\n");
            for w in &self.warnings {
                let _ = writeln!(out, "- {w}");
            }
        }
        out
    }

    /// How much history the ranking had, in one sentence.
    pub fn history_sentence(&self) -> String {
        let h = &self.history;
        let search = h.search_secs(self.at);
        if h.shortened {
            format!(
                "History: {:.0} s of data before the alert, less than the {:.0} s search plus an \
                 equal baseline the config asks for; ranked with a {:.0} s onset search against a \
                 {:.0} s baseline.",
                h.history_secs,
                h.wanted_search_secs,
                search,
                h.baseline_secs()
            )
        } else {
            format!(
                "History: {:.0} s of data before the alert; {:.0} s onset search against a {:.0} s \
                 baseline.",
                h.history_secs,
                search,
                h.baseline_secs()
            )
        }
    }
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Alert => "alert",
            EntryKind::Event => "event",
            EntryKind::Onset => "onset",
            EntryKind::Log => "log",
        }
    }
}
