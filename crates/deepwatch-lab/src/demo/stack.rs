//! What the demo runs and how it is wired: the ports (free ones, or consecutive from a base),
//! and the one `deepwatch.toml` every component reads — three simulators behind the gateway
//! (blue v1 90 %, green v2 10 %, standby v1 as a cold standby that only a failover uses), the
//! agent scraping them, the analyzer with golden-prompt probes pinned to blue (v1) and green
//! (v2) and a failover policy for the P1 alert, and the rules spec whose scrape targets and
//! receivers point at this machine.

use std::net::{SocketAddr, TcpListener};

pub const MODEL: &str = "deepseek-r1";
pub const SIM_TOKEN: &str = "demo-sim-token";
pub const GATEWAY_TOKEN: &str = "demo-gateway-token";
/// The probes' API key: tenant `probes`, allowed to pin a pool.
pub const PROBE_KEY: &str = "demo-probe-key";
pub const CORP_ID: &str = "ww-demo-corp";

/// Every port of the demo.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub blue: u16,
    pub blue_admin: u16,
    pub green: u16,
    pub green_admin: u16,
    pub standby: u16,
    pub standby_admin: u16,
    pub proxy: u16,
    pub gateway_admin: u16,
    pub agent: u16,
    pub analyzer: u16,
    pub prometheus: u16,
    pub alertmanager: u16,
    pub sinks: u16,
    pub smtp: u16,
}

/// How many ports the demo uses (`--port-base` takes this many, consecutive).
pub const PORT_COUNT: u16 = 14;

impl Ports {
    /// Free loopback ports, all different (every listener is held until all are chosen).
    pub fn auto() -> std::io::Result<Ports> {
        let listeners: Vec<TcpListener> =
            (0..PORT_COUNT).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
        let ports: Vec<u16> =
            listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
        Ok(Ports::from_list(&ports))
    }

    /// `base`, `base + 1`, ... in the field order above.
    pub fn from_base(base: u16) -> Option<Ports> {
        base.checked_add(PORT_COUNT)?;
        let ports: Vec<u16> = (0..PORT_COUNT).map(|i| base + i).collect();
        Some(Ports::from_list(&ports))
    }

    fn from_list(p: &[u16]) -> Ports {
        Ports {
            blue: p[0],
            blue_admin: p[1],
            green: p[2],
            green_admin: p[3],
            standby: p[4],
            standby_admin: p[5],
            proxy: p[6],
            gateway_admin: p[7],
            agent: p[8],
            analyzer: p[9],
            prometheus: p[10],
            alertmanager: p[11],
            sinks: p[12],
            smtp: p[13],
        }
    }
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The demo's `deepwatch.toml`.
pub fn config_text(p: &Ports, state_dir: &str, with_analyzer: bool) -> String {
    let analyzer_targets =
        if with_analyzer { format!("[\"127.0.0.1:{}\"]", p.analyzer) } else { "[]".to_string() };
    let analyzer_webhook = if with_analyzer {
        format!("http://127.0.0.1:{}/webhook/alertmanager", p.analyzer)
    } else {
        // Nobody listens: Alertmanager logs the failed delivery, the demo goes on.
        format!("http://127.0.0.1:{}/analyzer-disabled", p.sinks)
    };
    format!(
        r#"# Written by `deepwatch demo`; every component of the demo reads this file.

[agent]
listen = "127.0.0.1:{agent}"
[agent.process]
sample_interval_ms = 1000
# The agent's own resident memory grows while it starts; with the demo's scaled `for` that
# reads as a leak, so only the engines are watched (through their /metrics).
include_self = false
[[agent.engines]]
name = "blue"
url = "http://127.0.0.1:{blue}/metrics"
kind = "vllm"
interval_ms = 1000
timeout_ms = 900
[[agent.engines]]
name = "green"
url = "http://127.0.0.1:{green}/metrics"
kind = "vllm"
interval_ms = 1000
timeout_ms = 900
[[agent.engines]]
name = "standby"
url = "http://127.0.0.1:{standby}/metrics"
kind = "vllm"
interval_ms = 1000
timeout_ms = 900

[gateway]
listen = "127.0.0.1:{proxy}"
admin_listen = "127.0.0.1:{gateway_admin}"
admin_token = "{GATEWAY_TOKEN}"
upstream_connect_timeout_ms = 500
events_path = "{state_dir}/gateway-events.jsonl"
# The probes' key may pin a pool (x-deepwatch-pool), so each probe is answered by the pool it
# scores; the load generator sends no key (tenant "anonymous").
pin_keys = ["{PROBE_KEY}"]
[gateway.api_keys]
"{PROBE_KEY}" = "probes"
# blue serves 90 % and green (the new version) 10 %; standby is cold (weight 0): only a
# failover (the analyzer's, on the P1 alert) sends traffic there.
[[gateway.pools]]
name = "blue"
weight = 90
priority = 0
model_version = "v1"
upstreams = ["http://127.0.0.1:{blue}"]
[[gateway.pools]]
name = "green"
weight = 10
priority = 0
model_version = "v2"
upstreams = ["http://127.0.0.1:{green}"]
[[gateway.pools]]
name = "standby"
weight = 0
priority = 1
model_version = "v1"
upstreams = ["http://127.0.0.1:{standby}"]

[analyzer]
listen = "127.0.0.1:{analyzer}"
prometheus_url = "http://127.0.0.1:{prometheus}"
query_timeout_ms = 3000
evaluation_interval_secs = 1
step_secs = 1
report_dir = "{state_dir}/reports"
[analyzer.baseline]
periods_secs = []
min_points = 5
level_window_secs = 20
level_gap_secs = 2
[[analyzer.series]]
name = "request_rate"
query = "sum by (model, pool) (rate(deepwatch_requests_total[4s]))"
detectors = ["band", "shift"]
[[analyzer.series]]
name = "ttft_p90"
query = "histogram_quantile(0.9, sum by (model, pool, le) (rate(deepwatch_time_to_first_token_seconds_bucket[4s])))"
detectors = ["band", "shift"]
min_band = 0.05
[[analyzer.series]]
name = "probe_accuracy"
query = "deepwatch_probe_accuracy_ratio"
detectors = ["accuracy"]
[analyzer.drift]
window_secs = 15
reference_offset_secs = 30
min_samples = 10
[analyzer.rca]
lookback_secs = 300
after_secs = 30
step_secs = 1

[remediation]
state_dir = "{state_dir}/analyzer"
[remediation.gateway]
url = "http://127.0.0.1:{gateway_admin}"
token = "{GATEWAY_TOKEN}"
# P1: the model answers nothing -> send all traffic to the standby pool. Failing back is an
# operator's decision (the demo takes it once the fault is gone).
[[remediation.policies]]
name = "model_unavailable"
matchers = ['alertname="ModelUnavailable"', 'severity="critical"']
actions = ["failover_to_standby"]
revert_on_resolve = false
[[remediation.actions]]
name = "failover_to_standby"
kind = "failover"
pool = "standby"
cooldown_secs = 60

# Pinned to their pools: the v1 probe fails on every round while blue is slow (it times out),
# whatever the 90/10 split, and v2's stays at 1.
[probes]
enabled = true
gateway_url = "http://127.0.0.1:{proxy}"
api_key = "{PROBE_KEY}"
interval_secs = 2
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

[rules]
# No maintenance window: the demo must not be muted on a Sunday night.
maintenance = []
[rules.receivers]
phone_webhook_url = "http://127.0.0.1:{sinks}/sms"
analyzer_webhook_url = "{analyzer_webhook}"
[rules.receivers.wecom]
api_url = "http://127.0.0.1:{sinks}/cgi-bin/"
corp_id = "{CORP_ID}"
agent_id = "1000002"
api_secret = "demo-secret"
to_party = "1"
[rules.receivers.email]
smarthost = "127.0.0.1:{smtp}"
from = "deepwatch-demo@localhost"
to = "oncall@localhost"
[rules.targets]
agents = ["127.0.0.1:{agent}"]
gateways = ["127.0.0.1:{gateway_admin}"]
analyzer = {analyzer_targets}
node_exporter = []
pushgateway = []
alertmanager = ["127.0.0.1:{alertmanager}"]
kubernetes_sd = false
# Grafana's generated datasource points at the first of these.
[rules.long_term]
federate_from = ["127.0.0.1:{prometheus}"]
"#,
        agent = p.agent,
        blue = p.blue,
        green = p.green,
        standby = p.standby,
        proxy = p.proxy,
        gateway_admin = p.gateway_admin,
        analyzer = p.analyzer,
        prometheus = p.prometheus,
        alertmanager = p.alertmanager,
        sinks = p.sinks,
        smtp = p.smtp,
    )
}

/// The game day's root-cause lookback and rate window (seconds) at a time scale: 30 minutes
/// and 2.5 minutes of production time, at least 30 s and 3 s. Each drill is preceded by quiet
/// traffic as long as the lookback, so one drill's baseline never holds the one before.
pub fn rca_windows(time_scale: u64) -> (u64, u64) {
    let scale = time_scale.max(1);
    ((1800 / scale).clamp(30, 3600), (150 / scale).clamp(3, 60))
}

/// Root cause on the stack's time scale (`rca_windows`): a 1m rate window on a stack that runs
/// 30 or 60 times faster would be a ramp over the whole of a short history, and every rate
/// candidate would look as if it moved when the load started.
pub fn scaled_rca(text: &str, time_scale: u64) -> String {
    let (lookback, rate_window) = rca_windows(time_scale);
    text.replacen(
        "[analyzer.rca]\nlookback_secs = 300\n",
        &format!("[analyzer.rca]\nlookback_secs = {lookback}\nrate_window_secs = {rate_window}\n"),
        1,
    )
}

/// The game day's additions to the demo's config: the agent watches each engine process (by
/// its command line, so a restart is a new pid of the same target) with a short growth
/// window, and the analyzer plans capacity every two seconds from a minute of history. The
/// root-cause windows are scaled by `scaled_rca`, as for every demo.
pub fn gameday_config(text: &str, p: &Ports) -> String {
    let mut out = text.replacen(
        "include_self = false\n",
        "include_self = false\ngrowth_window_secs = 15\n",
        1,
    );
    for (name, port) in [("sim-blue", p.blue), ("sim-green", p.green), ("sim-standby", p.standby)] {
        out.push_str(&format!(
            "\n[[agent.process.targets]]\nname = \"{name}\"\ncmdline_regex = 'sim --listen 127\\.0\\.0\\.1:{port} '\n"
        ));
    }
    out.push_str(
        "\n[remediation.scaling]\nmin_replicas = 1\nreplica_capacity = 4.0\nhistory_secs = 60\nhistory_step_secs = 1\nplan_interval_secs = 2\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepwatch_core::config::Config;

    #[test]
    fn demo_config_is_valid_with_and_without_the_analyzer() {
        let ports = Ports::from_base(20000).unwrap();
        for with in [true, false] {
            let config = Config::from_toml_str(&config_text(&ports, "/tmp/x", with)).unwrap();
            config.validate().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(config.gateway.pools.len(), 3);
            // Every probe is pinned to a pool of its version, with a key allowed to pin.
            assert_eq!(config.gateway.pin_keys, vec![config.probes.api_key.clone()]);
            for t in &config.probes.targets {
                let pool = config.gateway.pools.iter().find(|p| p.name == t.pool).unwrap();
                assert_eq!(pool.model_version, t.model_version);
            }
            assert_eq!(config.rules.targets.analyzer.len(), usize::from(with));
        }
    }

    #[test]
    fn the_gameday_config_is_valid_and_watches_each_engine_process() {
        let ports = Ports::from_base(20000).unwrap();
        let text = gameday_config(&scaled_rca(&config_text(&ports, "/tmp/x", true), 30), &ports);
        let config = Config::from_toml_str(&text).unwrap_or_else(|e| {
            panic!(
                "{e}
{text}"
            )
        });
        config.validate().unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> =
            config.agent.process.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["sim-blue", "sim-green", "sim-standby"]);
        assert_eq!(config.agent.process.growth_window, std::time::Duration::from_secs(15));
        assert_eq!(
            config.agent.process.targets[0].cmdline_regex,
            r"sim --listen 127\.0\.0\.1:20000 "
        );
        assert_eq!(config.remediation.scaling.plan_interval, std::time::Duration::from_secs(2));
    }

    #[test]
    fn every_demo_scales_its_root_cause_windows() {
        let ports = Ports::from_base(20000).unwrap();
        for (scale, lookback, rate) in [(30, 60, 5), (60, 30, 3), (1, 1800, 60)] {
            let text = scaled_rca(&config_text(&ports, "/tmp/x", true), scale);
            let config = Config::from_toml_str(&text).unwrap();
            config.validate().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(config.analyzer.rca.rate_window, std::time::Duration::from_secs(rate));
            assert_eq!(config.analyzer.rca.lookback, std::time::Duration::from_secs(lookback));
        }
    }

    #[test]
    fn automatic_ports_are_distinct() {
        let p = Ports::auto().unwrap();
        let mut all = vec![
            p.blue,
            p.blue_admin,
            p.green,
            p.green_admin,
            p.standby,
            p.standby_admin,
            p.proxy,
            p.gateway_admin,
            p.agent,
            p.analyzer,
            p.prometheus,
            p.alertmanager,
            p.sinks,
            p.smtp,
        ];
        all.sort();
        all.dedup();
        assert_eq!(all.len(), PORT_COUNT as usize);
        assert!(Ports::from_base(65530).is_none());
    }
}
