//! Spend per tenant, model and pool with real processes: two simulators (pools `blue` and
//! `green`, half the traffic each) behind the real gateway binary, configured with a price per
//! model from `deepwatch.toml`; two tenants send streamed and non-streamed chat requests that
//! share a long system prompt, so the simulators' prefix caches serve part of each prompt and
//! report it as `prompt_tokens_details.cached_tokens`, as vLLM does.
//!
//! What the clients saw in `usage` is summed per tenant and pool (the pool from the
//! `x-deepwatch-pool` response header); the gateway's `/metrics` must show the same prompt,
//! cached-prompt and completion tokens, and `deepwatch_spend_total` must equal those tokens
//! times the configured prices.
//!
//! Then Debian's Prometheus scrapes the gateway with the generated rules (time scale 60):
//! `team-b`, whose daily budget is far below what it spends, gets `TenantBudgetExceeded` for
//! both reasons (spent, projected); `team-a`, with a budget far above, never does.

use crate::support::procs::{args, deepwatch};
use crate::support::watch::AlertWatcher;
use deepwatch_testkit::{free_addr, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

const MODEL: &str = "deepseek-r1";
const SIM_TOKEN: &str = "e2e-cost-sim-token";
const PROMPT_PRICE: f64 = 0.55;
const CACHED_PRICE: f64 = 0.14;
const COMPLETION_PRICE: f64 = 2.19;

/// Tokens a client saw, summed.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    prompt: u64,
    cached: u64,
    completion: u64,
}

async fn sim(name: &str, version: &str, listen: SocketAddr, seed: u64) -> Server {
    let a = args(&[
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
        SIM_TOKEN,
        "--seed",
        &seed.to_string(),
    ]);
    deepwatch(name, &a, listen, "/health").await
}

fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_equals_tokens_times_price_and_budget_alerts_fire_per_tenant() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (blue, green, proxy, admin) = (free_addr(), free_addr(), free_addr(), free_addr());
    let config = format!(
        r#"
[gateway]
listen = "{proxy}"
admin_listen = "{admin}"
require_api_key = true
[gateway.api_keys]
"sk-team-a" = "team-a"
"sk-team-b" = "team-b"
[gateway.prices]
"{MODEL}" = {{ prompt_per_million = {PROMPT_PRICE}, cached_prompt_per_million = {CACHED_PRICE}, completion_per_million = {COMPLETION_PRICE} }}
"unused-model" = {{ prompt_per_million = 100.0, completion_per_million = 100.0 }}
[gateway.daily_budgets]
"team-a" = 1000000.0
"team-b" = 0.000001
[[gateway.pools]]
name = "blue"
weight = 50
model_version = "v1"
upstreams = ["http://{blue}"]
[[gateway.pools]]
name = "green"
weight = 50
model_version = "v2"
upstreams = ["http://{green}"]

[rules.targets]
agents = []
gateways = ["{admin}"]
analyzer = []
node_exporter = []
pushgateway = []
alertmanager = []
kubernetes_sd = false
"#
    );
    let parsed = deepwatch_core::config::Config::from_toml_str(&config).expect("config parses");
    parsed.validate().unwrap_or_else(|e| panic!("test config invalid: {e}"));
    let path = dir.path().join("deepwatch.toml");
    std::fs::write(&path, &config).unwrap();
    let _blue = sim("sim-blue", "v1", blue, 1).await;
    let _green = sim("sim-green", "v2", green, 2).await;
    let _gateway = deepwatch(
        "gateway",
        &args(&["gateway", "--config", &path.display().to_string()]),
        admin,
        "/healthz",
    )
    .await;

    let generated = crate::support::generate(&parsed, 60);
    let prom = crate::support::prometheus_with_rules(&generated).await;
    let watcher = AlertWatcher::start(&prom.url());

    let http = deepwatch_core::http::builder().build().unwrap();
    // 640 characters = 10 full KV blocks of 16 tokens: repeats hit the prefix cache.
    let system = "You are a careful assistant for the deepwatch cost test. ".repeat(12);
    let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
    for i in 0..24 {
        let (key, tenant) = tenant_of(i);
        let stream = i % 2 == 0;
        let mut body = json!({
            "model": MODEL,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": format!("question number {i}")}],
            "max_tokens": 12 + i,
            "stream": stream,
        });
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        let resp = http
            .post(format!("http://{proxy}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        let pool = resp.headers()["x-deepwatch-pool"].to_str().unwrap().to_string();
        let text = resp.text().await.unwrap();
        let usage = if stream {
            text.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .find_map(|v| v.get("usage").filter(|u| !u.is_null()).cloned())
                .expect("usage chunk")
        } else {
            serde_json::from_str::<Value>(&text).unwrap()["usage"].clone()
        };
        let s = seen.entry((tenant.to_string(), pool)).or_default();
        s.prompt += usage["prompt_tokens"].as_u64().unwrap();
        s.cached += usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0);
        s.completion += usage["completion_tokens"].as_u64().unwrap();
    }
    assert!(seen.keys().any(|(_, p)| p == "blue") && seen.keys().any(|(_, p)| p == "green"));
    let cached: u64 = seen.values().map(|s| s.cached).sum();
    assert!(cached > 0, "the shared system prompt never hit a prefix cache: {seen:?}");

    let metrics =
        http.get(format!("http://{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    let mut total = 0.0;
    for ((tenant, pool), s) in &seen {
        let id = [("tenant", tenant.as_str()), ("pool", pool.as_str()), ("model", MODEL)];
        let counted = |name| sample(&metrics, name, &id);
        assert_eq!(counted("deepwatch_prompt_tokens_total"), s.prompt as f64, "{tenant}/{pool}");
        assert_eq!(counted("deepwatch_cached_prompt_tokens_total"), s.cached as f64);
        assert_eq!(counted("deepwatch_completion_tokens_total"), s.completion as f64);
        let expected = ((s.prompt - s.cached) as f64 * PROMPT_PRICE
            + s.cached as f64 * CACHED_PRICE
            + s.completion as f64 * COMPLETION_PRICE)
            / 1e6;
        let spend = counted("deepwatch_spend_total");
        assert!(
            (spend - expected).abs() <= 1e-9 * expected.max(1.0),
            "{tenant}/{pool}: spend {spend}, tokens x price {expected}"
        );
        total += expected;
    }
    let all = sample(&metrics, "deepwatch_spend_total", &[]);
    assert!(
        (all - total).abs() <= 1e-9,
        "spend series outside the tenants and pools: {all} vs {total}"
    );
    assert!(!metrics.contains("unused-model"), "a model nobody asked for has a spend series");
    assert!(metrics.contains(r#"deepwatch_tenant_daily_budget{tenant="team-b"} 0.000001"#));

    // Keep both tenants spending until Prometheus shows both budget alerts for team-b (the
    // projected one holds 15 s at this scale), or give up after 90 s.
    let t0 = Instant::now();
    let fired = |reason: &str| {
        watcher.instances("TenantBudgetExceeded").iter().any(|a| {
            a.firing.is_some()
                && a.labels.get("tenant").map(String::as_str) == Some("team-b")
                && a.labels.get("reason").map(String::as_str) == Some(reason)
        })
    };
    let mut i = 0;
    while !(fired("spent") && fired("projected")) {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "TenantBudgetExceeded for team-b did not fire for both reasons: {:?}",
            watcher.all()
        );
        let (key, _) = tenant_of(i);
        let body = json!({"model": MODEL, "max_tokens": 8,
                          "messages": [{"role": "user", "content": "keep spending"}]});
        let resp = http
            .post(format!("http://{proxy}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let team_a: Vec<_> = watcher
        .instances("TenantBudgetExceeded")
        .into_iter()
        .filter(|a| a.labels.get("tenant").map(String::as_str) != Some("team-b"))
        .collect();
    assert!(team_a.is_empty(), "a tenant within its budget was alerted: {team_a:?}");
    eprintln!(
        "TenantBudgetExceeded fired for both reasons {:.1} s into the load",
        t0.elapsed().as_secs_f64()
    );
}

/// Two of three requests are team-a's.
fn tenant_of(i: usize) -> (&'static str, &'static str) {
    if i.is_multiple_of(3) {
        ("sk-team-b", "team-b")
    } else {
        ("sk-team-a", "team-a")
    }
}
