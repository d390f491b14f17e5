//! SLO rules: error ratios over the SRE-workbook windows, objective and remaining budget
//! series, and multi-window multi-burn-rate alerts (page: 1h/5m at 14.4 or 6h/30m at 6;
//! ticket: 1d/2h at 3 or 3d/6h at 1), with promtool cases that must page, must only open a
//! ticket, must stop paging soon after errors stop, and close the ticket once the slowest
//! short window (6h) has seen no error. Windows scale with `time_scale` like
//! every other interval, so a short fault in a scaled run stops paging as soon, relatively,
//! as a real one does.

use crate::ids::{l, req_example, OVERVIEW};
use crate::model::{
    labels, series_text, Alert, AlertCheck, Group, Labels, Record, Rule, RuleFile, TestCase,
};
use crate::promql::{dur, num, rate, sel, series, sum_by};
use crate::recording::ERROR_OUTCOMES;
use crate::Ctx;
use deepwatch_core::catalog::gateway;
use deepwatch_core::config::rules::{Slo, SloKind};

/// Burn-rate windows by their nominal name. Series keep the nominal name
/// (`slo:sli_error:ratio_rate5m`) at every time scale, so dashboards read the same names;
/// the range they are computed over is scaled like every other interval (`range`).
pub const WINDOWS: &[&str] = &["5m", "30m", "1h", "2h", "6h", "1d", "3d"];
/// Budget-remaining look-back, nominal.
pub const BUDGET_PERIOD: &str = "30d";

/// Seconds of a nominal window name (`5m`, `1h`, `1d`, `30d`).
pub fn window_secs(name: &str) -> u64 {
    let (n, unit) = name.split_at(name.len() - 1);
    let n: u64 = n.parse().unwrap_or(0);
    n * match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => 0,
    }
}

/// The range a nominal window is computed over: scaled, at least four scrapes.
pub fn range(ctx: &Ctx<'_>, name: &str) -> String {
    dur(ctx.scaled(window_secs(name)).max(4 * ctx.scrape()))
}
/// (long window, short window, burn factor), page pairs first.
pub const PAGE: &[(&str, &str, f64)] = &[("1h", "5m", 14.4), ("6h", "30m", 6.0)];
pub const TICKET: &[(&str, &str, f64)] = &[("1d", "2h", 3.0), ("3d", "6h", 1.0)];

pub fn ratio_name(window: &str) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}
pub const OBJECTIVE: &str = "slo:objective:ratio";
pub const BUDGET_REMAINING: &str = "slo:error_budget:remaining_ratio";

/// The bucket-edge matcher for a latency threshold: `2` and `2.0` (clients format edges either way).
pub fn le_matcher(threshold: f64) -> String {
    let text = num(threshold);
    if text.contains('.') {
        text
    } else {
        format!("{text}|{text}.0")
    }
}

/// `1 - objective`, printed without float noise (0.999 -> 0.001).
pub fn budget(objective: f64) -> String {
    let b = format!("{:.9}", 1.0 - objective);
    b.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn alertname(slo: &Slo) -> String {
    let camel: String = slo
        .name
        .split('_')
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    format!("{camel}SLOBudgetBurn")
}

fn error_ratio(slo: &Slo, w: &str) -> String {
    match slo.kind {
        SloKind::Availability => {
            let req = sel(&gateway::REQUESTS);
            let total = sum_by(&[], &rate(&req, w));
            let errors = sum_by(&[], &rate(&req.clone().re("outcome", ERROR_OUTCOMES), w));
            format!("({errors} or {total} * 0) / {total}")
        }
        SloKind::Latency => {
            let ok = sel(&gateway::REQUEST_DURATION).eq("outcome", "ok");
            let total = sum_by(&[], &rate(&ok.clone().count(), w));
            let fast = sum_by(
                &[],
                &rate(&ok.clone().bucket().re("le", &le_matcher(slo.threshold_secs)), w),
            );
            format!("({total} - {fast}) / {total}")
        }
    }
}

fn slo_sel(name: &str, slo: &Slo) -> String {
    series(name).eq("slo", &slo.name).to_string()
}

fn burn(slo: &Slo, pairs: &[(&str, &str, f64)]) -> String {
    let b = budget(slo.objective);
    pairs
        .iter()
        .map(|(long, short, factor)| {
            format!(
                "({} > ({} * {b}) and {} > ({} * {b}))",
                slo_sel(&ratio_name(long), slo),
                num(*factor),
                slo_sel(&ratio_name(short), slo),
                num(*factor)
            )
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

fn rules(ctx: &Ctx<'_>, slo: &Slo) -> (Vec<Rule>, Vec<Rule>, Vec<Alert>) {
    let slo_label = labels(&[("slo", &slo.name)]);
    let record = |name: String, expr: String| {
        Rule::Record(Record {
            name,
            expr,
            labels: slo_label.clone(),
            output_labels: vec!["slo".into()],
        })
    };
    let mut fast: Vec<Rule> =
        WINDOWS.iter().map(|w| record(ratio_name(w), error_ratio(slo, &range(ctx, w)))).collect();
    fast.push(record(OBJECTIVE.into(), format!("vector({})", num(slo.objective))));
    let slow = vec![record(
        BUDGET_REMAINING.into(),
        format!(
            "1 - avg_over_time({}[{}]) / {}",
            slo_sel(&ratio_name("5m"), slo),
            range(ctx, BUDGET_PERIOD),
            budget(slo.objective)
        ),
    )];
    let what = match slo.kind {
        SloKind::Availability => "availability".to_string(),
        SloKind::Latency => format!("latency (requests under {}s)", num(slo.threshold_secs)),
    };
    let mut alerts = Vec::new();
    for (severity, pairs, for_secs, speed) in
        [("critical", PAGE, 120, "fast (page)"), ("warning", TICKET, 900, "slow (ticket)")]
    {
        alerts.push(Alert {
            name: alertname(slo),
            expr: burn(slo, pairs),
            for_secs: ctx.scaled(for_secs),
            keep_firing_secs: 0,
            severity,
            labels: slo_label.clone(),
            summary: format!(
                "SLO {} ({what}, objective {}) burning its error budget {speed}",
                slo.name,
                num(slo.objective)
            ),
            description: format!(
                "Both windows of a burn-rate pair exceed the budget ({}): {}.",
                budget(slo.objective),
                pairs
                    .iter()
                    .map(|(a, b, f)| format!("{a}/{b} at {}x", num(*f)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            dashboard: OVERVIEW,
            condition: format!(
                "error-budget burn of SLO {} (objective {}) above {}, long and short window both",
                slo.name,
                num(slo.objective),
                pairs
                    .iter()
                    .map(|(a, b, f)| format!("{}x over {a}/{b}", num(*f)))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        });
    }
    (fast, slow, alerts)
}

fn req_series(outcome: &str) -> String {
    let mut x = req_example();
    x.extend(l(&[
        ("endpoint", "/v1/chat/completions"),
        ("tenant", "default"),
        ("outcome", outcome),
    ]));
    x.push(("code".into(), if outcome == "ok" { "200" } else { "502" }.into()));
    series_text(gateway::REQUESTS.name, &x)
}

fn dur_series(suffix: &str, le: Option<&str>) -> String {
    let mut x: Labels = req_example();
    x.extend(l(&[("endpoint", "/v1/chat/completions"), ("tenant", "default"), ("outcome", "ok")]));
    if let Some(le) = le {
        x.push(("le".into(), le.into()));
    }
    series_text(&format!("{}{suffix}", gateway::REQUEST_DURATION.name), &x)
}

/// Counter values: `per` added each interval for `n` samples, then `per2` for `m` more.
fn counter(per: f64, n: u64, per2: f64, m: u64) -> String {
    let first_end = per * (n - 1) as f64;
    if m == 0 {
        return format!("0+{}x{}", num(per), n - 1);
    }
    format!("0+{}x{} {}+{}x{}", num(per), n - 1, num(first_end + per2), num(per2), m - 1)
}

fn tests(ctx: &Ctx<'_>, slos: &[Slo]) -> Vec<TestCase> {
    let e = ctx.scaled(30);
    let per_hour = ctx.scaled(3600) / e;
    // Check times are nominal seconds, scaled and kept on an evaluation.
    let at = |secs: u64| (ctx.scaled(secs) / e).max(1) * e;
    let fired = |slo: &Slo, severity: &str| {
        let mut x = labels(&[("severity", severity), ("slo", &slo.name)]);
        x.sort();
        x
    };
    let mut out = Vec::new();
    for slo in slos {
        let name = alertname(slo);
        let (bad, good) = match slo.kind {
            // 5 % errors pages (> 14.4 x budget for 99.9 %); 0.5 % only opens a ticket.
            SloKind::Availability => ((5.0, 95.0), (0.5, 99.5)),
            SloKind::Latency => ((20.0, 80.0), (4.0, 96.0)),
        };
        let factor = 1.0 - slo.objective;
        let pages = bad.0 / 100.0 > 14.4 * factor;
        let tickets_only = good.0 / 100.0 > 3.0 * factor && good.0 / 100.0 < 6.0 * factor;
        if !(pages && tickets_only) {
            continue; // objectives far from the defaults: the canned rates do not discriminate
        }
        let series_for = |(err, ok): (f64, f64), n: u64, after: u64| -> Vec<(String, String)> {
            match slo.kind {
                SloKind::Availability => vec![
                    (req_series("ok"), counter(ok, n, 100.0, after)),
                    (req_series("upstream_error"), counter(err, n, 0.0, after)),
                ],
                SloKind::Latency => {
                    let le = num(slo.threshold_secs);
                    vec![
                        (dur_series("_bucket", Some(&le)), counter(ok, n, 100.0, after)),
                        (dur_series("_bucket", Some("+Inf")), counter(100.0, n, 100.0, after)),
                        (dur_series("_count", None), counter(100.0, n, 100.0, after)),
                    ]
                }
            }
        };
        // Page: bad for 1h, then clean for 7h; the page stops within minutes, the ticket
        // stays until the 6h window of the slowest pair holds no error.
        out.push(TestCase {
            name: format!("{name}: pages on a fast burn, stops soon after, the ticket later"),
            interval_secs: e,
            series: series_for(bad, per_hour, 7 * per_hour),
            alerts: vec![
                AlertCheck { at_secs: e, alertname: name.clone(), firing: vec![] },
                AlertCheck {
                    at_secs: at(600),
                    alertname: name.clone(),
                    firing: vec![fired(slo, "critical")],
                },
                AlertCheck {
                    at_secs: at(1800),
                    alertname: name.clone(),
                    firing: vec![fired(slo, "critical"), fired(slo, "warning")],
                },
                AlertCheck {
                    at_secs: at(3600 + 2400),
                    alertname: name.clone(),
                    firing: vec![fired(slo, "warning")],
                },
                AlertCheck {
                    at_secs: at(3600 + 6 * 3600 - 1800),
                    alertname: name.clone(),
                    firing: vec![fired(slo, "warning")],
                },
                AlertCheck {
                    at_secs: at(3600 + 6 * 3600 + 1800),
                    alertname: name.clone(),
                    firing: vec![],
                },
            ],
            exprs: vec![],
        });
        out.push(TestCase {
            name: format!("{name}: a slow burn opens a ticket and never pages"),
            interval_secs: e,
            series: series_for(good, 2 * per_hour, 0),
            alerts: vec![
                AlertCheck { at_secs: at(600), alertname: name.clone(), firing: vec![] },
                AlertCheck {
                    at_secs: at(7000),
                    alertname: name.clone(),
                    firing: vec![fired(slo, "warning")],
                },
            ],
            exprs: vec![],
        });
    }
    out
}

pub fn file(ctx: &Ctx<'_>) -> RuleFile {
    let mut fast = Vec::new();
    let mut slow = Vec::new();
    let mut alerts = Vec::new();
    for slo in &ctx.cfg.slos {
        let (f, s, a) = rules(ctx, slo);
        fast.extend(f);
        slow.extend(s);
        alerts.extend(a.into_iter().map(Rule::Alert));
    }
    fast.extend(alerts);
    RuleFile {
        stem: "slo",
        groups: vec![
            Group { name: "deepwatch-slo".into(), interval_secs: ctx.scaled(30), rules: fast },
            Group {
                name: "deepwatch-slo-budget".into(),
                interval_secs: ctx.scaled(300),
                rules: slow,
            },
        ],
        tests: tests(ctx, &ctx.cfg.slos),
    }
}
