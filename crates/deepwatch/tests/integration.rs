//! End-to-end tests of the `deepwatch` binary with real Prometheus, Alertmanager and the
//! simulator, one binary (ARCHITECTURE.md, Conventions); helpers in `support/`.

mod support;

mod alerts;
mod cost;
mod demo;
mod drift;
mod failover;
mod gateway_limits;
mod hung_engine;
mod load_https;
mod packaging;
mod push;
mod real_engine;
mod reqlog_rotate;
mod scaleout;
mod structure;
mod webhook_crash;
