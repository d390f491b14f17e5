//! Alertmanager-style label matchers (`name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`) as
//! written in `[[remediation.policies]] matchers`, parsed once here so validation and the
//! analyzer's policy engine agree on the syntax.

/// How a matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// One parsed Alertmanager-style matcher. A missing label matches as the empty string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

impl Matcher {
    /// Parses `name="value"`, `name!="value"`, `name=~"re"`, `name!~"re"`; the value may be
    /// unquoted when it holds no spaces or quotes. Regular expressions are checked to compile.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let text = text.trim();
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| format!("{text:?} has no operator (=, !=, =~, !~)"))?;
        let name = &text[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("{text:?} does not start with a label name"));
        }
        let rest = text[end..].trim_start();
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(format!("{text:?} has no operator (=, !=, =~, !~) after {name:?}"));
        };
        let value = unquote(value.trim()).map_err(|e| format!("{text:?}: {e}"))?;
        if matches!(op, MatchOp::Regex | MatchOp::NotRegex) {
            regex::Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("{text:?}: invalid regular expression: {e}"))?;
        }
        Ok(Matcher { name: name.to_string(), op, value })
    }

    /// Whether a label value (the empty string for a missing label) satisfies the matcher.
    /// Compiles the regular expression on each call: meant for checks and tests; the
    /// analyzer's policy engine keeps its own compiled form.
    pub fn matches_value(&self, value: &str) -> bool {
        let regex = || {
            regex::Regex::new(&format!("^(?:{})$", self.value)).is_ok_and(|re| re.is_match(value))
        };
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex => regex(),
            MatchOp::NotRegex => !regex(),
        }
    }
}

fn unquote(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix('"') else {
        if value.contains(['"', ' ']) {
            return Err("unquoted values may not contain spaces or quotes".to_string());
        }
        return Ok(value.to_string());
    };
    let inner = inner.strip_suffix('"').ok_or("missing closing quote")?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other @ ('"' | '\\')) => out.push(other),
                other => return Err(format!("unknown escape \\{}", other.unwrap_or(' '))),
            },
            '"' => return Err("unescaped quote inside the value".to_string()),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_like_alertmanager() {
        let m = Matcher::parse(r#"alertname="Model Down""#).unwrap();
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("alertname", MatchOp::Equal, "Model Down")
        );
        let m = Matcher::parse("severity=~critical|page").unwrap();
        assert_eq!((m.op, m.value.as_str()), (MatchOp::Regex, "critical|page"));
        assert_eq!(Matcher::parse(r#"pool != "a\"b""#).unwrap().value, "a\"b");
        assert_eq!(Matcher::parse("x!~y").unwrap().op, MatchOp::NotRegex);
        assert!(Matcher::parse("alertname").unwrap_err().contains("no operator"));
        assert!(Matcher::parse(r#"a=~"(""#).unwrap_err().contains("invalid regular expression"));
        assert!(Matcher::parse(r#"a="x"#).unwrap_err().contains("closing quote"));
        assert!(Matcher::parse(r#"="x""#).unwrap_err().contains("label name"));
    }

    #[test]
    fn values_match_like_alertmanager() {
        let m = |t: &str| Matcher::parse(t).unwrap();
        assert!(m(r#"alertname="ModelUnavailable""#).matches_value("ModelUnavailable"));
        assert!(!m(r#"alertname="ModelUnavailable""#).matches_value("ModelUnavailableX"));
        assert!(m("pool!=\"\"").matches_value("green"));
        assert!(!m("pool!=\"\"").matches_value(""));
        // Anchored: a regex must match the whole value.
        assert!(m("alertname=~Canary.*").matches_value("CanaryFailing"));
        assert!(!m("alertname=~Failing").matches_value("CanaryFailing"));
        assert!(m("severity!~warning|info").matches_value("critical"));
        assert!(!m("severity!~warning|info").matches_value("info"));
    }
}
