//! Metrics emitted by the analyzer component.

#[allow(unused_imports)]
use super::{buckets, MetricSpec, MetricType};

pub const ALL: &[&MetricSpec] = &[];
