//! Lab: engine simulator, load generator, chaos scenarios and the demo. The simulator stands in
//! for vLLM (OpenAI API, vLLM metric names, fault knobs), the load generator measures TTFT, TPOT,
//! ITL and goodput the way `vllm bench serve` defines them, and chaos drives faults in simulators
//! and gateways over their admin APIs.
#![forbid(unsafe_code)]

pub mod chaos;
pub mod demo;
pub mod gameday;
pub mod load;
pub mod rng;
pub mod sim;

/// Parses a human duration (`500ms`, `30s`, `5m`, `1h 30m`) for command-line flags.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 500ms, 30s, 5m)"))
}

/// Pretty JSON of any serializable value, for command-line output.
pub fn to_json_pretty<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(value)
}
