//! Metrics emitted by the lab component.

#[allow(unused_imports)]
use super::{buckets, MetricSpec, MetricType};

pub const ALL: &[&MetricSpec] = &[];
