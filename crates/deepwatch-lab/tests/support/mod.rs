//! Shared helpers of the lab's integration tests: a simulator on free loopback ports and SSE
//! parsing.

use deepwatch_core::config::sim::SimConfig;
use deepwatch_lab::sim::{self, SimHandle};
use serde_json::Value;

pub const TOKEN: &str = "test-token";

/// A zero-latency simulator on free ports, after `tweak`.
pub async fn start_sim(tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut config = SimConfig {
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        admin_token: TOKEN.into(),
        model: "sim-model".into(),
        ..SimConfig::default()
    }
    .zero_latency();
    tweak(&mut config);
    sim::start(config).await.expect("sim starts")
}

pub fn client() -> reqwest::Client {
    deepwatch_core::http::builder().no_proxy().build().unwrap()
}

/// The `data:` payloads of an SSE body, checking that every event ends with a blank line.
pub fn sse_data(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "SSE body must end with a blank line: {body:?}");
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data =
                e.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {e:?}"));
            assert!(!data.contains('\n'), "one line per event: {e:?}");
            data.to_string()
        })
        .collect()
}

/// Parsed JSON chunks of an SSE body (everything but the final `[DONE]`, which is checked).
pub fn sse_chunks(body: &str) -> Vec<Value> {
    let mut data = sse_data(body);
    assert_eq!(data.pop().as_deref(), Some("[DONE]"), "stream must end with [DONE]");
    data.iter().map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}"))).collect()
}

pub async fn put_faults(sim: &SimHandle, body: Value) -> reqwest::Response {
    client()
        .put(format!("{}/admin/faults", sim.admin_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub async fn reset(sim: &SimHandle) {
    let r = client()
        .post(format!("{}/admin/reset", sim.admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

pub async fn chat(sim: &SimHandle, body: Value) -> reqwest::Response {
    client().post(format!("{}/v1/chat/completions", sim.url())).json(&body).send().await.unwrap()
}

pub async fn metrics_text(sim: &SimHandle) -> String {
    client().get(format!("{}/metrics", sim.url())).send().await.unwrap().text().await.unwrap()
}

/// Value of the sample `name` whose labels include every pair of `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    use deepwatch_core::promtext::{parse, Dialect};
    let families = parse(text, Dialect::Text004).expect("metrics parse");
    families
        .iter()
        .flat_map(|f| f.samples.iter())
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
}
