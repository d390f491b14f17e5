//! The deepwatch node agent: one long-lived process per GPU node that serves `/metrics` and
//! `/healthz`. Every collector (gpu, host, process, engine, logs, peers) implements one trait,
//! `Collector`; the server wraps each run with `deepwatch_collector_up{collector}` and
//! `deepwatch_collector_duration_seconds{collector}`. Host, process and GPU values are read at
//! scrape time; engines, logs and peers are watched by background tasks whose latest state the
//! scrape reads, so a slow or dead source never delays `/metrics`.
#![forbid(unsafe_code)]

pub mod agent;
pub mod collector;
pub mod engine;
pub mod gpu;
pub mod host;
pub mod logs;
pub mod peers;
pub mod process;
pub mod push;
pub mod server;

pub use agent::{Agent, AgentError};
pub use collector::{CollectError, Collector};
