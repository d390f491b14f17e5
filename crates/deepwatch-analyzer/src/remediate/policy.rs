//! Incident classes: a policy is a set of Alertmanager-style label matchers (parsed by the
//! config, compiled here, regular expressions anchored as Alertmanager does) and the actions an
//! alert matching all of them triggers.

use crate::webhook::Labels;
use deepwatch_core::config::remediation::{MatchOp, Matcher, PolicyConfig};
use regex::Regex;

enum Compiled {
    Equal(String, String),
    NotEqual(String, String),
    Regex(String, Regex),
    NotRegex(String, Regex),
}

impl Compiled {
    fn matches(&self, labels: &Labels) -> bool {
        // A missing label matches as the empty string, as in Alertmanager.
        let get = |name: &str| labels.get(name).map(String::as_str).unwrap_or("");
        match self {
            Compiled::Equal(n, v) => get(n) == v,
            Compiled::NotEqual(n, v) => get(n) != v,
            Compiled::Regex(n, re) => re.is_match(get(n)),
            Compiled::NotRegex(n, re) => !re.is_match(get(n)),
        }
    }
}

pub struct Policy {
    pub name: String,
    matchers: Vec<Compiled>,
    pub actions: Vec<String>,
    pub revert_on_resolve: bool,
}

impl Policy {
    pub fn from_config(config: &PolicyConfig) -> Result<Policy, String> {
        let mut matchers = Vec::new();
        for text in &config.matchers {
            let m = Matcher::parse(text)?;
            let anchored =
                || Regex::new(&format!("^(?:{})$", m.value)).map_err(|e| format!("{text:?}: {e}"));
            matchers.push(match m.op {
                MatchOp::Equal => Compiled::Equal(m.name.clone(), m.value.clone()),
                MatchOp::NotEqual => Compiled::NotEqual(m.name.clone(), m.value.clone()),
                MatchOp::Regex => Compiled::Regex(m.name.clone(), anchored()?),
                MatchOp::NotRegex => Compiled::NotRegex(m.name.clone(), anchored()?),
            });
        }
        Ok(Policy {
            name: config.name.clone(),
            matchers,
            actions: config.actions.clone(),
            revert_on_resolve: config.revert_on_resolve,
        })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(matchers: &[&str]) -> Policy {
        Policy::from_config(&PolicyConfig {
            name: "p".into(),
            matchers: matchers.iter().map(|s| s.to_string()).collect(),
            actions: vec!["a".into()],
            revert_on_resolve: false,
        })
        .unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn all_matchers_must_match_and_regexes_are_anchored() {
        let p = policy(&[r#"alertname="ModelDown""#, r#"severity=~"critical|page""#]);
        assert!(p.matches(&labels(&[("alertname", "ModelDown"), ("severity", "critical")])));
        assert!(!p.matches(&labels(&[("alertname", "ModelDown"), ("severity", "criticality")])));
        assert!(!p.matches(&labels(&[("alertname", "ModelDownX"), ("severity", "page")])));
    }

    #[test]
    fn missing_labels_match_as_empty() {
        assert!(policy(&[r#"pool!="canary""#]).matches(&labels(&[])));
        assert!(policy(&[r#"pool="""#]).matches(&labels(&[])));
        assert!(!policy(&[r#"pool=~".+""#]).matches(&labels(&[])));
        assert!(policy(&[r#"pool!~"green|blue""#]).matches(&labels(&[("pool", "standby")])));
    }
}
