//! Injected-fault scenarios for evaluating root-cause ranking: a small deployment (model
//! `deepseek-r1` on pools blue with engines blue-0 and blue-1, green with green-0, one GPU and
//! one vLLM process each, plus the gateway) simulated at 15 s resolution with the catalog's
//! metric names and labels. Load drives GPU utilization at once and queues, KV cache and
//! latency through a lag; the gateway sees the mix. One fault starts at `onset`, the alert
//! fires minutes later. Noise, baselines, the faulty component and the fault's size vary with
//! the seed, and unrelated changes (a deploy step, a cache step in another process, error
//! blips) are sprinkled in as distractors.

use super::candidates::Role;
use super::source::{CandidateSeries, Event, MemorySource};
use super::RankedCandidate;
use crate::prom::Labels;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    UpstreamLatency,
    ErrorBurst,
    MemoryLeak,
    GpuSaturation,
    LoadSurge,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::UpstreamLatency,
        Fault::ErrorBurst,
        Fault::MemoryLeak,
        Fault::GpuSaturation,
        Fault::LoadSurge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::UpstreamLatency => "latency_on_one_upstream",
            Fault::ErrorBurst => "error_burst",
            Fault::MemoryLeak => "memory_leak_in_one_process",
            Fault::GpuSaturation => "gpu_saturation",
            Fault::LoadSurge => "load_surge",
        }
    }
}

/// A generated incident: the data, the alert time and the truth.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub fault: Fault,
    pub source: MemorySource,
    pub onset: f64,
    pub at: f64,
    pub alert: &'static str,
    /// The faulty engine (`blue-0`, ...) or pool (load surge).
    pub target: String,
}

impl Scenario {
    /// Whether a ranked candidate names the injected cause.
    pub fn is_cause(&self, c: &RankedCandidate) -> bool {
        let t = self.target.as_str();
        match self.fault {
            Fault::UpstreamLatency => {
                matches!(c.name.as_str(), "engine_ttft_p90" | "engine_e2e_p90")
                    && c.label("engine") == t
            }
            Fault::ErrorBurst => {
                (c.name == "upstream_error_ratio" && c.label("upstream") == t)
                    || (c.name == "log_pattern_rate" && c.label("file") == t)
            }
            Fault::MemoryLeak => {
                c.name == "process_rss" && c.label("process") == format!("vllm-{t}")
            }
            Fault::GpuSaturation => c.name == "gpu_utilization" && c.label("gpu") == gpu_of(t),
            Fault::LoadSurge => c.name == "request_rate" && c.label("pool") == t,
        }
    }
}

const ENGINES: [(&str, &str); 3] = [("blue-0", "blue"), ("blue-1", "blue"), ("green-0", "green")];
const MODEL: &str = "deepseek-r1";
/// 2024-03-04 10:00:00 UTC.
pub const START: f64 = 1_709_546_400.0;
pub const STEP: f64 = 15.0;
const POINTS: usize = 480; // two hours

fn gpu_of(engine: &str) -> String {
    ENGINES.iter().position(|e| e.0 == engine).unwrap_or(0).to_string()
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// First-order lag: the effect approaches its target with time constant `tau` seconds.
fn lag(target: &[f64], tau: f64) -> Vec<f64> {
    let alpha = 1.0 - (-STEP / tau).exp();
    let mut out = Vec::with_capacity(target.len());
    let mut state = target.first().copied().unwrap_or(0.0);
    for t in target {
        state += (t - state) * alpha;
        out.push(state);
    }
    out
}

/// Mean of the last `n` points, as `rate(...[1m])` smooths a counter.
fn smooth(values: &[f64], n: usize) -> Vec<f64> {
    (0..values.len())
        .map(|i| {
            let lo = (i + 1).saturating_sub(n);
            values[lo..=i].iter().sum::<f64>() / (i + 1 - lo) as f64
        })
        .collect()
}

/// Generates one scenario.
pub fn generate(fault: Fault, seed: u64) -> Scenario {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9).wrapping_add(fault as u64));
    let onset_index = 360 + rng.random_range(0..20);
    let onset = START + onset_index as f64 * STEP;
    let at = onset + 60.0 * rng.random_range(2..=5) as f64;
    let target_engine = ENGINES[rng.random_range(0..ENGINES.len())].0;
    let target_pool = if rng.random::<f64>() < 0.7 { "blue" } else { "green" };
    let noise = 0.02 + 0.06 * rng.random::<f64>();
    let times: Vec<f64> = (0..POINTS).map(|i| START + i as f64 * STEP).collect();
    let after = |i: usize| i >= onset_index;
    let mut series: Vec<CandidateSeries> = Vec::new();
    // Candidates read through `rate(...[1m])` are smoothed over four points here too.
    let mut push = |name: &str, role: Role, labels: Labels, values: Vec<f64>| {
        let query = super::candidates::builtin(60).into_iter().find(|q| q.name == name);
        let smoothing_secs = query.as_ref().map_or(0.0, |q| q.smoothing_secs);
        let absent_is_zero = query.as_ref().is_some_and(|q| q.absent_is_zero);
        let values = if smoothing_secs > 0.0 { smooth(&values, 4) } else { values };
        series.push(CandidateSeries {
            name: name.to_string(),
            query: query.map(|q| q.query).unwrap_or_default(),
            role,
            labels,
            points: times.iter().copied().zip(values).collect(),
            smoothing_secs,
            absent_is_zero,
        });
    };

    // Traffic per pool (requests/s), then per engine.
    let mut pool_load = std::collections::BTreeMap::new();
    for pool in ["blue", "green"] {
        let base = if pool == "blue" {
            20.0 + 20.0 * rng.random::<f64>()
        } else {
            5.0 + 10.0 * rng.random::<f64>()
        };
        let surge = 2.0 + 1.5 * rng.random::<f64>();
        let load: Vec<f64> = (0..POINTS)
            .map(|i| {
                let drift = 1.0 + 0.05 * (i as f64 / POINTS as f64 * 3.0).sin();
                let ramp = if fault == Fault::LoadSurge && pool == target_pool && after(i) {
                    1.0 + (surge - 1.0) * (((i - onset_index) as f64 + 1.0) / 4.0).min(1.0)
                } else {
                    1.0
                };
                (base * drift * ramp * (1.0 + noise * normal(&mut rng))).max(0.0)
            })
            .collect();
        push(
            "request_rate",
            Role::Input,
            labels(&[("model", MODEL), ("pool", pool)]),
            load.clone(),
        );
        pool_load.insert(pool, load);
    }

    let mut pool_ttft: std::collections::BTreeMap<&str, Vec<Vec<f64>>> = Default::default();
    let mut pool_e2e: std::collections::BTreeMap<&str, Vec<Vec<f64>>> = Default::default();
    let mut pool_errors: std::collections::BTreeMap<&str, Vec<Vec<f64>>> = Default::default();
    for (k, (engine, pool)) in ENGINES.iter().enumerate() {
        let engines_in_pool = ENGINES.iter().filter(|e| e.1 == *pool).count() as f64;
        let load: Vec<f64> = pool_load[pool].iter().map(|l| l / engines_in_pool).collect();
        let capacity = load.iter().take(onset_index).sum::<f64>()
            / onset_index as f64
            / (0.45 + 0.2 * rng.random::<f64>());
        let is_target = *engine == target_engine;
        let gpu = gpu_of(engine);
        let instance = if k < 2 { "node-a" } else { "node-b" };
        // Utilization follows load at once; a rogue process pins it near 1.
        let util: Vec<f64> = (0..POINTS)
            .map(|i| {
                let rho = load[i] / capacity;
                let mut u = 0.1 + 0.8 * rho.min(1.2) / 1.2;
                if fault == Fault::GpuSaturation && is_target && after(i) {
                    u = 0.97 + 0.03 * rng.random::<f64>();
                }
                (u + 0.015 * normal(&mut rng)).clamp(0.0, 1.0)
            })
            .collect();
        // Effective load on the engine: a saturated GPU serves it as if overloaded.
        let pressure: Vec<f64> = (0..POINTS)
            .map(|i| {
                let rho = load[i] / capacity;
                if fault == Fault::GpuSaturation && is_target && after(i) {
                    rho.max(1.3)
                } else {
                    rho
                }
            })
            .collect();
        let tau = 30.0 + 60.0 * rng.random::<f64>();
        let queue_target: Vec<f64> =
            pressure.iter().map(|p| (20.0 * (p - 0.85)).max(0.0)).collect();
        let queue: Vec<f64> = lag(&queue_target, tau)
            .iter()
            .map(|q| (q + 0.3 * normal(&mut rng).abs()).round())
            .collect();
        let kv: Vec<f64> =
            lag(&pressure.iter().map(|p| 0.2 + 0.6 * p.min(1.3) / 1.3).collect::<Vec<_>>(), tau)
                .iter()
                .map(|v| (v + 0.01 * normal(&mut rng)).clamp(0.0, 1.0))
                .collect();
        let base_ttft = 0.25 + 0.25 * rng.random::<f64>();
        let added = 1.0 + 3.0 * rng.random::<f64>();
        let ttft_target: Vec<f64> = (0..POINTS)
            .map(|i| {
                let mut v = base_ttft * (1.0 + 4.0 * (pressure[i] - 0.8).max(0.0).powi(2) * 10.0);
                if fault == Fault::UpstreamLatency && is_target && after(i) {
                    v += added;
                }
                v
            })
            .collect();
        let ttft: Vec<f64> =
            lag(&ttft_target, if fault == Fault::UpstreamLatency { 10.0 } else { tau })
                .iter()
                .map(|v| v * (1.0 + noise * normal(&mut rng)))
                .collect();
        let tokens_time = 8.0 + 6.0 * rng.random::<f64>();
        let e2e: Vec<f64> = ttft
            .iter()
            .map(|t| (t + tokens_time) * (1.0 + 0.5 * noise * normal(&mut rng)))
            .collect();
        let burst = 0.1 + 0.4 * rng.random::<f64>();
        let errors: Vec<f64> = (0..POINTS)
            .map(|i| {
                if fault == Fault::ErrorBurst && is_target && after(i) {
                    (burst + 0.03 * normal(&mut rng)).clamp(0.0, 1.0)
                } else if rng.random::<f64>() < 0.01 {
                    0.005 + 0.01 * rng.random::<f64>() // a stray failed request
                } else {
                    0.0
                }
            })
            .collect();
        let log_errors: Vec<f64> = errors
            .iter()
            .zip(&load)
            .map(|(e, l)| e * l * (1.0 + 0.1 * normal(&mut rng)).max(0.0))
            .collect();
        let rss_base = (8.0 + 20.0 * rng.random::<f64>()) * 1e9;
        let leak_rate = (30.0 + 70.0 * rng.random::<f64>()) * 1e6 / 60.0;
        let cache_step = rng.random_range(100..POINTS); // an unrelated allocation that stays
        let rss: Vec<f64> = (0..POINTS)
            .map(|i| {
                let mut v = rss_base + 20e6 * normal(&mut rng);
                if !is_target && i >= cache_step && k % 2 == 0 {
                    v += 400e6;
                }
                if fault == Fault::MemoryLeak && is_target && after(i) {
                    v += leak_rate * (i - onset_index) as f64 * STEP;
                }
                v
            })
            .collect();
        let gpu_mem: Vec<f64> = (0..POINTS).map(|_| 72e9 + 2e6 * normal(&mut rng)).collect();

        let e = labels(&[("engine", engine)]);
        let g = labels(&[("instance", instance), ("gpu", &gpu)]);
        push("gpu_utilization", Role::Resource, g.clone(), util);
        push("gpu_memory_used", Role::Resource, g, gpu_mem);
        let process = format!("vllm-{engine}");
        push(
            "process_rss",
            Role::Resource,
            labels(&[("instance", instance), ("process", &process)]),
            rss,
        );
        push("engine_ttft_p90", Role::Component, e.clone(), ttft.clone());
        push("engine_e2e_p90", Role::Component, e.clone(), e2e.clone());
        push("engine_requests_waiting", Role::Component, e.clone(), queue);
        push("engine_kv_cache_usage", Role::Component, e, kv);
        push(
            "upstream_error_ratio",
            Role::Component,
            labels(&[("pool", pool), ("upstream", engine)]),
            errors.clone(),
        );
        push(
            "log_pattern_rate",
            Role::Log,
            labels(&[("file", engine), ("pattern", "error")]),
            log_errors,
        );
        pool_ttft.entry(pool).or_default().push(ttft);
        pool_e2e.entry(pool).or_default().push(e2e);
        pool_errors.entry(pool).or_default().push(errors);
    }
    // The gateway sees the pool's mix: its p90 follows the slowest engine that takes traffic.
    for pool in ["blue", "green"] {
        let l = labels(&[("model", MODEL), ("pool", pool)]);
        let worst =
            |series: &Vec<Vec<f64>>, i: usize| series.iter().map(|s| s[i]).fold(0.0, f64::max);
        let mean = |series: &Vec<Vec<f64>>, i: usize| {
            series.iter().map(|s| s[i]).sum::<f64>() / series.len() as f64
        };
        let ttft: Vec<f64> = (0..POINTS)
            .map(|i| 1.1 * worst(&pool_ttft[pool], i) * (1.0 + noise * normal(&mut rng)))
            .collect();
        let dur: Vec<f64> = (0..POINTS)
            .map(|i| 1.1 * worst(&pool_e2e[pool], i) * (1.0 + noise * normal(&mut rng)))
            .collect();
        let err: Vec<f64> = (0..POINTS).map(|i| 0.6 * mean(&pool_errors[pool], i)).collect();
        push("ttft_p90", Role::Symptom, l.clone(), ttft);
        push("request_duration_p90", Role::Symptom, l.clone(), dur);
        push("error_ratio", Role::Symptom, l, err);
    }
    // An unrelated deploy step in half the scenarios, 20 to 60 minutes before the onset.
    let mut events = Vec::new();
    if rng.random::<bool>() {
        events.push(Event {
            time: onset - 60.0 * rng.random_range(20..=60) as f64,
            kind: "step".into(),
            pool: "green".into(),
        });
    }
    let alert = match fault {
        Fault::ErrorBurst => "GatewayErrorRatioHigh",
        Fault::MemoryLeak => "ProcessMemoryLeak",
        _ => "GatewayTtftP90High",
    };
    let target =
        if fault == Fault::LoadSurge { target_pool.to_string() } else { target_engine.to_string() };
    Scenario { fault, source: MemorySource { series, events }, onset, at, alert, target }
}

impl Scenario {
    /// The scenario as raw metrics in OpenMetrics text with timestamps, for backfilling a real
    /// Prometheus (`promtool tsdb create-blocks-from openmetrics`). Gauges are written as they
    /// are, the request and log-pattern rates as counters; latency quantiles (histograms) are
    /// left out. Every family carries the catalog's name and labels.
    pub fn openmetrics(&self) -> String {
        use deepwatch_core::catalog::{agent, gateway};
        use std::fmt::Write as _;
        let mut families: std::collections::BTreeMap<&str, (&str, Vec<String>)> =
            Default::default();
        for s in &self.source.series {
            let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            let (metric, kind, labels, counter) = match s.name.as_str() {
                "gpu_utilization" | "gpu_memory_used" => {
                    let gpu = get("gpu");
                    let spec = if s.name == "gpu_utilization" { &agent::GPU_UTILIZATION } else { &agent::GPU_MEMORY_USED };
                    let l = format!(
                        "gpu=\"{gpu}\",gpu_uuid=\"GPU-{gpu}\",gpu_name=\"NVIDIA H100\",instance=\"{}\"",
                        get("instance")
                    );
                    (spec.name, "gauge", l, false)
                }
                "process_rss" => (
                    agent::PROCESS_RSS.name,
                    "gauge",
                    format!("process=\"{}\",pid=\"1\",instance=\"{}\"", get("process"), get("instance")),
                    false,
                ),
                "engine_requests_waiting" | "engine_kv_cache_usage" => {
                    let spec = if s.name == "engine_requests_waiting" {
                        &agent::ENGINE_REQUESTS_WAITING
                    } else {
                        &agent::ENGINE_KV_CACHE_USAGE
                    };
                    (spec.name, "gauge", format!("engine=\"{}\",engine_kind=\"vllm\",model=\"{MODEL}\"", get("engine")), false)
                }
                "upstream_error_ratio" => (
                    gateway::UPSTREAM_ERROR_RATIO.name,
                    "gauge",
                    format!("pool=\"{}\",upstream=\"{}\"", get("pool"), get("upstream")),
                    false,
                ),
                "request_rate" => (
                    gateway::REQUESTS.name,
                    "counter",
                    format!(
                        "model=\"{MODEL}\",model_version=\"v1\",pool=\"{}\",endpoint=\"/v1/chat/completions\",tenant=\"default\",outcome=\"ok\",code=\"200\"",
                        get("pool")
                    ),
                    true,
                ),
                "log_pattern_rate" => (
                    agent::LOG_PATTERN_MATCHES.name,
                    "counter",
                    format!("file=\"{}\",pattern=\"{}\"", get("file"), get("pattern")),
                    true,
                ),
                _ => continue,
            };
            let entry = families.entry(metric).or_insert((kind, Vec::new()));
            let mut total = 0.0;
            for (t, v) in &s.points {
                let value = if counter {
                    total += v * STEP;
                    total
                } else {
                    *v
                };
                entry.1.push(format!("{metric}{{{labels}}} {value} {t}"));
            }
        }
        let mut out = String::new();
        for (metric, (kind, lines)) in &families {
            let family =
                metric.strip_suffix("_total").filter(|_| *kind == "counter").unwrap_or(metric);
            let _ = writeln!(out, "# TYPE {family} {kind}");
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        let deploy = gateway::DEPLOY_LAST_EVENT.name;
        if !self.source.events.is_empty() {
            let _ = writeln!(out, "# TYPE {deploy} gauge");
            for e in &self.source.events {
                let mut t = START;
                while t <= START + (POINTS - 1) as f64 * STEP {
                    if t >= e.time {
                        let _ = writeln!(
                            out,
                            "{deploy}{{pool=\"{}\",event=\"{}\"}} {} {t}",
                            e.pool, e.kind, e.time
                        );
                    }
                    t += STEP;
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }
}
