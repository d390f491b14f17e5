//! Past one Prometheus, with real binaries (Debian's prometheus and victoria-metrics): two
//! clusters, each an edge Prometheus (the generated `long-term/prometheus-edge.yml`, cluster
//! external label, generated rules, time scale 60) scraping its own agent (in-process, two fake
//! H100s) that scrapes its own simulator. The global view two ways: (a) a Prometheus federating
//! the recording-rule series (`prometheus-federation.yml`) and evaluating `rules/global.yml`;
//! (b) the edges' remote_write into VictoriaMetrics, evaluated by vmalert with
//! `rules/global-vmalert.yml`. Cluster b's GPUs run hot: the critical GPU alert fires on both
//! global views (and reaches Alertmanager) for cluster b only, the warning for both clusters.
//! The analyzer then baselines the same recorded series through VictoriaMetrics' and the
//! federating Prometheus' APIs.

use crate::support;
use crate::support::procs::sim;
use deepwatch_agent::gpu::fake::{sample_reading, FakeGpus};
use deepwatch_agent::gpu::GpuSource;
use deepwatch_analyzer::prom::PromClient;
use deepwatch_analyzer::Analytics;
use deepwatch_core::clock::TokioClock;
use deepwatch_core::config::Config;
use deepwatch_core::expo::{Format, MetricSink};
use deepwatch_core::metrics::Encode;
use deepwatch_testkit::{
    free_addr, wait_for, Alertmanager, Prometheus, Server, VictoriaMetrics, Vmalert,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const TIME_SCALE: u64 = 60;
const GPU_UTIL: &str = "instance_gpu:deepwatch_gpu_utilization_ratio:avg1m";

/// One cluster's deepwatch.toml: its agent and simulator, the rules spec of its edge.
fn cluster_config(
    cluster: &str,
    agent: SocketAddr,
    sim: SocketAddr,
    am: &str,
    vm_write: &str,
    edges: &[String],
) -> Config {
    let text = format!(
        r#"
[agent]
listen = "{agent}"
[agent.process]
sample_interval_ms = 1000
[[agent.engines]]
name = "engine-0"
url = "http://{sim}/metrics"
kind = "vllm"
interval_ms = 1000
timeout_ms = 900

[rules]
maintenance = []
[rules.targets]
agents = ["{agent}"]
gateways = []
analyzer = []
node_exporter = []
pushgateway = []
alertmanager = ["{am}"]
kubernetes_sd = false
[rules.long_term]
cluster = "{cluster}"
remote_write_url = "{vm_write}"
federate_from = [{edges}]
"#,
        edges = edges.iter().map(|e| format!("\"{e}\"")).collect::<Vec<_>>().join(", "),
    );
    let config = Config::from_toml_str(&text).expect("config");
    config.validate().unwrap_or_else(|e| panic!("test config invalid: {e}"));
    config
}

struct Cluster {
    prom: Prometheus,
    _sim: Server,
    _agent: tokio::task::JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self._agent.abort();
    }
}

/// A cluster: simulator, agent on two fake GPUs at `utilization` %, edge Prometheus. The edge
/// evaluates the rules too, but its Alertmanager is nowhere: every alert that reaches the
/// test's Alertmanager comes from a global view.
async fn cluster(name: &str, utilization: f64, vm_write: &str, seed: u64) -> Cluster {
    let (agent_addr, sim_addr, sim_admin) = (free_addr(), free_addr(), free_addr());
    let sim = sim(&format!("sim-{name}"), sim_addr, sim_admin, "deepseek-r1", "t", seed).await;
    let nowhere = free_addr().to_string();
    let config = cluster_config(name, agent_addr, sim_addr, &nowhere, vm_write, &[]);
    let fake = FakeGpus::healthy(2);
    for gpu in 0..2 {
        let mut reading = sample_reading(gpu);
        reading.utilization_gpu_percent = Some(utilization);
        fake.set_reading(gpu, reading);
    }
    let source: Arc<dyn GpuSource> = fake;
    let agent =
        deepwatch_agent::Agent::start_with_gpu(&config.agent, Some(Ok(source))).expect("agent");
    let listener = deepwatch_agent::Agent::bind(&config.agent.listen).await.expect("bind");
    let agent_task = tokio::spawn(async move {
        let _ = agent.serve(listener, std::future::pending()).await;
    });

    let generated = support::generate(&config, TIME_SCALE);
    // The generated edge config reads the rules from ../prometheus/rules beside it.
    let edge = generated.files["long-term/prometheus-edge.yml"]
        .replace("../prometheus/rules/*.yml", "rules/*.yml");
    assert!(edge.contains(&format!("cluster: {name}")), "{edge}");
    let rules: Vec<(String, String)> = generated
        .files
        .iter()
        .filter_map(|(p, t)| Some((p.strip_prefix("prometheus/")?.to_string(), t.clone())))
        .filter(|(p, _)| p.starts_with("rules/"))
        .collect();
    let refs: Vec<(&str, &str)> = rules.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let prom = Prometheus::start(&edge, &refs).await;
    Cluster { prom, _sim: sim, _agent: agent_task }
}

/// `cluster` label values of a query result.
fn clusters(result: &[Value]) -> BTreeSet<String> {
    result.iter().filter_map(|s| s["metric"]["cluster"].as_str().map(str::to_string)).collect()
}

/// (alertname, severity, cluster) of firing alerts from a `/api/v1/alerts`-style list.
fn firing(alerts: &[Value], name: &str) -> BTreeSet<(String, String)> {
    alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
        .map(|a| {
            let l = |k: &str| a["labels"][k].as_str().unwrap_or("").to_string();
            (l("severity"), l("cluster"))
        })
        .collect()
}

/// Runs the analyzer's analytics against `base` until it baselines `want` series; returns the
/// identities (`instance` labels) of its exported baselines.
async fn analyze(base: &str, want: usize) -> BTreeSet<String> {
    let mut config = Config::default().analyzer;
    config.prometheus_url = base.to_string();
    config.step = std::time::Duration::from_secs(1);
    config.query_timeout = std::time::Duration::from_millis(3000);
    config.drift.enabled = false;
    config.baseline.periods = vec![];
    config.baseline.min_points = 5;
    config.series = vec![deepwatch_core::config::analyzer::SeriesConfig {
        name: "gpu_utilization".into(),
        query: GPU_UTIL.into(),
        detectors: vec!["band".into(), "shift".into()],
        min_band: 0.0,
    }];
    let prom = PromClient::from_config(&config).expect("client");
    let analytics = Analytics::new(&config, prom, TokioClock::shared());
    wait_for(
        &format!("the analyzer to baseline {want} series at {base}"),
        Duration::from_secs(30),
        || async {
            analytics.tick().await;
            (!analytics.is_degraded() && analytics.series_count() == want).then_some(())
        },
    )
    .await;
    let mut sink = MetricSink::new(Format::Text004);
    analytics.encode(&mut sink);
    sink.render()
        .lines()
        .filter(|l| l.starts_with("deepwatch_baseline_warming_up{"))
        .filter_map(|l| l.split("instance=\"").nth(1)?.split('"').next().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_one_global_view_by_federation_and_by_victoria_metrics() {
    let am = Alertmanager::start(
        "route:\n  receiver: x\n  group_by: ['alertname', 'cluster']\n  group_wait: 1s\nreceivers:\n  - name: x\n",
    )
    .await;
    let vm = VictoriaMetrics::start().await;
    let am_addr = am.server.addr.to_string();
    let a = cluster("a", 87.0, &vm.write_url(), 1).await;
    let b = cluster("b", 97.0, &vm.write_url(), 2).await;

    // (a) Federation: the global view's config, generated with the edges to federate from.
    let edges = vec![a.prom.server.addr.to_string(), b.prom.server.addr.to_string()];
    let global_config =
        cluster_config("global", free_addr(), free_addr(), &am_addr, &vm.write_url(), &edges);
    let generated = support::generate(&global_config, TIME_SCALE);
    let global = Prometheus::start(
        &generated.files["long-term/prometheus-federation.yml"],
        &[("rules/global.yml", generated.files["long-term/rules/global.yml"].as_str())],
    )
    .await;
    // (b) VictoriaMetrics: vmalert evaluates the same alerts there, writing ALERTS back.
    let vmalert = Vmalert::start(
        &vm.url(),
        &am.url(),
        &[("global.yml", generated.files["long-term/rules/global-vmalert.yml"].as_str())],
        &[
            &format!("-remoteWrite.url={}", vm.url()),
            &format!("-remoteRead.url={}", vm.url()),
            "-evaluationInterval=1s",
        ],
    )
    .await;

    // Recorded series of both clusters reach both global views, each with its cluster; raw
    // series stay at the edges.
    let both: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    for base in [global.url(), vm.url()] {
        let got =
            wait_for(&format!("both clusters at {base}"), Duration::from_secs(40), || async {
                let r = deepwatch_testkit::query(&base, GPU_UTIL).await;
                (clusters(&r) == both && r.len() == 4).then_some(r)
            })
            .await;
        assert_eq!(got.len(), 4, "two GPUs per cluster: {got:?}");
        let raw = deepwatch_testkit::query(&base, "deepwatch_gpu_utilization_ratio").await;
        assert!(raw.is_empty(), "raw series left the edge: {raw:?}");
    }

    // The generated alerts on the global views: critical only where the GPUs run hot.
    let want: BTreeSet<(String, String)> = [("critical", "b"), ("warning", "a"), ("warning", "b")]
        .iter()
        .map(|(s, c)| (s.to_string(), c.to_string()))
        .collect();
    let api = support::grafana::Prom::new(&global.url());
    wait_for("federated global alerts", Duration::from_secs(60), || async {
        (firing(&api.alerts().await, "GPUUtilizationHigh") == want).then_some(())
    })
    .await;
    wait_for("vmalert global alerts", Duration::from_secs(60), || async {
        (firing(&vmalert.alerts().await, "GPUUtilizationHigh") == want).then_some(())
    })
    .await;
    // Alertmanager holds them with the cluster label (from both global views: same labels,
    // one alert each).
    let in_am = wait_for("alerts in Alertmanager", Duration::from_secs(30), || async {
        let got: BTreeSet<(String, String)> = am
            .alerts()
            .await
            .iter()
            .filter(|a| a["labels"]["alertname"] == "GPUUtilizationHigh")
            .map(|a| {
                let l = |k: &str| a["labels"][k].as_str().unwrap_or("").to_string();
                (l("severity"), l("cluster"))
            })
            .collect();
        (got == want).then_some(got)
    })
    .await;
    assert!(!in_am.contains(&("critical".to_string(), "a".to_string())));

    // The analyzer runs the same way on VictoriaMetrics' API and on Prometheus'.
    let through_vm = analyze(&vm.url(), 4).await;
    let through_prom = analyze(&global.url(), 4).await;
    assert_eq!(through_vm, through_prom, "same series through both APIs");
    let cluster_of: BTreeSet<&str> =
        through_vm.iter().filter_map(|i| i.split(':').next()).collect();
    assert_eq!(cluster_of, ["a", "b"].into_iter().collect(), "{through_vm:?}");
}
