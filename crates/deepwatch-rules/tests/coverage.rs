//! Every collected signal has a rule or a panel (issue 16): each catalog metric is selected by
//! at least one generated recording rule, alert or dashboard query, or is named in
//! `coverage::UNUSED_BY_DESIGN` with a reason; an exemption for a metric that is in fact used,
//! or not in the catalog, fails too, so the list cannot go stale.

use deepwatch_core::catalog;
use deepwatch_core::config::rules::RulesConfig;
use deepwatch_rules::coverage::{unused, used, UNUSED_BY_DESIGN};
use deepwatch_rules::{Ctx, Options};

#[test]
fn every_catalog_signal_is_read_by_a_rule_or_a_panel() {
    let cfg = RulesConfig::default();
    let ctx = Ctx { cfg: &cfg, opts: Options::default() };
    let missing: Vec<String> = unused(&ctx)
        .unwrap()
        .iter()
        .map(|m| format!("{} ({:?}): {}", m.name, m.kind, m.help))
        .collect();
    assert!(
        missing.is_empty(),
        "{} catalog signals are read by no generated rule or dashboard panel; add a rule or a \
         panel, or an exemption with its reason in coverage::UNUSED_BY_DESIGN:\n{}",
        missing.len(),
        missing.join("\n")
    );
    let used = used(&ctx).unwrap();
    for e in UNUSED_BY_DESIGN {
        assert!(
            catalog::lookup(e.metric).is_some(),
            "exemption {} is not in the catalog",
            e.metric
        );
        assert!(!used.contains(e.metric), "exemption {} is used after all: drop it", e.metric);
        assert!(e.why.len() > 40, "exemption {} needs a reason", e.metric);
    }
    assert!(used.len() + UNUSED_BY_DESIGN.len() == catalog::all().count());
}

/// The check itself sees a signal disappear: a spec whose dashboards and rules lose every
/// reader of a metric reports it.
#[test]
fn a_metric_nothing_reads_is_reported() {
    let cfg = RulesConfig::default();
    let ctx = Ctx { cfg: &cfg, opts: Options::default() };
    let used = used(&ctx).unwrap();
    assert!(used.contains(catalog::gateway::REQUESTS.name));
    assert!(!used.contains("deepwatch_no_such_metric"));
}
