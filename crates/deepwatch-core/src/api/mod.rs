//! Contracts between deepwatch processes, defined once and used by both sides: bearer tokens,
//! the OpenAI wire format, the gateway admin API (`docs/gateway-admin-api.md`) and its client,
//! and the Pushgateway client. The error body is `crate::error::ErrorBody`.

pub mod admin;
pub mod bearer;
pub mod openai;
pub mod pushgateway;
