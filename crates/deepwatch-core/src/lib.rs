//! Shared foundation of deepwatch: every metric name we emit (the catalog), the `deepwatch.toml`
//! schema and its validation, the Prometheus text formats (writer and parser), the PromQL
//! builder and checker, the injectable clock, the error codes that map to HTTP statuses, and
//! the wire contracts between processes (`api`). Component crates depend only on this crate and
//! talk to each other over HTTP, as they do in production.
#![forbid(unsafe_code)]

pub mod api;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod engines;
pub mod error;
pub mod expo;
pub mod http;
pub mod metrics;
pub mod promql;
pub mod promtext;
pub mod remote_write;
pub mod shard;
