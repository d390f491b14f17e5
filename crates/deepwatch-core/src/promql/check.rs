//! Parse-checks of PromQL built from the catalog: every expression must parse (promql-parser)
//! and select only catalog metrics with their declared labels, series the caller says it
//! records, `ALERTS` or `up`. The rules generator checks every rule with it; the analyzer checks
//! its root-cause candidates and the queries a config adds.

use crate::catalog;
use promql_parser::parser::{self, Expr};
use std::collections::BTreeMap;

/// Labels every scraped series has.
pub const STANDARD_LABELS: &[&str] = &["job", "instance"];
/// Labels the rules generator adds to its own series.
pub const GENERATOR_LABELS: &[&str] = &["slo", "threshold", "priority"];

/// One selector found in an expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub name: String,
    pub labels: Vec<String>,
}

/// Every vector selector (plain or inside a range) in `expr`, plus the labels used in
/// `by`/`without`/`on`/`ignoring` clauses.
pub fn selectors(expr: &str) -> Result<(Vec<Selector>, Vec<String>), String> {
    let ast = parser::parse(expr).map_err(|e| format!("{e} in {expr}"))?;
    let mut sels = Vec::new();
    let mut grouping = Vec::new();
    walk(&ast, &mut sels, &mut grouping);
    Ok((sels, grouping))
}

fn walk(e: &Expr, out: &mut Vec<Selector>, grouping: &mut Vec<String>) {
    use promql_parser::parser::ast::LabelModifier;
    let push_vs = |vs: &parser::VectorSelector, out: &mut Vec<Selector>| {
        let labels = vs.matchers.matchers.iter().map(|m| m.name.clone()).collect();
        out.push(Selector { name: vs.name.clone().unwrap_or_default(), labels });
    };
    let modifier_labels = |m: &Option<LabelModifier>, grouping: &mut Vec<String>| {
        if let Some(m) = m {
            grouping.extend(m.labels().labels.iter().cloned());
        }
    };
    match e {
        Expr::Aggregate(a) => {
            modifier_labels(&a.modifier, grouping);
            walk(&a.expr, out, grouping);
            if let Some(p) = &a.param {
                walk(p, out, grouping);
            }
        }
        Expr::Unary(u) => walk(&u.expr, out, grouping),
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier {
                modifier_labels(&m.matching, grouping);
            }
            walk(&b.lhs, out, grouping);
            walk(&b.rhs, out, grouping);
        }
        Expr::Paren(p) => walk(&p.expr, out, grouping),
        Expr::Subquery(s) => walk(&s.expr, out, grouping),
        Expr::VectorSelector(vs) => push_vs(vs, out),
        Expr::MatrixSelector(ms) => push_vs(&ms.vs, out),
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, out, grouping);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The Pushgateway's own series: Unix time of the last successful push of each group, with
/// the group's `job` and `instance`. Not a catalog metric (the Pushgateway writes it); allowed
/// by name like `up`.
pub const PUSH_TIME: &str = "push_time_seconds";

/// Checks one expression against the catalog and the recorded series (name -> labels).
pub fn check_expr(expr: &str, recorded: &BTreeMap<String, Vec<String>>) -> Result<(), String> {
    let (sels, grouping) = selectors(expr)?;
    for s in sels {
        let label_ok: Box<dyn Fn(&str) -> bool> = if let Some(out) = recorded.get(&s.name) {
            let out = out.clone();
            Box::new(move |l: &str| out.iter().any(|o| o == l))
        } else if s.name == "ALERTS" {
            Box::new(|l: &str| ["alertname", "alertstate", "severity"].contains(&l))
        } else if s.name == "up" || s.name == PUSH_TIME {
            Box::new(|l: &str| STANDARD_LABELS.contains(&l))
        } else if catalog::lookup(&s.name).is_some() {
            let name = s.name.clone();
            Box::new(move |l: &str| STANDARD_LABELS.contains(&l) || catalog::has_label(&name, l))
        } else {
            return Err(format!(
                "{:?} is neither a catalog metric nor a recorded series (in {expr})",
                s.name
            ));
        };
        for l in &s.labels {
            if l != "__name__" && !label_ok(l) {
                return Err(format!("label {l:?} is not declared on {} (in {expr})", s.name));
            }
        }
    }
    for g in grouping {
        let known = catalog::LABELS.contains(&g.as_str())
            || STANDARD_LABELS.contains(&g.as_str())
            || GENERATOR_LABELS.contains(&g.as_str());
        if !known {
            return Err(format!("grouping label {g:?} is not a catalog label (in {expr})"));
        }
    }
    Ok(())
}

/// Checks an expression that reads only scraped series (catalog metrics, `up`, `ALERTS`).
pub fn check_scraped(expr: &str) -> Result<(), String> {
    check_expr(expr, &BTreeMap::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::gateway;

    #[test]
    fn unknown_metric_and_label_are_rejected() {
        let ok = format!("rate({}[1m])", gateway::REQUESTS.name);
        assert!(check_scraped(&ok).is_ok());
        let bad_label = format!("{}{{colour=\"red\"}}", gateway::REQUESTS.name);
        assert!(check_scraped(&bad_label).unwrap_err().contains("colour"));
        let bad_name = "rate(no_such_metric_total[1m])";
        assert!(check_scraped(bad_name).unwrap_err().contains("no_such_metric_total"));
        assert!(check_scraped("sum by (colour) (up)").is_err());
        assert!(check_scraped("rate(x[1m]").is_err(), "unbalanced parenthesis must not parse");
        let mut recorded = BTreeMap::new();
        recorded.insert("job:x:rate1m".to_string(), vec!["model".to_string()]);
        assert!(check_expr("job:x:rate1m{model=\"m\"}", &recorded).is_ok());
        assert!(check_expr("job:x:rate1m{pool=\"m\"}", &recorded).is_err());
    }
}
