//! What each drill measured, read back from the timeline (alerts from Prometheus, root-cause
//! reports from the analyzer, gateway events and restarts) and from the load generator's own
//! account of every request: time to the first new alert (MTTD), whether the first report of
//! those alerts ranks the injected cause first or in its top three, the remediation taken,
//! time to recovery (MTTR: every new alert resolved), requests failed and lost, and the share
//! of a 30-day error budget they burned.

use super::drill::Drill;
use crate::demo::timeline::Event;
use crate::demo::watch::describe;
use serde::Serialize;
use std::collections::BTreeSet;

/// Alerts about the machine the stack shares with other work (CPU wait, iowait, memory,
/// disk): they come and go with the neighbours' builds, not with a drill.
pub const HOST_ALERTS: &[&str] =
    &["CPUWaitHigh", "CPUIowaitHigh", "HostMemoryHigh", "HostFilesystemAlmostFull"];

/// Objective of the availability SLO the budget is counted against.
pub const SLO_OBJECTIVE: f64 = 0.999;
const BUDGET_PERIOD_SECS: f64 = 30.0 * 86_400.0;

/// One finished request as the load generator saw it (seconds on the timeline's clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub end: f64,
    /// An error answer (HTTP status or a stream error event).
    pub failed: bool,
    /// No complete answer at all: timeout, refused connection, broken stream.
    pub lost: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillResult {
    pub drill: Drill,
    pub run: u32,
    pub description: String,
    pub injected_at: f64,
    /// Seconds from injection to the first alert that was not already active (or, when none
    /// fired, to a remediation taken on the stack's own evidence, such as a canary rollback).
    pub mttd_secs: Option<f64>,
    /// What detected it: that alert, or `remediation (no alert)`.
    pub first_alert: Option<String>,
    /// Every alert that started firing during the drill.
    pub alerts: Vec<String>,
    /// The alert whose root-cause report is judged, and the report's top three.
    pub report_alert: Option<String>,
    pub ranked: Vec<String>,
    pub incident_url: Option<String>,
    pub top1: Option<bool>,
    pub top3: Option<bool>,
    pub remediation: Vec<String>,
    /// Seconds from injection until every alert it raised resolved.
    pub mttr_secs: Option<f64>,
    pub requests: u64,
    pub failed: u64,
    pub lost: u64,
    /// Share of a 30-day 99.9 % availability budget the bad requests burned, at this rate
    /// and with the drill's time scale undone.
    pub budget_burned: f64,
    pub notes: Vec<String>,
}

/// Where one drill sits on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub drill: Drill,
    pub run: u32,
    pub injected: f64,
    pub removed: Option<f64>,
    pub recovered: Option<f64>,
    /// Where the next drill starts (or the run ended).
    pub end: f64,
    pub notes: Vec<String>,
}

fn host_alert(labels: &serde_json::Value) -> bool {
    HOST_ALERTS.iter().any(|n| labels["alertname"] == *n)
}

/// Alerts (by `describe`) active (pending or firing) just before `t`.
fn active_before(events: &[Event], t: f64) -> BTreeSet<String> {
    let mut active = BTreeSet::new();
    for e in events.iter().filter(|e| e.kind == "alert" && e.t < t) {
        let key = describe(&e.detail["labels"]);
        match e.detail["state"].as_str() {
            Some("resolved") => {
                active.remove(&key);
            }
            Some(_) => {
                active.insert(key);
            }
            None => {}
        }
    }
    active
}

/// Measures one drill. `rate` is the load's base request rate, `time_scale` the stack's.
pub fn measure(
    span: &Span,
    events: &[Event],
    outcomes: &[Outcome],
    rate: f64,
    time_scale: u64,
) -> DrillResult {
    let before = active_before(events, span.injected);
    let window: Vec<&Event> =
        events.iter().filter(|e| e.t >= span.injected && e.t < span.end).collect();
    let mut new_firing: Vec<(f64, String, String)> = Vec::new();
    for e in window.iter().filter(|e| e.kind == "alert" && e.detail["state"] == "firing") {
        let labels = &e.detail["labels"];
        let key = describe(labels);
        if host_alert(labels) || before.contains(&key) || new_firing.iter().any(|f| f.1 == key) {
            continue;
        }
        let name = labels["alertname"].as_str().unwrap_or("?").to_string();
        new_firing.push((e.t, key, name));
    }
    let names: BTreeSet<&str> = new_firing.iter().map(|f| f.2.as_str()).collect();
    // The first report of the drill's alerts; without any, the on-demand ranking.
    let report = window
        .iter()
        .find(|e| {
            e.kind == "report" && e.detail["alert"].as_str().is_some_and(|a| names.contains(a))
        })
        .or_else(|| {
            window.iter().find(|e| {
                e.kind == "report"
                    && e.detail["on_demand"] == true
                    && e.detail["drill"] == span.drill.name()
            })
        });
    let first_remediation = window.iter().find(|e| e.kind == "remediation").map(|e| e.t);
    let ranked: Vec<String> = report
        .and_then(|r| r.detail["ranked"].as_array())
        .map(|a| a.iter().filter_map(|c| c.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let (top1, top3) = match report {
        Some(_) => (
            Some(ranked.first().is_some_and(|c| span.drill.names_cause(c))),
            Some(ranked.iter().take(3).any(|c| span.drill.names_cause(c))),
        ),
        None => (None, None),
    };
    let remediation = window
        .iter()
        .filter(|e| e.kind == "remediation" || e.kind == "scaling")
        .map(|e| format!("+{:.1}s {}", e.t - span.injected, e.text))
        .collect();
    let until = span.recovered.unwrap_or(span.end);
    let inside: Vec<&Outcome> =
        outcomes.iter().filter(|o| o.end >= span.injected && o.end < until).collect();
    let failed = inside.iter().filter(|o| o.failed && !o.lost).count() as u64;
    let lost = inside.iter().filter(|o| o.lost).count() as u64;
    // Undo the time scale: the same share of bad requests over a window time_scale times
    // longer, against the budget of 30 days at this rate.
    let budget = rate * BUDGET_PERIOD_SECS * (1.0 - SLO_OBJECTIVE);
    let budget_burned =
        if budget > 0.0 { (failed + lost) as f64 * time_scale as f64 / budget } else { 0.0 };
    let mut notes = span.notes.clone();
    // What detected the fault: the first new alert, else a remediation that acted on its own
    // evidence (the gateway's canary analysis rolling a bad version back).
    let (mttd_secs, detected_by) = match (new_firing.first(), first_remediation) {
        (Some(f), _) => (Some(f.0 - span.injected), Some(f.1.clone())),
        (None, Some(t)) => (Some(t - span.injected), Some("remediation (no alert)".to_string())),
        (None, None) => (None, None),
    };
    if new_firing.is_empty() {
        notes.push("no new alert fired".into());
    } else if report.is_none() {
        notes.push("no root-cause report for the drill's alerts".into());
    }
    DrillResult {
        drill: span.drill,
        run: span.run,
        description: span.drill.describe().to_string(),
        injected_at: span.injected,
        mttd_secs,
        first_alert: detected_by,
        alerts: new_firing.iter().map(|f| f.1.clone()).collect(),
        report_alert: report.and_then(|r| r.detail["alert"].as_str().map(String::from)),
        ranked: ranked.into_iter().take(3).collect(),
        incident_url: report.and_then(|r| r.detail["incident"].as_str().map(String::from)),
        top1,
        top3,
        remediation,
        mttr_secs: match (span.recovered, mttd_secs) {
            (Some(r), Some(_)) => Some(r - span.injected),
            _ => None,
        },
        requests: inside.len() as u64,
        failed,
        lost,
        budget_burned,
        notes,
    }
}

/// Top-1 and top-3 accuracy over the drills that had a report to judge; `None` when none had.
pub fn accuracy(results: &[DrillResult]) -> Option<(f64, f64, usize)> {
    let judged: Vec<&DrillResult> = results.iter().filter(|r| r.top1.is_some()).collect();
    if judged.is_empty() {
        return None;
    }
    let n = judged.len() as f64;
    let top1 = judged.iter().filter(|r| r.top1 == Some(true)).count() as f64 / n;
    let top3 = judged.iter().filter(|r| r.top3 == Some(true)).count() as f64 / n;
    Some((top1, top3, judged.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(t: f64, kind: &'static str, detail: serde_json::Value) -> Event {
        Event { t, kind, text: kind.to_string(), detail }
    }

    fn alert(t: f64, name: &str, pool: &str, state: &str) -> Event {
        ev(
            t,
            "alert",
            json!({"alert": name, "state": state, "labels": {"alertname": name, "severity": "critical", "pool": pool}}),
        )
    }

    #[test]
    fn a_drill_is_measured_from_its_new_alerts_first_report_and_requests() {
        let events = vec![
            // Already firing before the drill, and a host alert: neither is the drill's.
            alert(1.0, "ErrorRatioHigh", "green", "firing"),
            alert(11.0, "CPUWaitHigh", "", "firing"),
            alert(12.0, "ErrorRatioHigh", "green", "firing"),
            alert(14.0, "RequestLatencyCritical", "blue", "pending"),
            alert(16.0, "RequestLatencyCritical", "blue", "firing"),
            ev(
                17.0,
                "report",
                json!({"alert": "RequestLatencyCritical", "ranked": ["engine_e2e_p90{engine=\"blue\"}", "ttft_p90{pool=\"blue\"}"], "incident": "http://a/incidents/x"}),
            ),
            ev(18.0, "remediation", json!({})),
            alert(40.0, "RequestLatencyCritical", "blue", "resolved"),
        ];
        let span = Span {
            drill: Drill::Latency,
            run: 1,
            injected: 10.0,
            removed: Some(30.0),
            recovered: Some(40.0),
            end: 50.0,
            notes: vec![],
        };
        let outcomes = vec![
            Outcome { end: 9.0, failed: true, lost: false },
            Outcome { end: 12.0, failed: false, lost: false },
            Outcome { end: 13.0, failed: true, lost: false },
            Outcome { end: 20.0, failed: true, lost: true },
            Outcome { end: 45.0, failed: true, lost: false },
        ];
        let r = measure(&span, &events, &outcomes, 8.0, 30);
        assert_eq!(r.mttd_secs, Some(6.0));
        assert_eq!(r.alerts.len(), 1, "{:?}", r.alerts);
        assert_eq!(r.report_alert.as_deref(), Some("RequestLatencyCritical"));
        assert_eq!((r.top1, r.top3), (Some(true), Some(true)));
        assert_eq!(r.mttr_secs, Some(30.0));
        assert_eq!((r.requests, r.failed, r.lost), (3, 1, 1));
        assert_eq!(r.remediation.len(), 1);
        let budget = 8.0 * 30.0 * 86_400.0 * 0.001;
        assert!((r.budget_burned - 2.0 * 30.0 / budget).abs() < 1e-12);
        assert_eq!(accuracy(std::slice::from_ref(&r)), Some((1.0, 1.0, 1)));

        // The same report ranking a symptom first: top-1 misses, top-3 still names the cause.
        let mut events = events;
        events[5].detail["ranked"] = json!([
            "ttft_p90{pool=\"blue\"}",
            "engine_ttft_p90{engine=\"blue\"}",
            "request_rate{pool=\"blue\"}"
        ]);
        let r2 = measure(&span, &events, &outcomes, 8.0, 30);
        assert_eq!((r2.top1, r2.top3), (Some(false), Some(true)));
        assert_eq!(accuracy(&[r, r2]), Some((0.5, 1.0, 2)));
    }

    #[test]
    fn a_drill_without_alerts_has_no_mttd_mttr_or_judgement() {
        let span = Span {
            drill: Drill::Surge,
            run: 1,
            injected: 0.0,
            removed: Some(10.0),
            recovered: Some(10.0),
            end: 20.0,
            notes: vec![],
        };
        let r = measure(&span, &[], &[], 8.0, 30);
        assert_eq!((r.mttd_secs, r.mttr_secs, r.top1), (None, None, None));
        assert!(r.notes.iter().any(|n| n.contains("no new alert")));
        assert_eq!(accuracy(&[r]), None);
    }
}
