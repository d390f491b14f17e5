//! OpenAI-compatible streaming gateway: pools with weights and priorities, passive and active
//! health, failover, retries, rollouts with canary analysis, token accounting and latency
//! metrics (TTFT, TPOT, inter-token gap, overhead), a sensitive-data scanner, fault injection,
//! degradation, and an admin API on its own listener. `Gateway::start` runs it all.
#![forbid(unsafe_code)]

pub mod admin;
pub mod degrade;
pub mod error;
pub mod events;
pub mod faults;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod pools;
pub mod proxy;
pub mod reload;
pub mod reqlog;
pub mod rollout;
pub mod scanner;
pub mod server;
pub mod sse;
pub mod state;
pub mod util;

pub use server::Gateway;
pub use state::{BuildError, Shared};
