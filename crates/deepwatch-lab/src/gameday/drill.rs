//! The game day's drills: each injects one real fault into the live stack, holds it, removes
//! it, and says which root-cause candidates name it. Faults are real where the machine allows:
//! engine processes are killed (SIGKILL) and stopped (SIGSTOP), their memory really grows, a
//! rollout really starts on the gateway; latency and error bursts go through the simulator's
//! fault API, the GPU leak through the agent's scripted fake NVML source (no GPU in CI).

use super::Lab;
use crate::chaos::FaultPatch;
use deepwatch_core::api::admin::RolloutRequest;
use rustix::process::{kill_process, Pid, Signal};
use std::str::FromStr;
use std::time::Duration;

/// The drills, in the order `all` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Drill {
    /// The blue engine takes 3 s more to the first token.
    Latency,
    /// Half of the blue engine's requests fail with HTTP 500.
    ErrorBurst,
    /// The blue engine process gets SIGKILL; the supervisor (systemd's stand-in) restarts it.
    EngineKill,
    /// The blue engine process gets SIGSTOP (port open, no answers), SIGCONT at the end.
    EngineHang,
    /// The blue engine process allocates and touches memory fast (real RSS growth).
    MemoryLeak,
    /// A rollout of the green pool's new version, which fails a third of its requests.
    BadRollout,
    /// GPU 0's memory climbs to 98 % (the agent's scripted fake NVML source).
    GpuMemoryLeak,
    /// Three times the request rate for five minutes (time-scaled).
    Surge,
}

pub const ALL: [Drill; 8] = [
    Drill::Latency,
    Drill::ErrorBurst,
    Drill::EngineKill,
    Drill::EngineHang,
    Drill::MemoryLeak,
    Drill::BadRollout,
    Drill::GpuMemoryLeak,
    Drill::Surge,
];

impl FromStr for Drill {
    type Err = String;
    fn from_str(s: &str) -> Result<Drill, String> {
        ALL.iter().copied().find(|d| d.name() == s.trim()).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|d| d.name()).collect();
            format!("unknown drill {s:?} (one of: {})", names.join(", "))
        })
    }
}

/// Candidate families (the report's candidate names) that name a drill's cause, with the label
/// that must point at the faulted component.
struct Cause {
    names: &'static [&'static str],
    /// `key="value"` fragments; one must appear in the candidate.
    labels: &'static [&'static str],
}

const BLUE: &[&str] = &["engine=\"blue\"", "pool=\"blue\"", "process=\"sim-blue\""];
const GREEN: &[&str] = &["engine=\"green\"", "pool=\"green\""];

impl Drill {
    pub fn name(self) -> &'static str {
        match self {
            Drill::Latency => "latency",
            Drill::ErrorBurst => "error-burst",
            Drill::EngineKill => "engine-kill",
            Drill::EngineHang => "engine-hang",
            Drill::MemoryLeak => "memory-leak",
            Drill::BadRollout => "bad-rollout",
            Drill::GpuMemoryLeak => "gpu-memory-leak",
            Drill::Surge => "surge",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Drill::Latency => "blue engine +3000 ms to first token (simulator fault API)",
            Drill::ErrorBurst => "blue engine fails 50 % of requests with HTTP 500",
            Drill::EngineKill => "SIGKILL to the blue engine process; restarted 4 s later",
            Drill::EngineHang => "SIGSTOP to the blue engine process (port open, no answers)",
            Drill::MemoryLeak => "blue engine process leaks 1500 MB/min of touched memory",
            Drill::BadRollout => "rollout of green v2, which fails 30 % of requests",
            Drill::GpuMemoryLeak => "GPU 0 memory climbs from 40 GB to 78.5 GB of 80 GB",
            Drill::Surge => "3x the request rate for 5 minutes (time-scaled)",
        }
    }

    fn cause(self) -> Cause {
        match self {
            // The slow engine's own latency, queue and cache, or the gateway's verdict on it.
            Drill::Latency => Cause {
                names: &[
                    "engine_ttft_p90",
                    "engine_e2e_p90",
                    "engine_requests_waiting",
                    "engine_kv_cache_usage",
                    "upstream_up",
                    "upstream_error_ratio",
                ],
                labels: BLUE,
            },
            // The failing upstream: its error ratio, or the gateway taking it out of rotation.
            Drill::ErrorBurst => {
                Cause { names: &["upstream_error_ratio", "upstream_up"], labels: BLUE }
            }
            Drill::EngineKill | Drill::EngineHang => Cause {
                names: &[
                    "engine_up",
                    "engine_stalled",
                    "engine_scrape_errors",
                    "upstream_up",
                    "upstream_error_ratio",
                    "process_up",
                    "process_restarts",
                ],
                labels: BLUE,
            },
            Drill::MemoryLeak => Cause { names: &["process_rss"], labels: BLUE },
            Drill::BadRollout => Cause {
                names: &["deploy_events", "pool_weight", "upstream_error_ratio"],
                labels: GREEN,
            },
            Drill::GpuMemoryLeak => Cause { names: &["gpu_memory_used"], labels: &["gpu=\"0\""] },
            // Traffic in is the cause, whichever pool it lands on.
            Drill::Surge => Cause { names: &["request_rate"], labels: &["model=\""] },
        }
    }

    /// Whether a ranked candidate (`name{label="value",...}`) names this drill's cause.
    pub fn names_cause(self, candidate: &str) -> bool {
        let cause = self.cause();
        let name = candidate.split('{').next().unwrap_or_default();
        // A rollout moves the weights of both pools: either one's weight names the change.
        if self == Drill::BadRollout && name == "pool_weight" {
            return true;
        }
        cause.names.contains(&name) && cause.labels.iter().any(|l| candidate.contains(l))
    }

    /// Injects the fault.
    pub async fn inject(self, lab: &Lab) -> Result<(), String> {
        match self {
            Drill::Latency => {
                let patch = FaultPatch { ttft_added_ms: Some(3000), ..FaultPatch::default() };
                lab.blue.set(&patch.to_map()).await.map(drop).map_err(|e| e.to_string())
            }
            Drill::ErrorBurst => {
                let patch = FaultPatch {
                    error_rate: Some(0.5),
                    error_status: Some(500),
                    ..FaultPatch::default()
                };
                lab.blue.set(&patch.to_map()).await.map(drop).map_err(|e| e.to_string())
            }
            Drill::EngineKill => signal(lab, "sim-blue", Signal::KILL),
            Drill::EngineHang => signal(lab, "sim-blue", Signal::STOP),
            Drill::MemoryLeak => {
                let patch = FaultPatch { leak_mb_per_min: Some(1500.0), ..FaultPatch::default() };
                lab.blue.set(&patch.to_map()).await.map(drop).map_err(|e| e.to_string())
            }
            Drill::BadRollout => {
                let patch = FaultPatch {
                    error_rate: Some(0.3),
                    error_status: Some(500),
                    ..FaultPatch::default()
                };
                lab.green.set(&patch.to_map()).await.map_err(|e| e.to_string())?;
                let request = RolloutRequest {
                    pool: "green".into(),
                    stable: Some("blue".into()),
                    steps: Some(vec![25, 50, 100]),
                    step_secs: Some(lab.scaled(120).as_secs().max(3)),
                    min_samples: Some(20),
                    max_error_ratio_increase: Some(0.05),
                    ..RolloutRequest::default()
                };
                lab.gateway.start_rollout(&request).await.map(drop).map_err(|e| e.to_string())
            }
            Drill::GpuMemoryLeak => {
                lab.gpu_leak.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Drill::Surge => {
                lab.surge(2.0, lab.scaled(300));
                Ok(())
            }
        }
    }

    /// Removes the fault (the killed engine is restarted by the supervisor, the surge ends by
    /// itself); the stack is then as before the drill.
    pub async fn revert(self, lab: &Lab) -> Result<(), String> {
        match self {
            Drill::Latency | Drill::ErrorBurst | Drill::MemoryLeak => {
                lab.blue.reset().await.map(drop).map_err(|e| e.to_string())
            }
            Drill::EngineKill | Drill::Surge => Ok(()),
            Drill::EngineHang => signal(lab, "sim-blue", Signal::CONT),
            Drill::BadRollout => {
                let _ = lab.green.reset().await;
                // Normally rolled back by the canary analysis already; else the operator does.
                if let Ok(doc) = lab.gateway.rollouts().await {
                    if doc.current.is_some() {
                        let _ = lab.gateway.rollback("game day: drill over").await;
                    }
                }
                lab.gateway.set_weight("green", 10).await.map(drop).map_err(|e| e.to_string())
            }
            Drill::GpuMemoryLeak => {
                lab.gpu_leak.store(false, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// How long the fault stays in force, unscaled (production minutes).
    pub fn hold_secs(self) -> u64 {
        match self {
            Drill::Surge => 300,
            _ => 600,
        }
    }
}

fn signal(lab: &Lab, name: &str, sig: Signal) -> Result<(), String> {
    let pid = lab.pid_of(name).ok_or_else(|| format!("no pid for {name}"))?;
    let pid = Pid::from_raw(pid as i32).ok_or_else(|| format!("bad pid {pid} for {name}"))?;
    kill_process(pid, sig).map_err(|e| format!("{name} ({pid:?}): {e}"))
}

/// The wait between checks while a drill settles.
pub const POLL: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_drill_names_its_cause_and_not_another_component() {
        assert!(Drill::Latency.names_cause("engine_e2e_p90{engine=\"blue\"}"));
        assert!(!Drill::Latency.names_cause("engine_e2e_p90{engine=\"green\"}"));
        assert!(!Drill::Latency.names_cause("ttft_p90{model=\"m\",pool=\"blue\"}"));
        assert!(Drill::EngineKill.names_cause("engine_up{engine=\"blue\"}"));
        assert!(Drill::EngineHang
            .names_cause("upstream_up{pool=\"blue\",upstream=\"http://127.0.0.1:1\"}"));
        assert!(
            Drill::BadRollout.names_cause("deploy_events{event=\"rollout_start\",pool=\"green\"}")
        );
        assert!(!Drill::BadRollout.names_cause("deploy_events{pool=\"blue\"}"));
        assert!(Drill::BadRollout.names_cause("pool_weight{pool=\"blue\"}"));
        assert!(!Drill::BadRollout.names_cause("upstream_error_ratio{pool=\"blue\"}"));
        assert!(!Drill::ErrorBurst.names_cause("error_ratio{model=\"m\",pool=\"blue\"}"));
        assert!(Drill::ErrorBurst.names_cause("upstream_up{pool=\"blue\",upstream=\"u\"}"));
        assert!(Drill::GpuMemoryLeak.names_cause("gpu_memory_used{gpu=\"0\",instance=\"a\"}"));
        assert!(!Drill::GpuMemoryLeak.names_cause("gpu_memory_used{gpu=\"1\",instance=\"a\"}"));
        assert!(Drill::MemoryLeak.names_cause("process_rss{instance=\"a\",process=\"sim-blue\"}"));
    }

    #[test]
    fn drills_parse_by_name_and_a_wrong_name_lists_them() {
        for d in ALL {
            assert_eq!(d.name().parse::<Drill>().unwrap(), d);
        }
        let err = "nope".parse::<Drill>().unwrap_err();
        assert!(err.contains("engine-hang") && err.contains("surge"), "{err}");
    }
}
