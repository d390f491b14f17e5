//! Message templates in Chinese and English. One Alertmanager payload becomes a title, a
//! Markdown body (the subset WeCom, DingTalk and Feishu all render: bold, quotes, lists, links)
//! and a plain-text body. Times are shown at the configured UTC offset.

use crate::webhook::{Alert, AlertStatus, Payload};
use deepwatch_core::config::notify::Language;

/// A rendered message; each channel picks what its format needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub title: String,
    pub firing: bool,
    /// Markdown body without the title line (channels add the title their own way).
    pub markdown: String,
    /// Plain text including the title.
    pub text: String,
}

/// Everything a template needs besides the payload.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub language: Language,
    pub utc_offset_secs: i32,
    pub max_alerts: usize,
    /// Base of links to root-cause reports (`<base>/<fingerprint>`), when ranking runs.
    pub report_base: Option<String>,
}

struct Words {
    firing: &'static str,
    resolved: &'static str,
    severity: &'static str,
    summary: &'static str,
    started: &'static str,
    ended: &'static str,
    labels: &'static str,
    source: &'static str,
    report: &'static str,
    more: &'static str,
    alertmanager: &'static str,
}

const EN: Words = Words {
    firing: "FIRING",
    resolved: "RESOLVED",
    severity: "Severity",
    summary: "Summary",
    started: "Started",
    ended: "Resolved",
    labels: "Labels",
    source: "Source",
    report: "Root-cause report",
    more: "more alerts not shown",
    alertmanager: "Alertmanager",
};

const ZH: Words = Words {
    firing: "告警中",
    resolved: "已恢复",
    severity: "级别",
    summary: "摘要",
    started: "开始时间",
    ended: "恢复时间",
    labels: "标签",
    source: "查看来源",
    report: "根因分析报告",
    more: "条告警未显示",
    alertmanager: "Alertmanager",
};

fn words(language: Language) -> &'static Words {
    match language {
        Language::Zh => &ZH,
        Language::En => &EN,
    }
}

/// Formats an RFC 3339 time at the offset; `None` for Alertmanager's zero time (not ended).
pub fn local_time(rfc3339: &str, offset_secs: i32) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    if t.timestamp() <= 0 {
        return None;
    }
    let offset = chrono::FixedOffset::east_opt(offset_secs)?;
    Some(t.with_timezone(&offset).format("%Y-%m-%d %H:%M:%S %:z").to_string())
}

/// Labels worth showing next to an alert: all but alertname and severity, sorted.
fn shown_labels(alert: &Alert) -> String {
    alert
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname" && k.as_str() != "severity")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render(payload: &Payload, opts: &RenderOptions) -> Message {
    let w = words(opts.language);
    let firing: Vec<&Alert> =
        payload.alerts.iter().filter(|a| a.status == AlertStatus::Firing).collect();
    let is_firing = !firing.is_empty() || payload.status == "firing";
    let group_name = payload
        .common_labels
        .get("alertname")
        .or_else(|| payload.group_labels.get("alertname"))
        .cloned()
        .or_else(|| payload.alerts.first().map(|a| a.alertname().to_string()))
        .unwrap_or_default();
    let title = if is_firing {
        match opts.language {
            Language::En => format!("[{}:{}] {group_name}", w.firing, firing.len()),
            Language::Zh => format!("【{} {} 条】{group_name}", w.firing, firing.len()),
        }
    } else {
        match opts.language {
            Language::En => format!("[{}] {group_name}", w.resolved),
            Language::Zh => format!("【{}】{group_name}", w.resolved),
        }
    };
    let mut md = String::new();
    let mut text = format!("{title}\n");
    if let Some(sev) = payload.common_labels.get("severity") {
        md.push_str(&format!("**{}**: {sev}\n", w.severity));
        text.push_str(&format!("{}: {sev}\n", w.severity));
    }
    if let Some(summary) = payload.common_annotations.get("summary") {
        md.push_str(&format!("**{}**: {summary}\n", w.summary));
        text.push_str(&format!("{}: {summary}\n", w.summary));
    }
    // Firing alerts first; within a status, in payload order.
    let mut ordered: Vec<&Alert> = firing.clone();
    ordered.extend(payload.alerts.iter().filter(|a| a.status == AlertStatus::Resolved));
    for (i, alert) in ordered.iter().take(opts.max_alerts).enumerate() {
        render_alert(&mut md, &mut text, i + 1, alert, w, opts);
    }
    let hidden = ordered.len().saturating_sub(opts.max_alerts);
    if hidden > 0 {
        let line = match opts.language {
            Language::En => format!("… and {hidden} {}", w.more),
            Language::Zh => format!("…… 另有 {hidden} {}", w.more),
        };
        md.push_str(&format!("\n{line}\n"));
        text.push_str(&format!("\n{line}\n"));
    }
    if !payload.external_url.is_empty() {
        md.push_str(&format!("\n[{}]({})\n", w.alertmanager, payload.external_url));
    }
    Message { title, firing: is_firing, markdown: md, text: text.trim_end().to_string() }
}

fn render_alert(
    md: &mut String,
    text: &mut String,
    n: usize,
    alert: &Alert,
    w: &Words,
    opts: &RenderOptions,
) {
    let status = match alert.status {
        AlertStatus::Firing => w.firing,
        AlertStatus::Resolved => w.resolved,
    };
    let severity = alert.label("severity");
    let sev = if severity.is_empty() { String::new() } else { format!(" · {severity}") };
    md.push_str(&format!("\n**{n}. {}** ({status}{sev})\n", alert.alertname()));
    text.push_str(&format!("\n{n}. {} ({status}{sev})\n", alert.alertname()));
    for key in ["summary", "description"] {
        if let Some(v) = alert.annotations.get(key).filter(|v| !v.is_empty()) {
            md.push_str(&format!("> {}\n", v.replace('\n', " ")));
            text.push_str(&format!("   {}\n", v.replace('\n', " ")));
        }
    }
    let labels = shown_labels(alert);
    if !labels.is_empty() {
        md.push_str(&format!("- {}: `{labels}`\n", w.labels));
        text.push_str(&format!("   {}: {labels}\n", w.labels));
    }
    if let Some(t) = local_time(&alert.starts_at, opts.utc_offset_secs) {
        md.push_str(&format!("- {}: {t}\n", w.started));
        text.push_str(&format!("   {}: {t}\n", w.started));
    }
    if alert.status == AlertStatus::Resolved {
        if let Some(t) = local_time(&alert.ends_at, opts.utc_offset_secs) {
            md.push_str(&format!("- {}: {t}\n", w.ended));
            text.push_str(&format!("   {}: {t}\n", w.ended));
        }
    }
    let mut links = Vec::new();
    if !alert.generator_url.is_empty() {
        links.push(format!("[{}]({})", w.source, alert.generator_url));
    }
    if let (Some(base), AlertStatus::Firing) = (&opts.report_base, alert.status) {
        let url = format!("{}/{}", base.trim_end_matches('/'), alert.fingerprint());
        links.push(format!("[{}]({url})", w.report));
        text.push_str(&format!("   {}: {url}\n", w.report));
    }
    if !links.is_empty() {
        md.push_str(&format!("- {}\n", links.join(" · ")));
    }
}

/// Cuts `s` to at most `max_bytes` on a character boundary, marking the cut.
pub fn truncate_bytes(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    const MARK: &str = "\n…";
    let mut end = max_bytes.saturating_sub(MARK.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Payload {
        serde_json::from_str(
            r#"{"version":"4","status":"firing","receiver":"wecom",
              "commonLabels":{"alertname":"DeepwatchModelUnavailable","severity":"critical"},
              "commonAnnotations":{"summary":"model deepseek-chat has no healthy upstream"},
              "externalURL":"http://am:9093",
              "alerts":[
                {"status":"firing","labels":{"alertname":"DeepwatchModelUnavailable","severity":"critical","pool":"primary"},
                 "annotations":{"description":"0 of 2 upstreams up"},"startsAt":"2026-11-23T06:40:00Z",
                 "endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom/g","fingerprint":"f1"},
                {"status":"resolved","labels":{"alertname":"DeepwatchModelUnavailable","severity":"critical","pool":"green"},
                 "annotations":{},"startsAt":"2026-11-23T06:00:00Z","endsAt":"2026-11-23T06:30:00Z","fingerprint":"f2"}
              ]}"#,
        )
        .unwrap()
    }

    fn opts(language: Language) -> RenderOptions {
        RenderOptions {
            language,
            utc_offset_secs: 8 * 3600,
            max_alerts: 10,
            report_base: Some("http://analyzer:9466/incidents/alert".into()),
        }
    }

    #[test]
    fn english_message_lists_alerts_with_local_times_and_links() {
        let m = render(&payload(), &opts(Language::En));
        assert_eq!(m.title, "[FIRING:1] DeepwatchModelUnavailable");
        assert!(m.firing);
        assert!(m.markdown.contains("**Severity**: critical"), "{}", m.markdown);
        assert!(m.markdown.contains("**1. DeepwatchModelUnavailable** (FIRING · critical)"));
        assert!(m.markdown.contains("> 0 of 2 upstreams up"));
        assert!(m.markdown.contains("- Labels: `pool=primary`"));
        assert!(m.markdown.contains("- Started: 2026-11-23 14:40:00 +08:00"), "{}", m.markdown);
        assert!(m
            .markdown
            .contains("[Root-cause report](http://analyzer:9466/incidents/alert/f1)"));
        assert!(m.markdown.contains("**2. DeepwatchModelUnavailable** (RESOLVED · critical)"));
        assert!(m.markdown.contains("- Resolved: 2026-11-23 14:30:00 +08:00"));
        assert!(m.text.starts_with("[FIRING:1] DeepwatchModelUnavailable\n"), "{}", m.text);
        assert!(!m.text.contains("**"), "plain text has no markdown: {}", m.text);
    }

    #[test]
    fn chinese_message_uses_chinese_words() {
        let m = render(&payload(), &opts(Language::Zh));
        assert_eq!(m.title, "【告警中 1 条】DeepwatchModelUnavailable");
        assert!(m.markdown.contains("**级别**: critical"));
        assert!(m.markdown.contains("- 开始时间: 2026-11-23 14:40:00 +08:00"));
        assert!(m.markdown.contains("- 恢复时间: 2026-11-23 14:30:00 +08:00"));
        assert!(m.markdown.contains("[根因分析报告]("));
        let mut resolved = payload();
        resolved.status = "resolved".into();
        resolved.alerts.retain(|a| a.status == AlertStatus::Resolved);
        assert_eq!(
            render(&resolved, &opts(Language::Zh)).title,
            "【已恢复】DeepwatchModelUnavailable"
        );
    }

    #[test]
    fn long_groups_are_summarised_and_cut_on_char_boundaries() {
        let mut p = payload();
        p.alerts = (0..15).map(|_| p.alerts[0].clone()).collect();
        let mut o = opts(Language::Zh);
        o.max_alerts = 3;
        let m = render(&p, &o);
        assert!(m.markdown.contains("另有 12 条告警未显示"), "{}", m.markdown);
        let cut = truncate_bytes(&m.markdown, 101);
        assert!(cut.len() <= 101 && cut.ends_with('…'));
    }
}
