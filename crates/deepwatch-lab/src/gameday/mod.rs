//! `deepwatch chaos gameday`: named drills against the live stack the demo runs (simulated
//! engines as real processes, gateway, agent, analyzer, Debian's Prometheus and Alertmanager,
//! load through the gateway). Each drill injects a real fault (`drill`), holds it, removes it
//! and waits for the alerts it raised to resolve; afterwards `measure` reads the timeline and
//! the load generator's own account of every request and `report` writes a markdown table and
//! a JSON file: MTTD, the first report's top-1/top-3, remediation, MTTR, failed and lost
//! requests and SLO budget burned per drill.

pub mod drill;
pub mod measure;
pub mod report;

pub use drill::Drill;
pub use measure::{DrillResult, Outcome, Span};

use crate::chaos::SimAdmin;
use crate::demo::timeline::Timeline;
use crate::load::{self, Dist, LoadOptions, Mode, Profile, RequestRecord};
use deepwatch_core::api::admin::GatewayAdmin;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub drills: Vec<Drill>,
    /// Every drill this many times, drill after drill.
    pub runs: u32,
    /// Where `gameday.md` and `gameday.json` go.
    pub out: PathBuf,
    /// Quiet traffic before each drill: the baseline its root-cause ranking compares with.
    pub quiet: Duration,
    /// Longest wait for the alerts of a drill (or of the one before) to resolve.
    pub settle: Duration,
    /// How long each fault holds, unscaled (None: each drill's own, 10 min, 5 min for surge).
    pub hold_secs: Option<u64>,
}

/// The request outcomes the load generator reports, on the timeline's clock.
pub struct Tally {
    timeline: Timeline,
    outcomes: Mutex<Vec<Outcome>>,
}

impl Tally {
    pub fn new(timeline: Timeline) -> Arc<Tally> {
        Arc::new(Tally { timeline, outcomes: Mutex::new(Vec::new()) })
    }

    pub fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes.lock().clone()
    }
}

impl load::Progress for Tally {
    fn finished(&self, record: &RequestRecord) {
        let lost = matches!(record.error.as_deref(), Some("timeout" | "connect" | "incomplete"));
        let outcome =
            Outcome { end: self.timeline.elapsed(), failed: record.error.is_some(), lost };
        self.outcomes.lock().push(outcome);
    }
}

/// The stack as the drills see it.
pub struct Lab {
    pub blue: SimAdmin,
    pub green: SimAdmin,
    pub gateway: GatewayAdmin,
    pub prometheus: String,
    pub state_dir: PathBuf,
    pub time_scale: u64,
    /// While set, GPU 0's memory climbs (written to the agent's fake GPU script).
    pub gpu_leak: Arc<AtomicBool>,
    /// The base load, copied for a surge.
    pub load: LoadOptions,
    pub tally: Arc<Tally>,
    /// This executable: `analyze rca` ranks on demand for drills no alert reports.
    pub executable: PathBuf,
}

impl Lab {
    /// `secs` of production time on this stack.
    pub fn scaled(&self, secs: u64) -> Duration {
        Duration::from_secs_f64(secs as f64 / self.time_scale.max(1) as f64)
    }

    /// Pid of a child of the stack now (restarts change it), from `<state-dir>/pids`.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        let text = std::fs::read_to_string(self.state_dir.join("pids")).ok()?;
        text.lines().rev().find_map(|l| {
            let (n, pid) = l.split_once(' ')?;
            (n == name).then(|| pid.trim().parse().ok()).flatten()
        })
    }

    /// Adds `extra` times the base rate for `hold`.
    pub fn surge(&self, extra: f64, hold: Duration) {
        let mut options = self.load.clone();
        if let Mode::Open { rate, .. } = &mut options.mode {
            *rate *= extra;
        }
        options.duration = hold;
        options.seed = 7;
        let tally: Arc<dyn load::Progress> = self.tally.clone();
        tokio::spawn(async move {
            let _ = load::run(options, tally).await;
        });
    }
}

/// The load every drill runs under: short streamed answers at `rate`.
pub fn base_load(target: String, model: String, rate: f64) -> LoadOptions {
    LoadOptions {
        target,
        model,
        mode: Mode::Open { rate, profile: Profile::Constant },
        max_requests: u64::MAX / 2,
        duration: Duration::from_secs(7 * 86_400),
        prompt_tokens: Dist::Fixed { value: 16 },
        output_tokens: Dist::Fixed { value: 4 },
        timeout: Duration::from_secs(10),
        max_in_flight: 1000,
        ..LoadOptions::default()
    }
}

/// GPU memory of the fake GPUs when healthy, and where a leak stops (98 % of 80 GB).
const GPU_MEMORY_NORMAL: f64 = 40e9;
const GPU_MEMORY_LEAKED: f64 = 78.5e9;

/// The fake GPU script file of the agent in `state_dir`.
pub fn gpu_script(state_dir: &Path) -> PathBuf {
    state_dir.join("fake-gpus.json")
}

/// Writes GPU 0's memory every half second: normal, or climbing while `leak` is set (to the
/// cap in half the drill's hold).
pub async fn drive_gpu_script(path: PathBuf, leak: Arc<AtomicBool>, climb: Duration) {
    let mut used = GPU_MEMORY_NORMAL;
    let per_tick = (GPU_MEMORY_LEAKED - GPU_MEMORY_NORMAL) / (climb.as_secs_f64() * 2.0).max(1.0);
    loop {
        used = if leak.load(Ordering::Relaxed) {
            (used + per_tick).min(GPU_MEMORY_LEAKED)
        } else {
            GPU_MEMORY_NORMAL
        };
        write_gpu_script(&path, used);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// GPU 0 at `gpu0_used` bytes, GPU 1 normal, both at 50 % utilization (the fake's default
/// 87 % would keep GPUUtilizationHigh firing through every drill).
pub fn write_gpu_script(path: &Path, gpu0_used: f64) {
    let gpu = |used: f64| json!({"memory_used_bytes": used, "utilization_gpu_percent": 50.0});
    let doc = json!({"0": gpu(gpu0_used), "1": gpu(GPU_MEMORY_NORMAL)});
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, doc.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// The fake GPUs' healthy state, written before the agent starts.
pub fn write_normal_gpu_script(state_dir: &Path) {
    write_gpu_script(&gpu_script(state_dir), GPU_MEMORY_NORMAL);
}

/// Whether an alert gates a drill's start and recovery: host alerts follow the neighbours on
/// a shared machine, and SLO budget-burn alerts keep firing over their long windows (hours,
/// scaled) by design, whatever the drill; both are still reported, never waited for.
fn gates(labels: &Value) -> bool {
    let name = labels["alertname"].as_str().unwrap_or_default();
    !measure::HOST_ALERTS.contains(&name) && !name.ends_with("SLOBudgetBurn")
}

/// Alerts pending or firing now (labels as JSON text) that gate drills; `None` when
/// Prometheus does not answer.
async fn active(prometheus: &str) -> Option<BTreeSet<String>> {
    let client = deepwatch_core::http::default_client(Duration::from_secs(5)).ok()?;
    let resp = client.get(format!("{prometheus}/api/v1/alerts")).send().await.ok()?;
    let doc: Value = resp.json().await.ok()?;
    Some(
        doc["data"]["alerts"]
            .as_array()?
            .iter()
            .filter(|a| gates(&a["labels"]))
            .map(|a| a["labels"].to_string())
            .collect(),
    )
}

/// Waits until no alert outside `allowed` is active, at most `limit`; whether it got there.
async fn wait_clear(prometheus: &str, allowed: &BTreeSet<String>, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(now) = active(prometheus).await {
            if now.is_subset(allowed) {
                return true;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(drill::POLL).await;
    }
}

/// The analyzer's capacity plan now: the most replicas it recommends for any model.
async fn recommended_replicas(prometheus: &str) -> Option<f64> {
    let url = format!("{prometheus}/api/v1/query");
    let name = deepwatch_core::catalog::analyzer::CAPACITY_RECOMMENDED_REPLICAS.name;
    let resp = deepwatch_core::http::default_client(Duration::from_secs(5))
        .ok()?
        .get(url)
        .query(&[("query", format!("max({name})"))])
        .send()
        .await
        .ok()?;
    let doc: Value = resp.json().await.ok()?;
    doc["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Whether a gating alert or a remediation appeared on the timeline since `since`; the time
/// of the first remediation (a gateway rollback, a failover) when one did.
fn detected_since(timeline: &Timeline, since: f64) -> (bool, Option<f64>) {
    let events = timeline.events();
    let after = events.iter().filter(|e| e.t >= since);
    let alerted = after
        .clone()
        .any(|e| e.kind == "alert" && e.detail["state"] == "firing" && gates(&e.detail["labels"]));
    let remediated = after.filter(|e| e.kind == "remediation").map(|e| e.t).next();
    (alerted, remediated)
}

/// Ranks root causes on demand (`deepwatch analyze rca`, the analyzer's own ranking from
/// Prometheus) at `seconds_ago` before now, for a drill no alert reported: the gateway rolled
/// the bad version back before any alert, or a surge that stays within its SLOs.
async fn rank_on_demand(lab: &Lab, timeline: &Timeline, drill: Drill, run: u32, seconds_ago: f64) {
    use deepwatch_core::clock::{Clock, TokioClock};
    let at = TokioClock::new().unix_seconds() - seconds_ago;
    let out = lab.state_dir.join("reports-on-demand");
    let alert = format!("gameday-{}", drill.name());
    let output = tokio::process::Command::new(&lab.executable)
        .arg("analyze")
        .arg("rca")
        .arg("--config")
        .arg(lab.state_dir.join("deepwatch.toml"))
        .args(["--at", &format!("{at:.3}"), "--alert", &alert, "--json", "--out"])
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    let report: Option<Value> = match &output {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        _ => None,
    };
    let Some(report) = report else {
        let why = match output {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        timeline.info(format!("on-demand ranking for {} failed: {why}", drill.name()));
        return;
    };
    let ranked = crate::demo::watch::ranked_names(&report);
    let top1 = ranked.first().cloned();
    timeline.emit(
        "report",
        format!(
            "on-demand root-cause ranking for {}: top-1 {}",
            drill.name(),
            top1.as_deref().unwrap_or("no candidate moved clearly")
        ),
        json!({"alert": alert, "on_demand": true, "drill": drill.name(), "run": run,
               "top1": top1, "ranked": ranked}),
    );
}

/// Runs every drill of the plan; returns where each sat on the timeline.
pub async fn run(plan: &Plan, lab: &Lab, timeline: &Timeline) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for run in 1..=plan.runs {
        for &d in &plan.drills {
            let mut notes = Vec::new();
            if !wait_clear(&lab.prometheus, &BTreeSet::new(), plan.settle).await {
                notes.push("alerts of an earlier drill were still active at injection".into());
            }
            timeline.info(format!(
                "game day: {:.0}s of quiet traffic before {} (run {run})",
                plan.quiet.as_secs_f64(),
                d.name()
            ));
            tokio::time::sleep(plan.quiet).await;
            let before = active(&lab.prometheus).await.unwrap_or_default();
            let injected = timeline.elapsed();
            if let Some(last) = spans.last_mut() {
                last.end = injected;
            }
            match d.inject(lab).await {
                Ok(()) => timeline.emit(
                    "fault",
                    format!("fault injected: {} ({}), run {run}", d.name(), d.describe()),
                    json!({"fault": d.name(), "drill": d.name(), "run": run, "state": "injected"}),
                ),
                Err(e) => {
                    timeline.info(format!("cannot inject {}: {e}", d.name()));
                    notes.push(format!("injection failed: {e}"));
                }
            }
            let replicas_before = recommended_replicas(&lab.prometheus).await;
            let hold = lab.scaled(plan.hold_secs.unwrap_or(d.hold_secs()));
            tokio::time::sleep(hold).await;
            let replicas_after = recommended_replicas(&lab.prometheus).await;
            if let (Some(before), Some(after)) = (replicas_before, replicas_after) {
                if after != before {
                    timeline.emit(
                        "scaling",
                        format!("capacity plan: {before} -> {after} replicas recommended (deepwatch_capacity_recommended_replicas)"),
                        json!({"before": before, "after": after}),
                    );
                }
            }
            // Nothing alerted: rank on demand at what detected it (a rollback) or at the end
            // of the fault, when it has been in force longest (mid-surge, a 3 s rate window
            // had barely seen the extra traffic).
            let (alerted, remediated) = detected_since(timeline, injected);
            if !alerted {
                let now = timeline.elapsed();
                let at = remediated.unwrap_or(now - 0.5);
                rank_on_demand(lab, timeline, d, run, now - at).await;
            }
            if let Err(e) = d.revert(lab).await {
                notes.push(format!("revert failed: {e}"));
            }
            let removed = timeline.elapsed();
            timeline.emit(
                "fault",
                format!("fault removed: {}", d.name()),
                json!({"fault": d.name(), "drill": d.name(), "run": run, "state": "removed"}),
            );
            let recovered = if wait_clear(&lab.prometheus, &before, plan.settle).await {
                let t = timeline.elapsed();
                timeline.emit(
                    "recovered",
                    format!("{}: every alert it raised has resolved", d.name()),
                    json!({"drill": d.name(), "run": run}),
                );
                Some(t)
            } else {
                notes.push(format!("alerts still active {}s after removal", plan.settle.as_secs()));
                None
            };
            spans.push(Span {
                drill: d,
                run,
                injected,
                removed: Some(removed),
                recovered,
                end: f64::INFINITY,
                notes,
            });
        }
    }
    if let Some(last) = spans.last_mut() {
        last.end = timeline.elapsed() + 1.0;
    }
    timeline.emit("info", "game day complete", json!({"scenario": "complete"}));
    spans
}
