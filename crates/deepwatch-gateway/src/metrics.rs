//! The gateway's live metric families (all from `deepwatch_core::catalog::gateway`), the bounded
//! label values they carry, and a cache of per-series handles so the request path does one map
//! look-up per request instead of one per family.

use deepwatch_core::catalog::common::BUILD_INFO;
use deepwatch_core::catalog::gateway as cat;
use deepwatch_core::metrics::{Counter, CounterVec, GaugeVec, Histogram, HistogramVec, Registry};
use parking_lot::RwLock;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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
    pub request_duration: HistogramVec,
    pub ttft: HistogramVec,
    pub tpot: HistogramVec,
    pub itl: HistogramVec,
    pub overhead: HistogramVec,
    pub prompt_tokens: CounterVec,
    pub completion_tokens: CounterVec,
    pub reasoning_tokens: CounterVec,
    pub requests: CounterVec,
    pub in_flight: GaugeVec,
    pub retries: CounterVec,
    pub response_completion_tokens: HistogramVec,
    pub response_reasoning_share: HistogramVec,
    pub finish_reason: CounterVec,
    pub upstream_up: GaugeVec,
    pub upstream_error_ratio: GaugeVec,
    pub pool_weight: GaugeVec,
    pub pool_active: GaugeVec,
    pub failovers: CounterVec,
    pub deploy_events: CounterVec,
    pub deploy_last_event: GaugeVec,
    pub rollout_step: GaugeVec,
    pub sensitive: CounterVec,
    pub faults: CounterVec,
    pub degrade: GaugeVec,
    pub keepalives: CounterVec,
    build_info: GaugeVec,
    series: RwLock<HashMap<String, Arc<Series>>>,
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
    pub fn values(&self) -> [&str; 5] {
        [&self.model, &self.model_version, &self.pool, self.endpoint, &self.tenant]
    }
}

impl GatewayMetrics {
    pub fn new() -> Arc<Self> {
        let m = GatewayMetrics {
            request_duration: HistogramVec::new(&cat::REQUEST_DURATION),
            ttft: HistogramVec::new(&cat::TIME_TO_FIRST_TOKEN),
            tpot: HistogramVec::new(&cat::TIME_PER_OUTPUT_TOKEN),
            itl: HistogramVec::new(&cat::INTER_TOKEN_LATENCY),
            overhead: HistogramVec::new(&cat::GATEWAY_OVERHEAD),
            prompt_tokens: CounterVec::new(&cat::PROMPT_TOKENS),
            completion_tokens: CounterVec::new(&cat::COMPLETION_TOKENS),
            reasoning_tokens: CounterVec::new(&cat::REASONING_TOKENS),
            requests: CounterVec::new(&cat::REQUESTS),
            in_flight: GaugeVec::new(&cat::REQUESTS_IN_FLIGHT),
            retries: CounterVec::new(&cat::RETRIES),
            response_completion_tokens: HistogramVec::new(&cat::RESPONSE_COMPLETION_TOKENS),
            response_reasoning_share: HistogramVec::new(&cat::RESPONSE_REASONING_SHARE),
            finish_reason: CounterVec::new(&cat::RESPONSE_FINISH_REASON),
            upstream_up: GaugeVec::new(&cat::UPSTREAM_UP),
            upstream_error_ratio: GaugeVec::new(&cat::UPSTREAM_ERROR_RATIO),
            pool_weight: GaugeVec::new(&cat::POOL_WEIGHT),
            pool_active: GaugeVec::new(&cat::POOL_ACTIVE),
            failovers: CounterVec::new(&cat::FAILOVERS),
            deploy_events: CounterVec::new(&cat::DEPLOY_EVENTS),
            deploy_last_event: GaugeVec::new(&cat::DEPLOY_LAST_EVENT),
            rollout_step: GaugeVec::new(&cat::ROLLOUT_STEP),
            sensitive: CounterVec::new(&cat::SENSITIVE_MATCHES),
            faults: CounterVec::new(&cat::FAULTS_INJECTED),
            degrade: GaugeVec::new(&cat::DEGRADE_ACTIVE),
            keepalives: CounterVec::new(&cat::KEEPALIVES),
            build_info: GaugeVec::new(&BUILD_INFO),
            series: RwLock::new(HashMap::new()),
        };
        m.build_info.set(&[env!("CARGO_PKG_VERSION"), "gateway"], 1.0);
        m.degrade.set(&["max_tokens_cap"], 0.0);
        m.degrade.set(&["tenant_rate_limit"], 0.0);
        Arc::new(m)
    }

    /// Handles for one request identity (created on first use, then cached).
    pub fn series(&self, labels: &RequestLabels) -> Arc<Series> {
        let key = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            labels.model, labels.model_version, labels.pool, labels.endpoint, labels.tenant
        );
        if let Some(s) = self.series.read().get(&key) {
            return s.clone();
        }
        let v = labels.values();
        let dist = [v[0], v[1], v[2]];
        let s = Arc::new(Series {
            ttft: self.ttft.with(&v),
            tpot: self.tpot.with(&v),
            itl: self.itl.with(&v),
            overhead: self.overhead.with(&[v[0], v[2], v[3]]),
            prompt_tokens: self.prompt_tokens.with(&v),
            completion_tokens: self.completion_tokens.with(&v),
            reasoning_tokens: self.reasoning_tokens.with(&v),
            completion_dist: self.response_completion_tokens.with(&dist),
            reasoning_share: self.response_reasoning_share.with(&dist),
        });
        self.series.write().entry(key).or_insert(s).clone()
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
        m.build_info.encode(sink);
        m.request_duration.encode(sink);
        m.ttft.encode(sink);
        m.tpot.encode(sink);
        m.itl.encode(sink);
        m.overhead.encode(sink);
        m.prompt_tokens.encode(sink);
        m.completion_tokens.encode(sink);
        m.reasoning_tokens.encode(sink);
        m.requests.encode(sink);
        m.in_flight.encode(sink);
        m.retries.encode(sink);
        m.response_completion_tokens.encode(sink);
        m.response_reasoning_share.encode(sink);
        m.finish_reason.encode(sink);
        m.upstream_up.encode(sink);
        m.upstream_error_ratio.encode(sink);
        m.pool_weight.encode(sink);
        m.pool_active.encode(sink);
        m.failovers.encode(sink);
        m.deploy_events.encode(sink);
        m.deploy_last_event.encode(sink);
        m.rollout_step.encode(sink);
        m.sensitive.encode(sink);
        m.faults.encode(sink);
        m.degrade.encode(sink);
        m.keepalives.encode(sink);
    }
}

/// Bounds label values: configured allow-lists, or the first N names seen, then `other`.
pub struct LabelBounds {
    tenants: HashSet<String>,
    models: HashSet<String>,
    /// Models must be listed (unknown ones are rejected) when the list is non-empty.
    pub models_listed: bool,
    max_dynamic_models: usize,
    dynamic_models: RwLock<HashSet<String>>,
}

pub const OTHER: &str = "other";

impl LabelBounds {
    pub fn new(tenants: HashSet<String>, models: &[String], max_dynamic_models: usize) -> Self {
        LabelBounds {
            tenants,
            models: models.iter().cloned().collect(),
            models_listed: !models.is_empty(),
            max_dynamic_models,
            dynamic_models: RwLock::new(HashSet::new()),
        }
    }

    pub fn model_allowed(&self, model: &str) -> bool {
        !self.models_listed || self.models.contains(model)
    }

    pub fn model(&self, model: &str) -> String {
        if self.models_listed {
            return if self.models.contains(model) { model.to_string() } else { OTHER.into() };
        }
        if self.dynamic_models.read().contains(model) {
            return model.to_string();
        }
        let mut seen = self.dynamic_models.write();
        if seen.len() < self.max_dynamic_models && valid_label_value(model) {
            seen.insert(model.to_string());
            return model.to_string();
        }
        OTHER.into()
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
        let b = LabelBounds::new(HashSet::new(), &[], 2);
        assert_eq!(b.model("a"), "a");
        assert_eq!(b.model("b"), "b");
        assert_eq!(b.model("c"), OTHER);
        assert_eq!(b.model("a"), "a");
        assert!(b.model_allowed("zzz"));
        let listed = LabelBounds::new(["t".to_string()].into(), &["m".to_string()], 2);
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
