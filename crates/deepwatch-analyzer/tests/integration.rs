//! The analyzer's integration tests, one binary (ARCHITECTURE.md, Conventions): `analytics_*`
//! exercise detectors, baselines and RCA; `ops_*` the daemon, remediation, notifications and
//! probes. Helpers (a daemon on loopback, a mock gateway admin API) in `support/`.

mod support;

mod analytics_detectors;
mod analytics_offline;
mod analytics_prometheus;
mod analytics_prometheus_tls;
mod analytics_rca;
mod ops_actions;
mod ops_capacity;
mod ops_config;
mod ops_daemon;
#[cfg(feature = "k8s")]
mod ops_k8s;
mod ops_notify;
mod ops_probe;
mod ops_shard;
mod ops_webhook;
