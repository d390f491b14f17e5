//! The paging path (`rules/page.yml`): the critical request-latency alert and the quantile it
//! reads, recorded in the same group so each evaluation sees a fresh value, evaluated every
//! `page_evaluation_interval_secs` (1 s by default) instead of every 5 s. The seed's rule is
//! unchanged (p99 above 2 s on 3 consecutive 5 s samples, so `for` is two scrape intervals);
//! the faster evaluation only removes up to one evaluation interval of delay between a scrape
//! and the alert seeing it, so a critical latency fault pages within 20 s at default settings.

use crate::hysteresis::{hold_alert, Watched};
use crate::ids::{names, req_example, OVERVIEW};
use crate::model::{ExprCheck, Group, Record, Rule, RuleFile, TestCase};
use crate::promql::{quantile, sel};
use crate::recording::{request_duration_buckets, Names, REQ};
use crate::Ctx;
use deepwatch_core::catalog::gateway;

pub fn file(ctx: &Ctx<'_>) -> RuleFile {
    let h = &ctx.cfg.thresholds.latency;
    let series = Names::latency(h.quantile);
    let record = Rule::Record(Record {
        name: series.clone(),
        expr: quantile(h.quantile, REQ, &sel(&gateway::REQUEST_DURATION), &ctx.window()),
        labels: Vec::new(),
        output_labels: REQ.iter().map(|s| s.to_string()).collect(),
    });
    let w = Watched {
        alertname: names::LATENCY,
        series,
        ids: REQ,
        example: req_example(),
        scale: 1.0,
        dashboard: OVERVIEW,
        what: "Request latency",
        unit: "s",
    };
    let (alert, mut tests) = hold_alert(ctx, &w, h);
    if (h.quantile - 0.99).abs() < 1e-9 {
        tests.push(TestCase {
            name: "page: the recorded p99 from raw request-duration buckets".into(),
            interval_secs: ctx.scrape(),
            series: request_duration_buckets(),
            alerts: vec![],
            exprs: vec![ExprCheck {
                at_secs: ctx.scrape() * 30,
                expr: w.series.clone(),
                samples: vec![(
                    format!(
                        "{}{{model=\"deepseek-r1\", model_version=\"v1\", pool=\"blue\"}}",
                        w.series
                    ),
                    1.5,
                )],
            }],
        });
    }
    RuleFile {
        stem: "page",
        groups: vec![Group {
            name: "deepwatch-page".into(),
            interval_secs: ctx.page_eval(),
            rules: vec![record, Rule::Alert(alert)],
        }],
        tests,
    }
}
