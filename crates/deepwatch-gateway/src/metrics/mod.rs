//! The gateway's live metric families (all from `deepwatch_core::catalog::gateway`), each with
//! a typed label struct (`labels`), the bounded label values they carry, and a cache of
//! per-series handles so the request path does one map look-up per request instead of one per
//! family.

pub mod labels;

use deepwatch_core::catalog::common::BUILD_INFO;
use deepwatch_core::catalog::gateway as cat;
use deepwatch_core::config::cost::{PricedTokens, Prices};
use deepwatch_core::metrics::{Counter, Histogram, Registry};
use labels::*;
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How a request ended, the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    UpstreamError,
    Timeout,
    ClientCancelled,
    StreamCut,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Timeout => "timeout",
            Outcome::ClientCancelled => "client_cancelled",
            Outcome::StreamCut => "stream_cut",
            Outcome::Rejected => "rejected",
        }
    }
}

/// Every family the gateway exports.
pub struct GatewayMetrics {
    pub request_duration: Histograms<RequestOutcome>,
    pub ttft: Histograms<Request>,
    pub tpot: Histograms<Request>,
    pub itl: Histograms<Request>,
    pub overhead: Histograms<Overhead>,
    pub prompt_tokens: Counters<Request>,
    pub completion_tokens: Counters<Request>,
    pub reasoning_tokens: Counters<Request>,
    pub cached_prompt_tokens: Counters<Request>,
    pub spend: Counters<Spend>,
    pub tenant_budget: Gauges<TenantLabel>,
    pub requests: Counters<RequestCode>,
    pub in_flight: Gauges<PoolLabel>,
    pub retries: Counters<PoolReason>,
    pub response_completion_tokens: Histograms<Response>,
    pub response_reasoning_share: Histograms<Response>,
    pub finish_reason: Counters<FinishReason>,
    pub upstream_up: Gauges<UpstreamLabel>,
    pub upstream_error_ratio: Gauges<UpstreamLabel>,
    pub pool_weight: Gauges<PoolLabel>,
    pub pool_active: Gauges<PoolLabel>,
    pub failovers: Counters<PoolReason>,
    pub deploy_events: Counters<PoolEvent>,
    pub deploy_last_event: Gauges<PoolEvent>,
    pub rollout_step: Gauges<PoolLabel>,
    pub sensitive: Counters<Sensitive>,
    pub faults: Counters<Fault>,
    pub degrade: Gauges<DegradeKind>,
    pub keepalives: Counters<PoolLabel>,
    pub open_files_limit: Gauges<LimitKind>,
    /// Request-log lines by outcome (written, dropped, failed); the writer holds the handles.
    pub request_log_lines: deepwatch_core::metrics::CounterVec,
    build_info: Gauges<Build>,
    series: RwLock<HashMap<RequestLabels, Arc<Series>>>,
    /// `gateway.prices`, replaced on reload.
    prices: RwLock<Prices>,
    /// `gateway.daily_budgets`, replaced on reload.
    budgets: RwLock<BTreeMap<String, f64>>,
}

/// Handles of the families labelled by request identity, for one identity.
pub struct Series {
    pub ttft: Histogram,
    pub tpot: Histogram,
    pub itl: Histogram,
    pub overhead: Histogram,
    pub prompt_tokens: Counter,
    pub completion_tokens: Counter,
    pub reasoning_tokens: Counter,
    pub cached_prompt_tokens: Counter,
    /// Spend of the identity's tenant, model and pool.
    pub spend: Counter,
    pub completion_dist: Histogram,
    pub reasoning_share: Histogram,
}

/// Label values identifying a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    pub model: String,
    pub model_version: String,
    pub pool: String,
    pub endpoint: &'static str,
    pub tenant: String,
}

impl RequestLabels {
    pub fn ids(&self) -> RequestIds<'_> {
        RequestIds {
            model: &self.model,
            model_version: &self.model_version,
            pool: &self.pool,
            endpoint: self.endpoint,
            tenant: &self.tenant,
        }
    }

    pub fn with_outcome(&self, outcome: Outcome) -> RequestOutcomeIds<'_> {
        RequestOutcomeIds {
            model: &self.model,
            model_version: &self.model_version,
            pool: &self.pool,
            endpoint: self.endpoint,
            tenant: &self.tenant,
            outcome: outcome.as_str(),
        }
    }

    pub fn with_code<'a>(&'a self, outcome: Outcome, code: &'a str) -> RequestCodeIds<'a> {
        RequestCodeIds {
            model: &self.model,
            model_version: &self.model_version,
            pool: &self.pool,
            endpoint: self.endpoint,
            tenant: &self.tenant,
            outcome: outcome.as_str(),
            code,
        }
    }

    pub fn response(&self) -> ResponseIds<'_> {
        ResponseIds { model: &self.model, model_version: &self.model_version, pool: &self.pool }
    }

    pub fn finish_reason<'a>(&'a self, finish_reason: &'a str) -> FinishReasonIds<'a> {
        FinishReasonIds {
            model: &self.model,
            model_version: &self.model_version,
            pool: &self.pool,
            finish_reason,
        }
    }
}

impl GatewayMetrics {
    pub fn new() -> Arc<Self> {
        let m = GatewayMetrics {
            request_duration: Histograms::new(&cat::REQUEST_DURATION),
            ttft: Histograms::new(&cat::TIME_TO_FIRST_TOKEN),
            tpot: Histograms::new(&cat::TIME_PER_OUTPUT_TOKEN),
            itl: Histograms::new(&cat::INTER_TOKEN_LATENCY),
            overhead: Histograms::new(&cat::GATEWAY_OVERHEAD),
            prompt_tokens: Counters::new(&cat::PROMPT_TOKENS),
            completion_tokens: Counters::new(&cat::COMPLETION_TOKENS),
            reasoning_tokens: Counters::new(&cat::REASONING_TOKENS),
            cached_prompt_tokens: Counters::new(&cat::CACHED_PROMPT_TOKENS),
            spend: Counters::new(&cat::SPEND),
            tenant_budget: Gauges::new(&cat::TENANT_DAILY_BUDGET),
            requests: Counters::new(&cat::REQUESTS),
            in_flight: Gauges::new(&cat::REQUESTS_IN_FLIGHT),
            retries: Counters::new(&cat::RETRIES),
            response_completion_tokens: Histograms::new(&cat::RESPONSE_COMPLETION_TOKENS),
            response_reasoning_share: Histograms::new(&cat::RESPONSE_REASONING_SHARE),
            finish_reason: Counters::new(&cat::RESPONSE_FINISH_REASON),
            upstream_up: Gauges::new(&cat::UPSTREAM_UP),
            upstream_error_ratio: Gauges::new(&cat::UPSTREAM_ERROR_RATIO),
            pool_weight: Gauges::new(&cat::POOL_WEIGHT),
            pool_active: Gauges::new(&cat::POOL_ACTIVE),
            failovers: Counters::new(&cat::FAILOVERS),
            deploy_events: Counters::new(&cat::DEPLOY_EVENTS),
            deploy_last_event: Gauges::new(&cat::DEPLOY_LAST_EVENT),
            rollout_step: Gauges::new(&cat::ROLLOUT_STEP),
            sensitive: Counters::new(&cat::SENSITIVE_MATCHES),
            faults: Counters::new(&cat::FAULTS_INJECTED),
            degrade: Gauges::new(&cat::DEGRADE_ACTIVE),
            keepalives: Counters::new(&cat::KEEPALIVES),
            open_files_limit: Gauges::new(&cat::OPEN_FILES_LIMIT),
            request_log_lines: deepwatch_core::metrics::CounterVec::new(&cat::REQUEST_LOG_LINES),
            build_info: Gauges::new(&BUILD_INFO),
            series: RwLock::new(HashMap::new()),
            prices: RwLock::new(Prices::new()),
            budgets: RwLock::new(BTreeMap::new()),
        };
        m.build_info
            .set(&BuildIds { version: env!("CARGO_PKG_VERSION"), component: "gateway" }, 1.0);
        m.degrade.set(&DegradeIds { kind: "max_tokens_cap" }, 0.0);
        m.degrade.set(&DegradeIds { kind: "tenant_rate_limit" }, 0.0);
        Arc::new(m)
    }

    /// Handles for one request identity (created on first use, then cached).
    pub fn series(&self, labels: &RequestLabels) -> Arc<Series> {
        if let Some(s) = self.series.read().get(labels) {
            return s.clone();
        }
        let ids = labels.ids();
        let overhead =
            OverheadIds { model: &labels.model, pool: &labels.pool, endpoint: labels.endpoint };
        let s = Arc::new(Series {
            ttft: self.ttft.with(&ids),
            tpot: self.tpot.with(&ids),
            itl: self.itl.with(&ids),
            overhead: self.overhead.with(&overhead),
            prompt_tokens: self.prompt_tokens.with(&ids),
            completion_tokens: self.completion_tokens.with(&ids),
            reasoning_tokens: self.reasoning_tokens.with(&ids),
            cached_prompt_tokens: self.cached_prompt_tokens.with(&ids),
            spend: self.spend.with(&SpendIds {
                tenant: &labels.tenant,
                model: &labels.model,
                pool: &labels.pool,
            }),
            completion_dist: self.response_completion_tokens.with(&labels.response()),
            reasoning_share: self.response_reasoning_share.with(&labels.response()),
        });
        self.series.write().entry(labels.clone()).or_insert(s).clone()
    }

    /// Sets the price table (at start and on reload).
    pub fn set_prices(&self, prices: Prices) {
        *self.prices.write() = prices;
    }

    /// Sets the tenants' daily budgets (at start and on reload); tenants whose budget was
    /// removed lose their series.
    pub fn set_budgets(&self, budgets: &BTreeMap<String, f64>) {
        let mut current = self.budgets.write();
        for tenant in current.keys() {
            if !budgets.contains_key(tenant) {
                self.tenant_budget.remove(&TenantIds { tenant });
            }
        }
        for (tenant, budget) in budgets {
            self.tenant_budget.set(&TenantIds { tenant }, *budget);
        }
        *current = budgets.clone();
    }

    /// What `tokens` of `model` cost; `None` for a model without a price.
    pub fn cost(&self, model: &str, tokens: PricedTokens) -> Option<f64> {
        self.prices.read().get(model).map(|p| p.cost(tokens))
    }

    /// Everything, in catalog order, for `/metrics`.
    pub fn registry(self: &Arc<Self>) -> Registry {
        let mut r = Registry::new();
        let me = self.clone();
        r.register(Arc::new(Encoded(me)));
        r
    }
}

struct Encoded(Arc<GatewayMetrics>);

impl deepwatch_core::metrics::Encode for Encoded {
    fn encode(&self, sink: &mut deepwatch_core::expo::MetricSink) {
        let m = &self.0;
        m.build_info.family().encode(sink);
        m.request_duration.family().encode(sink);
        m.ttft.family().encode(sink);
        m.tpot.family().encode(sink);
        m.itl.family().encode(sink);
        m.overhead.family().encode(sink);
        m.prompt_tokens.family().encode(sink);
        m.completion_tokens.family().encode(sink);
        m.reasoning_tokens.family().encode(sink);
        m.cached_prompt_tokens.family().encode(sink);
        m.spend.family().encode(sink);
        m.tenant_budget.family().encode(sink);
        m.requests.family().encode(sink);
        m.in_flight.family().encode(sink);
        m.retries.family().encode(sink);
        m.response_completion_tokens.family().encode(sink);
        m.response_reasoning_share.family().encode(sink);
        m.finish_reason.family().encode(sink);
        m.upstream_up.family().encode(sink);
        m.upstream_error_ratio.family().encode(sink);
        m.pool_weight.family().encode(sink);
        m.pool_active.family().encode(sink);
        m.failovers.family().encode(sink);
        m.deploy_events.family().encode(sink);
        m.deploy_last_event.family().encode(sink);
        m.rollout_step.family().encode(sink);
        m.sensitive.family().encode(sink);
        m.faults.family().encode(sink);
        m.degrade.family().encode(sink);
        m.keepalives.family().encode(sink);
        m.open_files_limit.family().encode(sink);
        deepwatch_core::metrics::Encode::encode(&m.request_log_lines, sink);
    }
}

/// Bounds label values: configured allow-lists, or up to N model names the upstream served, then
/// `other`. A model name takes one of the N slots only when a request for it succeeded (a 2xx
/// from the upstream), so junk names that the upstream rejects cannot take them, and a slot
/// unused by any successful request for `MODEL_SLOT_EXPIRY` goes to the next model that needs it.
pub struct LabelBounds {
    tenants: HashSet<String>,
    models: HashSet<String>,
    /// Models must be listed (unknown ones are rejected) when the list is non-empty.
    pub models_listed: bool,
    max_dynamic_models: usize,
    /// Model name -> when a request for it last succeeded, in ms since `origin`.
    dynamic_models: RwLock<HashMap<String, AtomicU64>>,
    origin: Instant,
}

/// How long a model's label slot stays without a successful request before another model may
/// take it.
pub const MODEL_SLOT_EXPIRY: Duration = Duration::from_secs(3600);

/// Label value of anything outside the allow-lists.
pub const OTHER: &str = "other";
/// Tenant of requests without a known API key.
pub const ANONYMOUS: &str = "anonymous";

impl LabelBounds {
    pub fn new(
        tenants: HashSet<String>,
        models: &[String],
        max_dynamic_models: usize,
        origin: Instant,
    ) -> Self {
        LabelBounds {
            tenants,
            models: models.iter().cloned().collect(),
            models_listed: !models.is_empty(),
            max_dynamic_models,
            dynamic_models: RwLock::new(HashMap::new()),
            origin,
        }
    }

    pub fn model_allowed(&self, model: &str) -> bool {
        !self.models_listed || self.models.contains(model)
    }

    /// The label of a request for `model` before it is answered: the name when it is listed or
    /// holds a slot, otherwise `other`.
    pub fn model(&self, model: &str) -> String {
        let known = if self.models_listed {
            self.models.contains(model)
        } else {
            self.dynamic_models.read().contains_key(model)
        };
        if known {
            model.to_string()
        } else {
            OTHER.into()
        }
    }

    /// A request for `model` succeeded at `now`: keeps its slot fresh, or gives it a free or
    /// expired one. Returns the label the request gets (`None`: it stays as it was).
    pub fn served(&self, model: &str, now: Instant) -> Option<String> {
        if self.models_listed || !valid_label_value(model) {
            return None;
        }
        let stamp = now.saturating_duration_since(self.origin).as_millis() as u64;
        if let Some(last) = self.dynamic_models.read().get(model) {
            last.store(stamp, Ordering::Relaxed);
            return Some(model.to_string());
        }
        let mut slots = self.dynamic_models.write();
        if slots.len() >= self.max_dynamic_models {
            let expiry = MODEL_SLOT_EXPIRY.as_millis() as u64;
            let stale = slots
                .iter()
                .filter(|(_, last)| stamp.saturating_sub(last.load(Ordering::Relaxed)) >= expiry)
                .min_by_key(|(_, last)| last.load(Ordering::Relaxed))
                .map(|(name, _)| name.clone());
            match stale {
                Some(name) => {
                    slots.remove(&name);
                }
                None => return None,
            }
        }
        slots.entry(model.to_string()).or_insert_with(|| AtomicU64::new(stamp));
        Some(model.to_string())
    }

    pub fn tenant(&self, tenant: &str) -> String {
        if self.tenants.contains(tenant) {
            tenant.to_string()
        } else {
            OTHER.into()
        }
    }
}

fn valid_label_value(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && !v.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_models_are_bounded_and_listed_models_are_exact() {
        let t0 = Instant::now();
        let b = LabelBounds::new(HashSet::new(), &[], 2, t0);
        // Asking is not taking: only served models get a slot.
        for junk in ["x1", "x2", "x3"] {
            assert_eq!(b.model(junk), OTHER);
        }
        assert_eq!(b.served("a", t0).as_deref(), Some("a"));
        assert_eq!(b.served("b", t0).as_deref(), Some("b"));
        assert_eq!(b.served("c", t0), None);
        assert_eq!(
            (b.model("a"), b.model("b"), b.model("c")),
            ("a".into(), "b".into(), OTHER.into())
        );
        // "a" keeps being served; "b" goes quiet and its slot expires to "c".
        let later = t0 + MODEL_SLOT_EXPIRY;
        assert_eq!(b.served("a", later - Duration::from_secs(1)).as_deref(), Some("a"));
        assert_eq!(b.served("c", later - Duration::from_secs(1)), None);
        assert_eq!(b.served("c", later).as_deref(), Some("c"));
        assert_eq!(
            (b.model("a"), b.model("b"), b.model("c")),
            ("a".into(), OTHER.into(), "c".into())
        );
        assert_eq!(b.served("bad\nname", later), None);
        assert!(b.model_allowed("zzz"));
        let listed = LabelBounds::new(["t".to_string()].into(), &["m".to_string()], 2, t0);
        assert_eq!(listed.served("x", t0), None);
        assert_eq!((listed.model("m"), listed.model("x")), ("m".into(), OTHER.into()));
        assert!(!listed.model_allowed("x"));
        assert_eq!(listed.model("x"), OTHER);
        assert_eq!(listed.tenant("t"), "t");
        assert_eq!(listed.tenant("u"), OTHER);
    }

    #[test]
    fn series_handles_are_cached_and_rendered() {
        let m = GatewayMetrics::new();
        let labels = RequestLabels {
            model: "m".into(),
            model_version: "v1".into(),
            pool: "blue".into(),
            endpoint: "/v1/chat/completions",
            tenant: "t".into(),
        };
        let a = m.series(&labels);
        a.ttft.observe(0.2);
        let b = m.series(&labels);
        assert!(Arc::ptr_eq(&a, &b));
        let text = m.registry().render(deepwatch_core::expo::Format::Text004);
        assert!(text.contains("deepwatch_time_to_first_token_seconds_count{model=\"m\",model_version=\"v1\",pool=\"blue\",endpoint=\"/v1/chat/completions\",tenant=\"t\"} 1"), "{text}");
        assert!(text.contains("deepwatch_build_info{version="), "{text}");
    }
}
