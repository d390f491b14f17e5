//! Typed label sets. Each metric family takes one struct whose fields are named as the catalog
//! names its labels; the family checks those names against its catalog entry when it is built,
//! so a value can never land under another label by position (linkerd2-proxy's
//! `EncodeLabelSet` does the same job).

use deepwatch_core::catalog::MetricSpec;
use deepwatch_core::metrics::{Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramVec};
use std::marker::PhantomData;

/// The labels of one metric family: a marker type naming them, and the struct carrying values.
pub trait LabelSet: 'static {
    /// Label names in catalog order.
    const NAMES: &'static [&'static str];
    /// The values, borrowed from the caller.
    type Values<'a>;
    /// Calls `f` with the values in `NAMES` order (on the stack: no allocation).
    fn visit<R>(values: &Self::Values<'_>, f: impl FnOnce(&[&str]) -> R) -> R;
}

/// Defines a label set: `labels!(Marker => Values { a, b, c })` makes `Values<'a>` with one
/// `&'a str` field per label, in catalog order.
macro_rules! labels {
    ($(#[$doc:meta])* $marker:ident => $values:ident { $($field:ident),+ $(,)? }) => {
        $(#[$doc])*
        pub struct $marker;

        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $values<'a> {
            $(pub $field: &'a str),+
        }

        impl $crate::metrics::labels::LabelSet for $marker {
            const NAMES: &'static [&'static str] = &[$(stringify!($field)),+];
            type Values<'a> = $values<'a>;
            fn visit<R>(v: &$values<'_>, f: impl FnOnce(&[&str]) -> R) -> R {
                f(&[$(v.$field),+])
            }
        }
    };
}

fn check<L: LabelSet>(spec: &'static MetricSpec) {
    assert_eq!(
        spec.labels,
        L::NAMES,
        "{}: the label struct does not name the catalog's labels in order",
        spec.name
    );
}

/// A counter family with typed labels.
pub struct Counters<L>(CounterVec, PhantomData<L>);

impl<L: LabelSet> Counters<L> {
    pub fn new(spec: &'static MetricSpec) -> Self {
        check::<L>(spec);
        Counters(CounterVec::new(spec), PhantomData)
    }
    pub fn with(&self, v: &L::Values<'_>) -> Counter {
        L::visit(v, |s| self.0.with(s))
    }
    pub fn inc(&self, v: &L::Values<'_>) {
        L::visit(v, |s| self.0.inc(s))
    }
    pub fn get(&self, v: &L::Values<'_>) -> f64 {
        L::visit(v, |s| self.0.get(s))
    }
    pub fn family(&self) -> &CounterVec {
        &self.0
    }
}

/// A gauge family with typed labels.
pub struct Gauges<L>(GaugeVec, PhantomData<L>);

impl<L: LabelSet> Gauges<L> {
    pub fn new(spec: &'static MetricSpec) -> Self {
        check::<L>(spec);
        Gauges(GaugeVec::new(spec), PhantomData)
    }
    pub fn with(&self, v: &L::Values<'_>) -> Gauge {
        L::visit(v, |s| self.0.with(s))
    }
    pub fn set(&self, v: &L::Values<'_>, value: f64) {
        L::visit(v, |s| self.0.set(s, value))
    }
    pub fn get(&self, v: &L::Values<'_>) -> f64 {
        L::visit(v, |s| self.0.get(s))
    }
    pub fn remove(&self, v: &L::Values<'_>) {
        L::visit(v, |s| self.0.remove(s))
    }
    pub fn family(&self) -> &GaugeVec {
        &self.0
    }
}

/// A histogram family with typed labels.
pub struct Histograms<L>(HistogramVec, PhantomData<L>);

impl<L: LabelSet> Histograms<L> {
    pub fn new(spec: &'static MetricSpec) -> Self {
        check::<L>(spec);
        Histograms(HistogramVec::new(spec), PhantomData)
    }
    pub fn with(&self, v: &L::Values<'_>) -> Histogram {
        L::visit(v, |s| self.0.with(s))
    }
    pub fn observe(&self, v: &L::Values<'_>, value: f64) {
        L::visit(v, |s| self.0.observe(s, value))
    }
    pub fn family(&self) -> &HistogramVec {
        &self.0
    }
}

labels!(
    /// A request's identity (`catalog::gateway::REQUEST_LABELS`).
    Request => RequestIds { model, model_version, pool, endpoint, tenant }
);
labels!(
    /// A request's identity and how it ended.
    RequestOutcome => RequestOutcomeIds { model, model_version, pool, endpoint, tenant, outcome }
);
labels!(
    /// A request's identity, how it ended and its status code.
    RequestCode => RequestCodeIds { model, model_version, pool, endpoint, tenant, outcome, code }
);
labels!(
    /// The gateway-overhead histogram's identity.
    Overhead => OverheadIds { model, pool, endpoint }
);
labels!(
    /// Distributions of successful responses.
    Response => ResponseIds { model, model_version, pool }
);
labels!(
    /// Finish reasons of successful responses.
    FinishReason => FinishReasonIds { model, model_version, pool, finish_reason }
);
labels!(
    /// Spend on tokens.
    Spend => SpendIds { tenant, model, pool }
);
labels!(
    /// Families about one tenant.
    TenantLabel => TenantIds { tenant }
);
labels!(
    /// Families about one pool.
    PoolLabel => PoolIds { pool }
);
labels!(
    /// A pool and why something happened to it (retries, failovers).
    PoolReason => PoolReasonIds { pool, reason }
);
labels!(
    /// A pool and a deploy event.
    PoolEvent => PoolEventIds { pool, event }
);
labels!(
    /// One upstream of a pool.
    UpstreamLabel => UpstreamIds { pool, upstream }
);
labels!(
    /// A sensitive-data match.
    Sensitive => SensitiveIds { tenant, kind, direction, action }
);
labels!(
    /// An injected fault.
    Fault => FaultIds { endpoint, kind }
);
labels!(
    /// A kind of degradation.
    DegradeKind => DegradeIds { kind }
);
labels!(
    /// Which of a pair of limits (`soft`, `hard`).
    LimitKind => LimitKindIds { kind }
);
labels!(
    /// The build-info gauge.
    Build => BuildIds { version, component }
);

#[cfg(test)]
mod tests {
    use super::*;
    use deepwatch_core::catalog::gateway as cat;

    #[test]
    #[should_panic(expected = "does not name the catalog's labels in order")]
    fn a_label_struct_out_of_catalog_order_is_refused() {
        labels!(Swapped => SwappedIds { pool, model, endpoint });
        let _ = Counters::<Swapped>::new(&cat::GATEWAY_OVERHEAD);
    }

    #[test]
    fn values_go_under_their_own_names() {
        let h = Histograms::<Overhead>::new(&cat::GATEWAY_OVERHEAD);
        h.observe(&OverheadIds { model: "m", pool: "blue", endpoint: "/v1/models" }, 0.001);
        let mut sink = deepwatch_core::expo::MetricSink::new(deepwatch_core::expo::Format::Text004);
        deepwatch_core::metrics::Encode::encode(h.family(), &mut sink);
        let text = sink.render();
        assert!(text.contains(r#"{model="m",pool="blue",endpoint="/v1/models",le="#), "{text}");
    }
}
