//! Builds the agent from its config section: the enabled collectors in a fixed order, their
//! background tasks (RSS sampler, engine scrapers, log tailers, peer probes), and the HTTP
//! server. Dropping the `Agent` stops every background task.

use crate::collector::{Collector, CollectorSet};
use crate::engine::EngineCollector;
use crate::gpu::{self, GpuCollector, GpuError, GpuSource};
use crate::host::HostCollector;
use crate::logs::LogsCollector;
use crate::peers::PeersCollector;
use crate::process::{ProcFs, ProcessCollector};
use deepwatch_core::config::agent::AgentConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("invalid agent config: {0}")]
    Config(String),
    #[error("agent server failed: {0}")]
    Serve(std::io::Error),
}

pub struct Agent {
    collectors: Arc<CollectorSet>,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Builds every enabled collector with the real NVML, and starts background tasks. Must be
    /// called inside a tokio runtime.
    pub fn start(config: &AgentConfig) -> Result<Agent, AgentError> {
        if !config.collectors.gpu {
            return Agent::build(config, None, None);
        }
        let library = config.gpu.nvml_library.clone();
        let opener: gpu::GpuOpener = Arc::new(move || gpu::open_nvml(&library));
        Agent::build(config, Some(opener()), Some(opener))
    }

    /// Same as `start` with the GPU source given (a fake in tests); `None` disables the gpu
    /// collector.
    pub fn start_with_gpu(
        config: &AgentConfig,
        gpu_source: Option<Result<Arc<dyn GpuSource>, GpuError>>,
    ) -> Result<Agent, AgentError> {
        Agent::build(config, gpu_source, None)
    }

    fn build(
        config: &AgentConfig,
        gpu_source: Option<Result<Arc<dyn GpuSource>, GpuError>>,
        reopen: Option<gpu::GpuOpener>,
    ) -> Result<Agent, AgentError> {
        let mut collectors: Vec<Arc<dyn Collector>> = Vec::new();
        let mut tasks = Vec::new();
        if let Some(source) = gpu_source {
            if let Err(e) = &source {
                tracing::info!(error = %e, "no usable nvml; gpu collector reports down");
            }
            let mut c = GpuCollector::new(source, config.gpu.process_memory);
            if let Some(opener) = reopen {
                c = c.with_reopen(opener);
            }
            if config.gpu.xid_events {
                if let Err(e) = c.start_xid_watch() {
                    tracing::debug!(error = %e, "xid events not watched");
                }
            }
            collectors.push(Arc::new(c));
        }
        if config.collectors.host {
            let root = PathBuf::from(&config.procfs_root);
            collectors.push(Arc::new(HostCollector::with_proc_root(&config.host, root)));
        }
        if config.collectors.process {
            let procfs = ProcFs::with_root(PathBuf::from(&config.procfs_root));
            let c = Arc::new(ProcessCollector::new(&config.process, Arc::new(procfs)));
            tasks.push(c.spawn_sampler());
            collectors.push(c);
        }
        if config.collectors.engine {
            let c = EngineCollector::new(&config.engines)
                .map_err(|e| AgentError::Config(format!("http client: {e}")))?;
            tasks.extend(c.spawn());
            collectors.push(Arc::new(c));
        }
        if config.collectors.logs {
            let c = LogsCollector::new(&config.logs)
                .map_err(|e| AgentError::Config(format!("agent.logs: {e}")))?;
            tasks.extend(c.spawn());
            collectors.push(Arc::new(c));
        }
        if config.collectors.peers {
            let c = PeersCollector::new(&config.peers);
            tasks.extend(c.spawn());
            collectors.push(Arc::new(c));
        }
        let collectors = Arc::new(CollectorSet::new(collectors));
        if !config.push.url.is_empty() {
            let push = crate::push::start(&config.push, collectors.clone())
                .map_err(|e| AgentError::Config(format!("agent.push: {e}")))?;
            tasks.extend(push);
        }
        Ok(Agent { collectors, tasks })
    }

    pub fn collectors(&self) -> &Arc<CollectorSet> {
        &self.collectors
    }

    /// Binds `addr`; separate from `serve` so callers can report the bound port.
    pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, AgentError> {
        let parsed: SocketAddr = addr
            .parse()
            .map_err(|_| AgentError::Config(format!("listen address {addr:?} is not host:port")))?;
        tokio::net::TcpListener::bind(parsed)
            .await
            .map_err(|source| AgentError::Bind { addr: addr.to_string(), source })
    }

    /// Serves `/metrics` and `/healthz` on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AgentError> {
        let app = crate::server::router(self.collectors.clone());
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await.map_err(AgentError::Serve)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
