//! A real vLLM for the suite: started and stopped through `scripts/real-engine.sh` (one named
//! instance on a free port, its own process group), its `/metrics` parsed with our own parser,
//! histograms read as vLLM wrote them, and its EngineCore process found for SIGSTOP.

use deepwatch_core::promtext::{self, Dialect, Family};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The model name vLLM serves (`--served-model-name` in the script).
pub const MODEL: &str = "deepseek-tiny";
/// Context of the suite's engine: long enough that a 2,000-token generation outlasts any lag of
/// vLLM's API server behind its engine (a client cancel must land mid-generation).
pub const MAX_MODEL_LEN: u32 = 2048;
/// Extra `vllm serve` flags of the suite's engine: DeepSeek-V3's tool-call parser, so `auto`
/// tool requests are answered as DeepSeek answers them, and xgrammar without free whitespace,
/// so a named tool choice (JSON arguments constrained by the tool's schema, see `SERVE_ENV`)
/// ends in a few tokens even from the random-weight model, which would otherwise emit
/// whitespace until `max_tokens`.
pub const SERVE_ARGS: &[&str] = &[
    "--enable-auto-tool-choice",
    "--tool-call-parser",
    "deepseek_v3",
    "--structured-outputs-config",
    r#"{"backend": "xgrammar", "disable_any_whitespace": true}"#,
];
/// Environment of the suite's engine. vLLM 0.32 forces DeepSeek's tool-call markup through an
/// xgrammar structural tag for named and `required` tool choices; the random-weight model
/// never finishes that markup (it answers `length`, no tool call). With strict tool calling
/// off, vLLM constrains the arguments to the tool's JSON schema instead, its generic path for
/// named tool choices, and the gateway's pass-through of tool fields can be checked.
pub const SERVE_ENV: &[(&str, &str)] = &[("VLLM_ENFORCE_STRICT_TOOL_CALLING", "0")];

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

fn script() -> PathBuf {
    repo_root().join("scripts/real-engine.sh")
}

/// One vLLM instance of the script.
pub struct Vllm {
    pub name: String,
    pub port: u16,
    pub pgid: i32,
    log_file: PathBuf,
}

impl Vllm {
    /// Starts instance `name` on a free port with `--max-num-seqs max_seqs`, plus a watchdog
    /// that stops it once this process has exited.
    pub fn start(name: &str, max_seqs: u32, extra_args: &[&str]) -> Result<Vllm, String> {
        let port = deepwatch_testkit::free_port();
        let out = Command::new(script())
            .arg("start")
            .args(extra_args)
            .envs(SERVE_ENV.iter().copied())
            .env("DEEPWATCH_VLLM_NAME", name)
            .env("DEEPWATCH_VLLM_PORT", port.to_string())
            .env("DEEPWATCH_VLLM_MAX_SEQS", max_seqs.to_string())
            .env("DEEPWATCH_VLLM_MAX_MODEL_LEN", MAX_MODEL_LEN.to_string())
            .output()
            .map_err(|e| format!("cannot run scripts/real-engine.sh: {e}"))?;
        // Even a failed start may have left processes: the watchdog's stop covers them too.
        stop_when_this_process_exits(name)?;
        if !out.status.success() {
            return Err(format!(
                "vLLM '{name}' did not start:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let (port_seen, pgid, log_file) =
            status(name).ok_or("a started engine reports its status")?;
        if port_seen != port {
            return Err(format!("engine '{name}' reports port {port_seen}, started on {port}"));
        }
        Ok(Vllm { name: name.to_string(), port, pgid, log_file })
    }

    /// Attaches to instance `name` that the script already runs (left running afterwards).
    pub fn attach(name: &str) -> Option<Vllm> {
        let (port, pgid, log_file) = status(name)?;
        Some(Vllm { name: name.to_string(), port, pgid, log_file })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last 40 lines of the engine's log, for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Pids of the instance's processes whose command name starts with `comm`
    /// (`VLLM::EngineCore` shows as `VLLM::EngineCor`, 15 characters).
    pub fn pids_named(&self, comm: &str) -> Vec<i32> {
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else { return out };
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
            let name = &stat[open + 1..close];
            // Fields after ") ": state ppid pgrp ...
            let pgrp = stat[close + 2..].split_whitespace().nth(2).and_then(|f| f.parse().ok());
            if pgrp == Some(self.pgid) && name.starts_with(comm) {
                out.push(pid);
            }
        }
        out
    }

    /// The EngineCore process: the scheduler loop that a hang stops.
    pub fn engine_core_pid(&self) -> i32 {
        let pids = self.pids_named("VLLM::EngineCor");
        assert_eq!(pids.len(), 1, "one EngineCore in process group {}: {pids:?}", self.pgid);
        pids[0]
    }

    /// Parsed `/metrics` and the response's content type.
    pub async fn metrics(&self, http: &reqwest::Client) -> (Vec<Family>, String) {
        let resp = http.get(format!("{}/metrics", self.url())).send().await.expect("vLLM /metrics");
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = resp.text().await.expect("vLLM /metrics body");
        let families = promtext::parse(&text, Dialect::from_content_type(Some(&content_type)))
            .unwrap_or_else(|e| panic!("vLLM /metrics does not parse: {e}"));
        (families, content_type)
    }
}

/// A shell in its own process group (a Ctrl-C to the tests does not reach it) that waits for
/// this process to exit, then stops engine `name`.
#[allow(clippy::zombie_processes)] // it must outlive us; init reaps it
fn stop_when_this_process_exits(name: &str) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let watch = format!(
        "while kill -0 {} 2>/dev/null; do sleep 0.5; done; exec \"$0\" stop",
        std::process::id()
    );
    Command::new("sh")
        .args(["-c", &watch])
        .arg(script())
        .env("DEEPWATCH_VLLM_NAME", name)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the engine watchdog: {e}"))
}

/// Port, process group and log file of running instance `name`, from `real-engine.sh status`.
fn status(name: &str) -> Option<(u16, i32, PathBuf)> {
    let out =
        Command::new(script()).arg("status").env("DEEPWATCH_VLLM_NAME", name).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field =
        |key: &str| text.split_whitespace().find_map(|w| w.strip_prefix(key)).map(str::to_string);
    let port = field("url=")?.rsplit(':').next()?.parse().ok()?;
    let pgid = field("process_group=")?.parse().ok()?;
    Some((port, pgid, PathBuf::from(field("log=")?)))
}

/// Sum of every sample named exactly `sample` (over engines and other labels).
pub fn sum(families: &[Family], sample: &str) -> f64 {
    families.iter().flat_map(|f| &f.samples).filter(|s| s.name == sample).map(|s| s.value).sum()
}

/// A histogram as vLLM exposes it: finite edges with cumulative counts, sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct Hist {
    pub edges: Vec<f64>,
    pub cumulative: Vec<f64>,
    pub sum: f64,
    pub count: f64,
}

impl Hist {
    /// The family `name` summed over every label but `le`.
    pub fn read(families: &[Family], name: &str) -> Hist {
        let bucket = format!("{name}_bucket");
        let mut by_edge: Vec<(f64, f64)> = Vec::new();
        for s in families.iter().flat_map(|f| &f.samples).filter(|s| s.name == bucket) {
            let Some(le) = s.label("le").and_then(|v| v.parse::<f64>().ok()) else { continue };
            if le.is_infinite() {
                continue;
            }
            match by_edge.iter_mut().find(|(e, _)| *e == le) {
                Some(slot) => slot.1 += s.value,
                None => by_edge.push((le, s.value)),
            }
        }
        by_edge.sort_by(|a, b| a.0.total_cmp(&b.0));
        Hist {
            edges: by_edge.iter().map(|e| e.0).collect(),
            cumulative: by_edge.iter().map(|e| e.1).collect(),
            sum: sum(families, &format!("{name}_sum")),
            count: sum(families, &format!("{name}_count")),
        }
    }

    /// What was observed between `before` and `self`.
    pub fn since(&self, before: &Hist) -> Hist {
        assert_eq!(self.edges, before.edges, "bucket edges changed");
        Hist {
            edges: self.edges.clone(),
            cumulative: self
                .cumulative
                .iter()
                .zip(&before.cumulative)
                .map(|(a, b)| a - b)
                .collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// The same observations bucketed with `edges` (for an apples-to-apples estimate).
    pub fn from_values(edges: &[f64], values: &[f64]) -> Hist {
        Hist {
            edges: edges.to_vec(),
            cumulative: edges
                .iter()
                .map(|e| values.iter().filter(|v| **v <= *e).count() as f64)
                .collect(),
            sum: values.iter().sum(),
            count: values.len() as f64,
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// Prometheus's `histogram_quantile`: linear interpolation inside the bucket, the lowest
    /// bucket starting at 0.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        let mut lower_edge = 0.0;
        let mut lower_count = 0.0;
        for (edge, cum) in self.edges.iter().zip(&self.cumulative) {
            if *cum >= rank {
                let in_bucket = cum - lower_count;
                if in_bucket <= 0.0 {
                    return Some(*edge);
                }
                return Some(lower_edge + (edge - lower_edge) * (rank - lower_count) / in_bucket);
            }
            lower_edge = *edge;
            lower_count = *cum;
        }
        // In the +Inf bucket: Prometheus answers the highest finite edge.
        self.edges.last().copied()
    }
}

/// Exact median of `values`.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) { (v[mid - 1] + v[mid]) / 2.0 } else { v[mid] })
}

/// The suite's agreement bound: `a` within 20 % of `b` plus 5 ms.
pub fn agrees(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.2 * b.abs() + 0.005
}
