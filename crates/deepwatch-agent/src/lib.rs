//! Node agent: GPU (NVML), host, process, inference-engine, log and peer-latency collectors served on /metrics.
#![forbid(unsafe_code)]
