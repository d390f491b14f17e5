//! Upstream HTTP/1.1 connections driven inline. Each proxy worker thread keeps its own idle
//! keep-alive connections; a request checks one out and polls hyper's connection state machine
//! from its own task (while waiting for the head and while reading the body), so relaying a
//! stream costs no task switch per chunk and every chunk already received leaves in one write.
//! A pooled connection the upstream closed meanwhile is replaced once by a fresh one, and idle
//! connections are dropped after `gateway.upstream_keepalive_ms` (4 s), before engines close
//! them (uvicorn, and so vLLM, after 5 s), so that race is rare.
//!
//! An `https://` upstream (a hosted OpenAI-compatible API as a standby pool, an engine behind a
//! TLS-terminating ingress) gets TLS over the same connection: rustls with the ring provider,
//! SNI from the URL's host, the pool's `tls` table (extra CA, client certificate for mTLS) and
//! ALPN `http/1.1`. The health prober sends its probes through the same connections, so a probe
//! passes only when a request could.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

type Io = TokioIo<Stream>;

/// Where one upstream's connections go: its address, TLS for `https://`, and the `Host` header.
pub struct Target {
    /// Idle connections are kept per key: the address, plus the scheme and pool for TLS (pools
    /// may present different client certificates to the same host).
    key: String,
    /// `host:port` to connect to.
    addr: String,
    host: http::HeaderValue,
    tls: Option<Tls>,
}

struct Tls {
    connector: TlsConnector,
    /// SNI and the name the certificate must carry; an error when the host cannot be one.
    name: Result<rustls_pki_types::ServerName<'static>, String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Target {
    /// The target of base URL `url` (`http://` or `https://`, validated by the config) of
    /// `pool`; `tls` is the pool's client config, used when the scheme is https.
    pub fn new(url: &str, pool: &str, tls: &Arc<rustls::ClientConfig>) -> Target {
        let parsed = url::Url::parse(url).ok();
        let https = parsed.as_ref().is_some_and(|u| u.scheme() == "https");
        let host = parsed
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "localhost".to_string());
        let port = parsed.as_ref().and_then(|u| u.port_or_known_default()).unwrap_or(if https {
            443
        } else {
            80
        });
        // `host_str` keeps an IPv6 address in brackets, as an address and a Host header need.
        let addr = format!("{host}:{port}");
        // The Host header carries the port only when the URL names one that is not the default.
        let host_header = match parsed.as_ref().and_then(|u| u.port()) {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let tls = https.then(|| {
            let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
            Tls {
                connector: TlsConnector::from(tls.clone()),
                name: rustls_pki_types::ServerName::try_from(bare.clone())
                    .map_err(|e| format!("{bare:?} cannot be a TLS server name: {e}")),
            }
        });
        Target {
            key: if https { format!("https://{addr} {pool}") } else { addr.clone() },
            addr,
            host: http::HeaderValue::from_str(&host_header)
                .unwrap_or_else(|_| http::HeaderValue::from_static("localhost")),
            tls,
        }
    }

    /// The `Host` header of requests to this upstream.
    pub fn host(&self) -> &http::HeaderValue {
        &self.host
    }
}

/// A plain or TLS upstream connection.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Idle connections kept per upstream and thread.
const MAX_IDLE: usize = 512;

/// One upstream connection: the request handle and the connection future we poll ourselves.
pub struct Conn {
    key: String,
    send: SendRequest<Full<Bytes>>,
    conn: Pin<Box<Connection<Io, Full<Bytes>>>>,
    closed: bool,
    /// When it went back to the idle list.
    idle_since: Instant,
}

impl Conn {
    /// Drives the connection's IO; marks it closed when it finished.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.closed && self.conn.as_mut().poll(cx).is_ready() {
            self.closed = true;
        }
    }
}

thread_local! {
    static IDLE: RefCell<HashMap<String, Vec<Conn>>> = RefCell::new(HashMap::new());
}

/// Drops the connections idle for `keepalive` or longer (the oldest sit at the front).
fn expire(list: &mut Vec<Conn>, keepalive: Duration, now: Instant) {
    let fresh = list
        .iter()
        .position(|c| now.saturating_duration_since(c.idle_since) < keepalive)
        .unwrap_or(list.len());
    list.drain(..fresh);
}

fn checkout(key: &str, keepalive: Duration) -> Option<Conn> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(key)?;
        expire(list, keepalive, Instant::now());
        while let Some(c) = list.pop() {
            if !c.closed && !c.send.is_closed() {
                return Some(c);
            }
        }
        None
    })
}

fn checkin(mut c: Conn, cx: &mut Context<'_>) {
    // Let the dispatcher see the end of the response, then keep the connection if it is idle.
    c.drive(cx);
    if c.closed || c.send.is_closed() || !c.send.is_ready() {
        return;
    }
    c.idle_since = Instant::now();
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(c.key.clone()).or_default();
        if list.len() < MAX_IDLE {
            list.push(c);
        }
    });
}

async fn connect(target: &Target, timeout: Duration) -> Result<Conn, AttemptError> {
    let started = Instant::now();
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(&target.addr)).await {
        // Messages reach clients: they name no internal address (the request log has it).
        Err(_) => return Err(AttemptError::Connect("connect timed out".into())),
        Ok(Err(e)) => return Err(AttemptError::Connect(e.to_string())),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let stream = match &target.tls {
        None => Stream::Plain(stream),
        Some(tls) => {
            let name = tls.name.clone().map_err(AttemptError::Tls)?;
            // The handshake shares the connect timeout.
            let left = timeout.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, tls.connector.connect(name, stream)).await {
                Err(_) => return Err(AttemptError::Tls("TLS handshake timed out".into())),
                Ok(Err(e)) => return Err(AttemptError::Tls(deepwatch_core::http::chain(&e))),
                Ok(Ok(s)) => Stream::Tls(Box::new(s)),
            }
        }
    };
    let (send, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| AttemptError::Other(e.to_string()))?;
    Ok(Conn {
        key: target.key.clone(),
        send,
        conn: Box::pin(conn),
        closed: false,
        idle_since: Instant::now(),
    })
}

fn copy(req: &http::Request<Full<Bytes>>) -> http::Request<Full<Bytes>> {
    let mut r = http::Request::new(req.body().clone());
    *r.method_mut() = req.method().clone();
    *r.uri_mut() = req.uri().clone();
    *r.headers_mut() = req.headers().clone();
    r
}

/// Why an exchange produced no response head.
enum ExchangeError {
    Hyper(hyper::Error),
    /// The connection ended before the request got an answer.
    Closed,
}

/// Sends the request and waits for the response head, driving the connection meanwhile.
async fn exchange(
    conn: &mut Conn,
    req: http::Request<Full<Bytes>>,
) -> Result<http::Response<Incoming>, ExchangeError> {
    let mut response = Box::pin(conn.send.send_request(req));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = response.as_mut().poll(cx) {
            return Poll::Ready(r.map_err(ExchangeError::Hyper));
        }
        conn.drive(cx);
        match response.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(r.map_err(ExchangeError::Hyper)),
            // A finished connection never answers a request still queued on it.
            Poll::Pending if conn.closed => Poll::Ready(Err(ExchangeError::Closed)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// One attempt: a pooled connection (or a new one), the request, the response head.
/// The request URI must be in origin form with a `Host` header (`Target::host`).
pub async fn send(
    target: &Target,
    req: http::Request<Full<Bytes>>,
    connect_timeout: Duration,
    keepalive: Duration,
) -> Result<http::Response<UpstreamBody>, AttemptError> {
    let (mut conn, reused) = match checkout(&target.key, keepalive) {
        Some(c) => (c, true),
        None => (connect(target, connect_timeout).await?, false),
    };
    let result = match exchange(&mut conn, copy(&req)).await {
        // A kept-alive connection the upstream had closed: nothing was processed, try a new one.
        Err(ExchangeError::Closed) if reused => {
            conn = connect(target, connect_timeout).await?;
            exchange(&mut conn, req).await
        }
        Err(ExchangeError::Hyper(e))
            if reused && (e.is_canceled() || e.is_incomplete_message() || e.is_closed()) =>
        {
            conn = connect(target, connect_timeout).await?;
            exchange(&mut conn, req).await
        }
        other => other,
    };
    match result {
        Ok(resp) => Ok(resp.map(|body| UpstreamBody { body, conn: Some(conn) })),
        Err(ExchangeError::Hyper(e)) => Err(AttemptError::Other(e.to_string())),
        Err(ExchangeError::Closed) => {
            Err(AttemptError::Other("upstream closed the connection before answering".into()))
        }
    }
}

/// A response body that drives its own connection and returns it to the pool when complete.
pub struct UpstreamBody {
    body: Incoming,
    conn: Option<Conn>,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let first = Pin::new(&mut this.body).poll_frame(cx);
        let polled = match first {
            Poll::Pending => match this.conn.as_mut() {
                Some(c) => {
                    // Let the connection read and decode, then look again.
                    c.drive(cx);
                    if c.closed {
                        // Dropping a finished connection ends the body (with an error if the
                        // upstream closed mid-body) instead of leaving it pending forever.
                        this.conn = None;
                    }
                    Pin::new(&mut this.body).poll_frame(cx)
                }
                None => Poll::Pending,
            },
            ready => ready,
        };
        if matches!(polled, Poll::Ready(None)) {
            if let Some(c) = this.conn.take() {
                checkin(c, cx);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Why an attempt produced no response.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// Connection refused, reset or not reachable: the upstream is down.
    #[error("cannot connect to upstream: {0}")]
    Connect(String),
    /// The TLS handshake failed (certificate, name, protocol) or timed out.
    #[error("TLS with upstream failed: {0}")]
    Tls(String),
    #[error("upstream sent no response headers within {0} ms")]
    HeaderTimeout(u64),
    #[error("upstream failed before answering: {0}")]
    Other(String),
}
