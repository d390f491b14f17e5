//! The generated rule model: groups of recording and alerting rules, each alert carrying the
//! promtool test cases that must fire, must not fire and must recover. Rendering turns one
//! `RuleFile` into the Prometheus rule file and its promtool test file, side by side.

use crate::promql::dur;
use crate::yaml::Y;
use crate::{ymap, yseq};

pub type Labels = Vec<(String, String)>;

/// `labels(&[("a", "b")])` -> owned label pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[derive(Debug, Clone)]
pub struct Record {
    pub name: String,
    pub expr: String,
    /// Static labels added by the rule.
    pub labels: Labels,
    /// Labels the recorded series carries (aggregation labels plus static ones), checked
    /// against every selector that reads the series.
    pub output_labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub name: String,
    pub expr: String,
    pub for_secs: u64,
    pub keep_firing_secs: u64,
    pub severity: &'static str,
    /// Extra static labels (`priority`, `reason`, ...).
    pub labels: Labels,
    pub summary: String,
    pub description: String,
    /// Grafana dashboard uid the alert links to.
    pub dashboard: &'static str,
}

#[derive(Debug, Clone)]
pub enum Rule {
    Record(Record),
    Alert(Alert),
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub interval_secs: u64,
    pub rules: Vec<Rule>,
}

/// Expected firing alerts of one alertname at one time; each entry is the full label set.
#[derive(Debug, Clone)]
pub struct AlertCheck {
    pub at_secs: u64,
    pub alertname: String,
    pub firing: Vec<Labels>,
}

#[derive(Debug, Clone)]
pub struct ExprCheck {
    pub at_secs: u64,
    pub expr: String,
    /// (series text as promtool prints it, value)
    pub samples: Vec<(String, f64)>,
}

#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub interval_secs: u64,
    /// (series selector text, promtool values notation)
    pub series: Vec<(String, String)>,
    pub alerts: Vec<AlertCheck>,
    pub exprs: Vec<ExprCheck>,
}

/// One rule file and its tests.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// File stem: `rules/<stem>.yml`, `tests/<stem>.test.yml`.
    pub stem: &'static str,
    pub groups: Vec<Group>,
    pub tests: Vec<TestCase>,
}

/// Annotation values shared by alerts: base URLs.
pub struct Links<'a> {
    pub runbook_base_url: &'a str,
    pub grafana_url: &'a str,
}

impl Alert {
    pub fn annotations(&self, links: &Links<'_>) -> Labels {
        let base = links.runbook_base_url.trim_end_matches('/');
        let grafana = links.grafana_url.trim_end_matches('/');
        vec![
            ("summary".into(), self.summary.clone()),
            ("description".into(), self.description.clone()),
            ("runbook_url".into(), format!("{base}/{}", self.name)),
            ("dashboard".into(), format!("{grafana}/d/{}", self.dashboard)),
        ]
    }
}

/// Promtool values notation: `v` repeated `n` times (`vx(n-1)`).
pub fn run(v: f64, n: u64) -> String {
    let v = crate::promql::num(v);
    match n {
        0 => String::new(),
        1 => v,
        _ => format!("{v}x{}", n - 1),
    }
}

/// Joins runs into one values string.
pub fn values(runs: &[String]) -> String {
    runs.iter().filter(|r| !r.is_empty()).cloned().collect::<Vec<_>>().join(" ")
}

/// Series text `name{a="b", ...}`.
pub fn series_text(name: &str, labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(", "))
}

fn label_map(pairs: &Labels) -> Y {
    Y::Map(pairs.iter().map(|(k, v)| (k.clone(), Y::from(v))).collect())
}

/// Expands `{{ $labels.x }}` the way Prometheus templates do for the plain-label case.
fn expand(template: &str, labels: &Labels) -> String {
    let mut out = template.to_string();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{ $labels.{k} }}}}"), v);
    }
    out
}

impl RuleFile {
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.groups.iter().flat_map(|g| &g.rules).filter_map(|r| match r {
            Rule::Alert(a) => Some(a),
            Rule::Record(_) => None,
        })
    }

    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.groups.iter().flat_map(|g| &g.rules).filter_map(|r| match r {
            Rule::Record(r) => Some(r),
            Rule::Alert(_) => None,
        })
    }

    /// The Prometheus rule file.
    pub fn render_rules(&self, links: &Links<'_>) -> String {
        let mut groups = Vec::new();
        for g in &self.groups {
            let mut rules = Vec::new();
            for r in &g.rules {
                rules.push(match r {
                    Rule::Record(rec) => {
                        let mut m = ymap! { "record" => &rec.name, "expr" => &rec.expr };
                        if !rec.labels.is_empty() {
                            m.push("labels", label_map(&rec.labels));
                        }
                        m
                    }
                    Rule::Alert(a) => {
                        let mut m = ymap! { "alert" => &a.name, "expr" => &a.expr };
                        if a.for_secs > 0 {
                            m.push("for", dur(a.for_secs));
                        }
                        if a.keep_firing_secs > 0 {
                            m.push("keep_firing_for", dur(a.keep_firing_secs));
                        }
                        let mut l = labels(&[("severity", a.severity)]);
                        l.extend(a.labels.iter().cloned());
                        m.push("labels", label_map(&l));
                        m.push("annotations", label_map(&a.annotations(links)));
                        m
                    }
                });
            }
            groups.push(ymap! {
                "name" => &g.name,
                "interval" => dur(g.interval_secs),
                "rules" => Y::Seq(rules),
            });
        }
        let header = format!(
            "# Generated by `deepwatch rules` from deepwatch.toml; do not edit.\n# Tests: promtool test rules tests/{}.test.yml\n",
            self.stem
        );
        header + &ymap! { "groups" => Y::Seq(groups) }.render()
    }

    /// The promtool unit-test file (2.42: every test sets `interval`).
    pub fn render_tests(&self, links: &Links<'_>, evaluation_interval_secs: u64) -> String {
        let mut tests = Vec::new();
        for t in &self.tests {
            let mut case = ymap! {
                "name" => &t.name,
                "interval" => dur(t.interval_secs),
                "input_series" => Y::Seq(t.series.iter().map(|(s, v)| ymap!{ "series" => s, "values" => v }).collect()),
            };
            if !t.alerts.is_empty() {
                let mut checks = Vec::new();
                for c in &t.alerts {
                    let mut firing = Vec::new();
                    for labels in &c.firing {
                        let severity =
                            labels.iter().find(|(k, _)| k == "severity").map(|(_, v)| v.as_str());
                        let rule = self.alerts().find(|a| {
                            a.name == c.alertname
                                && Some(a.severity) == severity
                                && a.labels.iter().all(|kv| labels.contains(kv))
                        });
                        let mut sorted = labels.clone();
                        sorted.sort();
                        let mut entry = ymap! { "exp_labels" => label_map(&sorted) };
                        if let Some(rule) = rule {
                            let ann: Labels = rule
                                .annotations(links)
                                .into_iter()
                                .map(|(k, v)| (k, expand(&v, labels)))
                                .collect();
                            entry.push("exp_annotations", label_map(&ann));
                        }
                        firing.push(entry);
                    }
                    checks.push(ymap! {
                        "eval_time" => dur(c.at_secs),
                        "alertname" => &c.alertname,
                        "exp_alerts" => Y::Seq(firing),
                    });
                }
                case.push("alert_rule_test", Y::Seq(checks));
            }
            if !t.exprs.is_empty() {
                let mut checks = Vec::new();
                for e in &t.exprs {
                    let samples: Vec<Y> = e
                        .samples
                        .iter()
                        .map(|(l, v)| ymap! { "labels" => l, "value" => *v })
                        .collect();
                    checks.push(ymap! { "expr" => &e.expr, "eval_time" => dur(e.at_secs), "exp_samples" => Y::Seq(samples) });
                }
                case.push("promql_expr_test", Y::Seq(checks));
            }
            tests.push(case);
        }
        let doc = ymap! {
            "rule_files" => yseq![format!("../rules/{}.yml", self.stem)],
            "evaluation_interval" => dur(evaluation_interval_secs),
            "tests" => Y::Seq(tests),
        };
        "# Generated by `deepwatch rules`; run with promtool test rules.\n".to_string()
            + &doc.render()
    }
}
