//! Integration tests of the gateway against in-test upstreams that speak the OpenAI wire format
//! as vLLM does. Real loopback servers; paused time where the logic is about timing. One binary
//! (ARCHITECTURE.md, Conventions); helpers in `support/`.

mod support;

mod admin;
mod admin_client;
mod bad_input;
mod config;
mod failover;
mod headers;
mod hung;
mod keepalive;
mod limits;
mod pin;
mod proxy;
mod rollout;
mod scanner;
mod sdk;
mod secrets;
mod upstream_tls;
