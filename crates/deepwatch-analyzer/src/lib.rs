//! Analyzer: pulls from Prometheus (never from components directly), keeps seasonal baselines
//! and detectors, ranks root causes, and heals: Alertmanager webhooks drive remediation actions
//! through the gateway admin API, Kubernetes or hooks, every action audited.
#![forbid(unsafe_code)]

// --- analytics: Prometheus client, baselines, detectors, offline scoring, root cause ---
pub mod baseline;
pub mod detect;
pub mod offline;
pub mod prom;
pub mod rca;

pub use detect::online::Analytics;

// --- operations: webhook receiver, remediation, notifications, probes, capacity, daemon ---
pub mod capacity;
pub mod notify;
pub mod probe;
pub mod remediate;
pub mod server;
pub mod webhook;
