//! The game day report: one markdown table (a row per drill run, then one per drill kind with
//! medians and hit rates) and the same results as JSON for tools.

use super::measure::{accuracy, DrillResult};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;

fn secs(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |s| format!("{s:.1}"))
}

fn hit(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The markdown report.
pub fn markdown(results: &[DrillResult], time_scale: u64, command: &str) -> String {
    let mut md = String::from("# Game day\n\n");
    let _ = writeln!(
        md,
        "Command: `{command}`. Time scale {time_scale} (rule `for`s, holds and fault durations \
         divided by it; seconds below are wall-clock on this stack). MTTD: injection to the \
         first alert not already active. Top-1/top-3: the first root-cause report of those \
         alerts ranks the injected cause first / in its first three. MTTR: injection until \
         every alert it raised resolved (recovery holds included). Failed: error answers; lost: \
         timeouts, refused connections, broken streams, both as the load generator saw them. \
         Budget: share of a 30-day 99.9 % availability error budget at this request rate, time \
         scale undone.\n"
    );
    if let Some((top1, top3, n)) = accuracy(results) {
        let _ = writeln!(
            md,
            "**Root cause over {n} judged drills: top-1 {top1:.2}, top-3 {top3:.2}.**\n"
        );
    }
    md.push_str("| drill | run | MTTD s | first alert | top-1 | top-3 | ranked first | remediation | MTTR s | requests | failed | lost | budget |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} % |",
            r.drill.name(),
            r.run,
            secs(r.mttd_secs),
            r.first_alert.as_deref().unwrap_or("-").replace('|', "\\|"),
            hit(r.top1),
            hit(r.top3),
            r.ranked.first().map_or("-".to_string(), |c| format!("`{c}`")),
            if r.remediation.is_empty() {
                "-".to_string()
            } else {
                r.remediation.join("; ").replace('|', "\\|")
            },
            secs(r.mttr_secs),
            r.requests,
            r.failed,
            r.lost,
            r.budget_burned * 100.0
        );
    }
    md.push_str("\n## Per drill\n\n| drill | runs | MTTD s (median) | MTTR s (median) | failed + lost (median) | top-1 | top-3 |\n|---|---|---|---|---|---|---|\n");
    let mut kinds: Vec<_> = results.iter().map(|r| r.drill).collect();
    kinds.dedup();
    kinds.sort_by_key(|d| d.name());
    kinds.dedup();
    for kind in kinds {
        let of: Vec<&DrillResult> = results.iter().filter(|r| r.drill == kind).collect();
        let judged: Vec<&&DrillResult> = of.iter().filter(|r| r.top1.is_some()).collect();
        let rate = |f: fn(&DrillResult) -> Option<bool>| {
            if judged.is_empty() {
                "-".to_string()
            } else {
                let n = judged.iter().filter(|r| f(r) == Some(true)).count();
                format!("{n}/{}", judged.len())
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            kind.name(),
            of.len(),
            secs(median(of.iter().filter_map(|r| r.mttd_secs).collect())),
            secs(median(of.iter().filter_map(|r| r.mttr_secs).collect())),
            secs(median(of.iter().map(|r| (r.failed + r.lost) as f64).collect())),
            rate(|r| r.top1),
            rate(|r| r.top3),
        );
    }
    let notes: Vec<String> = results
        .iter()
        .flat_map(|r| {
            r.notes.iter().map(move |n| format!("- {} run {}: {n}", r.drill.name(), r.run))
        })
        .collect();
    if !notes.is_empty() {
        md.push_str("\n## Notes\n\n");
        md.push_str(&notes.join("\n"));
        md.push('\n');
    }
    let pages: Vec<String> = results
        .iter()
        .filter_map(|r| {
            Some(format!("- {} run {}: {}", r.drill.name(), r.run, r.incident_url.as_ref()?))
        })
        .collect();
    if !pages.is_empty() {
        md.push_str("\n## Incident pages (while the stack ran)\n\n");
        md.push_str(&pages.join("\n"));
        md.push('\n');
    }
    md
}

/// Writes `gameday.md` and `gameday.json` under `dir`.
pub fn write(
    dir: &Path,
    results: &[DrillResult],
    time_scale: u64,
    command: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("gameday.md"), markdown(results, time_scale, command))?;
    let summary =
        accuracy(results).map(|(top1, top3, n)| json!({"top1": top1, "top3": top3, "judged": n}));
    let doc = json!({"time_scale": time_scale, "command": command, "accuracy": summary, "drills": results});
    std::fs::write(dir.join("gameday.json"), serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
