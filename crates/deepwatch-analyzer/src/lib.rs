//! Analyzer: Prometheus API client, baselines and detectors, root-cause ranking, remediation, Alertmanager webhook.
#![forbid(unsafe_code)]
