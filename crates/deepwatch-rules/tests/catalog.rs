//! Every generated PromQL expression (rules and dashboard panels) parses with promql-parser
//! and selects only catalog metrics and labels or series the generator records; dashboards
//! keep every panel under 5,000 points and carry the variables, annotations and links.

use deepwatch_core::config::rules::RulesConfig;
use deepwatch_rules::check::{check_expr, recorded_series, selectors};
use deepwatch_rules::{grafana, rule_files, Ctx, Options};

fn panels(dash: &serde_json::Value) -> Vec<serde_json::Value> {
    dash["panels"].as_array().cloned().unwrap_or_default()
}

/// Grafana variables are not PromQL; give them values before parsing.
fn concrete(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m").replace("$__range", "1h")
}

#[test]
fn every_rule_and_panel_expression_uses_only_catalog_names() {
    let cfg = RulesConfig::default();
    let ctx = Ctx { cfg: &cfg, opts: Options::default() };
    let files = rule_files(&ctx);
    let recorded = recorded_series(&files);
    let mut checked = 0;
    for f in &files {
        for r in f.records() {
            check_expr(&r.expr, &recorded).unwrap_or_else(|e| panic!("{}: {e}", r.name));
            checked += 1;
        }
        for a in f.alerts() {
            check_expr(&a.expr, &recorded).unwrap_or_else(|e| panic!("{}: {e}", a.name));
            checked += 1;
        }
    }
    for (name, dash) in grafana::dashboards(&ctx) {
        for panel in panels(&dash) {
            for t in panel["targets"].as_array().unwrap() {
                let expr = concrete(t["expr"].as_str().unwrap());
                check_expr(&expr, &recorded)
                    .unwrap_or_else(|e| panic!("{name} / {}: {e}", panel["title"]));
                checked += 1;
            }
        }
        for a in dash["annotations"]["list"].as_array().unwrap() {
            if let Some(expr) = a["target"]["expr"].as_str() {
                check_expr(expr, &recorded).unwrap_or_else(|e| panic!("{name} annotation: {e}"));
            }
        }
    }
    assert!(checked > 100, "only {checked} expressions checked");
    // Every recorded series some alert or panel reads is produced by a rule.
    let (sels, _) = selectors(&files[1].alerts().next().unwrap().expr).unwrap();
    assert!(sels.iter().any(|s| recorded.contains_key(&s.name)));
}

#[test]
fn dashboards_stay_under_five_thousand_points_and_link_logs() {
    let cfg = RulesConfig::default();
    let ctx = Ctx { cfg: &cfg, opts: Options::default() };
    let dashboards = grafana::dashboards(&ctx);
    assert_eq!(dashboards.len(), 4);
    for (name, dash) in &dashboards {
        let vars: Vec<&str> = dash["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(vars, ["datasource", "model", "model_version", "instance", "gpu"], "{name}");
        assert_eq!(dash["__inputs"][0]["name"], "DS_PROMETHEUS", "{name}");
        assert!(
            dash["__requires"].as_array().unwrap().iter().any(|r| r["id"] == "prometheus"),
            "{name}"
        );
        let ann: Vec<&str> = dash["annotations"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert!(ann.contains(&"Deploys") && ann.contains(&"Maintenance"), "{name}: {ann:?}");
        for panel in panels(dash) {
            let points = panel["maxDataPoints"].as_u64().unwrap();
            for t in panel["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                // A length heatmap: one series per bucket, fewer points each.
                if t["format"] == "heatmap" {
                    assert!(expr.starts_with("sum by (le)"), "{name}: {expr}");
                    assert!(
                        points * grafana::MAX_HEATMAP_BUCKETS as u64 <= 5000,
                        "{name}: heatmap with {points} points per bucket"
                    );
                    continue;
                }
                let bounded = expr.starts_with("topk(")
                    || expr.starts_with("sum(")
                    || expr.starts_with("max(")
                    || expr.starts_with("threshold:")
                    || expr.contains("slo:")
                    || expr.starts_with("ALERTS")
                    || expr.starts_with("sum by (model")
                    || expr.starts_with("max by (model_version");
                assert!(
                    bounded,
                    "{name} / {}: series count of {expr} is unbounded",
                    panel["title"]
                );
                if expr.contains("increase(") || expr.contains("rate(") {
                    assert!(
                        expr.contains("$__rate_interval") || expr.contains("$__range"),
                        "{expr}"
                    );
                }
            }
            assert!(
                points * grafana::MAX_SERIES as u64 <= 5000,
                "{name}: {points} points per series"
            );
        }
    }
    let resources = &dashboards[1].1;
    let gpu = panels(resources).into_iter().find(|p| p["title"] == "GPU utilization").unwrap();
    let links = gpu["fieldConfig"]["defaults"]["links"].as_array().unwrap();
    assert!(links.iter().all(|l| l["url"].as_str().unwrap().contains("${__url_time_range}")));
    let overview = &dashboards[0].1;
    let latency = panels(overview).into_iter().find(|p| p["title"] == "Latency p50 / p99").unwrap();
    assert!(latency["fieldConfig"]["defaults"]["links"].is_array());
    assert!(latency["targets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["expr"].as_str().unwrap().starts_with("threshold:")));
}

/// Sunday 02:00-04:00 Asia/Shanghai is Saturday 18:00-20:00 UTC: minutes 9720..9840 of the week.
#[test]
fn maintenance_annotation_converts_to_utc() {
    let cfg = RulesConfig::default();
    let ctx = Ctx { cfg: &cfg, opts: Options::default() };
    let expr = grafana::maintenance_expr(&ctx).unwrap();
    assert!(expr.contains(">= 9720") && expr.contains("< 9840"), "{expr}");
}
