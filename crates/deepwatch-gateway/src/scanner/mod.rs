//! The sensitive-data scanner: per-tenant policies (count, redact or block, per direction and
//! kind), prompt scanning, and the helpers the stream layer uses for output. Counters go to
//! `deepwatch_sensitive_data_matches_total{tenant,kind,direction,action}`; matched values are
//! never logged or stored.

pub mod detect;
pub mod stream;

use deepwatch_core::config::gateway::{ScanAction, ScanPolicy, ScannerConfig};
pub use detect::{Detectors, Kind, Match};
use std::collections::HashMap;

/// A policy with its kinds parsed.
#[derive(Debug, Clone)]
pub struct Policy {
    pub prompt: ScanAction,
    pub output: ScanAction,
    pub kinds: Vec<Kind>,
}

impl Policy {
    fn from_config(p: &ScanPolicy) -> Policy {
        Policy {
            prompt: p.prompt,
            output: p.output,
            kinds: p.kinds.iter().filter_map(|k| Kind::parse(k)).collect(),
        }
    }

    pub fn off() -> Policy {
        Policy { prompt: ScanAction::Off, output: ScanAction::Off, kinds: Vec::new() }
    }
}

/// Policies by tenant plus the compiled detectors.
pub struct Scanner {
    pub detectors: Detectors,
    enabled: bool,
    default: Policy,
    off: Policy,
    tenants: HashMap<String, Policy>,
}

/// Outcome of scanning a prompt.
#[derive(Debug, Default)]
pub struct PromptScan {
    /// Kinds found (one entry per value).
    pub kinds: Vec<Kind>,
    /// The rewritten body when values were redacted.
    pub redacted_body: Option<Vec<u8>>,
    /// The policy blocks this prompt.
    pub blocked: bool,
}

impl Scanner {
    pub fn new(cfg: &ScannerConfig) -> Scanner {
        Scanner {
            detectors: Detectors::new(),
            enabled: cfg.enabled,
            default: Policy::from_config(&cfg.default),
            off: Policy::off(),
            tenants: cfg.tenants.iter().map(|(t, p)| (t.clone(), Policy::from_config(p))).collect(),
        }
    }

    /// The policy for a tenant (by its real name, not the bounded label).
    pub fn policy(&self, tenant: &str) -> &Policy {
        if !self.enabled {
            return &self.off;
        }
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    /// Scans a request body. Count and block read the raw JSON text (one pass, no parse);
    /// redact walks the parsed strings and rewrites them.
    pub fn scan_prompt(&self, policy: &Policy, body: &[u8]) -> PromptScan {
        let mut result = PromptScan::default();
        if policy.prompt == ScanAction::Off || policy.kinds.is_empty() {
            return result;
        }
        match policy.prompt {
            ScanAction::Redact => {
                let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
                    return result;
                };
                let mut changed = false;
                for field in ["messages", "prompt", "input"] {
                    if let Some(v) = value.get_mut(field) {
                        walk_strings(v, &mut |s: &mut String| {
                            let found = self.detectors.find(s, &policy.kinds);
                            if !found.is_empty() {
                                result.kinds.extend(found.iter().map(|m| m.kind));
                                *s = redact(s, &found);
                                changed = true;
                            }
                        });
                    }
                }
                if changed {
                    result.redacted_body = serde_json::to_vec(&value).ok();
                }
            }
            _ => {
                let text = String::from_utf8_lossy(body);
                let found = self.detectors.find(&text, &policy.kinds);
                result.kinds = found.iter().map(|m| m.kind).collect();
                result.blocked = policy.prompt == ScanAction::Block && !found.is_empty();
            }
        }
        result
    }
}

/// Calls `f` on every string inside `v` (message contents, content parts, prompt arrays).
fn walk_strings(v: &mut serde_json::Value, f: &mut dyn FnMut(&mut String)) {
    match v {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| walk_strings(i, f)),
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                // Roles, names and ids are not free text.
                let text_key = matches!(key.as_str(), "content" | "text" | "arguments");
                if text_key || item.is_array() || item.is_object() {
                    walk_strings(item, f);
                }
            }
        }
        _ => {}
    }
}

/// Every string inside `value` with each value any detector finds replaced by
/// `[REDACTED:<kind>]`, whatever the scanner's policies: text bound for a log (issue 15).
pub fn redact_value(detectors: &Detectors, value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => {
            let matches = detectors.find(text, &Kind::ALL);
            if !matches.is_empty() {
                *text = redact(text, &matches);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                redact_value(detectors, item);
            }
        }
        serde_json::Value::Object(fields) => {
            for (_, item) in fields.iter_mut() {
                redact_value(detectors, item);
            }
        }
        _ => {}
    }
}

/// `text` with each match replaced by `[REDACTED:<kind>]`.
pub fn redact(text: &str, matches: &[Match]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in matches {
        out.push_str(&text[at..m.start]);
        out.push_str("[REDACTED:");
        out.push_str(m.kind.as_str());
        out.push(']');
        at = m.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepwatch_core::config::gateway::ScanPolicy;

    fn scanner(prompt: ScanAction) -> (Scanner, Policy) {
        let mut cfg = ScannerConfig::default();
        cfg.tenants.insert(
            "acme".into(),
            ScanPolicy { prompt, output: ScanAction::Count, ..ScanPolicy::default() },
        );
        let s = Scanner::new(&cfg);
        let p = s.policy("acme").clone();
        (s, p)
    }

    const BODY: &str = r#"{"model":"m","messages":[{"role":"user","content":"mail a@b.io"},{"role":"user","content":[{"type":"text","text":"ip 10.1.2.3"}]}]}"#;

    #[test]
    fn redact_rewrites_only_message_text() {
        let (s, p) = scanner(ScanAction::Redact);
        let r = s.scan_prompt(&p, BODY.as_bytes());
        assert_eq!(r.kinds, vec![Kind::Email, Kind::Ipv4]);
        let body: serde_json::Value = serde_json::from_slice(&r.redacted_body.unwrap()).unwrap();
        assert_eq!(body["messages"][0]["content"], "mail [REDACTED:email]");
        assert_eq!(body["messages"][1]["content"][0]["text"], "ip [REDACTED:ipv4]");
        assert_eq!(body["model"], "m");
    }

    #[test]
    fn count_and_block_do_not_rewrite() {
        let (s, p) = scanner(ScanAction::Count);
        let r = s.scan_prompt(&p, BODY.as_bytes());
        assert_eq!(r.kinds.len(), 2);
        assert!(r.redacted_body.is_none() && !r.blocked);
        let (s, p) = scanner(ScanAction::Block);
        assert!(s.scan_prompt(&p, BODY.as_bytes()).blocked);
        assert!(!s.scan_prompt(&p, br#"{"messages":[{"content":"hi"}]}"#).blocked);
        // Tenants without their own policy get the default (count).
        assert_eq!(s.policy("someone").prompt, ScanAction::Count);
    }
}
