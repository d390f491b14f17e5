//! Active health: one task per pool probes every upstream on its interval (liveness: a GET of
//! `probe_path`), and, with generation probes on, asks each for one token (`max_tokens = 1`)
//! within the pool's first-token deadline, every `generation_probe_interval_ms` and on every
//! round while it is ejected: a hung engine answers `/health` but not this. Results go to each
//! upstream's `Health`; cooldowns apply and the routing gauges refresh.

use crate::pools::{Pool, Pools, Upstream};
use bytes::Bytes;
use deepwatch_core::clock::SharedClock;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The pooled HTTP client probes use (the proxy path drives its own connections).
pub type ProbeClient = Client<HttpConnector, Full<Bytes>>;

/// Probes the upstreams of every pool and reports to their health.
pub struct Prober {
    client: ProbeClient,
    pools: Arc<Pools>,
    clock: SharedClock,
}

impl Prober {
    pub fn new(connect_timeout: Duration, pools: Arc<Pools>, clock: SharedClock) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Prober { client, pools, clock }
    }

    /// Probes every upstream of `pool` on its interval, applies cooldowns and refreshes
    /// gauges, until `stop` changes.
    pub async fn run(self: Arc<Self>, pool: Arc<Pool>, mut stop: watch::Receiver<bool>) {
        let cfg = pool.health_cfg.clone();
        let probes = !cfg.probe_path.is_empty();
        let interval = cfg.probe_interval.max(Duration::from_millis(10));
        let timeout = cfg.probe_timeout.max(Duration::from_millis(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            let upstreams = pool.upstreams();
            if cfg.generation_probe {
                let every = cfg.generation_probe_interval.max(Duration::from_millis(10));
                for u in upstreams.iter() {
                    if u.health.generation_due(every, self.clock.now()) {
                        // A hung engine takes the whole deadline: never hold up this loop.
                        tokio::spawn(self.clone().generation(pool.clone(), u.clone()));
                    }
                }
            }
            let checks = upstreams.iter().map(|u| async {
                let change = if probes {
                    let url = format!("{}{}", u.url, cfg.probe_path);
                    let pass = probe(&self.client, &url, timeout).await;
                    u.health.probe(pass, self.clock.now())
                } else {
                    u.health.tick(false, self.clock.now())
                };
                self.pools.on_change(u, change);
            });
            futures_util::future::join_all(checks).await;
            self.pools.export_ratios();
            self.pools.refresh();
        }
    }
}

/// The `User-Agent` of generation probes, so engines' logs (and tests) can tell them apart.
pub const GENERATION_PROBE_AGENT: &str = "deepwatch-gateway-generation-probe";

/// How long a generation probe may take when the pool has no first-token deadline.
const GENERATION_DEADLINE_FALLBACK: Duration = Duration::from_secs(10);

impl Prober {
    /// One generation probe of `u`; its result goes to the upstream's health.
    async fn generation(self: Arc<Self>, pool: Arc<Pool>, u: Arc<Upstream>) {
        u.health.generation_running.store(true, Ordering::Relaxed);
        u.health.generation_started(self.clock.now());
        let deadline = pool.first_token_timeout.unwrap_or(GENERATION_DEADLINE_FALLBACK);
        let pass = tokio::time::timeout(deadline, self.generate(&pool, &u, deadline))
            .await
            .unwrap_or_else(|_| {
                tracing::warn!(upstream = %u.url, deadline_ms = deadline.as_millis() as u64, "generation probe: no token within the deadline");
                false
            });
        u.health.generation_running.store(false, Ordering::Relaxed);
        let change = u.health.generation(pass, self.clock.now());
        self.pools.on_change(&u, change);
        if change.is_some() {
            self.pools.refresh();
        }
    }

    /// Asks for one token; true when a 2xx completion came back.
    async fn generate(&self, pool: &Pool, u: &Upstream, deadline: Duration) -> bool {
        let model = match pool.health_cfg.generation_probe_model.as_str() {
            "" => match self.first_model(pool, u).await {
                Some(m) => m,
                None => return false,
            },
            m => m.to_string(),
        };
        let body = serde_json::json!({
            "model": model,
            "prompt": "ping",
            "max_tokens": 1,
            "temperature": 0,
            "stream": false,
        });
        let url = format!("{}/v1/completions", u.url);
        let resp = self.send(pool, http::Method::POST, &url, body.to_string(), deadline).await;
        match resp {
            Some((status, _)) if (200..300).contains(&status) => true,
            Some((status, text)) => {
                tracing::warn!(upstream = %u.url, status, body = %text.chars().take(200).collect::<String>(), "generation probe failed");
                false
            }
            None => false,
        }
    }

    /// The first model id of the upstream's `/v1/models`.
    async fn first_model(&self, pool: &Pool, u: &Upstream) -> Option<String> {
        let url = format!("{}/v1/models", u.url);
        let timeout = pool.health_cfg.probe_timeout.max(Duration::from_millis(1));
        let (status, text) =
            self.send(pool, http::Method::GET, &url, String::new(), timeout).await?;
        if !(200..300).contains(&status) {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["data"][0]["id"].as_str().map(str::to_string)
    }

    async fn send(
        &self,
        pool: &Pool,
        method: http::Method,
        url: &str,
        body: String,
        timeout: Duration,
    ) -> Option<(u16, String)> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(url)
            .header(http::header::USER_AGENT, GENERATION_PROBE_AGENT);
        if !body.is_empty() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(key) = &pool.api_key {
            req = req.header(http::header::AUTHORIZATION, key.clone());
        }
        let req = req.body(Full::new(Bytes::from(body))).ok()?;
        let exchange = async {
            let resp = self.client.request(req).await.ok()?;
            let status = resp.status().as_u16();
            let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.ok()?.to_bytes();
            Some((status, String::from_utf8_lossy(&bytes).into_owned()))
        };
        tokio::time::timeout(timeout, exchange).await.ok().flatten()
    }
}

async fn probe(client: &ProbeClient, url: &str, timeout: Duration) -> bool {
    let Ok(req) = http::Request::get(url).body(Full::new(Bytes::new())) else { return false };
    match tokio::time::timeout(timeout, client.request(req)).await {
        Ok(Ok(resp)) => {
            let ok = resp.status().is_success();
            // Drain so the connection goes back to the pool.
            let _ =
                tokio::time::timeout(timeout, http_body_util::BodyExt::collect(resp.into_body()))
                    .await;
            ok
        }
        _ => false,
    }
}
