//! The incident pages: `/incidents` lists every root-cause report, `/incidents/{id}` shows one
//! as HTML — the alert and its timeline, the symptom against its baseline band with the
//! anomaly marked, the top candidates as small charts with their onsets, the ranking, the pools
//! comparison, the last changes, every remediation action with its audit result, and the
//! reproduction command. Charts are inline SVG drawn here (`svg.rs`); the page loads nothing
//! else, so it works offline. The Markdown and JSON of each report stay at `/reports/{file}`.

use super::reports::{IndexEntry, ReportIndex};
use super::svg::{self, escape, relative, short};
use crate::rca::chart::{BandSource, Chart};
use crate::rca::report::{iso, Report};
use crate::remediate::audit::{Record, RecordKind};
use std::fmt::Write as _;
use std::path::Path;

/// One remediation action as the audit log tells it: its intent and, once done, its result.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub intent: Record,
    pub result: Option<Record>,
    /// The action was taken for this incident's alert (not another one in the same window).
    pub this_alert: bool,
}

/// Actions of the audit log (JSON lines at `path`) taken for `fingerprint`, or for any alert
/// between `from` and `to` (Unix seconds); skipped runs come as intents without results.
pub fn actions(path: &Path, fingerprint: &str, from: f64, to: f64) -> Vec<ActionRow> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let records: Vec<Record> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut rows: Vec<ActionRow> = Vec::new();
    for r in &records {
        let t = r.unix_ms as f64 / 1000.0;
        let this_alert = !fingerprint.is_empty() && r.fingerprint == fingerprint;
        match r.record {
            RecordKind::Intent | RecordKind::Skipped if this_alert || (from..=to).contains(&t) => {
                rows.push(ActionRow { intent: r.clone(), result: None, this_alert })
            }
            RecordKind::Result => {
                if let Some(row) = rows.iter_mut().find(|row| row.intent.id == r.id) {
                    row.result = Some(r.clone());
                }
            }
            _ => {}
        }
    }
    rows
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#f6f7f9}
header{background:#1d2733;color:#fff;padding:14px 24px}header a{color:#9cc3ff}
header h1{margin:0;font-size:20px}main{padding:8px 24px 40px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px;margin:14px 0}
h2{font-size:16px;margin:0 0 8px}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #eceef1;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f7;font-weight:600}code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#f3f5f7;padding:10px;overflow-x:auto;white-space:pre-wrap}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:12px}
figure{margin:0}figcaption{font-size:12px;color:#444;margin:2px 0 4px;word-break:break-all}
.tick{font-size:10px;fill:#555}.muted{color:#666;fill:#666}.ok{color:#1b7f3b}.bad{color:#b3261e}
.legend span{display:inline-block;margin-right:14px;font-size:12px}.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
.cause{font-size:15px}.kind{font-size:11px;color:#fff;background:#667;border-radius:3px;padding:1px 5px}
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

/// `/incidents`: every report, newest first.
pub fn list_page(index: &ReportIndex) -> String {
    let mut body = String::from(
        "<header><h1>Incidents</h1></header><main><section><table><tr><th>alert fired</th><th>alert</th><th>most likely cause</th><th>history</th><th></th></tr>",
    );
    let entries = index.list();
    for e in &entries {
        let id = e.markdown.trim_end_matches(".md");
        let report = load(index, id);
        let (cause, history) = match &report {
            Some(r) => (
                r.top().map_or("none moved clearly".into(), |c| c.display()),
                format!("{:.0} s", r.history.history_secs),
            ),
            None => ("report unreadable".into(), String::new()),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td><a href=\"/incidents/{}\">open</a></td></tr>",
            escape(&e.starts_at),
            escape(&e.alertname),
            escape(&cause),
            escape(&history),
            escape(id)
        );
    }
    if entries.is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"muted\">No root-cause report yet: one is written for every firing alert the analyzer receives.</td></tr>");
    }
    body.push_str("</table></section></main>");
    page("Incidents", &body)
}

/// A report by its id (file stem), when its JSON is there and reads.
pub fn load(index: &ReportIndex, id: &str) -> Option<Report> {
    let (text, _) = index.file(&format!("{id}.json"))?;
    serde_json::from_str(&text).ok()
}

/// The index entry of a report id.
pub fn entry(index: &ReportIndex, id: &str) -> Option<IndexEntry> {
    index.list().into_iter().find(|e| e.markdown.trim_end_matches(".md") == id)
}

fn figure(chart: &Chart, at: f64, size: svg::Size, caption: &str) -> String {
    format!("<figure>{}<figcaption>{}</figcaption></figure>", svg::render(chart, at, size), caption)
}

fn legend(band: BandSource) -> String {
    let band_text = match band {
        BandSource::Baseline => {
            "baseline band (the analyzer's baseline model, held at its pre-onset value)"
        }
        BandSource::PreIncident => "pre-incident band (median ± onset threshold)",
    };
    format!(
        "<div class=\"legend\"><span><i class=\"sw\" style=\"background:{}\"></i>series</span><span><i class=\"sw\" style=\"background:{}\"></i>{band_text}</span><span><i class=\"sw\" style=\"background:{}\"></i>anomaly from its onset</span><span><i class=\"sw\" style=\"background:{}\"></i>beyond the band</span></div>",
        svg::LINE,
        svg::BAND,
        svg::ANOMALY,
        svg::OUTSIDE
    )
}

/// `/incidents/{id}`.
pub fn incident_page(report: &Report, entry: Option<&IndexEntry>, actions: &[ActionRow]) -> String {
    let id = report.file_stem();
    let alert = report.alert.as_deref().unwrap_or("on-demand ranking");
    let mut b = String::new();
    let _ = write!(
        b,
        "<header><h1>{}</h1><div>alert fired {} · <a href=\"/incidents\">all incidents</a> · <a href=\"/reports/{id}.md\">Markdown</a> · <a href=\"/reports/{id}.json\">JSON</a></div></header><main>",
        escape(alert),
        escape(&report.at_iso),
    );
    // Summary.
    b.push_str("<section><h2>Most likely cause</h2>");
    match report.top() {
        Some(top) if top.onset.is_some() => {
            let _ = write!(
                b,
                "<p class=\"cause\"><code>{}</code> <span class=\"kind\">{:?}</span> moved {} at {} ({} from the alert), robust z {:.1}, {} → {}.</p>",
                escape(&top.display()),
                top.role,
                top.direction.as_str(),
                escape(&iso(top.onset.unwrap_or(report.at))),
                relative(top.onset.unwrap_or(report.at) - report.at),
                top.max_z,
                escape(&short(top.pre_median)),
                escape(&short(top.peak_value))
            );
        }
        _ => b.push_str("<p>No candidate moved clearly before or around the incident.</p>"),
    }
    let _ = write!(b, "<p class=\"muted\">{}</p>", escape(&report.history_sentence()));
    if let Some(e) = entry {
        let _ = write!(
            b,
            "<p class=\"muted\">Alert fingerprint <code>{}</code>.</p>",
            escape(&e.fingerprint)
        );
    }
    b.push_str("</section>");

    // The symptom.
    b.push_str("<section><h2>Symptom against its baseline</h2>");
    match &report.symptom {
        Some(symptom) => {
            let caption = format!("<code>{}</code>", escape(&symptom.title));
            b.push_str(&figure(symptom, report.at, svg::LARGE, &caption));
            b.push_str(&legend(symptom.band_source));
        }
        None => b.push_str(
            "<p class=\"muted\">No symptom series (gateway latency or errors) in the window.</p>",
        ),
    }
    b.push_str("</section>");
    // The top candidates.
    if !report.charts.is_empty() {
        b.push_str("<section><h2>Top candidates</h2><div class=\"grid\">");
        for c in &report.charts {
            let onset = c
                .onset
                .map_or("no onset".to_string(), |o| format!("onset {}", relative(o - report.at)));
            let caption =
                format!("#{} <code>{}</code> · {:?} · {onset}", c.rank, escape(&c.title), c.role);
            b.push_str(&figure(c, report.at, svg::SMALL, &caption));
        }
        let _ = write!(b, "</div>{}</section>", legend(BandSource::PreIncident));
    }
    timeline(&mut b, report, actions);
    ranking(&mut b, report);
    remediation(&mut b, actions);
    pools_and_changes(&mut b, report);
    b.push_str("<section><h2>Reproduce it in the lab</h2>");
    match &report.reproduction {
        Some(r) => {
            let _ = write!(
                b,
                "<pre>{}</pre><p class=\"muted\">{}</p>",
                escape(&r.command),
                escape(&r.why)
            );
        }
        None => b.push_str("<p>None: the top candidate maps to no fault the lab can inject.</p>"),
    }
    b.push_str("</section>");
    if !report.warnings.is_empty() {
        b.push_str("<section><h2>Warnings</h2><ul>");
        for w in &report.warnings {
            let _ = write!(b, "<li>{}</li>", escape(w));
        }
        b.push_str("</ul></section>");
    }
    b.push_str("</main>");
    page(&format!("{alert} at {}", report.at_iso), &b)
}

fn timeline(b: &mut String, report: &Report, actions: &[ActionRow]) {
    let mut lines: Vec<(f64, String, String)> = report
        .timeline
        .iter()
        .map(|e| (e.time, e.kind.as_str().to_string(), e.text.clone()))
        .collect();
    for a in actions {
        let r = a.result.as_ref().unwrap_or(&a.intent);
        let outcome = match (a.intent.record, &a.result) {
            (RecordKind::Skipped, _) => "skipped".to_string(),
            (_, Some(res)) => res.outcome.clone().unwrap_or_default(),
            (_, None) => "no result recorded".to_string(),
        };
        lines.push((
            r.unix_ms as f64 / 1000.0,
            "remediation".into(),
            format!(
                "{} ({}) for {}: {outcome}",
                a.intent.action, a.intent.kind, a.intent.alertname
            ),
        ));
    }
    lines.sort_by(|x, y| x.0.total_cmp(&y.0));
    b.push_str("<section><h2>Timeline</h2><table><tr><th>time</th><th>from alert</th><th>what</th><th></th></tr>");
    for (t, kind, text) in lines {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td><span class=\"kind\">{}</span></td><td>{}</td></tr>",
            escape(&iso(t)),
            relative(t - report.at),
            escape(&kind),
            escape(&text)
        );
    }
    b.push_str("</table></section>");
}

fn ranking(b: &mut String, report: &Report) {
    b.push_str("<section><h2>Ranked candidates</h2><table><tr><th>#</th><th>candidate</th><th>role</th><th>score</th><th>z</th><th>onset</th><th>before → peak</th></tr>");
    for c in &report.candidates {
        let onset = c.onset.map_or("–".to_string(), |o| relative(o - report.at));
        let _ = write!(
            b,
            "<tr><td>{}</td><td><code>{}</code></td><td>{:?}</td><td>{:.2}</td><td>{:.1}</td><td>{onset}</td><td>{} → {}</td></tr>",
            c.rank,
            escape(&c.display()),
            c.role,
            c.score,
            c.max_z,
            escape(&short(c.pre_median)),
            escape(&short(c.peak_value))
        );
    }
    if report.candidates.is_empty() {
        b.push_str("<tr><td colspan=\"7\" class=\"muted\">No candidate had enough data.</td></tr>");
    }
    b.push_str("</table></section>");
}

fn remediation(b: &mut String, actions: &[ActionRow]) {
    b.push_str("<section><h2>Remediation</h2><table><tr><th>time</th><th>action</th><th>alert</th><th>op</th><th>audit result</th><th>detail</th></tr>");
    for a in actions {
        let (outcome, detail, class) = match (a.intent.record, &a.result) {
            (RecordKind::Skipped, _) => {
                ("skipped".to_string(), a.intent.detail.clone().unwrap_or_default(), "muted")
            }
            (_, Some(r)) => {
                let outcome = r.outcome.clone().unwrap_or_default();
                let class = if outcome == "ok" { "ok" } else { "bad" };
                let took = r.duration_ms.map_or(String::new(), |ms| format!(" in {ms} ms"));
                (format!("{outcome}{took}"), r.detail.clone().unwrap_or_default(), class)
            }
            (_, None) => ("intent only (no result)".to_string(), String::new(), "bad"),
        };
        let dry = if a.intent.dry_run { " (dry run)" } else { "" };
        let mine = if a.this_alert { "" } else { " (another alert)" };
        let _ = write!(
            b,
            "<tr><td>{}</td><td><code>{}</code> {}{dry}</td><td>{}{mine}</td><td>{:?}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
            escape(&a.intent.ts),
            escape(&a.intent.action),
            escape(&a.intent.kind),
            escape(&a.intent.alertname),
            a.intent.op,
            escape(&outcome),
            escape(&detail)
        );
    }
    if actions.is_empty() {
        b.push_str("<tr><td colspan=\"6\" class=\"muted\">No remediation action in the audit log for this alert or this window.</td></tr>");
    }
    b.push_str("</table></section>");
}

fn pools_and_changes(b: &mut String, report: &Report) {
    b.push_str("<section><h2>Pools serving the same model</h2>");
    if report.comparisons.is_empty() {
        b.push_str("<p class=\"muted\">No two pools of one model to compare.</p>");
    } else {
        b.push_str("<table><tr><th>model</th><th>metric</th><th>pool</th><th>median</th><th>other pool</th><th>median</th><th>p-value</th><th>verdict</th></tr>");
        for c in &report.comparisons {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2e}</td><td>{}</td></tr>",
                escape(&c.model),
                escape(&c.metric),
                escape(&c.pool),
                escape(&short(c.median)),
                escape(&c.other_pool),
                escape(&short(c.other_median)),
                c.p_value,
                escape(&c.verdict)
            );
        }
        b.push_str("</table>");
    }
    b.push_str("</section><section><h2>Last changes before the onset</h2>");
    if report.changes_before_onset.is_empty() {
        b.push_str("<p class=\"muted\">No deploy, rollout or config reload in the window.</p>");
    } else {
        b.push_str("<ul>");
        for e in &report.changes_before_onset {
            let _ = write!(
                b,
                "<li>{} ({}) <b>{}</b> on pool {}</li>",
                escape(&iso(e.time)),
                relative(e.time - report.at),
                escape(&e.kind),
                escape(&e.pool)
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("</section>");
}

/// The page for an alert whose report is not written yet: it reloads itself.
pub fn pending_page(fingerprint: &str) -> String {
    page(
        "Root-cause report pending",
        &format!(
            "<header><h1>Root-cause report pending</h1></header><main><section><p>No report for alert <code>{}</code> yet; ranking starts when the alert reaches the analyzer and takes seconds. This page reloads every 5 s.</p><p><a href=\"/incidents\">All incidents</a></p></section></main>",
            escape(fingerprint)
        ),
    )
    .replace("<head>", "<head><meta http-equiv=\"refresh\" content=\"5\">")
}
