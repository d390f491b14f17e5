//! Self-healing end to end, with real servers: two simulators (the primary pool `blue`, and a
//! cold `standby` pool of weight 0 that only a failover serves), the gateway and the analyzer
//! run as the real `deepwatch` binary; Prometheus and Alertmanager from the Debian packages
//! with the configs `deepwatch_rules::generate` writes (time scale 60); steady load through
//! the gateway from the lab's load generator.
//!
//! The primary simulator is killed with SIGKILL. Every request then fails, the P1
//! `ModelUnavailable` fires in Prometheus, Alertmanager delivers it to the analyzer's webhook,
//! and the analyzer, with nothing but the default `[remediation]` policies, fails the gateway
//! over to `standby` through its admin API; requests succeed again. The test measures
//! detection (kill -> alert firing in Prometheus -> webhook received by the analyzer), time to
//! recovery (kill -> first successful request started after the kill) and the errors in
//! between, and checks that the audit log holds exactly one failover intent and one `ok`
//! result, that the gateway and Prometheus show the standby pool active, that the alert
//! resolves, that the availability SLO page clears within a minute (burn-rate windows scale
//! with the time scale), and that `TargetAbsent` never fired while Prometheus started.

use crate::support;
use crate::support::procs::{args, deepwatch};
use crate::support::recorder::{self, Recorder};
use crate::support::secs_since;
use crate::support::watch::{AlertWatcher, Outcomes};
use deepwatch_core::config::Config;
use deepwatch_testkit::{free_addr, Alertmanager, Server};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const TIME_SCALE: u64 = 60;
const MODEL: &str = "deepseek-r1";
const SIM_TOKEN: &str = "e2e-failover-sim-token";
const GATEWAY_TOKEN: &str = "e2e-failover-gateway-token";
/// Load through the gateway, requests per second (Poisson arrivals).
const RATE: f64 = 10.0;
/// Successful requests in a row that count as "requests succeed again".
const CONSECUTIVE_OK: usize = 20;

struct Addrs {
    blue: SocketAddr,
    blue_admin: SocketAddr,
    standby: SocketAddr,
    standby_admin: SocketAddr,
    proxy: SocketAddr,
    gateway_admin: SocketAddr,
    analyzer: SocketAddr,
}

/// The stack's `deepwatch.toml`. `[remediation]` names only the state directory and the
/// gateway: the default policies map `ModelUnavailable` to `failover_to_standby`.
fn config_text(a: &Addrs, prom: &str, am: &str, phone: &str, wecom: &str, dir: &str) -> String {
    format!(
        r#"
[gateway]
listen = "{proxy}"
admin_listen = "{gateway_admin}"
admin_token = "{GATEWAY_TOKEN}"
upstream_connect_timeout_ms = 500
[[gateway.pools]]
name = "blue"
weight = 100
priority = 0
model_version = "v1"
upstreams = ["http://{blue}"]
[[gateway.pools]]
name = "standby"
weight = 0
priority = 1
model_version = "v1"
upstreams = ["http://{standby}"]

[analyzer]
listen = "{analyzer}"
prometheus_url = "{prom}"
query_timeout_ms = 3000
evaluation_interval_secs = 1
step_secs = 1
report_dir = "{dir}/reports"
[analyzer.rca]
lookback_secs = 300
after_secs = 30
step_secs = 1

[remediation]
state_dir = "{dir}/analyzer-state"
[remediation.gateway]
url = "http://{gateway_admin}"
token = "{GATEWAY_TOKEN}"

[rules]
maintenance = []
[rules.receivers]
phone_webhook_url = "{phone}/sms"
analyzer_webhook_url = "http://{analyzer}/webhook/alertmanager"
[rules.receivers.wecom]
api_url = "{wecom}/cgi-bin/"
corp_id = "ww-e2e"
agent_id = "1000002"
api_secret = "e2e-secret"
to_party = "2"
[rules.receivers.email]
smarthost = "127.0.0.1:9"
from = "deepwatch@e2e.example.com"
to = "oncall@e2e.example.com"
[rules.targets]
agents = []
gateways = ["{gateway_admin}"]
analyzer = ["{analyzer}"]
node_exporter = []
pushgateway = []
alertmanager = ["{am}"]
kubernetes_sd = false
"#,
        proxy = a.proxy,
        gateway_admin = a.gateway_admin,
        blue = a.blue,
        standby = a.standby,
        analyzer = a.analyzer,
    )
}

async fn sim(name: &str, listen: SocketAddr, admin: SocketAddr, seed: u64) -> Server {
    support::procs::sim(name, listen, admin, MODEL, SIM_TOKEN, seed).await
}

/// One line of the analyzer's audit log.
fn audit(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The value of one sample in a Prometheus text exposition, by its exact series text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

async fn get_text(http: &reqwest::Client, url: &str) -> String {
    match http.get(url).send().await {
        Ok(resp) => resp.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_primary_fails_over_once_and_requests_succeed_again() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let phone: Recorder = recorder::webhook().await;
    let wecom: Recorder = recorder::wecom("ww-e2e", "e2e-secret").await;
    let a = Addrs {
        blue: free_addr(),
        blue_admin: free_addr(),
        standby: free_addr(),
        standby_admin: free_addr(),
        proxy: free_addr(),
        gateway_admin: free_addr(),
        analyzer: free_addr(),
    };
    let dir_text = dir.path().display().to_string();
    let text =
        |prom: &str, am: &str| config_text(&a, prom, am, &phone.url(), &wecom.url(), &dir_text);
    let generate = |config: &Config| support::generate(config, TIME_SCALE);
    // Alertmanager's config does not depend on its own address; Prometheus's does.
    let first = Config::from_toml_str(&text("http://127.0.0.1:9", "127.0.0.1:9")).expect("config");
    first.validate().unwrap_or_else(|e| panic!("test config invalid: {e}"));
    let am = Alertmanager::start(&generate(&first).files["alertmanager/alertmanager.yml"]).await;
    let am_addr = am.server.addr.to_string();
    let generated =
        generate(&Config::from_toml_str(&text("http://127.0.0.1:9", &am_addr)).expect("config"));
    let prom = crate::support::prometheus_with_rules(&generated).await;
    let watcher = AlertWatcher::start(&prom.url());

    let final_text = text(&prom.url(), &am_addr);
    let config = Config::from_toml_str(&final_text).expect("config");
    config.validate().unwrap_or_else(|e| panic!("test config invalid: {e}"));
    let config_path = dir.path().join("deepwatch.toml");
    std::fs::write(&config_path, &final_text).expect("write config");
    let config_arg = config_path.display().to_string();

    let mut primary = sim("sim-blue", a.blue, a.blue_admin, 1).await;
    let _standby = sim("sim-standby", a.standby, a.standby_admin, 2).await;
    let _gateway = deepwatch(
        "gateway",
        &args(&["gateway", "--config", &config_arg]),
        a.gateway_admin,
        "/healthz",
    )
    .await;
    let analyzer =
        deepwatch("analyzer", &args(&["analyze", "--config", &config_arg]), a.analyzer, "/healthz")
            .await;

    let outcomes = Outcomes::default();
    let load_options = deepwatch_lab::load::LoadOptions {
        target: format!("http://{}", a.proxy),
        model: MODEL.into(),
        mode: deepwatch_lab::load::Mode::Open {
            rate: RATE,
            profile: deepwatch_lab::load::Profile::Constant,
        },
        max_requests: 1_000_000,
        duration: Duration::from_secs(3600),
        prompt_tokens: deepwatch_lab::load::Dist::Fixed { value: 16 },
        output_tokens: deepwatch_lab::load::Dist::Fixed { value: 4 },
        timeout: Duration::from_secs(10),
        max_in_flight: 500,
        ..Default::default()
    };
    let progress = Arc::new(outcomes.clone());
    let load = tokio::spawn(async move {
        let _ = deepwatch_lab::load::run(load_options, progress).await;
    });
    let http = deepwatch_testkit::http_client();
    let gateway_admin = format!("http://{}", a.gateway_admin);
    let analyzer_url = format!("http://{}", a.analyzer);
    let logs = |what: &str| {
        format!(
            "{what}\nanalyzer log:\n{}\nprometheus log:\n{}\nalertmanager log:\n{}\nalerts seen: {:#?}",
            analyzer.log(),
            prom.server.log(),
            am.server.log(),
            watcher.all()
        )
    };

    // Warm-up: every target up, the primary pool serving, successes in Prometheus.
    let targets_up = support::poll(Duration::from_secs(30), || async {
        let targets = prom.targets().await;
        (targets.len() == 2 && targets.iter().all(|t| t["health"] == "up")).then_some(())
    })
    .await;
    assert!(targets_up.is_some(), "{}", logs(&format!("targets: {:#?}", prom.targets().await)));
    prom.wait_for_series(
        &format!(
            "sum by (model) (rate(deepwatch_requests_total{{outcome=\"ok\",pool=\"blue\",model=\"{MODEL}\"}}[4s])) > 0"
        ),
        Duration::from_secs(30),
    )
    .await;
    let before = outcomes.list();
    assert!(before.iter().filter(|o| o.ok()).count() >= 10, "warm-up: {before:?}");
    eprintln!("stack up and serving after {:.1}s", secs_since(t0, Instant::now()));

    // The primary engine dies: SIGKILL of its pid (std's Child::kill), reaped at once.
    let pid = primary.pid();
    let killed_at = Instant::now();
    primary.kill();
    eprintln!("killed the primary simulator (pid {pid}) with SIGKILL");

    // Follow the incident until requests started after the kill succeed again.
    let webhook_series =
        "deepwatch_webhook_alerts_total{alertname=\"ModelUnavailable\",status=\"firing\"}";
    let mut webhook_at: Option<Instant> = None;
    let mut failover_at: Option<Instant> = None;
    let mut recovered_at: Option<Instant> = None;
    let deadline = killed_at + Duration::from_secs(45);
    while recovered_at.is_none() || webhook_at.is_none() || failover_at.is_none() {
        assert!(
            Instant::now() < deadline,
            "{}",
            logs(&format!(
                "no recovery 45 s after the kill: webhook {webhook_at:?}, failover {failover_at:?}, recovered {recovered_at:?}"
            ))
        );
        let now = Instant::now();
        if webhook_at.is_none() {
            let m = get_text(&http, &format!("{analyzer_url}/metrics")).await;
            if sample(&m, webhook_series).is_some_and(|v| v > 0.0) {
                webhook_at = Some(now);
            }
        }
        if failover_at.is_none() {
            let pools: Value = match http
                .get(format!("{gateway_admin}/admin/pools"))
                .bearer_auth(GATEWAY_TOKEN)
                .send()
                .await
            {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            if pools["failover"]["forced"]["pool"] == "standby" {
                failover_at = Some(now);
            }
        }
        if recovered_at.is_none() {
            recovered_at = outcomes
                .list()
                .iter()
                .filter(|o| o.ok() && o.started > killed_at)
                .map(|o| o.finished)
                .min();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (webhook_at, failover_at, recovered_at) =
        (webhook_at.unwrap(), failover_at.unwrap(), recovered_at.unwrap());

    // The P1 fired in Prometheus (the request-based variant; the standby upstream stays up).
    let p1 = watcher
        .instances("ModelUnavailable")
        .into_iter()
        .find(|s| s.firing.is_some())
        .unwrap_or_else(|| panic!("{}", logs("ModelUnavailable never seen firing")));
    assert_eq!(
        p1.labels.get("reason").map(String::as_str),
        Some("no_successful_requests"),
        "{p1:?}"
    );
    assert_eq!(p1.labels.get("priority").map(String::as_str), Some("P1"));
    assert_eq!(p1.labels.get("model").map(String::as_str), Some(MODEL));
    let firing_at = p1.firing.unwrap();
    assert!(firing_at > killed_at && firing_at <= webhook_at + Duration::from_millis(200));
    assert!(failover_at >= webhook_at, "failover before the webhook?");

    // Requests succeed again: CONSECUTIVE_OK in a row after the first success.
    let in_a_row = support::poll(Duration::from_secs(20), || async {
        let after: Vec<_> =
            outcomes.list().into_iter().filter(|o| o.finished >= recovered_at).collect();
        (after.len() > CONSECUTIVE_OK).then_some(after)
    })
    .await
    .expect("load stopped after the recovery");
    let failed: Vec<_> = in_a_row.iter().take(CONSECUTIVE_OK).filter(|o| !o.ok()).collect();
    assert!(failed.is_empty(), "errors after the recovery: {failed:?}");
    let outage_errors = outcomes
        .list()
        .iter()
        .filter(|o| !o.ok() && o.finished >= killed_at && o.finished <= recovered_at)
        .count();
    // The standby serves them, as the gateway tells each client.
    for _ in 0..5 {
        let resp = http
            .post(format!("http://{}/v1/chat/completions", a.proxy))
            .json(&serde_json::json!({
                "model": MODEL, "max_tokens": 4,
                "messages": [{"role": "user", "content": "after the failover"}]
            }))
            .send()
            .await
            .expect("request after the failover");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-deepwatch-pool"], "standby");
    }

    // The gateway's metrics, and Prometheus, show the standby pool active.
    let metrics = get_text(&http, &format!("{gateway_admin}/metrics")).await;
    assert_eq!(sample(&metrics, "deepwatch_pool_active{pool=\"standby\"}"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "deepwatch_pool_active{pool=\"blue\"}"), Some(0.0));
    assert_eq!(
        sample(&metrics, "deepwatch_failovers_total{pool=\"standby\",reason=\"command\"}"),
        Some(1.0)
    );
    prom.wait_for_series("deepwatch_pool_active{pool=\"standby\"} == 1", Duration::from_secs(10))
        .await;

    // The P1 resolves once requests succeed; the phone got it too.
    let resolved = support::poll(Duration::from_secs(30), || async {
        let last = watcher.instances("ModelUnavailable").into_iter().map(|s| s.last).max()?;
        (Instant::now().duration_since(last) > Duration::from_secs(1)).then_some(last)
    })
    .await
    .unwrap_or_else(|| panic!("{}", logs("ModelUnavailable never resolved after the failover")));
    assert!(phone
        .posts_to("/sms")
        .iter()
        .any(|r| { r.body.contains("ModelUnavailable") && r.json()["status"] == "firing" }));

    // Exactly one failover, audited once: one intent, one ok result for it. Alertmanager's
    // re-notifications and the resolution (no revert by default) change nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let audit_path = dir.path().join("analyzer-state/audit.jsonl");
    let records = audit(&audit_path);
    let failover: Vec<&Value> =
        records.iter().filter(|r| r["action"] == "failover_to_standby").collect();
    let intents: Vec<&&Value> = failover.iter().filter(|r| r["record"] == "intent").collect();
    let results: Vec<&&Value> = failover.iter().filter(|r| r["record"] == "result").collect();
    assert_eq!(intents.len(), 1, "failover intents in the audit log: {records:#?}");
    assert_eq!(results.len(), 1, "failover results in the audit log: {records:#?}");
    let (intent, result) = (intents[0], results[0]);
    assert_eq!(intent["alertname"], "ModelUnavailable");
    assert_eq!(intent["policy"], "model_unavailable");
    assert_eq!(intent["op"], "run");
    assert_eq!(result["id"], intent["id"]);
    assert_eq!(result["outcome"], "ok", "{result}");
    assert!(
        records.iter().all(|r| r["action"] == "failover_to_standby" || r["record"] == "skipped"),
        "other actions ran: {records:#?}"
    );
    let action_ms =
        result["unix_ms"].as_i64().unwrap_or(0) - intent["unix_ms"].as_i64().unwrap_or(0);

    // Prometheus started without a TargetAbsent flash (its `for` keeps a start-up grace).
    let absent: Vec<_> =
        watcher.instances("TargetAbsent").into_iter().filter(|s| s.firing.is_some()).collect();
    assert!(absent.is_empty(), "TargetAbsent fired: {absent:#?}");

    // The availability SLO paged during the outage and, its burn-rate windows scaled like
    // everything else, stops paging within a minute of the recovery (unscaled 30m/6h windows
    // would keep it paging for half an hour).
    let page = |seen: &support::watch::AlertSeen| {
        seen.firing.is_some() && seen.labels.get("severity").is_some_and(|v| v == "critical")
    };
    let page_cleared = support::poll(Duration::from_secs(60), || async {
        let pages: Vec<_> = watcher
            .instances("AvailabilitySLOBudgetBurn")
            .into_iter()
            .filter(|s| page(s))
            .collect();
        let last = pages.iter().map(|s| s.last).max()?;
        (Instant::now().duration_since(last) > Duration::from_secs(1)).then_some(last)
    })
    .await
    .unwrap_or_else(|| {
        panic!("{}", logs("AvailabilitySLOBudgetBurn did not page, or kept paging a minute"))
    });
    assert!(page_cleared < recovered_at + Duration::from_secs(50));

    let s = |t: Instant| secs_since(killed_at, t);
    eprintln!(
        "failover figures: alert_firing_s={:.2} webhook_s={:.2} failover_s={:.2} recovery_s={:.2} \
         outage_errors={outage_errors} action_ms={action_ms} alert_resolved_s={:.2} \
         slo_page_cleared_s={:.1} test_s={:.1}",
        s(firing_at),
        s(webhook_at),
        s(failover_at),
        s(recovered_at),
        s(resolved),
        s(page_cleared),
        secs_since(t0, Instant::now())
    );
    load.abort();
}
