//! The lab's integration tests (simulator, load generator, chaos), one binary (ARCHITECTURE.md,
//! Conventions); helpers in `support/`.

mod support;

mod chaos;
mod load;
mod sim_api;
mod sim_engine;
mod sim_faults;
mod sim_leak;
mod sim_prometheus;
