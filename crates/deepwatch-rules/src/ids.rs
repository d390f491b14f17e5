//! Identifiers every generated file agrees on: alert names that other files refer to
//! (inhibition, routes, dashboards, default remediation policies), Grafana dashboard uids,
//! and the example label sets the promtool cases use. A leaf module: the rule builders,
//! Alertmanager and Grafana generators import it, it imports nothing of theirs.

use crate::model::{labels, Labels};

/// Grafana dashboard uids; alerts link to them and dashboards link to each other.
pub const OVERVIEW: &str = "deepwatch-overview";
pub const RESOURCES: &str = "deepwatch-resources";
pub const MODEL: &str = "deepwatch-model";
pub const INCIDENTS: &str = "deepwatch-incidents";

/// The Pushgateway's own series (Unix time of each group's last push), allowed by the
/// expression check by name.
pub use deepwatch_core::promql::check::PUSH_TIME;

/// Alert names other generated files refer to (inhibition, route tests, dashboards).
pub mod names {
    pub const LATENCY: &str = "RequestLatencyCritical";
    pub const NODE_DOWN: &str = "NodeDown";
    pub const TARGET_DOWN: &str = "TargetDown";
    pub const TARGET_ABSENT: &str = "TargetAbsent";
    pub const MODEL_UNAVAILABLE: &str = "ModelUnavailable";
    pub const CANARY_FAILING: &str = "CanaryFailing";
    pub const GPU_UTILIZATION: &str = "GPUUtilizationHigh";
    pub const GPU_MEMORY: &str = "GPUMemoryHigh";
    pub const PERFORMANCE_DROP: &str = "PerformanceDrop";
    pub const ACCURACY_DROP: &str = "AccuracyDrop";
    pub const TENANT_BUDGET: &str = "TenantBudgetExceeded";
    /// Alerts about one node's GPUs, muted while that node is down.
    pub const GPU_ALERTS_RE: &str = "GPU.+";
}

/// `l(&[("a", "b")])`: owned label pairs (short, for the many example label sets).
pub fn l(pairs: &[(&str, &str)]) -> Labels {
    labels(pairs)
}

/// Labels of one series scraped from a node's agent.
pub fn node_example() -> Labels {
    l(&[("job", crate::prometheus::jobs::AGENT), ("instance", "gpu-node-1:9844")])
}

/// `node_example` plus `more`.
pub fn node_with(more: &[(&str, &str)]) -> Labels {
    let mut out = node_example();
    out.extend(l(more));
    out
}

/// Labels of one per-GPU series of a node.
pub fn gpu_example() -> Labels {
    node_with(&[("gpu", "0"), ("gpu_uuid", "GPU-0000"), ("gpu_name", "NVIDIA H100")])
}

/// `labels` plus `severity`.
pub fn fired(labels: &Labels, severity: &str) -> Labels {
    let mut out = labels.clone();
    out.push(("severity".into(), severity.into()));
    out
}

/// Labels of one request-level recorded series (`model`, `model_version`, `pool`).
pub fn req_example() -> Labels {
    l(&[("model", "deepseek-r1"), ("model_version", "v1"), ("pool", "blue")])
}
