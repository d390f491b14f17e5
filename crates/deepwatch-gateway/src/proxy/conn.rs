//! Upstream HTTP/1.1 connections driven inline. Each proxy worker thread keeps its own idle
//! keep-alive connections; a request checks one out and polls hyper's connection state machine
//! from its own task (while waiting for the head and while reading the body), so relaying a
//! stream costs no task switch per chunk and every chunk already received leaves in one write.
//! A pooled connection the upstream closed meanwhile is replaced once by a fresh one, and idle
//! connections are dropped after `gateway.upstream_keepalive_ms` (4 s), before engines close
//! them (uvicorn, and so vLLM, after 5 s), so that race is rare.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

type Io = TokioIo<TcpStream>;

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

async fn connect(key: &str, timeout: Duration) -> Result<Conn, AttemptError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(key)).await {
        // Messages reach clients: they name no internal address (the request log has it).
        Err(_) => return Err(AttemptError::Connect("connect timed out".into())),
        Ok(Err(e)) => return Err(AttemptError::Connect(e.to_string())),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let (send, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| AttemptError::Other(e.to_string()))?;
    Ok(Conn {
        key: key.to_string(),
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
/// `key` is `host:port`; the request URI must be in origin form with a `Host` header.
pub async fn send(
    key: &str,
    req: http::Request<Full<Bytes>>,
    connect_timeout: Duration,
    keepalive: Duration,
) -> Result<http::Response<UpstreamBody>, AttemptError> {
    let (mut conn, reused) = match checkout(key, keepalive) {
        Some(c) => (c, true),
        None => (connect(key, connect_timeout).await?, false),
    };
    let result = match exchange(&mut conn, copy(&req)).await {
        // A kept-alive connection the upstream had closed: nothing was processed, try a new one.
        Err(ExchangeError::Closed) if reused => {
            conn = connect(key, connect_timeout).await?;
            exchange(&mut conn, req).await
        }
        Err(ExchangeError::Hyper(e))
            if reused && (e.is_canceled() || e.is_incomplete_message() || e.is_closed()) =>
        {
            conn = connect(key, connect_timeout).await?;
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
    #[error("upstream sent no response headers within {0} ms")]
    HeaderTimeout(u64),
    #[error("upstream failed before answering: {0}")]
    Other(String),
}
