//! Lab: engine simulator, load generator, chaos scenarios and the demo. The simulator stands in
//! for vLLM (OpenAI API, vLLM metric names, fault knobs), the load generator measures TTFT, TPOT,
//! ITL and goodput the way `vllm bench serve` defines them, and chaos drives faults in simulators
//! and gateways over their admin APIs.
#![forbid(unsafe_code)]

pub mod rng;
pub mod sim;
