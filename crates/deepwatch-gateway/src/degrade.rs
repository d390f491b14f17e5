//! Degradation set by the analyzer's remediation through `PUT /admin/degrade`: a cap on
//! `max_tokens` and a per-tenant request rate limit (token bucket) for listed tenants. Both
//! show in `deepwatch_degrade_active{kind}` while in force.

use crate::metrics::labels::DegradeIds;
use crate::metrics::GatewayMetrics;
pub use deepwatch_core::api::admin::{DegradeState, RateLimit};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Degrade {
    state: RwLock<DegradeState>,
    buckets: Mutex<HashMap<String, Bucket>>,
    metrics: Arc<GatewayMetrics>,
}

impl Degrade {
    pub fn new(metrics: Arc<GatewayMetrics>) -> Self {
        Degrade { state: RwLock::new(DegradeState::default()), buckets: Mutex::default(), metrics }
    }

    pub fn get(&self) -> DegradeState {
        self.state.read().clone()
    }

    /// Replaces the state; checks values first.
    pub fn set(&self, state: DegradeState) -> Result<DegradeState, String> {
        if state.max_tokens_cap == Some(0) {
            return Err("max_tokens_cap must be greater than 0".into());
        }
        if let Some(rl) = &state.rate_limit {
            if !(rl.requests_per_second > 0.0 && rl.requests_per_second.is_finite()) {
                return Err(format!(
                    "rate_limit.requests_per_second must be greater than 0, got {}",
                    rl.requests_per_second
                ));
            }
            if rl.tenants.is_empty() {
                return Err("rate_limit.tenants must list at least one tenant".into());
            }
        }
        let on = |b: bool| if b { 1.0 } else { 0.0 };
        let degrade = &self.metrics.degrade;
        degrade.set(&DegradeIds { kind: "max_tokens_cap" }, on(state.max_tokens_cap.is_some()));
        degrade.set(&DegradeIds { kind: "tenant_rate_limit" }, on(state.rate_limit.is_some()));
        self.buckets.lock().clear();
        *self.state.write() = state.clone();
        Ok(state)
    }

    pub fn max_tokens_cap(&self) -> Option<u64> {
        self.state.read().max_tokens_cap
    }

    /// Takes one request from the tenant's bucket; `Err(seconds)` to wait when it is empty.
    pub fn admit(&self, tenant: &str, now: Instant) -> Result<(), f64> {
        let state = self.state.read();
        let Some(rl) = &state.rate_limit else { return Ok(()) };
        if !rl.tenants.iter().any(|t| t == tenant) {
            return Ok(());
        }
        let rate = rl.requests_per_second;
        let burst = rate.max(1.0);
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(tenant.to_string()).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - b.tokens) / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn listed_tenants_are_limited_and_refill_over_time() {
        let d = Degrade::new(GatewayMetrics::new());
        d.set(DegradeState {
            max_tokens_cap: Some(64),
            rate_limit: Some(RateLimit { tenants: vec!["free".into()], requests_per_second: 2.0 }),
        })
        .unwrap();
        let now = Instant::now();
        assert!(d.admit("free", now).is_ok());
        assert!(d.admit("free", now).is_ok());
        let wait = d.admit("free", now).unwrap_err();
        assert!((wait - 0.5).abs() < 1e-9, "{wait}");
        assert!(d.admit("paid", now).is_ok());
        assert!(d.admit("free", now + Duration::from_millis(500)).is_ok());
        assert_eq!(d.max_tokens_cap(), Some(64));
        assert!(d.set(DegradeState { max_tokens_cap: Some(0), rate_limit: None }).is_err());
        d.set(DegradeState::default()).unwrap();
        assert!(d.admit("free", now).is_ok());
    }
}
