//! Listeners of the simulator. The main listener is served by a hand-written accept loop so the
//! `down` fault can really close the socket (new connections are refused, open ones are cut)
//! and reopen it on the same address when the fault clears; the admin listener is a plain
//! axum server that is never taken down.

use super::engine::Engine;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

/// Binds with `SO_REUSEADDR` (so the address can be reopened at once after `down`) and a
/// backlog large enough for load tests.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves `router` on `listener` until `shutdown` turns true, closing and reopening the socket as
/// the engine's `down` fault says.
pub async fn serve_main(
    engine: Arc<Engine>,
    router: Router,
    listener: TcpListener,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut faults = engine.faults.subscribe();
    let (kill, _) = watch::channel(0u64);
    let mut listener = Some(listener);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let down = faults.borrow_and_update().down;
        if down {
            if listener.take().is_some() {
                kill.send_modify(|generation| *generation += 1);
                tracing::info!(%addr, "sim main listener down");
            }
            tokio::select! {
                _ = faults.changed() => continue,
                _ = shutdown.changed() => break,
            }
        }
        let Some(l) = listener.as_ref() else {
            match bind(addr) {
                Ok(l) => {
                    tracing::info!(%addr, "sim main listener up");
                    listener = Some(l);
                }
                Err(error) => {
                    tracing::warn!(%addr, %error, "sim main listener rebind failed, retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        tokio::select! {
            accepted = l.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                spawn_connection(stream, router.clone(), kill.subscribe());
            }
            _ = faults.changed() => {}
            _ = shutdown.changed() => break,
        }
    }
    kill.send_modify(|generation| *generation += 1);
}

fn spawn_connection(stream: tokio::net::TcpStream, router: Router, mut kill: watch::Receiver<u64>) {
    tokio::spawn(async move {
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut router = router.clone();
                async move {
                    use tower::Service;
                    router.call(req.map(axum::body::Body::new)).await
                }
            });
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::select! {
            _ = connection => {}
            _ = kill.changed() => {}
        }
    });
}
