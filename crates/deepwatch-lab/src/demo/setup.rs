//! Before and around the demo's run: finding the Prometheus tools (with the install hint when
//! they are missing), preparing the state directory (refusing one a running demo uses),
//! catching the signals that stop the demo, and printing what to open.

use super::stack::{self, url, Ports};
use super::{procs, DemoError};
use std::path::{Path, PathBuf};

/// Finds a server binary: the given path, else PATH, else /usr/bin, /usr/sbin, /usr/local/bin.
pub fn find_tool(
    names: &[&str],
    given: Option<&Path>,
    package: &str,
) -> Result<PathBuf, DemoError> {
    let hint = format!(
        "install it with `sudo apt-get install {package}` (or run ./scripts/install-deps.sh, which \
         installs everything the demo needs)"
    );
    if let Some(path) = given {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        return Err(DemoError::MissingTool(format!(
            "{} not found at {}; {hint}",
            names[0],
            path.display()
        )));
    }
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from));
    for name in names {
        if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
            return Ok(found);
        }
    }
    Err(DemoError::MissingTool(format!(
        "{} not found (looked on PATH and in /usr/bin, /usr/sbin, /usr/local/bin); the demo runs \
         the real Prometheus and Alertmanager: {hint}, or pass --{} PATH",
        names[0],
        if package == "prometheus" { "prometheus" } else { "alertmanager" }
    )))
}

/// Makes the state directory ready for a fresh run; refuses when a demo still runs there.
pub fn prepare_state_dir(dir: &Path) -> Result<(), DemoError> {
    std::fs::create_dir_all(dir)?;
    if let Ok(text) = std::fs::read_to_string(dir.join("pids")) {
        for pid in text.lines().filter_map(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok()) {
            if procs::alive(pid) {
                return Err(DemoError::Busy { dir: dir.display().to_string(), pid });
            }
        }
    }
    for old in ["deploy", "logs", "prometheus-data", "alertmanager-data", "analyzer", "reports"] {
        let path = dir.join(old);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
    }
    Ok(())
}

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP, registered as soon as the demo starts.
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

/// The "Open:" block printed once the stack is ready.
pub fn urls_text(p: &Ports, dir: &Path, analyzer: bool) -> String {
    let mut lines = vec![
        String::new(),
        "Open:".to_string(),
        format!("  Prometheus alerts   {}/alerts", url(p.prometheus)),
        format!("  Alertmanager        {}", url(p.alertmanager)),
        format!(
            "  gateway (OpenAI)    {}/v1   e.g. curl {}/v1/chat/completions -H 'content-type: application/json' \
             -d '{{\"model\":\"{}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'",
            url(p.proxy),
            url(p.proxy),
            stack::MODEL
        ),
        format!("  gateway admin       {}/admin/pools   (Authorization: Bearer {})", url(p.gateway_admin), stack::GATEWAY_TOKEN),
        format!("  agent metrics       {}/metrics", url(p.agent)),
    ];
    if analyzer {
        lines.push(format!("  analyzer reports    {}/reports", url(p.analyzer)));
    }
    lines.push(format!(
        "  Grafana             provision {}/deploy/grafana (datasource: {})",
        dir.display(),
        url(p.prometheus)
    ));
    lines.push(format!(
        "  config, logs, timeline: {}  (timeline.jsonl, logs/, pids)",
        dir.display()
    ));
    lines.push(String::new());
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_the_package_and_the_flag() {
        let err =
            find_tool(&["prometheus"], Some(Path::new("/nonexistent/prometheus")), "prometheus")
                .unwrap_err()
                .to_string();
        assert!(err.contains("prometheus not found at /nonexistent/prometheus"), "{err}");
        assert!(err.contains("sudo apt-get install prometheus"), "{err}");
        let err = find_tool(&["no-such-alertmanager-x"], None, "prometheus-alertmanager")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--alertmanager PATH"), "{err}");
        assert!(err.contains("apt-get install prometheus-alertmanager"), "{err}");
    }

    #[test]
    fn a_state_dir_in_use_is_refused_and_a_stale_one_is_cleaned() {
        let dir = tempfile_dir();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::write(dir.join("pids"), format!("demo {}\n", std::process::id())).unwrap();
        let err = prepare_state_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("another demo is running"), "{err}");
        // Above Linux's largest pid_max: the previous demo is gone, its files are cleared.
        std::fs::write(dir.join("pids"), "demo 4194304\n").unwrap();
        prepare_state_dir(&dir).unwrap();
        assert!(!dir.join("logs").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("deepwatch-demo-setup-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
