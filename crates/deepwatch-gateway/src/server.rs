//! Listeners and background tasks: binds the proxy and admin listeners, serves each connection
//! with hyper (HTTP/1.1 and h2c, a header-read timeout that also closes idle keep-alive
//! connections), and starts one health task per pool (`health::probe`).

use crate::proxy::relay::ClientAddr;
use crate::state::{BuildError, Shared};
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::gateway::GatewayConfig;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// hyper's own header-count limit, above the proxy's (`proxy::MAX_HEADERS`).
const HYPER_MAX_HEADERS: usize = 1024;

/// A running gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    proxy_addr: SocketAddr,
    admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// Builds the state from `cfg`, binds both listeners and starts serving. With more than one
    /// worker (`gateway.workers`, 0 = one per core) the proxy runs on that many threads, each
    /// with its own event loop and SO_REUSEPORT socket; admin, probes and rollouts stay here.
    pub async fn start(cfg: GatewayConfig, clock: SharedClock) -> Result<Gateway, BuildError> {
        let workers = match cfg.workers {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        };
        let admin_listener = bind("admin listener", &cfg.admin_listen).await?;
        if workers <= 1 {
            let proxy_listener = bind("proxy listener", &cfg.listen).await?;
            return Gateway::start_on(cfg, clock, proxy_listener, admin_listener).await;
        }
        let shared = Shared::build(cfg, clock)?;
        let (tx, rx) = watch::channel(false);
        let header_timeout = shared.cfg.client_header_timeout;
        let mut threads = Vec::new();
        let mut addr = shared.cfg.listen.clone();
        let mut proxy_addr = None;
        for i in 0..workers {
            let (bound_tx, bound_rx) = std::sync::mpsc::channel();
            let (shared2, rx2, addr2) = (shared.clone(), rx.clone(), addr.clone());
            let thread = std::thread::Builder::new()
                .name(format!("gateway-worker-{i}"))
                .spawn(move || worker(shared2, addr2, header_timeout, rx2, bound_tx))
                .map_err(|source| BuildError::Bind {
                    what: "proxy worker",
                    addr: addr.clone(),
                    source,
                })?;
            threads.push(thread);
            let bound =
                bound_rx.recv().unwrap_or_else(|_| Err(std::io::Error::other("worker exited")));
            let bound = bound.map_err(|source| BuildError::Bind {
                what: "proxy listener",
                addr: addr.clone(),
                source,
            })?;
            // Port 0 picks a port once; the other workers join that one.
            addr = bound.to_string();
            proxy_addr.get_or_insert(bound);
        }
        let admin_addr = admin_listener.local_addr().map_err(|source| BuildError::Bind {
            what: "admin listener",
            addr: String::new(),
            source,
        })?;
        let mut tasks = vec![tokio::spawn(serve(
            admin_listener,
            crate::admin::router(shared.clone()),
            header_timeout,
            rx.clone(),
        ))];
        for pool in shared.pools.all() {
            tasks.push(tokio::spawn(shared.prober.clone().run(pool.clone(), rx.clone())));
        }
        let proxy_addr = proxy_addr.unwrap_or(admin_addr);
        tracing::info!(%proxy_addr, %admin_addr, workers, pools = shared.pools.all().len(), "gateway listening");
        Ok(Gateway { shared, proxy_addr, admin_addr, shutdown: tx, tasks, threads })
    }

    /// Like `start`, on listeners the caller bound (tests bind port 0).
    pub async fn start_on(
        cfg: GatewayConfig,
        clock: SharedClock,
        proxy_listener: TcpListener,
        admin_listener: TcpListener,
    ) -> Result<Gateway, BuildError> {
        let shared = Shared::build(cfg, clock)?;
        let addr_of = |l: &TcpListener, what: &'static str| {
            l.local_addr().map_err(|source| BuildError::Bind { what, addr: String::new(), source })
        };
        let proxy_addr = addr_of(&proxy_listener, "proxy listener")?;
        let admin_addr = addr_of(&admin_listener, "admin listener")?;
        let (tx, rx) = watch::channel(false);
        let header_timeout = shared.cfg.client_header_timeout;
        let mut tasks = vec![
            tokio::spawn(serve(
                proxy_listener,
                crate::proxy::router(shared.clone()),
                header_timeout,
                rx.clone(),
            )),
            tokio::spawn(serve(
                admin_listener,
                crate::admin::router(shared.clone()),
                header_timeout,
                rx.clone(),
            )),
        ];
        for pool in shared.pools.all() {
            tasks.push(tokio::spawn(shared.prober.clone().run(pool.clone(), rx.clone())));
        }
        tracing::info!(%proxy_addr, %admin_addr, pools = shared.pools.all().len(), "gateway listening");
        Ok(Gateway { shared, proxy_addr, admin_addr, shutdown: tx, tasks, threads: Vec::new() })
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Reopens the request log (SIGHUP: logrotate's `postrotate`), whether or not the
    /// config reload that follows succeeds.
    pub fn reopen_logs(&self) {
        if let Some(log) = &self.shared.reqlog {
            log.reopen();
        }
    }

    /// Applies a changed config to the running gateway (see `reload`).
    pub fn reload(
        &self,
        cfg: &GatewayConfig,
    ) -> Result<crate::reload::ReloadReport, deepwatch_core::config::Problems> {
        crate::reload::apply(&self.shared, cfg)
    }

    /// Records a reload refused before it reached `reload` (the file did not parse).
    pub fn reload_refused(&self, why: &str) {
        crate::reload::refused(&self.shared, why)
    }

    /// Stops accepting connections and background tasks; running requests finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }

    /// Waits until the listeners stop (they do not on their own; for the CLI).
    pub async fn wait(&mut self) {
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, BuildError> {
    TcpListener::bind(addr).await.map_err(|source| BuildError::Bind {
        what,
        addr: addr.to_string(),
        source,
    })
}

/// One proxy worker: its own single-threaded event loop and SO_REUSEPORT socket.
fn worker(
    shared: Arc<Shared>,
    addr: String,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
    bound: std::sync::mpsc::Sender<std::io::Result<SocketAddr>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = bound.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match reuseport_listener(&addr) {
            Ok(l) => l,
            Err(e) => {
                let _ = bound.send(Err(e));
                return;
            }
        };
        let _ = bound.send(listener.local_addr());
        serve(listener, crate::proxy::router(shared), header_timeout, stop).await;
    });
}

fn reuseport_listener(addr: &str) -> std::io::Result<TcpListener> {
    let addr: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn serve(
    listener: TcpListener,
    app: axum::Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper answers too many headers with an empty 431; let them through to the proxy, which
    // answers in OpenAI's shape (`proxy::oversized_headers`).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .max_headers(HYPER_MAX_HEADERS);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                app.clone().oneshot(req)
            });
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
