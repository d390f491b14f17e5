//! The agent's integration tests, one binary (ARCHITECTURE.md, Conventions): each module a
//! concern, helpers in `support/`.

mod support;

mod bad_input;
mod batch_push;
mod prometheus_e2e;
mod push_remote_write;
