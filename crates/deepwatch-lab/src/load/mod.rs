//! The load generator (`deepwatch load`): open-loop Poisson arrivals following a rate profile,
//! or closed-loop concurrency, always bounded by a request count and a duration. Every request
//! is measured (TTFT, TPOT, ITL, end-to-end latency, tokens from `usage`, errors); the run ends
//! with a summary (percentiles, throughput, goodput against SLOs) and, on request, a JSON file
//! with every request.

pub mod profile;
pub mod progress;
pub mod report;
pub mod request;

pub use profile::{Arrivals, Dist, Profile};
pub use report::{Slo, Summary};
pub use request::{Endpoint, RequestRecord};

use crate::rng::Rng;
use deepwatch_core::config::client::TlsConfig;
use request::RequestSpec;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Open loop (arrivals at a rate, whatever the server does) or closed loop (a fixed number of
/// requests in flight, each sent when the previous one ends).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    Open { rate: f64, profile: Profile },
    Closed { concurrency: usize },
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadOptions {
    /// Base URL of the OpenAI-compatible server (`http://127.0.0.1:8000`).
    pub target: String,
    pub endpoint: Endpoint,
    pub model: String,
    pub mode: Mode,
    /// At most this many requests.
    pub max_requests: u64,
    /// No request starts after this long.
    #[serde(rename = "duration_secs", serialize_with = "secs")]
    pub duration: Duration,
    pub prompt_tokens: Dist,
    pub output_tokens: Dist,
    pub stream: bool,
    pub seed: u64,
    pub slo: Slo,
    /// Per-request limit; a request still open then counts as `timeout`.
    #[serde(rename = "timeout_secs", serialize_with = "secs")]
    pub timeout: Duration,
    #[serde(skip)]
    pub api_key: Option<String>,
    /// Open loop: arrivals beyond this many open requests are skipped (and counted), so an
    /// overloaded target cannot make the generator exhaust memory or sockets.
    pub max_in_flight: usize,
    /// TLS for an `https://` target: extra CA (`ca_file`), client certificate for mTLS.
    #[serde(skip)]
    pub tls: TlsConfig,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            target: "http://127.0.0.1:8000".into(),
            endpoint: Endpoint::Chat,
            model: "deepseek-r1".into(),
            mode: Mode::Open { rate: 10.0, profile: Profile::Constant },
            max_requests: 1000,
            duration: Duration::from_secs(60),
            prompt_tokens: Dist::Fixed { value: 256 },
            output_tokens: Dist::Fixed { value: 128 },
            stream: true,
            seed: 42,
            slo: Slo::default(),
            timeout: Duration::from_secs(60),
            api_key: None,
            max_in_flight: 10_000,
            tls: TlsConfig::default(),
        }
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid load options: {0}")]
    Options(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A finished run: the options, the summary and every request.
#[derive(Debug, Serialize)]
pub struct Report {
    pub options: LoadOptions,
    /// Wall-clock start, Unix seconds.
    pub started_unix_secs: f64,
    pub summary: Summary,
    pub requests: Vec<RequestRecord>,
}

/// Receives progress as requests finish (the CLI draws a progress bar with it).
pub trait Progress: Send + Sync {
    fn finished(&self, record: &RequestRecord);
}

/// No progress output.
pub struct Silent;

impl Progress for Silent {
    fn finished(&self, _record: &RequestRecord) {}
}

impl LoadOptions {
    fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: &str| Err(LoadError::Options(m.to_string()));
        if url_base(&self.target).is_none() {
            return bad("target must be an http:// or https:// URL");
        }
        match &self.mode {
            Mode::Open { rate, .. } if !(*rate > 0.0 && rate.is_finite()) => {
                return bad("rate must be greater than 0")
            }
            Mode::Closed { concurrency: 0 } => return bad("concurrency must be at least 1"),
            _ => {}
        }
        if self.max_requests == 0 {
            return bad("the request count bound must be at least 1");
        }
        if self.duration.is_zero() {
            return bad("the duration bound must be greater than 0");
        }
        if self.max_in_flight == 0 {
            return bad("max in flight must be at least 1");
        }
        Ok(())
    }
}

fn url_base(target: &str) -> Option<String> {
    let url = url::Url::parse(target).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| target.trim_end_matches('/').to_string())
}

/// Runs the load described by `options` and returns every measurement.
pub async fn run(options: LoadOptions, progress: Arc<dyn Progress>) -> Result<Report, LoadError> {
    options.validate()?;
    let base = url_base(&options.target).unwrap_or_default();
    let client = deepwatch_core::http::client_builder(&options.tls)
        .map_err(|e| LoadError::Client(deepwatch_core::http::chain(&e)))?
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .map_err(|e| LoadError::Client(deepwatch_core::http::chain(&e)))?;
    let spec = Arc::new(RequestSpec {
        client,
        url: format!("{base}{}", options.endpoint.path()),
        endpoint: options.endpoint,
        model: options.model.clone(),
        stream: options.stream,
        api_key: options.api_key.clone(),
        timeout: options.timeout,
    });
    let started_unix_secs =
        deepwatch_core::clock::Clock::unix_seconds(&deepwatch_core::clock::TokioClock::new());
    let (tx, mut rx) = mpsc::unbounded_channel::<RequestRecord>();
    let collector = tokio::spawn(async move {
        let mut records = Vec::new();
        while let Some(r) = rx.recv().await {
            progress.finished(&r);
            records.push(r);
        }
        records
    });
    let start = Instant::now();
    let skipped = match options.mode.clone() {
        Mode::Open { rate, profile } => open_loop(&options, rate, profile, spec, start, tx).await,
        Mode::Closed { concurrency } => {
            closed_loop(&options, concurrency, spec, start, tx).await;
            0
        }
    };
    let mut requests = collector.await.unwrap_or_default();
    requests.sort_by_key(|r| r.index);
    let duration_secs = requests.iter().map(|r| r.start_secs + r.e2e_secs).fold(0.0, f64::max);
    let summary = Summary::compute(&mut requests, &options.slo, skipped, duration_secs);
    Ok(Report { options, started_unix_secs, summary, requests })
}

/// The prompt and output length of request `index`, from the run's seed.
fn shape(options: &LoadOptions, index: u64) -> (String, u64, u64) {
    let mut rng = Rng::new(options.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let prompt_tokens = options.prompt_tokens.sample(&mut rng);
    let output_tokens = options.output_tokens.sample(&mut rng);
    (request::prompt_text(prompt_tokens, &mut rng), prompt_tokens, output_tokens)
}

async fn open_loop(
    options: &LoadOptions,
    rate: f64,
    profile: Profile,
    spec: Arc<RequestSpec>,
    start: Instant,
    tx: mpsc::UnboundedSender<RequestRecord>,
) -> u64 {
    let in_flight = Arc::new(AtomicU64::new(0));
    let mut skipped = 0;
    let arrivals =
        Arrivals::new(profile, rate, options.duration, options.max_requests, options.seed);
    for (index, offset) in arrivals.enumerate() {
        let due = start + offset;
        // An already-due arrival goes out now rather than at the next timer tick.
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        if in_flight.load(Ordering::Relaxed) >= options.max_in_flight as u64 {
            skipped += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (prompt, prompt_tokens, output_tokens) = shape(options, index as u64);
        let (spec, tx, in_flight) = (spec.clone(), tx.clone(), in_flight.clone());
        tokio::spawn(async move {
            let record =
                request::execute(&spec, index as u64, start, &prompt, prompt_tokens, output_tokens)
                    .await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(record);
        });
    }
    skipped
}

async fn closed_loop(
    options: &LoadOptions,
    concurrency: usize,
    spec: Arc<RequestSpec>,
    start: Instant,
    tx: mpsc::UnboundedSender<RequestRecord>,
) {
    let next = Arc::new(AtomicU64::new(0));
    let deadline = start + options.duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (spec, tx, next, options) = (spec.clone(), tx.clone(), next.clone(), options.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= options.max_requests || Instant::now() >= deadline {
                    break;
                }
                let (prompt, prompt_tokens, output_tokens) = shape(&options, index);
                let record =
                    request::execute(&spec, index, start, &prompt, prompt_tokens, output_tokens)
                        .await;
                let _ = tx.send(record);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
}

impl Report {
    /// The whole report as pretty JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

/// The first model a server lists on `/v1/models`.
pub async fn discover_model(
    target: &str,
    api_key: Option<&str>,
    tls: &TlsConfig,
) -> Result<String, LoadError> {
    let base = url_base(target)
        .ok_or_else(|| LoadError::Options("target must be an http:// or https:// URL".into()))?;
    let client = deepwatch_core::http::client_builder(tls)
        .map_err(|e| LoadError::Client(deepwatch_core::http::chain(&e)))?
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| LoadError::Client(deepwatch_core::http::chain(&e)))?;
    let mut request = client.get(format!("{base}/v1/models"));
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let fail = |e: String| {
        LoadError::Options(format!("cannot list models at {base}/v1/models ({e}); give --model"))
    };
    let body: serde_json::Value = request
        .send()
        .await
        .map_err(|e| fail(deepwatch_core::http::chain(&e)))?
        .json()
        .await
        .map_err(|e| fail(deepwatch_core::http::chain(&e)))?;
    body["data"][0]["id"].as_str().map(str::to_string).ok_or_else(|| fail("no model listed".into()))
}
