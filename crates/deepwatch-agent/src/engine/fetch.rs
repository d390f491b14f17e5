//! One HTTP GET of an engine's `/metrics` with the guards a node agent needs: a timeout over
//! the whole exchange (an engine that hangs must not hold a scrape), and a body size limit
//! enforced while streaming (a 50 MB payload is refused without being buffered).

use std::time::Duration;

/// Why a scrape failed; `reason()` is the `reason` label of
/// `deepwatch_engine_scrape_errors_total`.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("{url} did not answer within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u64 },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent more than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: body is not UTF-8")]
    Encoding { url: String },
    #[error("{url}: no metric could be parsed; first error at {first}")]
    Parse { url: String, first: String },
}

impl ScrapeError {
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Connect { .. } => "connect",
            ScrapeError::Timeout { .. } => "timeout",
            ScrapeError::Status { .. } => "status",
            ScrapeError::TooLarge { .. } => "too_large",
            ScrapeError::Encoding { .. } | ScrapeError::Parse { .. } => "parse",
        }
    }
}

/// Prefer the classic text format: every engine serves it, and it is what the parser and the
/// raw re-export are exercised on most.
pub const ACCEPT: &str =
    "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1";

/// GETs `url`; returns the body and the response's content type.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    max_body_bytes: u64,
) -> Result<(String, Option<String>), ScrapeError> {
    let timeout_ms = timeout.as_millis() as u64;
    let exchange = async {
        let mut resp =
            client.get(url).header(reqwest::header::ACCEPT, ACCEPT).send().await.map_err(|e| {
                ScrapeError::Connect { url: shown(url), message: shown(&root_cause(&e)) }
            })?;
        if !resp.status().is_success() {
            return Err(ScrapeError::Status { url: shown(url), status: resp.status().as_u16() });
        }
        let too_large = || ScrapeError::TooLarge { url: shown(url), limit: max_body_bytes };
        if resp.content_length().is_some_and(|n| n > max_body_bytes) {
            return Err(too_large());
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| ScrapeError::Connect {
            url: shown(url),
            message: shown(&root_cause(&e)),
        })? {
            if body.len() as u64 + chunk.len() as u64 > max_body_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let text =
            String::from_utf8(body).map_err(|_| ScrapeError::Encoding { url: shown(url) })?;
        Ok((text, content_type))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ScrapeError::Timeout { url: shown(url), timeout_ms }),
    }
}

/// reqwest's Display stops at "error sending request"; the cause (refused, reset) is deeper.
fn root_cause(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// `url` (or a message naming it) as errors may show it: without credentials.
fn shown(url: &str) -> String {
    deepwatch_core::http::redact_urls(url).into_owned()
}
