//! Metrics emitted by the agent component.

#[allow(unused_imports)]
use super::{buckets, MetricSpec, MetricType};

pub const ALL: &[&MetricSpec] = &[];
