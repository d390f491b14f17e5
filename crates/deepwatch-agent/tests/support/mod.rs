//! Shared by the agent's integration tests: a fixture engine (an HTTP server speaking the
//! engines' real exposition text) and an agent started on a free port.

use axum::routing::get;
use axum::Router;
use deepwatch_agent::Agent;
use deepwatch_core::config::agent::AgentConfig;
use std::net::SocketAddr;
use std::sync::Arc;

pub const VLLM: &str = include_str!("../fixtures/vllm_v0_12.txt");

/// Serves `router` on a free loopback port until the test ends.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// An engine answering `/metrics` with the vLLM fixture.
pub async fn vllm_engine() -> SocketAddr {
    serve(Router::new().route(
        "/metrics",
        get(|| async { ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], VLLM) }),
    ))
    .await
}

/// A running agent and the address it serves on.
pub struct RunningAgent {
    pub agent: Arc<Agent>,
    pub addr: SocketAddr,
}

pub async fn start_agent(config: &AgentConfig) -> RunningAgent {
    let agent = Arc::new(Agent::start(config).expect("agent starts"));
    let listener = Agent::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let a = agent.clone();
    tokio::spawn(async move {
        let _ = a.serve(listener, std::future::pending()).await;
    });
    RunningAgent { agent, addr }
}

pub async fn get_metrics(addr: SocketAddr, accept: Option<&str>) -> (String, String) {
    let client = deepwatch_testkit::http_client();
    let mut req = client.get(format!("http://{addr}/metrics"));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.expect("agent answers /metrics");
    assert!(resp.status().is_success());
    let ct = resp.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    (ct, resp.text().await.unwrap())
}
