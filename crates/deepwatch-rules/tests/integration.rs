//! The rules generator's integration tests, one binary (ARCHITECTURE.md, Conventions): drift of
//! `deploy/`, catalog checks, signal coverage, Grafana's dashboard schema, promtool and amtool
//! runs, Kubernetes schemas, systemd units.

mod catalog;
mod coverage;
mod dashboards;
mod drift;
mod kube;
mod remediation;
mod systemd;
mod tools;
