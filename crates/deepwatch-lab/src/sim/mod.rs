//! The inference-engine simulator (`deepwatch sim`): an OpenAI-compatible server with vLLM's
//! `/metrics`, a latency model (TTFT grows with prompt length and queueing, TPOT with the number
//! of running sequences), admission limits (running sequences, KV-cache tokens) and fault knobs
//! behind a token-protected admin API. It is a test double for real engines: the agent, gateway
//! and analyzer see it as they see vLLM.

pub mod admin;
pub mod api;
pub mod engine;
pub mod faults;
pub mod metrics;
pub mod server;
pub mod tokens;

pub use faults::Faults;

use deepwatch_core::config::sim::SimConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid sim config:\n{0}")]
    Config(deepwatch_core::config::Problems),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

/// A running simulator. Dropping it stops every task and closes both listeners.
pub struct SimHandle {
    /// Address of the OpenAI API and `/metrics`.
    pub addr: SocketAddr,
    /// Address of the admin API.
    pub admin_addr: SocketAddr,
    /// Bearer token of the admin API.
    pub token: String,
    pub engine: Arc<engine::Engine>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimHandle {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// Waits until the simulator stops (it only stops through `stop` or drop).
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts a simulator: validates the config, binds both listeners (port 0 picks a free port)
/// and spawns the servers, the engine heartbeat and the leak driver.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    let mut problems = deepwatch_core::config::Problems::default();
    config.validate(&deepwatch_core::config::Path::root("sim"), &mut problems);
    if !problems.is_empty() {
        return Err(SimError::Config(problems));
    }
    let token =
        if config.admin_token.is_empty() { random_token() } else { config.admin_token.clone() };
    let bind = |addr: &str| -> Result<tokio::net::TcpListener, SimError> {
        let bad = |source| SimError::Bind { addr: addr.to_string(), source };
        let parsed: SocketAddr =
            addr.parse().map_err(|_| bad(std::io::ErrorKind::InvalidInput.into()))?;
        server::bind(parsed).map_err(bad)
    };
    let main_listener = bind(&config.listen)?;
    let admin_listener = bind(&config.admin_listen)?;
    let map_local = |l: &tokio::net::TcpListener, addr: &str| {
        l.local_addr().map_err(|source| SimError::Bind { addr: addr.to_string(), source })
    };
    let addr = map_local(&main_listener, &config.listen)?;
    let admin_addr = map_local(&admin_listener, &config.admin_listen)?;

    let engine = engine::Engine::new(config);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    let api = api::router(engine.clone());
    tasks.push(tokio::spawn(server::serve_main(
        engine.clone(),
        api,
        main_listener,
        addr,
        shutdown_rx.clone(),
    )));

    let admin = admin::router(engine.clone(), &token);
    let mut admin_shutdown = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        let stop = async move {
            let _ = admin_shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(admin_listener, admin).with_graceful_shutdown(stop).await {
            tracing::error!(%error, "sim admin server failed");
        }
    }));

    let heartbeat = engine.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(heartbeat.step_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            heartbeat.record_step();
        }
    }));

    let leaker = engine.clone();
    tasks.push(tokio::spawn(async move {
        let period = Duration::from_secs(1);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let rate = leaker.faults.borrow().leak_mb_per_min;
            leaker.leak.grow(rate, period.as_secs_f64());
        }
    }));

    tracing::info!(%addr, %admin_addr, model = %engine.config.model, "sim listening");
    Ok(SimHandle { addr, admin_addr, token, engine, shutdown, tasks })
}

/// A 128-bit random hex token from the kernel's generator.
fn random_token() -> String {
    use std::io::Read;
    let mut buf = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
