//! Slow-moving alerts evaluated once a minute: P2 performance drop against the same time last
//! week, and accuracy drop from the analyzer's golden-prompt probes (info).

use crate::ids::names::{ACCURACY_DROP, PERFORMANCE_DROP};
use crate::ids::{l, req_example, MODEL};
use crate::model::{series_text, Alert, AlertCheck, Group, Labels, Rule, RuleFile, TestCase};
use crate::prometheus::jobs;
use crate::promql::{num, sel, sum_by};
use crate::Ctx;
use deepwatch_core::catalog::{analyzer, gateway};

/// Mean TPOT by model over 30 minutes, optionally a week ago.
fn mean_tpot(offset: &str) -> String {
    let hist = sel(&gateway::TIME_PER_OUTPUT_TOKEN);
    let part =
        |s: crate::promql::Sel| sum_by(&["model"], &format!("rate({}{offset})", s.range("30m")));
    format!("({} / {})", part(hist.clone().sum()), part(hist.count()))
}

fn alerts(ctx: &Ctx<'_>) -> Vec<Alert> {
    let t = &ctx.cfg.thresholds;
    let acc = sel(&analyzer::PROBE_ACCURACY);
    vec![
        Alert {
            name: PERFORMANCE_DROP.into(),
            // Decode speed is 1 / TPOT: speed now / speed last week = TPOT last week / TPOT now.
            expr: format!("{} / {} < {}", mean_tpot(" offset 1w"), mean_tpot(""), num(1.0 - t.performance_drop_ratio)),
            for_secs: ctx.scaled(900),
            keep_firing_secs: 0,
            severity: "warning",
            labels: l(&[("priority", "P2")]),
            summary: format!("P2: {{{{ $labels.model }}}} decodes more than {}% slower than a week ago", num(t.performance_drop_ratio * 100.0)),
            description: "Mean time per output token over 30 minutes compared with the same 30 minutes one week earlier.".into(),
            dashboard: MODEL,
            condition: format!("decode speed (1 / mean TPOT over 30 m) more than {}% below the same 30 minutes a week ago", num(t.performance_drop_ratio * 100.0)),
        },
        Alert {
            name: ACCURACY_DROP.into(),
            expr: format!("1 - {acc} / avg_over_time({}) > {}", acc.range("7d"), num(t.accuracy_drop_ratio)),
            for_secs: ctx.scaled(600),
            keep_firing_secs: 0,
            severity: "info",
            labels: vec![],
            summary: format!("Probe accuracy of {{{{ $labels.model }}}} {{{{ $labels.model_version }}}} dropped more than {}%", num(t.accuracy_drop_ratio * 100.0)),
            description: "Golden-prompt probe accuracy is below its 7-day average by more than the configured share.".into(),
            dashboard: MODEL,
            condition: format!("probe accuracy more than {}% (relative) below its 7-day average", num(t.accuracy_drop_ratio * 100.0)),
        },
    ]
}

fn tests(ctx: &Ctx<'_>) -> Vec<TestCase> {
    let t = &ctx.cfg.thresholds;
    let mut out = Vec::new();
    // TPOT doubles (speed halves) one week and one hour in, for three hours: a > 30 % drop,
    // gone once the 30-minute window is back to last week's speed.
    if t.performance_drop_ratio < 0.45 {
        let step = 300;
        let week = 7 * 24 * 3600 / step;
        let change = week + 3600 / step;
        let back = change + 3 * 3600 / step;
        let total = back + 3600 / step;
        let mut id: Labels = req_example();
        id.extend(l(&[("endpoint", "/v1/chat/completions"), ("tenant", "default")]));
        let name = |suffix: &str| format!("{}{suffix}", gateway::TIME_PER_OUTPUT_TOKEN.name);
        let slow_end = 5 * (change - 1) + 10 * (back - change);
        let sum_values = format!(
            "0+5x{} {}+10x{} {}+5x{}",
            change - 1,
            5 * (change - 1) + 10,
            back - change - 1,
            slow_end + 5,
            total - back - 1
        );
        let mut fired = l(&[("model", "deepseek-r1"), ("severity", "warning"), ("priority", "P2")]);
        fired.sort();
        out.push(TestCase {
            name: "PerformanceDrop: decode speed halves against last week".into(),
            interval_secs: step,
            series: vec![
                (series_text(&name("_sum"), &id), sum_values),
                (series_text(&name("_count"), &id), format!("0+100x{}", total - 1)),
            ],
            alerts: vec![
                AlertCheck {
                    at_secs: (week + 6) * step,
                    alertname: PERFORMANCE_DROP.into(),
                    firing: vec![],
                },
                AlertCheck {
                    at_secs: (change + 12) * step,
                    alertname: PERFORMANCE_DROP.into(),
                    firing: vec![fired.clone()],
                },
                AlertCheck {
                    at_secs: (back - 1) * step,
                    alertname: PERFORMANCE_DROP.into(),
                    firing: vec![fired],
                },
                AlertCheck {
                    at_secs: (back + 8) * step,
                    alertname: PERFORMANCE_DROP.into(),
                    firing: vec![],
                },
            ],
            exprs: vec![],
        });
    }
    if t.accuracy_drop_ratio < 0.1 {
        let step = 300;
        let labels = l(&[
            ("model", "deepseek-r1"),
            ("model_version", "v1"),
            ("job", jobs::ANALYZER),
            ("instance", "analyzer:9466"),
        ]);
        let mut fired = labels.clone();
        fired.push(("severity".into(), "info".into()));
        out.push(TestCase {
            name: "AccuracyDrop: probe accuracy falls from 0.95 to 0.8 and comes back".into(),
            interval_secs: step,
            series: vec![(
                series_text(analyzer::PROBE_ACCURACY.name, &labels),
                "0.95x35 0.8x11 0.95x5".into(),
            )],
            alerts: vec![
                AlertCheck { at_secs: 34 * step, alertname: ACCURACY_DROP.into(), firing: vec![] },
                AlertCheck {
                    at_secs: 42 * step,
                    alertname: ACCURACY_DROP.into(),
                    firing: vec![fired.clone()],
                },
                AlertCheck {
                    at_secs: 47 * step,
                    alertname: ACCURACY_DROP.into(),
                    firing: vec![fired],
                },
                AlertCheck { at_secs: 48 * step, alertname: ACCURACY_DROP.into(), firing: vec![] },
            ],
            exprs: vec![],
        });
    }
    out
}

pub fn file(ctx: &Ctx<'_>) -> RuleFile {
    RuleFile {
        stem: "trend",
        groups: vec![Group {
            name: "deepwatch-trend".into(),
            interval_secs: ctx.scaled(60),
            rules: alerts(ctx).into_iter().map(Rule::Alert).collect(),
        }],
        tests: tests(ctx),
    }
}
