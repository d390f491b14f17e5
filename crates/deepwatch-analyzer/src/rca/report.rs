//! The root-cause report: ranked candidates, one timeline of onsets, log patterns and change
//! events, the last changes before the onset, a suggested reproduction and the pool comparison;
//! rendered as Markdown for people and JSON for tools, and kept on disk.

use super::compare::PoolComparison;
use super::rank::RankedCandidate;
use super::source::{Event, Role};
use deepwatch_core::config::analyzer::RcaConfig;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One line of the incident timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub time: f64,
    /// `event`, `onset`, `log`, `alert`.
    pub kind: &'static str,
    pub text: String,
}

/// A command that reproduces the suspected cause in a lab.
#[derive(Debug, Clone, Serialize)]
pub struct Reproduction {
    pub command: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Incident time (Unix seconds) and its ISO-8601 form.
    pub at: f64,
    pub at_iso: String,
    pub alert: Option<String>,
    /// Onset of the incident: the first strong mover.
    pub onset: Option<f64>,
    pub window_start: f64,
    pub window_end: f64,
    pub candidates: Vec<RankedCandidate>,
    pub timeline: Vec<TimelineEntry>,
    /// Most recent first.
    pub changes_before_onset: Vec<Event>,
    pub reproduction: Option<Reproduction>,
    pub comparisons: Vec<PoolComparison>,
    pub warnings: Vec<String>,
}

pub fn iso(t: f64) -> String {
    chrono::DateTime::from_timestamp_millis((t * 1000.0) as i64)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{t}"))
}

impl Report {
    pub fn build(
        at: f64,
        alert: Option<&str>,
        config: &RcaConfig,
        ranked: Vec<RankedCandidate>,
        events: Vec<Event>,
        comparisons: Vec<PoolComparison>,
        warnings: Vec<String>,
    ) -> Report {
        let strong = 2.0 * config.onset_sigmas;
        let onset = ranked
            .iter()
            .filter(|c| c.max_z.abs() >= strong && c.persistence >= 0.5)
            .filter_map(|c| c.onset)
            .reduce(f64::min);
        let mut timeline = vec![TimelineEntry {
            time: at,
            kind: "alert",
            text: alert.map_or("incident time given".to_string(), |a| format!("alert {a}")),
        }];
        for e in &events {
            timeline.push(TimelineEntry {
                time: e.time,
                kind: "event",
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
                kind: if is_log { "log" } else { "onset" },
                text: format!(
                    "#{} {} moved {} (z {:.1}, {:.4} -> {:.4})",
                    c.rank,
                    c.display(),
                    c.direction,
                    c.max_z,
                    c.pre_median,
                    c.peak_value
                ),
            });
        }
        timeline.sort_by(|a, b| a.time.total_cmp(&b.time));
        let cutoff = onset.unwrap_or(at) + config.step_secs as f64;
        let mut changes: Vec<Event> = events.into_iter().filter(|e| e.time <= cutoff).collect();
        changes.sort_by(|a, b| b.time.total_cmp(&a.time));
        let reproduction =
            ranked.first().and_then(|c| reproduce(c, onset.unwrap_or(at), at, config));
        Report {
            at,
            at_iso: iso(at),
            alert: alert.map(str::to_string),
            onset,
            window_start: at - config.lookback_secs as f64,
            window_end: at + config.after_secs as f64,
            candidates: ranked.into_iter().take(top).collect(),
            timeline,
            changes_before_onset: changes,
            reproduction,
            comparisons,
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
                    top.direction,
                    iso(onset),
                    top.onset.unwrap_or(onset) - self.at,
                    top.max_z
                );
            }
            _ => out.push_str("No candidate moved clearly before or around the incident.\n\n"),
        }
        let _ = writeln!(out, "Window: {} to {}.\n", iso(self.window_start), iso(self.window_end));
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
                e.kind,
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
}

/// A lab command that injects the suspected cause (sim fault names from the admin API).
fn reproduce(
    top: &RankedCandidate,
    onset: f64,
    at: f64,
    config: &RcaConfig,
) -> Option<Reproduction> {
    let minutes = ((at + config.after_secs as f64 - onset) / 60.0).ceil().max(5.0);
    let delta = top.peak_value - top.pre_median;
    let (command, why) = match top.name.as_str() {
        "engine_ttft_p90" | "engine_e2e_p90" => (
            format!(
                "deepwatch chaos --target {} --set ttft_added_ms={:.0} --duration {minutes}m",
                top.label("engine"),
                (delta * 1000.0).max(1.0)
            ),
            "adds the observed extra latency to that upstream only".to_string(),
        ),
        "upstream_error_ratio" => (
            format!(
                "deepwatch chaos --target {} --set error_rate={:.2} --duration {minutes}m",
                top.label("upstream"),
                top.peak_value.clamp(0.01, 1.0)
            ),
            "makes that upstream fail at the observed ratio".to_string(),
        ),
        "process_rss" | "gpu_memory_used" => {
            let mb_per_min =
                delta / 1e6 / ((top.onset.unwrap_or(onset) - onset).abs() / 60.0 + minutes);
            (
                format!(
                    "deepwatch chaos --target {} --set leak_mb_per_min={:.1} --duration {minutes}m",
                    top.label(if top.name == "process_rss" { "process" } else { "gpu" }),
                    mb_per_min.max(1.0)
                ),
                "leaks memory at about the observed rate".to_string(),
            )
        }
        "request_rate"
        | "gpu_utilization"
        | "engine_requests_waiting"
        | "engine_kv_cache_usage" => {
            let factor = if top.name == "request_rate" && top.pre_median > 0.0 {
                top.peak_value / top.pre_median
            } else {
                2.0
            };
            (
                format!("deepwatch load --rate-multiplier {factor:.1} --duration {minutes}m"),
                "replays the surge (saturation follows from load in the lab)".to_string(),
            )
        }
        _ => return None,
    };
    Some(Reproduction { command, why })
}
