//! The whole observing stack around the real vLLM, as in production: the agent scraping it,
//! the gateway in front of it, the analyzer, and Prometheus and Alertmanager (Debian packages)
//! running the configs `deepwatch_rules::generate` writes at a time scale, with the phone and
//! WeCom receivers recorded.

use super::gateway::GATEWAY_TOKEN;
use super::stack::{engine_toml, start, Proc};
use super::Ctx;
use crate::support::recorder::{self, Recorder};
use crate::support::watch::AlertWatcher;
use deepwatch_core::config::Config;
use deepwatch_testkit::{free_addr, Alertmanager, Prometheus};
use std::net::SocketAddr;
use std::time::Duration;

pub const ENGINE: &str = "vllm-0";

pub struct Observed {
    pub prom: Prometheus,
    _am: Alertmanager,
    pub watcher: AlertWatcher,
    pub generated: deepwatch_rules::Generated,
    pub agent: Proc,
    pub gateway: Proc,
    pub gateway_url: String,
    pub analyzer: Proc,
    _phone: Recorder,
    pub dir: tempfile::TempDir,
    _wecom: Recorder,
}

impl Observed {
    pub fn report_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("reports")
    }

    /// Logs of everything, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "agent log:\n{}\ngateway log:\n{}\nanalyzer log:\n{}\nprometheus log:\n{}\nalerts seen: {:#?}",
            self.agent.server.log(),
            self.gateway.server.log(),
            self.analyzer.server.log(),
            self.prom.server.log(),
            self.watcher.all()
        )
    }
}

struct Addrs {
    agent: SocketAddr,
    proxy: SocketAddr,
    gateway_admin: SocketAddr,
    analyzer: SocketAddr,
}

#[allow(clippy::too_many_arguments)]
fn config_text(
    a: &Addrs,
    vllm: &str,
    stall_after_secs: u64,
    prom: &str,
    am: &str,
    phone: &str,
    wecom: &str,
    dir: &str,
) -> String {
    let engine = engine_toml(ENGINE, vllm, stall_after_secs);
    format!(
        r#"
[agent]
listen = "{agent}"
[agent.collectors]
gpu = false
host = false
process = false
logs = false
peers = false
{engine}

[gateway]
listen = "{proxy}"
admin_listen = "{gateway_admin}"
admin_token = "{GATEWAY_TOKEN}"
upstream_connect_timeout_ms = 500
[gateway.request_log]
path = "{dir}/requests.jsonl"
[[gateway.pools]]
name = "vllm"
weight = 100
priority = 0
model_version = "v1"
upstreams = ["{vllm}"]

[analyzer]
listen = "{analyzer}"
prometheus_url = "{prom}"
query_timeout_ms = 3000
evaluation_interval_secs = 1
step_secs = 1
report_dir = "{dir}/reports"
[analyzer.rca]
lookback_secs = 300
after_secs = 10
step_secs = 1
rate_window_secs = 5

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
corp_id = "ww-real-engine"
agent_id = "1000002"
api_secret = "real-engine-secret"
to_party = "2"
[rules.receivers.email]
smarthost = "127.0.0.1:9"
from = "deepwatch@real-engine.example.com"
to = "oncall@real-engine.example.com"
[rules.targets]
agents = ["{agent}"]
gateways = ["{gateway_admin}"]
analyzer = ["{analyzer}"]
node_exporter = []
pushgateway = []
alertmanager = ["{am}"]
kubernetes_sd = false
"#,
        agent = a.agent,
        proxy = a.proxy,
        gateway_admin = a.gateway_admin,
        analyzer = a.analyzer,
    )
}

/// Starts everything around `ctx`'s vLLM and waits until Prometheus scrapes every target.
pub async fn start_stack(ctx: &Ctx, time_scale: u64, stall_after_secs: u64) -> Observed {
    let dir = tempfile::tempdir().expect("temp dir");
    let phone = recorder::webhook().await;
    let wecom = recorder::wecom("ww-real-engine", "real-engine-secret").await;
    let a = Addrs {
        agent: free_addr(),
        proxy: free_addr(),
        gateway_admin: free_addr(),
        analyzer: free_addr(),
    };
    let dir_text = dir.path().display().to_string();
    let vllm = ctx.vllm.url();
    let text = |prom: &str, am: &str| {
        config_text(&a, &vllm, stall_after_secs, prom, am, &phone.url(), &wecom.url(), &dir_text)
    };
    let generate = |toml: &str| {
        let config = Config::from_toml_str(toml).expect("config");
        config.validate().unwrap_or_else(|e| panic!("test config invalid: {e}"));
        crate::support::generate(&config, time_scale)
    };
    // Alertmanager's config does not depend on its own address; Prometheus's does.
    let first = generate(&text("http://127.0.0.1:9", "127.0.0.1:9"));
    let am = Alertmanager::start(&first.files["alertmanager/alertmanager.yml"]).await;
    let am_addr = am.server.addr.to_string();
    let generated = generate(&text("http://127.0.0.1:9", &am_addr));
    let prom = crate::support::prometheus_with_rules(&generated).await;
    let final_text = text(&prom.url(), &am_addr);
    let agent = start("agent", &final_text, a.agent, "/healthz").await;
    let gateway = start("gateway", &final_text, a.gateway_admin, "/healthz").await;
    let analyzer = start("analyze", &final_text, a.analyzer, "/healthz").await;
    let watcher = AlertWatcher::start(&prom.url());
    let observed = Observed {
        prom,
        _am: am,
        watcher,
        generated,
        agent,
        gateway,
        gateway_url: format!("http://{}", a.proxy),
        analyzer,
        _phone: phone,
        dir,
        _wecom: wecom,
    };
    let up = crate::support::poll(Duration::from_secs(30), || async {
        let targets = observed.prom.targets().await;
        let agent = format!("http://{}/metrics", a.agent);
        let has_agent = targets.iter().any(|t| t["scrapeUrl"] == agent.as_str());
        let all_up = targets.iter().all(|t| t["health"] == "up");
        (has_agent && targets.len() >= 3 && all_up).then_some(targets)
    })
    .await;
    let Some(targets) = up else {
        let targets: Vec<String> = observed
            .prom
            .targets()
            .await
            .iter()
            .map(|t| format!("{} {} {}", t["scrapeUrl"], t["health"], t["lastError"]))
            .collect();
        panic!("targets not all up after 30 s: {targets:#?}");
    };
    eprintln!("{} targets up", targets.len());
    observed
}
