//! The Prometheus HTTP API client: `query`, `query_range` (chunked past Prometheus's 11,000
//! points per series), `series`, `alerts` and `rules`, each with a timeout and retries with
//! doubling backoff. The client remembers whether Prometheus answered lately (`is_healthy`), so
//! the analyzer can report itself degraded instead of failing, and counts its queries by outcome.

use deepwatch_core::catalog::analyzer as cat;
use deepwatch_core::config::analyzer::AnalyzerConfig;
use deepwatch_core::config::client::{HttpAuthConfig, TlsConfig};
use deepwatch_core::expo::MetricSink;
use deepwatch_core::http;
use deepwatch_core::metrics::{CounterVec, Encode};
use parking_lot::Mutex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};

/// Label set of one series, sorted by name (`__name__` included when Prometheus returns it).
pub type Labels = BTreeMap<String, String>;

/// Prometheus refuses ranges with more points per series than this (11,000); we stay below.
pub const MAX_POINTS_PER_QUERY: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("prometheus url {url:?} is invalid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot set up the prometheus client for {url}: {reason}")]
    Client { url: String, reason: String },
    #[error("prometheus at {url} unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("prometheus at {url} did not answer within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u64 },
    #[error("prometheus answered {status} to {endpoint}: {error}")]
    Status { endpoint: String, status: u16, error: String },
    #[error("prometheus rejected the query ({error_type}): {error}")]
    Api { error_type: String, error: String },
    #[error("prometheus response to {endpoint} not understood: {reason}")]
    Decode { endpoint: String, reason: String },
}

impl PromError {
    /// Worth another attempt: the server may answer next time.
    fn is_transient(&self) -> bool {
        match self {
            PromError::Unreachable { .. } | PromError::Timeout { .. } => true,
            PromError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            PromError::Timeout { .. } => "timeout",
            _ => "error",
        }
    }
}

/// How the client talks to Prometheus.
#[derive(Debug, Clone)]
pub struct PromOptions {
    pub timeout: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
    /// Sent with every request (`X-Scope-OrgID` for Mimir).
    pub headers: BTreeMap<String, String>,
    /// Bearer token or basic auth.
    pub auth: HttpAuthConfig,
    /// TLS of an https base URL: extra CA, client certificate.
    pub tls: TlsConfig,
}

impl Default for PromOptions {
    fn default() -> Self {
        PromOptions {
            timeout: Duration::from_secs(10),
            retries: 2,
            retry_backoff: Duration::from_millis(500),
            headers: BTreeMap::new(),
            auth: HttpAuthConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    /// Unix seconds.
    pub timestamp: f64,
    pub value: f64,
}

/// One series of a range query: `(unix seconds, value)` in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(f64, f64)>,
}

/// An alert as `/api/v1/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    pub state: String,
    #[serde(default)]
    pub active_at: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

/// A rule group as `/api/v1/rules` lists it (rules kept as JSON: their shapes differ by type).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RuleGroup {
    pub name: String,
    pub file: String,
    #[serde(default)]
    pub rules: Vec<serde_json::Value>,
}

struct Inner {
    http: reqwest::Client,
    base: url::Url,
    options: PromOptions,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    queries: CounterVec,
}

/// Cheap to clone; clones share health and counters.
#[derive(Clone)]
pub struct PromClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PromClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromClient").field("base", &self.inner.base.as_str()).finish()
    }
}

impl PromClient {
    /// A client for `[analyzer] prometheus_url` with the configured timeout and retries.
    pub fn from_config(config: &AnalyzerConfig) -> Result<PromClient, PromError> {
        PromClient::new(
            &config.prometheus_url,
            PromOptions {
                timeout: config.query_timeout,
                retries: config.retries,
                retry_backoff: config.retry_backoff,
                headers: config.prometheus_headers.clone(),
                auth: config.prometheus_auth.clone(),
                tls: config.prometheus_tls.clone(),
            },
        )
    }

    pub fn new(base_url: &str, options: PromOptions) -> Result<PromClient, PromError> {
        let invalid = |reason: String| PromError::InvalidUrl {
            url: deepwatch_core::http::redact_urls(base_url).into_owned(),
            reason,
        };
        let mut base = url::Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!("scheme {:?} is not http or https", base.scheme())));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = |reason: String| PromError::Client {
            url: deepwatch_core::http::redact_urls(base_url).into_owned(),
            reason,
        };
        let headers = http::default_headers(
            "analyzer.prometheus_auth",
            &options.auth,
            "analyzer.prometheus_headers",
            &options.headers,
        )
        .map_err(|e| client(e.to_string()))?;
        let http = http::client_builder(&options.tls)
            .map_err(|e| client(e.to_string()))?
            .default_headers(headers)
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| client(http::chain(&e)))?;
        Ok(PromClient {
            inner: Arc::new(Inner {
                http,
                base,
                options,
                healthy: AtomicBool::new(true),
                last_error: Mutex::new(None),
                queries: CounterVec::new(&cat::PROMETHEUS_QUERIES),
            }),
        })
    }

    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// False after the last request failed even with retries; true again after a success.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// The last failure, while unhealthy.
    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.lock().clone()
    }

    /// `GET /api/v1/query`: an instant vector at `at` (Unix seconds; `None` means now).
    pub async fn query(
        &self,
        promql: &str,
        at: Option<f64>,
    ) -> Result<Vec<InstantSample>, PromError> {
        let mut params = vec![("query", promql.to_string())];
        if let Some(t) = at {
            params.push(("time", format_time(t)));
        }
        let data: QueryData = self.get("api/v1/query", &params).await?;
        match data.result_type.as_str() {
            "vector" => {
                let items: Vec<VectorItem> = decode(data.result, "api/v1/query")?;
                Ok(items
                    .into_iter()
                    .map(|i| InstantSample {
                        labels: i.metric,
                        timestamp: i.value.0,
                        value: parse_value(&i.value.1),
                    })
                    .collect())
            }
            "scalar" => {
                let (t, v): (f64, String) = decode(data.result, "api/v1/query")?;
                Ok(vec![InstantSample {
                    labels: Labels::new(),
                    timestamp: t,
                    value: parse_value(&v),
                }])
            }
            other => Err(PromError::Decode {
                endpoint: "api/v1/query".into(),
                reason: format!("result type {other:?} is not a vector or scalar"),
            }),
        }
    }

    /// `GET /api/v1/query_range`, split into chunks of at most `MAX_POINTS_PER_QUERY` steps
    /// and merged per series.
    pub async fn query_range(
        &self,
        promql: &str,
        start: f64,
        end: f64,
        step_secs: f64,
    ) -> Result<Vec<RangeSeries>, PromError> {
        let step = step_secs.max(0.001);
        let chunk = step * (MAX_POINTS_PER_QUERY - 1) as f64;
        let mut merged: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        let mut chunk_start = start;
        while chunk_start <= end {
            let chunk_end = (chunk_start + chunk).min(end);
            let params = vec![
                ("query", promql.to_string()),
                ("start", format_time(chunk_start)),
                ("end", format_time(chunk_end)),
                ("step", format!("{step}")),
            ];
            let data: QueryData = self.get("api/v1/query_range", &params).await?;
            let items: Vec<MatrixItem> = decode(data.result, "api/v1/query_range")?;
            for item in items {
                let points = merged.entry(item.metric).or_default();
                for (t, v) in item.values {
                    if points.last().is_none_or(|(last, _)| t > *last) {
                        points.push((t, parse_value(&v)));
                    }
                }
            }
            chunk_start = chunk_end + step;
        }
        Ok(merged.into_iter().map(|(labels, points)| RangeSeries { labels, points }).collect())
    }

    /// `GET /api/v1/series`: label sets matching any of `matchers` in the range.
    pub async fn series(
        &self,
        matchers: &[&str],
        start: f64,
        end: f64,
    ) -> Result<Vec<Labels>, PromError> {
        let mut params: Vec<(&str, String)> =
            matchers.iter().map(|m| ("match[]", m.to_string())).collect();
        params.push(("start", format_time(start)));
        params.push(("end", format_time(end)));
        self.get("api/v1/series", &params).await
    }

    /// `GET /api/v1/alerts`: alerts pending or firing now.
    pub async fn alerts(&self) -> Result<Vec<Alert>, PromError> {
        #[derive(Deserialize)]
        struct Data {
            alerts: Vec<Alert>,
        }
        let data: Data = self.get("api/v1/alerts", &[]).await?;
        Ok(data.alerts)
    }

    /// `GET /api/v1/rules`: loaded rule groups.
    pub async fn rules(&self) -> Result<Vec<RuleGroup>, PromError> {
        #[derive(Deserialize)]
        struct Data {
            groups: Vec<RuleGroup>,
        }
        let data: Data = self.get("api/v1/rules", &[]).await?;
        Ok(data.groups)
    }

    /// One API call with retries; updates health and the query counter.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<T, PromError> {
        let mut attempt = 0;
        let mut backoff = self.inner.options.retry_backoff;
        loop {
            let result = self.get_once(endpoint, params).await;
            match result {
                Ok(value) => {
                    self.inner.queries.inc(&["ok"]);
                    if !self.inner.healthy.swap(true, Ordering::Relaxed) {
                        tracing::info!(url = %deepwatch_core::http::redact_urls(self.inner.base.as_str()), "prometheus reachable again");
                    }
                    *self.inner.last_error.lock() = None;
                    return Ok(value);
                }
                Err(e) => {
                    self.inner.queries.inc(&[e.outcome()]);
                    if e.is_transient() && attempt < self.inner.options.retries {
                        attempt += 1;
                        debug!(endpoint, attempt, error = %e, "prometheus request retried");
                        tokio::time::sleep(backoff).await;
                        backoff = backoff.saturating_mul(2);
                        continue;
                    }
                    if e.is_transient() {
                        if self.inner.healthy.swap(false, Ordering::Relaxed) {
                            warn!(url = %deepwatch_core::http::redact_urls(self.inner.base.as_str()), error = %e, "prometheus unreachable");
                        }
                        *self.inner.last_error.lock() = Some(e.to_string());
                    }
                    return Err(e);
                }
            }
        }
    }

    async fn get_once<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<T, PromError> {
        let url = self.inner.base.join(endpoint).map_err(|e| PromError::InvalidUrl {
            url: deepwatch_core::http::redact_urls(self.inner.base.as_str()).into_owned(),
            reason: e.to_string(),
        })?;
        let timeout_ms = self.inner.options.timeout.as_millis() as u64;
        let request = self.inner.http.get(url.clone()).query(params).send();
        let url = http::redact_urls(url.as_str()).into_owned();
        // The tokio timeout covers paused-time tests and DNS stalls that reqwest's may not.
        let response = match tokio::time::timeout(self.inner.options.timeout, request).await {
            Err(_) => return Err(PromError::Timeout { url: url.clone(), timeout_ms }),
            Ok(Err(e)) if e.is_timeout() => {
                return Err(PromError::Timeout { url: url.clone(), timeout_ms })
            }
            Ok(Err(e)) => {
                return Err(PromError::Unreachable { url: url.clone(), reason: http::chain(&e) })
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                PromError::Timeout { url: url.clone(), timeout_ms }
            } else {
                PromError::Unreachable { url: url.clone(), reason: http::chain(&e) }
            }
        })?;
        let envelope: Envelope<T> = match serde_json::from_slice(&body) {
            Ok(env) => env,
            Err(e) if status == 200 => {
                return Err(PromError::Decode { endpoint: endpoint.into(), reason: e.to_string() })
            }
            Err(_) => {
                let text = String::from_utf8_lossy(&body);
                return Err(PromError::Status {
                    endpoint: endpoint.into(),
                    status,
                    error: text.chars().take(200).collect(),
                });
            }
        };
        match (envelope.status.as_str(), envelope.data) {
            ("success", Some(data)) => Ok(data),
            _ if status >= 500 || status == 429 => Err(PromError::Status {
                endpoint: endpoint.into(),
                status,
                error: envelope.error.unwrap_or_default(),
            }),
            _ => Err(PromError::Api {
                error_type: envelope.error_type.unwrap_or_else(|| format!("http {status}")),
                error: envelope.error.unwrap_or_default(),
            }),
        }
    }
}

impl Encode for PromClient {
    fn encode(&self, sink: &mut MetricSink) {
        self.inner.queries.encode(sink);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    #[serde(default)]
    metric: Labels,
    value: (f64, String),
}

#[derive(Deserialize)]
struct MatrixItem {
    #[serde(default)]
    metric: Labels,
    values: Vec<(f64, String)>,
}

fn decode<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    endpoint: &str,
) -> Result<T, PromError> {
    serde_json::from_value(value)
        .map_err(|e| PromError::Decode { endpoint: endpoint.into(), reason: e.to_string() })
}

/// Prometheus writes sample values as strings, including `NaN`, `+Inf` and `-Inf`.
pub fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => text.parse().unwrap_or(f64::NAN),
    }
}

fn format_time(t: f64) -> String {
    format!("{t:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values_parse() {
        assert_eq!(parse_value("+Inf"), f64::INFINITY);
        assert_eq!(parse_value("-Inf"), f64::NEG_INFINITY);
        assert!(parse_value("NaN").is_nan());
        assert_eq!(parse_value("0.25"), 0.25);
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(
            PromClient::new("ftp://x", PromOptions::default()),
            Err(PromError::InvalidUrl { .. })
        ));
        let ok = PromClient::new("http://127.0.0.1:9090/prom", PromOptions::default()).unwrap();
        assert_eq!(ok.base_url(), "http://127.0.0.1:9090/prom/");
    }

    #[tokio::test]
    async fn unreachable_prometheus_is_retried_then_reported_unhealthy() {
        // A port nothing listens on: connection refused on every attempt.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let options = PromOptions {
            timeout: Duration::from_secs(2),
            retries: 2,
            retry_backoff: Duration::from_millis(1),
            ..PromOptions::default()
        };
        let client = PromClient::new(&format!("http://127.0.0.1:{port}"), options).unwrap();
        assert!(client.is_healthy());
        let err = client.query("up", None).await.unwrap_err();
        assert!(matches!(err, PromError::Unreachable { .. }), "{err}");
        assert!(!client.is_healthy());
        assert!(client.last_error().unwrap().contains("unreachable"));
        let mut sink = MetricSink::new(deepwatch_core::expo::Format::Text004);
        client.encode(&mut sink);
        let text = sink.render();
        assert!(
            text.contains("deepwatch_analyzer_prometheus_queries_total{outcome=\"error\"} 3"),
            "three attempts counted:\n{text}"
        );
    }
}
