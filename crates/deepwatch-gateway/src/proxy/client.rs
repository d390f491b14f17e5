//! The pooled hyper client used for active health probes, and the error type of one proxy
//! attempt (the proxy path itself drives its connections inline, see `conn`).

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

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
