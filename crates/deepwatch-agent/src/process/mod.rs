//! The process collector: selected processes (the agent itself, a pid file, an exact name or a
//! command-line regex) with RSS, CPU seconds, open fds, threads and the RSS growth rate. A
//! background sampler records RSS every `sample_interval_ms`, whatever the scrape interval, so
//! `deepwatch_process_memory_growth_bytes_per_second` means the same under any Prometheus.

pub mod growth;

use crate::collector::{CollectError, Collector};
use deepwatch_core::catalog::agent as cat;
use deepwatch_core::config::agent::{ProcessConfig, ProcessTarget};
use deepwatch_core::expo::MetricSink;
use growth::GrowthWindow;
use parking_lot::Mutex;
use regex::Regex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `process` label of the agent itself.
pub const SELF_NAME: &str = "deepwatch-agent";

/// How a target's processes are found.
#[derive(Debug, Clone)]
pub enum Selector {
    Pid(i32),
    PidFile(PathBuf),
    ExactName(String),
    Cmdline(Regex),
}

/// What one process looks like at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStats {
    pub rss_bytes: f64,
    pub cpu_seconds: f64,
    pub open_fds: Option<f64>,
    pub threads: f64,
}

/// Where process facts come from: /proc in production, a script in tests.
pub trait ProcSource: Send + Sync {
    fn resolve(&self, selector: &Selector) -> Vec<i32>;
    fn stats(&self, pid: i32) -> Option<ProcStats>;
    /// Just the RSS, for the sampler (cheaper than `stats`).
    fn rss_bytes(&self, pid: i32) -> Option<f64> {
        self.stats(pid).map(|s| s.rss_bytes)
    }
}

/// Reads procfs under `root`: /proc, or the host's /proc mounted into a container.
pub struct ProcFs {
    root: PathBuf,
    page_size: f64,
    ticks_per_second: f64,
}

impl Default for ProcFs {
    fn default() -> Self {
        ProcFs::with_root(PathBuf::from("/proc"))
    }
}

impl ProcFs {
    pub fn with_root(root: PathBuf) -> Self {
        ProcFs {
            root,
            page_size: procfs::page_size() as f64,
            ticks_per_second: procfs::ticks_per_second() as f64,
        }
    }

    fn process(&self, pid: i32) -> Option<procfs::process::Process> {
        procfs::process::Process::new_with_root(self.root.join(pid.to_string())).ok()
    }

    fn scan(&self, mut keep: impl FnMut(&procfs::process::Process) -> bool) -> Vec<i32> {
        let Ok(all) = procfs::process::all_processes_with_root(&self.root) else {
            return Vec::new();
        };
        let mut pids: Vec<i32> =
            all.filter_map(Result::ok).filter(|p| keep(p)).map(|p| p.pid).collect();
        pids.sort_unstable();
        pids
    }
}

fn comm_matches(comm: &str, name: &str) -> bool {
    // The kernel keeps 15 bytes of the name in comm.
    comm == name || (name.len() > 15 && name.as_bytes().get(..15) == Some(comm.as_bytes()))
}

impl ProcSource for ProcFs {
    fn resolve(&self, selector: &Selector) -> Vec<i32> {
        match selector {
            Selector::Pid(pid) => vec![*pid],
            Selector::PidFile(path) => std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
                .filter(|pid| self.process(*pid).is_some())
                .into_iter()
                .collect(),
            Selector::ExactName(name) => self.scan(|p| {
                std::fs::read_to_string(self.root.join(p.pid.to_string()).join("comm"))
                    .is_ok_and(|c| comm_matches(c.trim_end_matches('\n'), name))
            }),
            Selector::Cmdline(re) => {
                let me = std::process::id() as i32;
                self.scan(|p| {
                    // The agent's own command line may contain the pattern (its config path).
                    p.pid != me && p.cmdline().is_ok_and(|args| re.is_match(&args.join(" ")))
                })
            }
        }
    }

    fn stats(&self, pid: i32) -> Option<ProcStats> {
        let p = self.process(pid)?;
        let stat = p.stat().ok()?;
        let open_fds = std::fs::read_dir(self.root.join(pid.to_string()).join("fd"))
            .ok()
            .map(|d| d.count() as f64);
        Some(ProcStats {
            rss_bytes: stat.rss as f64 * self.page_size,
            cpu_seconds: (stat.utime + stat.stime) as f64 / self.ticks_per_second,
            open_fds,
            threads: stat.num_threads as f64,
        })
    }

    fn rss_bytes(&self, pid: i32) -> Option<f64> {
        // statm's second field is resident pages.
        let statm = std::fs::read_to_string(self.root.join(pid.to_string()).join("statm")).ok()?;
        let pages: f64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
        Some(pages * self.page_size)
    }
}

struct Target {
    name: String,
    selector: Selector,
    /// Matched pids and their RSS history.
    tracked: Mutex<HashMap<i32, GrowthWindow>>,
}

pub struct ProcessCollector {
    targets: Vec<Target>,
    source: Arc<dyn ProcSource>,
    window_secs: f64,
    sample_interval: Duration,
    started: tokio::time::Instant,
}

impl ProcessCollector {
    /// Builds targets from config (already validated); the agent itself first when asked.
    pub fn new(config: &ProcessConfig, source: Arc<dyn ProcSource>) -> Self {
        let mut targets = Vec::new();
        if config.include_self {
            targets.push((SELF_NAME.to_string(), Selector::Pid(std::process::id() as i32)));
        }
        for t in &config.targets {
            if let Some(selector) = selector_of(t) {
                targets.push((t.name.clone(), selector));
            }
        }
        ProcessCollector::with_targets(config, targets, source)
    }

    pub fn with_targets(
        config: &ProcessConfig,
        targets: Vec<(String, Selector)>,
        source: Arc<dyn ProcSource>,
    ) -> Self {
        ProcessCollector {
            targets: targets
                .into_iter()
                .map(|(name, selector)| Target {
                    name,
                    selector,
                    tracked: Mutex::new(HashMap::new()),
                })
                .collect(),
            source,
            window_secs: config.growth_window.as_secs_f64(),
            sample_interval: config.sample_interval.max(Duration::from_millis(1)),
            started: tokio::time::Instant::now(),
        }
    }

    /// One sampler round: re-resolve every target, record each pid's RSS, forget gone pids.
    pub fn sample(&self) {
        let t = self.started.elapsed().as_secs_f64();
        for target in &self.targets {
            let pids = self.source.resolve(&target.selector);
            let mut tracked = target.tracked.lock();
            tracked.retain(|pid, _| pids.contains(pid));
            for pid in pids {
                if let Some(rss) = self.source.rss_bytes(pid) {
                    tracked
                        .entry(pid)
                        .or_insert_with(|| GrowthWindow::new(self.window_secs))
                        .push(t, rss);
                }
            }
        }
    }

    /// Runs `sample` every `sample_interval_ms` until the collector is dropped.
    pub fn spawn_sampler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let period = self.sample_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                // Scanning /proc for name/regex targets is blocking file I/O.
                let _ = tokio::task::spawn_blocking(move || this.sample()).await;
            }
        })
    }

    /// The growth rate of one tracked pid, for tests.
    pub fn growth_of(&self, name: &str, pid: i32) -> Option<f64> {
        let target = self.targets.iter().find(|t| t.name == name)?;
        let tracked = target.tracked.lock();
        tracked.get(&pid)?.slope()
    }
}

fn selector_of(t: &ProcessTarget) -> Option<Selector> {
    if !t.exact_name.is_empty() {
        Some(Selector::ExactName(t.exact_name.clone()))
    } else if !t.pid_file.is_empty() {
        Some(Selector::PidFile(PathBuf::from(&t.pid_file)))
    } else if !t.cmdline_regex.is_empty() {
        Regex::new(&t.cmdline_regex).ok().map(Selector::Cmdline)
    } else {
        None
    }
}

impl Collector for ProcessCollector {
    fn name(&self) -> &'static str {
        "process"
    }

    fn collect(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        sink.declare(&cat::PROCESS_MATCHED);
        for target in &self.targets {
            let mut pids: Vec<i32> = target.tracked.lock().keys().copied().collect();
            // Nothing sampled yet, or a pid went away since: resolve now.
            let mut rows: Vec<(i32, ProcStats)> =
                pids.iter().filter_map(|&p| self.source.stats(p).map(|s| (p, s))).collect();
            if rows.len() != pids.len() || pids.is_empty() {
                pids = self.source.resolve(&target.selector);
                rows = pids.iter().filter_map(|&p| self.source.stats(p).map(|s| (p, s))).collect();
            }
            rows.sort_by_key(|r| r.0);
            sink.gauge(&cat::PROCESS_MATCHED, &[&target.name], rows.len() as f64);
            let tracked = target.tracked.lock();
            for (pid, s) in rows {
                let pid_text = pid.to_string();
                let labels = [target.name.as_str(), pid_text.as_str()];
                sink.gauge(&cat::PROCESS_RSS, &labels, s.rss_bytes);
                sink.counter(&cat::PROCESS_CPU_SECONDS, &labels, s.cpu_seconds);
                if let Some(fds) = s.open_fds {
                    sink.gauge(&cat::PROCESS_OPEN_FDS, &labels, fds);
                }
                sink.gauge(&cat::PROCESS_THREADS, &labels, s.threads);
                if let Some(rate) = tracked.get(&pid).and_then(GrowthWindow::slope) {
                    sink.gauge(&cat::PROCESS_MEMORY_GROWTH, &labels, rate);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
