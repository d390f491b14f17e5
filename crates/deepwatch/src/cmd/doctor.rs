//! `deepwatch doctor [--config FILE]`: checks this machine for what deepwatch needs. Reports
//! NVML and the GPUs it sees (driver and CUDA versions), which Prometheus-stack tools are
//! installed and their versions, whether the default ports are free, and checks a config file
//! when given. Exits 1 only when the config file is invalid; missing tools are reported, not
//! fatal.

use deepwatch_core::config::agent::DEFAULT_LISTEN;
use deepwatch_core::config::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A deepwatch.toml to validate (and whose agent listen address to check).
    #[arg(long, short, env = "DEEPWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// NVML library to try instead of the system's libnvidia-ml.so.1.
    #[arg(long)]
    pub nvml_library: Option<String>,
}

/// (what it is, binary names to look for).
const TOOLS: &[(&str, &[&str])] = &[
    ("Prometheus", &["prometheus"]),
    ("promtool", &["promtool"]),
    ("Alertmanager", &["prometheus-alertmanager", "alertmanager"]),
    ("amtool", &["amtool"]),
    ("Pushgateway", &["prometheus-pushgateway", "pushgateway"]),
    ("node_exporter", &["prometheus-node-exporter", "node_exporter"]),
    ("dcgm-exporter", &["dcgm-exporter"]),
    ("nvidia-smi", &["nvidia-smi"]),
    ("VictoriaMetrics", &["victoria-metrics", "victoria-metrics-prod"]),
];

/// (port, who uses it by default).
const PORTS: &[(u16, &str)] = &[
    (9090, "Prometheus"),
    (9093, "Alertmanager"),
    (9091, "Pushgateway"),
    (9100, "node_exporter"),
    (9400, "dcgm-exporter"),
];

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    println!("deepwatch doctor {}", env!("CARGO_PKG_VERSION"));

    println!("\nGPUs (NVML)");
    let library = args.nvml_library.clone().unwrap_or_default();
    for line in gpu_report(&library) {
        println!("  {line}");
    }

    println!("\nPrometheus-stack tools");
    for (what, names) in TOOLS {
        match find_binary(names) {
            Some(path) => println!("  {what:<16} {}  {}", path.display(), version_of(&path)),
            None => println!("  {what:<16} not installed"),
        }
    }

    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => {
                println!("\nConfig {}: ok", path.display());
                Some(c)
            }
            Err(e) => {
                ok = false;
                println!("\nConfig {}: INVALID\n{e}", path.display());
                None
            }
        },
        None => None,
    };

    println!("\nPorts on this host");
    let agent_listen =
        config.as_ref().map(|c| c.agent.listen.clone()).unwrap_or_else(|| DEFAULT_LISTEN.into());
    println!("  {:<22} {}  (deepwatch agent)", agent_listen, port_state(&agent_listen));
    for (port, who) in PORTS {
        let addr = format!("127.0.0.1:{port}");
        println!("  {addr:<22} {}  ({who} default)", port_state(&addr));
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn gpu_report(library: &str) -> Vec<String> {
    let source = match deepwatch_agent::gpu::open_nvml(library) {
        Ok(s) => s,
        Err(e) => {
            return vec![format!(
                "not available ({e}); the agent runs and reports deepwatch_collector_up{{collector=\"gpu\"}} 0"
            )]
        }
    };
    let mut lines = Vec::new();
    match source.driver() {
        Ok(d) => lines.push(format!("driver {}, CUDA {}", d.driver_version, d.cuda_version)),
        Err(e) => lines.push(format!("driver version unreadable: {e}")),
    }
    match source.device_count() {
        Ok(n) => {
            lines.push(format!("{n} GPU(s)"));
            for i in 0..n {
                match source.identity(i) {
                    Ok(id) => lines.push(format!("  gpu {}: {} {}", id.index, id.name, id.uuid)),
                    Err(e) => lines.push(format!("  gpu {i}: {e}")),
                }
            }
        }
        Err(e) => lines.push(format!("device count unreadable: {e}")),
    }
    lines
}

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from));
    names.iter().find_map(|n| dirs.iter().map(|d| d.join(n)).find(|p| p.is_file()))
}

/// First line of `--version` (or Go-flag style `-version`, as VictoriaMetrics wants).
fn version_of(path: &Path) -> String {
    for flag in ["--version", "-version"] {
        let Ok(out) = std::process::Command::new(path).arg(flag).output() else { continue };
        let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
        let first = String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_string();
        if !first.is_empty() && !first.contains("flag provided but not defined") {
            return first;
        }
    }
    String::new()
}

fn port_state(addr: &str) -> &'static str {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => "free",
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => "in use",
        Err(_) => "cannot bind",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_is_reported() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap().to_string();
        assert_eq!(port_state(&addr), "in use");
        // Port 0 always binds: the "free" answer.
        assert_eq!(port_state("127.0.0.1:0"), "free");
    }

    #[test]
    fn installed_tools_are_found_with_their_version() {
        let promtool = find_binary(&["promtool"]).expect("promtool is installed on CI");
        assert!(version_of(&promtool).starts_with("promtool, version"));
        assert!(find_binary(&["surely-not-a-real-tool-name"]).is_none());
    }

    #[test]
    fn no_nvml_is_reported_not_fatal() {
        let lines = gpu_report("/nonexistent/libnvidia-ml.so.1");
        assert!(lines[0].starts_with("not available ("), "{lines:?}");
    }
}
