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
    /// The command for a POSIX shell (`argv` quoted and joined).
    pub command: String,
    /// The same command as program arguments, `deepwatch` first.
    pub argv: Vec<String>,
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

/// Candidates the lab can reproduce, each with the `deepwatch chaos scenario` it maps to.
pub const REPRODUCIBLE: &[(&str, &str)] = &[
    ("engine_ttft_p90", "latency-spike"),
    ("engine_e2e_p90", "latency-spike"),
    ("upstream_error_ratio", "error-burst"),
    ("process_rss", "memory-leak"),
    ("gpu_memory_used", "memory-leak"),
    ("request_rate", "surge"),
    ("gpu_utilization", "surge"),
    ("engine_requests_waiting", "surge"),
    ("engine_kv_cache_usage", "surge"),
];

/// A lab run that injects the suspected cause: `deepwatch chaos scenario` against a
/// simulator at the lab's default admin address (`[sim] admin_listen`), with load through the
/// gateway at its default address, so the monitoring sees the incident again. The simulator
/// admin token comes from `DEEPWATCH_SIM_ADMIN_TOKEN`, as `chaos` reads it.
pub fn reproduce(
    top: &RankedCandidate,
    onset: f64,
    at: f64,
    config: &RcaConfig,
) -> Option<Reproduction> {
    let (_, scenario) = REPRODUCIBLE.iter().find(|(name, _)| *name == top.name)?;
    let minutes = ((at + config.after_secs as f64 - onset) / 60.0).ceil().max(5.0);
    let delta = top.peak_value - top.pre_median;
    let sim_admin =
        format!("http://{}", deepwatch_core::config::sim::SimConfig::default().admin_listen);
    let gateway = format!(
        "http://{}",
        deepwatch_core::config::gateway::DEFAULT_LISTEN.replace("0.0.0.0", "127.0.0.1")
    );
    // Base rate of the load: the pool's own rate before the onset when that is the candidate.
    let surge_of_requests = top.name == "request_rate" && top.pre_median > 0.0;
    let rate = if surge_of_requests { top.pre_median } else { 5.0 };
    let who = |label: &str| match top.label(label) {
        "" => String::new(),
        v => format!(" ({label} {v})"),
    };
    let flag = |name: &str, value: String| vec![name.to_string(), value];
    let (fault, what): (Vec<String>, String) = match *scenario {
        "latency-spike" => (
            [
                flag("--ttft-ms", format!("{:.0}", (delta * 1000.0).max(1.0))),
                flag("--per-token-ms", "0".into()),
            ]
            .concat(),
            format!(
                "adds the observed extra latency ({delta:.3} s) to the first token of a simulator standing in for the engine{}",
                who("engine")
            ),
        ),
        "error-burst" => (
            flag("--error-rate", format!("{:.2}", top.peak_value.clamp(0.01, 1.0))),
            format!(
                "makes a simulator standing in for the upstream{} fail at the observed ratio",
                who("upstream")
            ),
        ),
        "memory-leak" => {
            // The growth observed from the candidate's own onset to the incident.
            let grew_for_min = (at - top.onset.unwrap_or(onset)).max(60.0) / 60.0;
            let mb_per_min = delta / 1e6 / grew_for_min;
            (
                [flag("--mb-per-min", format!("{:.1}", mb_per_min.max(1.0))), vec!["--release".into()]]
                    .concat(),
                format!(
                    "leaks memory at about the observed rate in a simulator standing in for{}",
                    who(if top.name == "process_rss" { "process" } else { "gpu" })
                ),
            )
        }
        _ => {
            let factor = if surge_of_requests { top.peak_value / top.pre_median } else { 2.0 };
            (
                flag("--factor", format!("{:.1}", factor.max(1.1))),
                "replays the surge through the gateway (saturation follows from load in the lab)"
                    .to_string(),
            )
        }
    };
    let mut argv: Vec<String> =
        ["deepwatch", "chaos", "scenario", scenario].iter().map(|s| s.to_string()).collect();
    if *scenario != "surge" {
        argv.extend(flag("--sim-admin", sim_admin.clone()));
    }
    argv.extend(fault);
    argv.extend(flag("--for", format!("{minutes}m")));
    argv.extend(flag("--target", gateway.clone()));
    argv.extend(flag("--rate", format!("{rate:.1}")));
    if !top.label("model").is_empty() {
        argv.extend(flag("--model", top.label("model").to_string()));
    }
    let why = if *scenario == "surge" {
        format!("{what}; load goes to the gateway at {gateway}")
    } else {
        format!(
            "{what}; needs a lab simulator (`deepwatch sim`, admin API {sim_admin}, admin token in $DEEPWATCH_SIM_ADMIN_TOKEN) behind the gateway at {gateway}, which carries the load"
        )
    };
    Some(Reproduction { command: shell_join(&argv), argv, why })
}

/// Words joined for a POSIX shell: a word with anything but `[A-Za-z0-9_./:=@%+,-]` is
/// single-quoted.
pub fn shell_join(argv: &[String]) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c);
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(safe) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One reproduction per reproducible candidate kind, from typical figures: for tests that
/// check every suggestion against the real command-line parser.
pub fn reproduction_examples() -> Vec<Reproduction> {
    let config = RcaConfig::default();
    let at = 1_700_000_000.0;
    let labels: crate::prom::Labels = [
        ("model", "deepseek-r1"),
        ("pool", "blue"),
        ("engine", "vllm-0"),
        ("upstream", "http://10.0.0.11:8000"),
        ("instance", "gpu-node-1:9464"),
        ("process", "vllm"),
        ("gpu", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    REPRODUCIBLE
        .iter()
        .filter_map(|(name, _)| {
            let (pre_median, peak_value) = match *name {
                "engine_ttft_p90" | "engine_e2e_p90" => (0.2, 1.4),
                "upstream_error_ratio" => (0.01, 0.3),
                "process_rss" | "gpu_memory_used" => (4.0e9, 9.0e9),
                "request_rate" => (4.0, 12.0),
                "engine_requests_waiting" => (0.0, 40.0),
                _ => (0.5, 0.99),
            };
            let candidate = RankedCandidate {
                rank: 1,
                name: name.to_string(),
                query: String::new(),
                role: super::source::Role::Component,
                labels: labels.clone(),
                score: 1.0,
                max_z: 12.0,
                direction: "up",
                onset: Some(at - 300.0),
                pre_median,
                peak_value,
                persistence: 1.0,
            };
            reproduce(&candidate, at - 300.0, at, &config)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(r: &'a Reproduction, flag: &str) -> Option<&'a str> {
        let i = r.argv.iter().position(|a| a == flag)?;
        r.argv.get(i + 1).map(String::as_str)
    }

    #[test]
    fn each_reproducible_kind_suggests_its_chaos_scenario_with_the_observed_figures() {
        let examples = reproduction_examples();
        assert_eq!(examples.len(), REPRODUCIBLE.len());
        for (r, (name, scenario)) in examples.iter().zip(REPRODUCIBLE) {
            assert_eq!(r.argv[..4], ["deepwatch", "chaos", "scenario", scenario], "{name}");
            assert_eq!(r.command, shell_join(&r.argv));
            // From the onset, 5 minutes before the alert, to the end of the 10 minutes after it.
            assert_eq!(value(r, "--for"), Some("15m"), "{name}");
            assert_eq!(value(r, "--target"), Some("http://127.0.0.1:8080"), "{name}");
            assert_eq!(value(r, "--model"), Some("deepseek-r1"), "{name}");
            let sim = value(r, "--sim-admin");
            assert_eq!(sim.is_some(), *scenario != "surge", "{name}: {}", r.command);
        }
        let by_name = |n: &str| &examples[REPRODUCIBLE.iter().position(|(x, _)| *x == n).unwrap()];
        // TTFT 0.2 s -> 1.4 s: 1200 ms more to the first token.
        assert_eq!(value(by_name("engine_ttft_p90"), "--ttft-ms"), Some("1200"));
        assert!(by_name("engine_ttft_p90").why.contains("engine vllm-0"));
        assert_eq!(value(by_name("upstream_error_ratio"), "--error-rate"), Some("0.30"));
        // 5 GB more over the 5 minutes from its onset to the alert: 1000 MB/min.
        assert_eq!(value(by_name("process_rss"), "--mb-per-min"), Some("1000.0"));
        // 4 -> 12 requests/s: 3 times the pool's own rate.
        let surge = by_name("request_rate");
        assert_eq!((value(surge, "--rate"), value(surge, "--factor")), (Some("4.0"), Some("3.0")));
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        let argv: Vec<String> =
            ["deepwatch", "--x", "a b", "it's", "http://h:1/p?q=1"].map(String::from).to_vec();
        assert_eq!(shell_join(&argv), r"deepwatch --x 'a b' 'it'\''s' 'http://h:1/p?q=1'");
    }
}
