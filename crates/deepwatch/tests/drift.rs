//! Output drift that can page, with real processes: three simulators behind the real gateway
//! binary (`blue` v1, `green` v2 configured like blue, `red` v3 whose answers are shorter:
//! `[sim] output_tokens_median` from a config file), the analyzer daemon's golden-prompt probes
//! pinned to each pool all along, the analyzer computing drift from Debian's Prometheus, which
//! scrapes gateway and analyzer and evaluates the generated rules (time scale 60:
//! `PoolOutputDrift` holds 10 s). Client traffic is chat requests at about 25 req/s, one in five
//! with a client `max_tokens` (the same mix reaches every pool, so the comparison stays matched).
//!
//! (a) A rollout of the unchanged version: green goes 20 % → 50 % → 100 % through
//! `POST /admin/rollouts`, and keeps serving a while after. `PoolOutputDrift` never fires,
//! although the pool comparison is measured throughout, red (probes only) is never compared,
//! and nothing reasons, so no reasoning share is compared.
//! (b) The changed version: red gets 40 % of the traffic by `PUT /admin/pools/red/weight`;
//! `PoolOutputDrift` fires for red.

use crate::support::procs::{args, deepwatch};
use crate::support::watch::AlertWatcher;
use deepwatch_testkit::{free_addr, Server};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const MODEL: &str = "deepseek-r1";
const ADMIN_TOKEN: &str = "e2e-drift-admin";
const PROBE_KEY: &str = "sk-drift-probe";
const ALERT: &str = "PoolOutputDrift";

async fn sim(name: &str, version: &str, seed: u64, config: Option<&str>) -> (Server, SocketAddr) {
    let listen = free_addr();
    let mut a = args(&[
        "sim",
        "--listen",
        &listen.to_string(),
        "--admin-listen",
        &free_addr().to_string(),
        "--model",
        MODEL,
        "--model-version",
        version,
        "--admin-token",
        "e2e-drift-sim",
        "--seed",
        &seed.to_string(),
        "--fast",
    ]);
    if let Some(path) = config {
        a.extend(args(&["--config", path]));
    }
    (deepwatch(name, &a, listen, "/health").await, listen)
}

/// The pool-comparison series the analyzer exports now: (pool, reference_pool, kind, kl, threshold).
type PoolDrift = (String, String, String, f64, f64);

fn pool_drift(metrics: &str) -> Vec<PoolDrift> {
    let label = |line: &str, name: &str| {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        Some(line[start..].split('"').next()?.to_string())
    };
    let series = |name: &str| -> Vec<(String, String, String, f64)> {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .filter_map(|l| {
                let value = l.rsplit(' ').next()?.parse().ok()?;
                Some((label(l, "pool")?, label(l, "reference_pool")?, label(l, "kind")?, value))
            })
            .collect()
    };
    let thresholds = series("deepwatch_drift_pool_threshold");
    series("deepwatch_drift_pool_divergence")
        .into_iter()
        .filter_map(|(p, r, k, kl)| {
            let t = thresholds.iter().find(|t| (&t.0, &t.1, &t.2) == (&p, &r, &k))?.3;
            Some((p, r, k, kl, t))
        })
        .collect()
}

/// Client traffic: a chat request every 40 ms, one in five with `max_tokens`; counts non-200s.
fn traffic(proxy: SocketAddr, failures: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = deepwatch_core::http::builder().build().unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(40));
        for i in 0u64.. {
            tick.tick().await;
            let mut body = json!({"model": MODEL, "messages": [
                {"role": "user", "content": format!("Tell me about request {i}.")}]});
            if i % 5 == 0 {
                body["max_tokens"] = json!(16);
            }
            let (http, failures) = (http.clone(), failures.clone());
            tokio::spawn(async move {
                let url = format!("http://{proxy}/v1/chat/completions");
                let ok = match http.post(url).json(&body).send().await {
                    Ok(resp) => resp.status() == 200 && resp.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    })
}

async fn admin(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
) -> (u16, Value) {
    let resp = http.request(method, url).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_output_drift_fires_on_a_changed_version_and_not_through_an_unchanged_rollout() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let shorter = dir.path().join("red-sim.toml");
    std::fs::write(&shorter, "[sim]\noutput_tokens_median = 50\n").unwrap();
    let (_blue, blue) = sim("sim-blue", "v1", 1, None).await;
    let (_green, green) = sim("sim-green", "v2", 2, None).await;
    let (_red, red) = sim("sim-red", "v3", 3, Some(&shorter.display().to_string())).await;
    let (proxy, gateway_admin, analyzer) = (free_addr(), free_addr(), free_addr());

    let generated_for = |prom: &str| {
        format!(
            r#"
[gateway]
listen = "{proxy}"
admin_listen = "{gateway_admin}"
admin_token = "{ADMIN_TOKEN}"
pin_keys = ["{PROBE_KEY}"]
[gateway.api_keys]
"{PROBE_KEY}" = "probes"
[[gateway.pools]]
name = "blue"
weight = 100
model_version = "v1"
upstreams = ["http://{blue}"]
[[gateway.pools]]
name = "green"
weight = 0
model_version = "v2"
upstreams = ["http://{green}"]
[[gateway.pools]]
name = "red"
weight = 0
model_version = "v3"
upstreams = ["http://{red}"]

[analyzer]
listen = "{analyzer}"
prometheus_url = "{prom}"
evaluation_interval_secs = 1
step_secs = 1
report_dir = "{dir}/reports"
[analyzer.drift]
window_secs = 20
reference_offset_secs = 20

[remediation]
state_dir = "{dir}/analyzer-state"

[probes]
enabled = true
gateway_url = "http://{proxy}"
api_key = "{PROBE_KEY}"
interval_secs = 1
timeout_secs = 1
max_tokens = 4
[[probes.targets]]
model = "{MODEL}"
model_version = "v1"
pool = "blue"
[[probes.targets.prompts]]
name = "answers"
prompt = "Say a few words."
check = "regex"
expect = '\w+'
[[probes.targets]]
model = "{MODEL}"
model_version = "v2"
pool = "green"
[[probes.targets.prompts]]
name = "answers"
prompt = "Say a few words."
check = "regex"
expect = '\w+'
[[probes.targets]]
model = "{MODEL}"
model_version = "v3"
pool = "red"
[[probes.targets.prompts]]
name = "answers"
prompt = "Say a few words."
check = "regex"
expect = '\w+'

[rules.targets]
agents = []
gateways = ["{gateway_admin}"]
analyzer = ["{analyzer}"]
node_exporter = []
pushgateway = []
alertmanager = []
kubernetes_sd = false
"#,
            dir = dir.path().display(),
        )
    };
    // Prometheus first (the rules do not depend on its address), then the config that names it.
    let parsed =
        deepwatch_core::config::Config::from_toml_str(&generated_for("http://127.0.0.1:9"))
            .expect("config parses");
    parsed.validate().unwrap_or_else(|e| panic!("test config invalid: {e}"));
    let generated = crate::support::generate(&parsed, 60);
    let prom = crate::support::prometheus_with_rules(&generated).await;
    let path = dir.path().join("deepwatch.toml");
    std::fs::write(&path, generated_for(&prom.url())).unwrap();
    let config = path.display().to_string();
    let _gateway =
        deepwatch("gateway", &args(&["gateway", "--config", &config]), gateway_admin, "/healthz")
            .await;
    let _analyzer =
        deepwatch("analyzer", &args(&["analyze", "--config", &config]), analyzer, "/healthz").await;
    let watcher = AlertWatcher::start(&prom.url());
    let http = deepwatch_core::http::builder().build().unwrap();
    let failures = Arc::new(AtomicU64::new(0));
    let load = traffic(proxy, failures.clone());
    let analyzer_metrics = async || {
        let url = format!("http://{analyzer}/metrics");
        let text = http.get(url).send().await.ok()?.text().await.ok()?;
        Some(pool_drift(&text))
    };

    // (a) Blue alone until a full drift window has passed, then the unchanged green rolls out.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let rollout = json!({"pool": "green", "stable": "blue", "steps": [20, 50, 100],
                         "min_samples": 30});
    let url = format!("http://{gateway_admin}/admin/rollouts");
    let (status, doc) = admin(&http, reqwest::Method::POST, url.clone(), rollout).await;
    assert_eq!(status, 201, "{doc}");
    let phase_a = Instant::now();
    let mut measured = Vec::new();
    let mut promoted_after = None;
    while phase_a.elapsed() < Duration::from_secs(24) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        measured.extend(analyzer_metrics().await.unwrap_or_default());
        if promoted_after.is_none() {
            let (_, doc) = admin(&http, reqwest::Method::GET, url.clone(), Value::Null).await;
            if doc["history"][0]["status"] == "promoted" {
                promoted_after = Some(phase_a.elapsed().as_secs_f64());
            }
            assert_ne!(doc["history"][0]["status"], "rolled_back", "{doc}");
        }
    }
    let promoted_after = promoted_after.expect("the unchanged green was never promoted");
    let fired_a: Vec<_> =
        watcher.instances(ALERT).into_iter().filter(|a| a.firing.is_some()).collect();
    assert!(fired_a.is_empty(), "{ALERT} fired through an unchanged rollout: {fired_a:?}");
    let length: Vec<&PoolDrift> = measured.iter().filter(|m| m.2 == "length").collect();
    assert!(
        length.iter().filter(|m| m.0 == "green" || m.1 == "green").count() >= 5,
        "green's length was hardly compared with blue's: {measured:?}"
    );
    assert!(
        !measured.iter().any(|m| m.0 == "red" || m.1 == "red"),
        "red served only pinned probes, yet was compared: {measured:?}"
    );
    assert!(
        !measured.iter().any(|m| m.2 == "reasoning_share"),
        "no simulator reasons, yet reasoning share was compared: {measured:?}"
    );
    let worst = measured
        .iter()
        .max_by(|a, b| (a.3 / a.4).total_cmp(&(b.3 / b.4)))
        .map(|(p, r, k, kl, t)| format!("{:.2} ({p} vs {r}, {k})", kl / t))
        .unwrap_or_default();

    // (b) The changed version takes 40 % of the traffic.
    let weight = |pool: &str| format!("http://{gateway_admin}/admin/pools/{pool}/weight");
    let put = reqwest::Method::PUT;
    assert_eq!(admin(&http, put.clone(), weight("red"), json!({"weight": 40})).await.0, 200);
    assert_eq!(admin(&http, put, weight("green"), json!({"weight": 60})).await.0, 200);
    let phase_b = Instant::now();
    let fired_b = loop {
        let fired: Vec<_> = watcher
            .instances(ALERT)
            .into_iter()
            .filter(|a| {
                a.firing.is_some() && a.labels.get("pool").map(String::as_str) == Some("red")
            })
            .collect();
        if let Some(first) = fired.first() {
            break first.clone();
        }
        assert!(
            phase_b.elapsed() < Duration::from_secs(40),
            "{ALERT} did not fire for the changed red: {:?}, analyzer: {:?}",
            watcher.all(),
            analyzer_metrics().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    load.abort();
    assert_eq!(fired_b.labels.get("reference_pool").map(String::as_str), Some("green"));
    assert_eq!(failures.load(Ordering::Relaxed), 0, "client requests failed");
    eprintln!(
        "unchanged rollout: promoted {promoted_after:.1} s after the start, {} pool comparisons, \
         highest divergence/threshold {worst}, no {ALERT}; changed version: {ALERT} ({}) \
         fired {:.1} s after it got traffic; test took {:.1} s",
        measured.len(),
        fired_b.labels.get("kind").map(String::as_str).unwrap_or("?"),
        fired_b.firing.unwrap().saturating_duration_since(phase_b).as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
