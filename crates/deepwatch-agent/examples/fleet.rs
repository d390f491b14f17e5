//! A simulated fleet for the scale benchmark (bench/fleet.sh, docs/scaling.md): `fleet
//! --nodes N --gpus G --listen ADDR --targets FILE` runs N real agents in one process, each with
//! G fake H100s (NVML's stand-in), the host and process collectors, and one engine collector
//! scraping a real vLLM 0.12 `/metrics` payload (the agent's test fixture, served here at
//! `/engine/metrics`). Node `i` answers at `/node/<i>/metrics`; FILE gets a Prometheus file_sd
//! list with one target per node (`instance="gpu-node-<i>:9844"`). Runs until SIGINT/SIGTERM.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use deepwatch_agent::gpu::fake::FakeGpus;
use deepwatch_agent::gpu::GpuSource;
use deepwatch_agent::Agent;
use deepwatch_core::config::agent::{AgentConfig, EngineConfig, EngineKind};
use deepwatch_core::expo::Format;
use std::sync::Arc;

const VLLM: &str = include_str!("../tests/fixtures/vllm_v0_12.txt");

struct Args {
    nodes: usize,
    gpus: u32,
    listen: String,
    targets: String,
    engine_interval_ms: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        nodes: 1000,
        gpus: 8,
        listen: "127.0.0.1:0".into(),
        targets: "fleet-targets.json".into(),
        engine_interval_ms: 5000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag}: not a number: {v}"));
        match flag.as_str() {
            "--nodes" => a.nodes = number(&value)? as usize,
            "--gpus" => a.gpus = number(&value)? as u32,
            "--listen" => a.listen = value,
            "--targets" => a.targets = value,
            "--engine-interval-ms" => a.engine_interval_ms = number(&value)?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

fn node_config(engine_url: &str, engine_interval_ms: u64) -> AgentConfig {
    let mut c = AgentConfig::default();
    c.collectors.logs = false;
    c.collectors.peers = false;
    c.gpu.xid_events = false;
    c.engines.push(EngineConfig {
        name: "engine-0".into(),
        url: engine_url.to_string(),
        kind: EngineKind::Vllm,
        interval: std::time::Duration::from_millis(engine_interval_ms),
        ..EngineConfig::default()
    });
    c
}

async fn node_metrics(
    State(agents): State<Arc<Vec<Agent>>>,
    Path(index): Path<usize>,
) -> axum::response::Response {
    let Some(agent) = agents.get(index) else {
        return (axum::http::StatusCode::NOT_FOUND, "no such node\n").into_response();
    };
    let body = agent.collectors().scrape(Format::Text004).await;
    ([(header::CONTENT_TYPE, Format::Text004.content_type())], body).into_response()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fleet: {e}\nusage: fleet [--nodes N] [--gpus G] [--listen ADDR] [--targets FILE] [--engine-interval-ms MS]");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = tokio::net::TcpListener::bind(&args.listen).await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let engine_url = format!("http://{addr}/engine/metrics");
    let mut agents = Vec::with_capacity(args.nodes);
    for _ in 0..args.nodes {
        let source: Arc<dyn GpuSource> = FakeGpus::healthy(args.gpus);
        let config = node_config(&engine_url, args.engine_interval_ms);
        agents.push(Agent::start_with_gpu(&config, Some(Ok(source))).expect("agent"));
    }
    let targets: Vec<serde_json::Value> = (0..args.nodes)
        .map(|i| {
            serde_json::json!({
                "targets": [addr.to_string()],
                "labels": {"__metrics_path__": format!("/node/{i}/metrics"),
                           "instance": format!("gpu-node-{i:04}:9844")}
            })
        })
        .collect();
    std::fs::write(&args.targets, serde_json::to_string(&targets).expect("json")).expect("write");
    let app = Router::new()
        .route("/node/{index}/metrics", get(node_metrics))
        .route(
            "/engine/metrics",
            get(|| async { ([(header::CONTENT_TYPE, Format::Text004.content_type())], VLLM) }),
        )
        .with_state(Arc::new(agents));
    eprintln!(
        "fleet: {} nodes x {} GPUs on http://{addr}, targets in {}",
        args.nodes, args.gpus, args.targets
    );
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.expect("serve");
    std::process::ExitCode::SUCCESS
}
