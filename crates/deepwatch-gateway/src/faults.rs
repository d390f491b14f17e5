//! Fault injection per route for chaos tests: added latency, error answers and stream cuts.
//! Off unless `gateway.faults.enabled`; rules are replaced through the token-protected admin
//! API. Every injection counts `deepwatch_faults_injected_total{endpoint,kind}`.

use crate::util::random_f64;
use deepwatch_core::config::gateway::{FaultRule, ROUTES};
use parking_lot::RwLock;
use std::time::Duration;

/// What to do to one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Injection {
    pub latency: Duration,
    /// Answer this status instead of forwarding.
    pub error_status: Option<u16>,
    pub stream_cut_after_chunks: Option<u64>,
}

pub struct Faults {
    pub enabled: bool,
    rules: RwLock<Vec<FaultRule>>,
}

impl Faults {
    pub fn new(enabled: bool, rules: Vec<FaultRule>) -> Self {
        Faults { enabled, rules: RwLock::new(if enabled { rules } else { Vec::new() }) }
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.read().clone()
    }

    /// Replaces the rules after checking them; the error names the bad field.
    pub fn set(&self, mut rules: Vec<FaultRule>) -> Result<Vec<FaultRule>, String> {
        for (i, r) in rules.iter_mut().enumerate() {
            if !ROUTES.contains(&r.endpoint.as_str()) {
                return Err(format!(
                    "[{i}].endpoint: unknown route {:?}, expected one of {}",
                    r.endpoint,
                    ROUTES.join(", ")
                ));
            }
            if !(0.0..=1.0).contains(&r.error_rate) {
                return Err(format!(
                    "[{i}].error_rate: must be between 0 and 1, got {}",
                    r.error_rate
                ));
            }
            if r.error_status == 0 {
                r.error_status = 503;
            }
            if !(400..=599).contains(&r.error_status) {
                return Err(format!(
                    "[{i}].error_status: must be between 400 and 599, got {}",
                    r.error_status
                ));
            }
        }
        *self.rules.write() = rules.clone();
        Ok(rules)
    }

    /// Rolls the dice for one request of `endpoint`.
    pub fn pick(&self, endpoint: &str) -> Option<Injection> {
        if !self.enabled {
            return None;
        }
        let rules = self.rules.read();
        let rule = rules.iter().find(|r| r.endpoint == endpoint)?;
        let error = rule.error_rate > 0.0 && random_f64() < rule.error_rate;
        Some(Injection {
            latency: rule.latency,
            error_status: error.then_some(if rule.error_status == 0 {
                503
            } else {
                rule.error_status
            }),
            stream_cut_after_chunks: rule.stream_cut_after_chunks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(error_rate: f64) -> FaultRule {
        FaultRule {
            endpoint: "/v1/chat/completions".into(),
            latency: Duration::from_millis(5),
            error_rate,
            error_status: 0,
            stream_cut_after_chunks: Some(3),
        }
    }

    #[test]
    fn disabled_faults_never_fire_and_rules_are_checked() {
        let off = Faults::new(false, vec![rule(1.0)]);
        assert!(off.pick("/v1/chat/completions").is_none());
        let on = Faults::new(true, vec![]);
        let set = on.set(vec![rule(1.0)]).unwrap();
        assert_eq!(set[0].error_status, 503);
        let inj = on.pick("/v1/chat/completions").unwrap();
        assert_eq!(inj.error_status, Some(503));
        assert_eq!(inj.stream_cut_after_chunks, Some(3));
        assert!(on.pick("/v1/embeddings").is_none());
        let err = on.set(vec![FaultRule { endpoint: "/x".into(), ..rule(0.0) }]).unwrap_err();
        assert!(err.starts_with("[0].endpoint"), "{err}");
        let err = on.set(vec![rule(2.0)]).unwrap_err();
        assert!(err.contains("error_rate"), "{err}");
        on.set(vec![rule(0.0)]).unwrap();
        assert_eq!(on.pick("/v1/chat/completions").unwrap().error_status, None);
    }
}
