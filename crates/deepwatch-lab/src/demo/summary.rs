//! The end-of-demo summary: for each injected fault, how long after the injection each alert it
//! raised went pending and firing and its first notification arrived, which remediation ran,
//! and how long after the fault's removal the alert resolved.

use super::timeline::Event;
use super::watch::describe;
use serde_json::Value;

/// One alert's milestones, seconds since the demo started.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Milestones {
    pub alert: String,
    pub name: String,
    pub severity: String,
    pub pending: Option<f64>,
    pub firing: Option<f64>,
    pub notified: Option<(f64, String)>,
    /// Alertmanager held it back (inhibited by a more severe alert, or silenced).
    pub inhibited: bool,
    pub resolved: Option<f64>,
}

/// A fault's injection and removal, and what followed until the next fault.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FaultStory {
    pub fault: String,
    pub injected: f64,
    pub removed: Option<f64>,
    pub alerts: Vec<Milestones>,
    pub remediation: Vec<(f64, String)>,
}

/// Whether a notification is about this alert (name and severity; WeCom and e-mail texts
/// carry both in Alertmanager's default templates).
fn mentions(event: &Event, alertname: &str, severity: &str) -> bool {
    let d = &event.detail;
    if d["labels"].is_object() {
        return d["labels"]["alertname"] == alertname && d["labels"]["severity"] == severity;
    }
    let text = d["content"].as_str().or(d["subject"].as_str()).unwrap_or_default();
    text.contains(alertname) && text.contains(severity)
}

pub fn stories(events: &[Event]) -> Vec<FaultStory> {
    let injected: Vec<&Event> =
        events.iter().filter(|e| e.kind == "fault" && e.detail["state"] == "injected").collect();
    let mut out = Vec::new();
    for (i, inj) in injected.iter().enumerate() {
        let end = injected.get(i + 1).map_or(f64::INFINITY, |n| n.t);
        let window: Vec<&Event> = events.iter().filter(|e| e.t >= inj.t && e.t < end).collect();
        let fault = inj.detail["fault"].as_str().unwrap_or("?").to_string();
        let removed = window
            .iter()
            .find(|e| {
                e.kind == "fault"
                    && e.detail["state"] == "removed"
                    && e.detail["fault"] == fault.as_str()
            })
            .map(|e| e.t);
        let mut alerts: Vec<Milestones> = Vec::new();
        for e in window.iter().filter(|e| e.kind == "alert") {
            let labels: &Value = &e.detail["labels"];
            let key = describe(labels);
            let idx = match alerts.iter().position(|m| m.alert == key) {
                Some(i) => i,
                None => {
                    alerts.push(Milestones {
                        alert: key.clone(),
                        name: labels["alertname"].as_str().unwrap_or_default().to_string(),
                        severity: labels["severity"].as_str().unwrap_or_default().to_string(),
                        ..Milestones::default()
                    });
                    alerts.len() - 1
                }
            };
            let m = &mut alerts[idx];
            match e.detail["state"].as_str() {
                Some("pending") => {
                    m.pending.get_or_insert(e.t);
                }
                Some("firing") => {
                    m.firing.get_or_insert(e.t);
                }
                Some("resolved") if m.firing.is_some() => {
                    m.resolved = Some(e.t);
                }
                _ => {}
            }
        }
        alerts.retain(|m| m.firing.is_some());
        for m in &mut alerts {
            let first = m.firing.unwrap_or(inj.t);
            m.notified = window
                .iter()
                .find(|e| {
                    e.kind == "notification" && e.t >= first && mentions(e, &m.name, &m.severity)
                })
                .map(|e| (e.t, e.detail["receiver"].as_str().unwrap_or("?").to_string()));
            m.inhibited = window
                .iter()
                .any(|e| e.kind == "inhibited" && describe(&e.detail["labels"]) == m.alert);
        }
        let remediation = window
            .iter()
            .filter(|e| e.kind == "remediation")
            .map(|e| (e.t, e.text.clone()))
            .collect();
        out.push(FaultStory { fault, injected: inj.t, removed, alerts, remediation });
    }
    out
}

/// One line per root-cause report: its alert, the top-ranked cause and the incident page.
pub fn report_lines(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.kind == "report")
        .map(|e| {
            let d = &e.detail;
            format!(
                "  [{:>6.1}s] {:<28} top-1 {:<48} {}",
                e.t,
                d["alert"].as_str().unwrap_or("?"),
                d["top1"].as_str().unwrap_or("(no candidate moved clearly)"),
                d["incident"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

pub fn print(events: &[Event]) {
    let reports = report_lines(events);
    if !reports.is_empty() {
        println!("\nRoot-cause reports (alert, most likely cause, incident page):");
        for line in reports {
            println!("{line}");
        }
    }
    let stories = stories(events);
    if stories.is_empty() {
        return;
    }
    println!("\nSummary (seconds after the fault was injected; resolution after it was removed):");
    for s in stories {
        let removed =
            s.removed.map_or("still in force".to_string(), |r| format!("removed at {r:.1}s"));
        println!("  fault {} injected at {:.1}s, {removed}", s.fault, s.injected);
        for m in &s.alerts {
            let rel =
                |t: Option<f64>| t.map_or("-".to_string(), |t| format!("+{:.1}s", t - s.injected));
            let notified = match (&m.notified, m.inhibited) {
                (Some((t, r)), _) => format!("+{:.1}s ({r})", t - s.injected),
                (None, true) => "inhibited".to_string(),
                (None, false) => "-".to_string(),
            };
            let resolved = match (m.resolved, s.removed) {
                (Some(t), Some(r)) if t >= r => format!("+{:.1}s after removal", t - r),
                (Some(t), _) => format!("+{:.1}s (before removal)", t - s.injected),
                (None, _) => "not yet".to_string(),
            };
            println!(
                "    {:<60} pending {:<8} firing {:<8} notified {:<18} resolved {resolved}",
                m.alert,
                rel(m.pending),
                rel(m.firing),
                notified
            );
        }
        for (t, text) in &s.remediation {
            println!("    remediation +{:.1}s: {text}", t - s.injected);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(t: f64, kind: &'static str, detail: Value) -> Event {
        Event { t, kind, text: String::new(), detail }
    }

    #[test]
    fn milestones_are_taken_from_the_events_of_each_fault() {
        let labels =
            json!({"alertname": "RequestLatencyCritical", "severity": "critical", "pool": "blue"});
        let events = vec![
            ev(10.0, "fault", json!({"fault": "latency", "state": "injected"})),
            ev(14.0, "alert", json!({"state": "pending", "labels": labels})),
            ev(16.0, "alert", json!({"state": "firing", "labels": labels})),
            ev(
                17.0,
                "notification",
                json!({"receiver": "phone-sms", "alert": "RequestLatencyCritical", "status": "firing", "labels": labels}),
            ),
            ev(40.0, "fault", json!({"fault": "latency", "state": "removed"})),
            ev(61.0, "alert", json!({"state": "resolved", "labels": labels})),
            ev(70.0, "fault", json!({"fault": "outage", "state": "injected"})),
            ev(75.0, "remediation", json!({"event": "failover"})),
        ];
        let s = stories(&events);
        assert_eq!(s.len(), 2);
        let m = &s[0].alerts[0];
        assert_eq!(m.alert, "RequestLatencyCritical (severity=critical, pool=blue)");
        assert_eq!((m.pending, m.firing, m.resolved), (Some(14.0), Some(16.0), Some(61.0)));
        assert_eq!(m.notified, Some((17.0, "phone-sms".into())));
        assert_eq!(s[0].removed, Some(40.0));
        assert!(s[1].alerts.is_empty());
        assert_eq!(s[1].remediation.len(), 1);
    }

    #[test]
    fn report_lines_name_the_top_cause_and_the_incident_page() {
        let events = vec![
            ev(
                30.0,
                "report",
                json!({"alert": "RequestLatencyCritical", "top1": "engine_e2e_p90{engine=\"blue\"}",
                       "incident": "http://127.0.0.1:1/incidents/rca-x"}),
            ),
            ev(31.0, "report", json!({"alert": "CPUWaitHigh", "top1": null})),
        ];
        let lines = report_lines(&events);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("engine_e2e_p90{engine=\"blue\"}"), "{}", lines[0]);
        assert!(lines[0].contains("http://127.0.0.1:1/incidents/rca-x"), "{}", lines[0]);
        assert!(lines[1].contains("no candidate moved clearly"), "{}", lines[1]);
    }
}
