//! End to end: a real Prometheus (Debian package) scrapes the agent, which watches a fixture
//! vLLM engine, a log file, its own process and the host. Asserts through Prometheus' HTTP API,
//! and runs `promtool check metrics` on the agent's output.

use crate::support::*;
use deepwatch_core::config::agent::{
    AgentConfig, EngineConfig, LogFileConfig, PeerConfig, ProcessTarget,
};
use deepwatch_testkit::{require_binary, Prometheus};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

fn config(
    engine: std::net::SocketAddr,
    log: &std::path::Path,
    pid_file: &std::path::Path,
    raw: bool,
) -> AgentConfig {
    let mut c = AgentConfig::default();
    c.engines.push(EngineConfig {
        name: "vllm-fixture".into(),
        url: format!("http://{engine}/metrics"),
        interval: std::time::Duration::from_millis(200),
        raw,
        ..EngineConfig::default()
    });
    let mut patterns = BTreeMap::new();
    patterns.insert("cuda_oom".to_string(), "CUDA out of memory".to_string());
    c.logs.push(LogFileConfig {
        path: log.display().to_string(),
        name: "engine".into(),
        patterns,
        poll_interval: std::time::Duration::from_millis(100),
        ..LogFileConfig::default()
    });
    c.peers.push(PeerConfig {
        name: "engine-host".into(),
        address: engine.to_string(),
        interval: std::time::Duration::from_millis(200),
        timeout: std::time::Duration::from_millis(500),
    });
    c.process.sample_interval = std::time::Duration::from_millis(200);
    c.process.targets.push(ProcessTarget {
        name: "tests".into(),
        pid_file: pid_file.display().to_string(),
        ..ProcessTarget::default()
    });
    c
}

async fn value(prom: &Prometheus, q: &str) -> f64 {
    let r = prom.wait_for_series(q, Duration::from_secs(20)).await;
    r[0]["value"][1].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_collector_with_the_expected_labels() {
    let engine = vllm_engine().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("engine.log");
    std::fs::write(&log, "INFO starting\n").unwrap();
    let pid_file = dir.path().join("tests.pid");
    std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
    let agent = start_agent(&config(engine, &log, &pid_file, true)).await;

    let prom_config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: agent\n    static_configs:\n      - targets: ['{}']\n",
        agent.addr
    );
    let prom = Prometheus::start(&prom_config, &[]).await;
    assert_eq!(value(&prom, "up{job=\"agent\"} == 1").await, 1.0);

    // Host, process (itself and a pid file), engine (normalized and raw), peers.
    assert!(value(&prom, "deepwatch_host_cpu_seconds_total{mode=\"iowait\"}").await >= 0.0);
    assert!(value(&prom, "deepwatch_host_memory_total_bytes").await > 0.0);
    assert!(
        value(&prom, "sum(deepwatch_host_network_receive_bytes_total{interface=\"lo\"})").await
            > 0.0
    );
    assert!(
        value(&prom, "deepwatch_process_resident_memory_bytes{process=\"deepwatch-agent\"}").await
            > 1e6
    );
    assert_eq!(value(&prom, "deepwatch_process_matched{process=\"tests\"}").await, 1.0);
    let m = "engine=\"vllm-fixture\",engine_kind=\"vllm\",model=\"deepseek-ai/DeepSeek-V3\"";
    assert_eq!(value(&prom, &format!("deepwatch_engine_requests_running{{{m}}}")).await, 15.0);
    assert_eq!(value(&prom, &format!("deepwatch_engine_kv_cache_usage_ratio{{{m}}}")).await, 0.6);
    let p99 = value(
        &prom,
        &format!(
            "histogram_quantile(0.99, deepwatch_engine_time_to_first_token_seconds_bucket{{{m}}})"
        ),
    )
    .await;
    assert!(p99 > 0.0 && p99 <= 2560.0, "{p99}");
    assert_eq!(
        value(&prom, "deepwatch_engine_up{engine=\"vllm-fixture\",engine_kind=\"vllm\"}").await,
        1.0
    );
    assert_eq!(
        value(&prom, "sum(vllm:num_requests_running{deepwatch_engine=\"vllm-fixture\"})").await,
        15.0
    );
    assert_eq!(value(&prom, "deepwatch_peer_up{peer=\"engine-host\"}").await, 1.0);
    // No NVML on this host: the gpu collector is down, the rest are up.
    assert_eq!(value(&prom, "deepwatch_collector_up{collector=\"gpu\"}").await, 0.0);
    for c in ["host", "process", "engine", "logs", "peers"] {
        assert_eq!(
            value(&prom, &format!("deepwatch_collector_up{{collector=\"{c}\"}}")).await,
            1.0,
            "{c}"
        );
    }

    // Logs: a CUDA OOM line appears in Prometheus as a pattern match and an error line.
    assert_eq!(
        value(&prom, "deepwatch_log_pattern_matches_total{file=\"engine\",pattern=\"cuda_oom\"}")
            .await,
        0.0
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "ERROR 05-12 10:01:00 [engine.py:160] torch.OutOfMemoryError: CUDA out of memory.")
        .unwrap();
    drop(f);
    assert_eq!(
        value(
            &prom,
            "deepwatch_log_pattern_matches_total{file=\"engine\",pattern=\"cuda_oom\"} == 1"
        )
        .await,
        1.0
    );
    assert_eq!(
        value(&prom, "deepwatch_log_lines_total{file=\"engine\",level=\"error\"}").await,
        1.0
    );
}

/// promtool's problems with a text, one per line, sorted.
fn promtool_problems(text: &str) -> Vec<String> {
    let promtool = require_binary(&["promtool"], "prometheus");
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_nothing_in_the_agents_own_metrics_and_nothing_new_in_raw_ones() {
    let engine = vllm_engine().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("engine.log");
    let pid_file = dir.path().join("tests.pid");
    std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
    for raw in [false, true] {
        let agent = start_agent(&config(engine, &log, &pid_file, raw)).await;
        let text =
            deepwatch_testkit::wait_for("engine scraped", Duration::from_secs(10), || async {
                let (_, text) = get_metrics(agent.addr, None).await;
                text.contains("deepwatch_engine_up{engine=\"vllm-fixture\",engine_kind=\"vllm\"} 1")
                    .then_some(text)
            })
            .await;
        let problems = promtool_problems(&text);
        if raw {
            // Raw re-export passes on the engine's own naming (colons, `_total` on a
            // histogram) but adds no problem of its own.
            let engines_own = promtool_problems(VLLM);
            assert!(!problems.is_empty());
            let new: Vec<_> = problems.iter().filter(|p| !engines_own.contains(p)).collect();
            assert!(new.is_empty(), "problems not in the engine's own output: {new:?}");
        } else {
            assert!(problems.is_empty(), "promtool: {problems:?}\n{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_is_served_when_asked_and_healthz_answers() {
    let engine = vllm_engine().await;
    let dir = tempfile::tempdir().unwrap();
    let agent =
        start_agent(&config(engine, &dir.path().join("x.log"), &dir.path().join("x.pid"), true))
            .await;
    let (ct, text) = get_metrics(
        agent.addr,
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    )
    .await;
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE deepwatch_host_cpu_seconds counter\n"));
    let (ct, text) = get_metrics(agent.addr, None).await;
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert!(!text.contains("# EOF"));
    let health = deepwatch_testkit::http_client()
        .get(format!("http://{}/healthz", agent.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_mode_delivers_the_metrics_to_a_real_pushgateway() {
    let pgw = deepwatch_testkit::Pushgateway::start().await;
    let mut c = AgentConfig::default();
    c.collectors.gpu = false;
    c.push.url = pgw.url();
    c.push.interval = std::time::Duration::from_millis(200);
    c.push.instance = "gpu-node-7".into();
    let _agent = start_agent(&c).await;
    let text = deepwatch_testkit::wait_for("the agent's push", Duration::from_secs(15), || async {
        let text = deepwatch_testkit::http_client()
            .get(format!("{}/metrics", pgw.url()))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("deepwatch_agent_pushes_total{instance=\"gpu-node-7\",job=\"deepwatch_agent\",outcome=\"ok\"} 1")
            .then_some(text)
    })
    .await;
    assert!(
        text.contains(
            "deepwatch_host_memory_total_bytes{instance=\"gpu-node-7\",job=\"deepwatch_agent\"}"
        ),
        "{text}"
    );
    assert!(text.contains("deepwatch_collector_up{collector=\"host\",instance=\"gpu-node-7\",job=\"deepwatch_agent\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_nothing_in_gpu_metrics_from_the_fake_nvml() {
    use deepwatch_agent::gpu::{fake::FakeGpus, GpuSource};
    let fake = FakeGpus::healthy(2);
    let source: std::sync::Arc<dyn GpuSource> = fake.clone();
    let agent =
        deepwatch_agent::Agent::start_with_gpu(&AgentConfig::default(), Some(Ok(source))).unwrap();
    fake.inject_xid(1, 79);
    fake.lose(0);
    let text = agent.collectors().scrape(deepwatch_core::expo::Format::Text004).await;
    assert!(text.contains("deepwatch_gpu_xid_errors_total{gpu=\"1\""), "{text}");
    assert!(text.contains("deepwatch_gpu_power_watts{gpu=\"1\""), "{text}");
    let problems = promtool_problems(&text);
    assert!(problems.is_empty(), "promtool: {problems:?}");
}

#[test]
fn promtool_finds_nothing_in_any_agent_catalog_metric() {
    use deepwatch_core::catalog::{agent, MetricType};
    use deepwatch_core::expo::{Format, MetricSink};
    let mut sink = MetricSink::new(Format::Text004);
    for spec in agent::ALL {
        let values: Vec<&str> = spec.labels.iter().map(|_| "x").collect();
        match spec.kind {
            MetricType::Counter => sink.counter(spec, &values, 1.0),
            MetricType::Histogram => {
                sink.histogram(spec, &values, &vec![1; spec.buckets.len()], 1.0, 1)
            }
            _ => sink.gauge(spec, &values, 1.0),
        }
    }
    let problems = promtool_problems(&sink.render());
    assert!(problems.is_empty(), "promtool: {problems:?}");
}
