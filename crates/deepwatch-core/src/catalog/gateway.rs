//! Metrics emitted by the gateway component.

#[allow(unused_imports)]
use super::{buckets, MetricSpec, MetricType};

pub const ALL: &[&MetricSpec] = &[];
