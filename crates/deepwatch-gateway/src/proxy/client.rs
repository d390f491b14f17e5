//! The upstream HTTP client: hyper's pooled client over plain TCP (engines are reached inside
//! the cluster), with no-delay sockets, a connect timeout and a keep-alive pool sized for a
//! busy gateway. One attempt = one request with a deadline on the response headers.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

thread_local! {
    static CLIENT: std::cell::RefCell<Option<(Duration, HttpClient)>> = const { std::cell::RefCell::new(None) };
}

/// The client of the calling thread. Each proxy worker thread runs its own event loop, so each
/// keeps its own connection pool: a request and its upstream connection live on one thread and
/// never wake another.
pub fn for_this_thread(connect_timeout: Duration) -> HttpClient {
    CLIENT.with(|cell| {
        let mut slot = cell.borrow_mut();
        match slot.as_ref() {
            Some((t, c)) if *t == connect_timeout => c.clone(),
            _ => {
                let c = build(connect_timeout);
                *slot = Some((connect_timeout, c.clone()));
                c
            }
        }
    })
}

pub fn build(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
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

/// Sends one request and waits for the response headers.
pub async fn attempt(
    client: HttpClient,
    request: http::Request<Full<Bytes>>,
    header_timeout: Duration,
) -> Result<http::Response<Incoming>, AttemptError> {
    match tokio::time::timeout(header_timeout, client.request(request)).await {
        Err(_) => Err(AttemptError::HeaderTimeout(header_timeout.as_millis() as u64)),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) if e.is_connect() => Err(AttemptError::Connect(root_cause(&e))),
        Ok(Err(e)) => Err(AttemptError::Other(root_cause(&e))),
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}
