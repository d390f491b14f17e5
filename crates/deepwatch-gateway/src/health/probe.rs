//! Active health: one task per pool probes every upstream on its interval (liveness: a GET of
//! `probe_path`), and, with generation probes on, asks each for one token (`max_tokens = 1`)
//! within the pool's first-token deadline, every `generation_probe_interval_ms` and on every
//! round while it is ejected: a hung engine answers `/health` but not this. Results go to each
//! upstream's `Health`; cooldowns apply and the routing gauges refresh. Probes travel over the
//! proxy's own upstream connections (`proxy::conn`: TLS for https upstreams, the pool's key), so
//! a probe passes only where a request could get through.

use crate::pools::{Pool, Pools, Upstream};
use crate::proxy::conn;
use bytes::Bytes;
use deepwatch_core::clock::SharedClock;
use http_body_util::Full;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Probes the upstreams of every pool and reports to their health.
pub struct Prober {
    connect_timeout: Duration,
    /// Idle upstream connections older than this are not reused (`gateway.upstream_keepalive_ms`).
    keepalive: Duration,
    pools: Arc<Pools>,
    clock: SharedClock,
}

impl Prober {
    pub fn new(
        connect_timeout: Duration,
        keepalive: Duration,
        pools: Arc<Pools>,
        clock: SharedClock,
    ) -> Self {
        Prober { connect_timeout, keepalive, pools, clock }
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
                    let pass = self.probe(&pool, u, &cfg.probe_path, timeout).await;
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

/// The `User-Agent` of liveness probes (`health.probe_path`).
pub const HEALTH_PROBE_AGENT: &str = "deepwatch-gateway-health-probe";

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
                tracing::warn!(upstream = %u.shown, deadline_ms = deadline.as_millis() as u64, "generation probe: no token within the deadline");
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
        let post = http::Request::post("/v1/completions")
            .header(http::header::USER_AGENT, GENERATION_PROBE_AGENT);
        let resp = self.send(pool, u, post, body.to_string(), deadline).await;
        match resp {
            Some((status, _)) if (200..300).contains(&status) => true,
            Some((status, text)) => {
                tracing::warn!(upstream = %u.shown, status, body = %text.chars().take(200).collect::<String>(), "generation probe failed");
                false
            }
            None => false,
        }
    }

    /// The first model id of the upstream's `/v1/models`.
    async fn first_model(&self, pool: &Pool, u: &Upstream) -> Option<String> {
        let timeout = pool.health_cfg.probe_timeout.max(Duration::from_millis(1));
        let get = http::Request::get("/v1/models")
            .header(http::header::USER_AGENT, GENERATION_PROBE_AGENT);
        let (status, text) = self.send(pool, u, get, String::new(), timeout).await?;
        if !(200..300).contains(&status) {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["data"][0]["id"].as_str().map(str::to_string)
    }

    /// A liveness probe: GET `path` answered 2xx within `timeout`.
    async fn probe(&self, pool: &Pool, u: &Upstream, path: &str, timeout: Duration) -> bool {
        let get = http::Request::get(path).header(http::header::USER_AGENT, HEALTH_PROBE_AGENT);
        let resp = self.send(pool, u, get, String::new(), timeout).await;
        resp.is_some_and(|(status, _)| (200..300).contains(&status))
    }

    /// One request to `u` (`req`'s path below its base URL) with the pool's key; the status
    /// and the body, or `None` when nothing complete came back within `timeout`.
    async fn send(
        &self,
        pool: &Pool,
        u: &Upstream,
        req: http::request::Builder,
        body: String,
        timeout: Duration,
    ) -> Option<(u16, String)> {
        let mut req = req.header(http::header::HOST, u.target.host());
        if !body.is_empty() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(key) = &pool.api_key {
            req = req.header(http::header::AUTHORIZATION, key.clone());
        }
        let req = req.body(Full::new(Bytes::from(body))).ok()?;
        let exchange = async {
            let resp =
                conn::send(&u.target, req, self.connect_timeout, self.keepalive).await.ok()?;
            let status = resp.status().as_u16();
            // Read to the end, so the connection goes back to the idle list.
            let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.ok()?.to_bytes();
            Some((status, String::from_utf8_lossy(&bytes).into_owned()))
        };
        tokio::time::timeout(timeout, exchange).await.ok().flatten()
    }
}
