//! OpenAI-compatible streaming gateway: pools, failover, rollouts, token accounting, sensitive-data scanner, fault injection.
#![forbid(unsafe_code)]
