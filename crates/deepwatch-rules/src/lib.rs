//! Generator: Prometheus rules and promtool tests, Alertmanager config, Grafana dashboards, Kubernetes manifests, long-term storage.
#![forbid(unsafe_code)]
