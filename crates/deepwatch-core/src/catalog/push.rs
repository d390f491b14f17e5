//! Metrics emitted by the push component.

#[allow(unused_imports)]
use super::{buckets, MetricSpec, MetricType};

pub const ALL: &[&MetricSpec] = &[];
