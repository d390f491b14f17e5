//! The demo's child processes (the current executable's subcommands, Prometheus,
//! Alertmanager), started so that none outlives the demo:
//!
//! - all of them join one process group whose leader is a tiny watchdog (`sh`), so one
//!   `kill(-pgid)` reaches every child and grandchild;
//! - on Ctrl-C, SIGTERM, an error or a panic (the `Supervisor` is dropped while unwinding) the
//!   group gets SIGTERM, then SIGKILL after a grace period, and every child is reaped;
//! - if the demo itself is killed with SIGKILL, nothing of it runs any more. Two things still
//!   end the children: each is started through util-linux `setpriv --pdeathsig KILL` (Linux
//!   `PR_SET_PDEATHSIG`, set by a separate, safe program between fork and exec, since unsafe
//!   code is denied here), and the watchdog notices within a second that its parent changed and
//!   kills the whole group. The watchdog alone is enough where `setpriv` is missing.
//!
//! The pids are written to `<state-dir>/pids` (`name pid` per line) while they run, and the
//! file becomes `pids.stopped` once they are stopped.

use super::DemoError;
use rustix::process::{kill_process_group, test_kill_process, Pid, Signal};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// Seconds between SIGTERM and SIGKILL on an orderly stop.
const GRACE: Duration = Duration::from_secs(5);

/// Kills the process group once its parent (the demo) is gone. `$1` is the demo's pid; the
/// fourth field of `/proc/self/stat` is the parent pid, which changes when the demo dies
/// (a plain `kill -0` would still see the demo as a zombie).
const WATCHDOG: &str =
    r#"while [ "$(cut -d ' ' -f 4 /proc/$$/stat)" = "$1" ]; do sleep 1; done; kill -KILL 0"#;

pub struct Proc {
    pub name: String,
    pub pid: u32,
    child: Child,
    log: PathBuf,
    program: PathBuf,
    args: Vec<String>,
    /// Restarted this long after it exits (a systemd `Restart=always` stand-in), when set.
    restart_after: Option<Duration>,
    /// When it was first seen exited, while a restart is due.
    exited_at: Option<Instant>,
}

pub struct Supervisor {
    logs: PathBuf,
    pid_file: PathBuf,
    watchdog: Child,
    pgid: Pid,
    setpriv: Option<PathBuf>,
    children: Vec<Proc>,
    stopped: bool,
}

impl Supervisor {
    /// Starts the watchdog, whose process group every child joins.
    pub fn new(state_dir: &Path) -> Result<Supervisor, DemoError> {
        let logs = state_dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let watchdog = Command::new("/bin/sh")
            .args(["-c", WATCHDOG, "deepwatch-demo-watchdog", &std::process::id().to_string()])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| DemoError::Spawn { name: "watchdog".into(), message: e.to_string() })?;
        let pgid = Pid::from_raw(watchdog.id() as i32)
            .ok_or_else(|| DemoError::Spawn { name: "watchdog".into(), message: "pid 0".into() })?;
        // DEEPWATCH_DEMO_PDEATHSIG=off leaves the watchdog alone in charge (how the tests
        // check that it suffices where setpriv is missing).
        let wanted = std::env::var("DEEPWATCH_DEMO_PDEATHSIG").map_or(true, |v| v != "off");
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .iter()
            .map(PathBuf::from)
            .find(|p| wanted && p.is_file());
        if setpriv.is_none() {
            tracing::info!(
                "setpriv not found; children end through the watchdog if the demo is killed"
            );
        }
        let sup = Supervisor {
            logs,
            pid_file: state_dir.join("pids"),
            watchdog,
            pgid,
            setpriv,
            children: Vec::new(),
            stopped: false,
        };
        sup.write_pids();
        Ok(sup)
    }

    pub fn pgid(&self) -> i32 {
        self.pgid.as_raw_nonzero().get()
    }

    /// Log file of a child.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// Starts `program args...` in the group, stdout and stderr to `logs/<name>.log`.
    pub fn spawn(&mut self, name: &str, program: &Path, args: &[String]) -> Result<u32, DemoError> {
        let log = self.log_path(name);
        let spawn_err =
            |e: std::io::Error| DemoError::Spawn { name: name.to_string(), message: e.to_string() };
        let out = File::create(&log).map_err(spawn_err)?;
        let err = out.try_clone().map_err(spawn_err)?;
        let mut cmd = match &self.setpriv {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        let child = cmd
            .args(args)
            .process_group(self.pgid())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| DemoError::Spawn {
                name: name.to_string(),
                message: format!("{}: {e}", program.display()),
            })?;
        let pid = child.id();
        tracing::debug!(name, pid, "started");
        self.children.push(Proc {
            name: name.to_string(),
            pid,
            child,
            log,
            program: program.to_path_buf(),
            args: args.to_vec(),
            restart_after: None,
            exited_at: None,
        });
        self.write_pids();
        Ok(pid)
    }

    /// Every child: (name, pid).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children.iter().map(|p| (p.name.clone(), p.pid)).collect()
    }

    fn write_pids(&self) {
        let mut text = format!("watchdog {}\n", self.watchdog.id());
        for p in &self.children {
            text.push_str(&format!("{} {}\n", p.name, p.pid));
        }
        let _ = std::fs::write(&self.pid_file, text);
    }

    /// Restarts child `name` `delay` after it exits, as systemd's `Restart=always` with
    /// `RestartSec` would (the game day kills engines and expects them back).
    pub fn restart_on_exit(&mut self, name: &str, delay: Duration) {
        if let Some(p) = self.children.iter_mut().find(|p| p.name == name) {
            p.restart_after = Some(delay);
        }
    }

    /// Pid of child `name` now.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.children.iter().find(|p| p.name == name).map(|p| p.pid)
    }

    /// Restarts the children that exited and are due for a restart; returns (name, old pid,
    /// exit status, new pid) of each one restarted.
    pub fn restart_due(&mut self) -> Result<Vec<(String, u32, String, u32)>, DemoError> {
        let mut due = Vec::new();
        for (i, p) in self.children.iter_mut().enumerate() {
            let Some(delay) = p.restart_after else { continue };
            if let Ok(Some(status)) = p.child.try_wait() {
                let since = *p.exited_at.get_or_insert_with(Instant::now);
                if since.elapsed() >= delay {
                    due.push((i, describe(status)));
                }
            }
        }
        let mut restarted = Vec::new();
        for (i, status) in due.into_iter().rev() {
            let (name, program, args, delay, old) = {
                let p = &self.children[i];
                (p.name.clone(), p.program.clone(), p.args.clone(), p.restart_after, p.pid)
            };
            let log_before = self.children.remove(i).log;
            let _ = std::fs::rename(&log_before, log_before.with_extension(format!("{old}.log")));
            let pid = self.spawn(&name, &program, &args)?;
            if let Some(delay) = delay {
                self.restart_on_exit(&name, delay);
            }
            restarted.push((name, old, status, pid));
        }
        Ok(restarted)
    }

    /// The first child that has exited (and is not due for a restart), with its status and
    /// the end of its log.
    pub fn exited(&mut self) -> Option<DemoError> {
        for p in &mut self.children {
            if p.restart_after.is_some() {
                continue;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                return Some(DemoError::Exited {
                    name: p.name.clone(),
                    status: describe(status),
                    log: tail(&p.log, 15),
                });
            }
        }
        None
    }

    /// Waits until `GET url` answers 2xx, failing early when the child exits.
    pub async fn wait_ready(
        &mut self,
        name: &str,
        url: &str,
        timeout: Duration,
    ) -> Result<(), DemoError> {
        let client = deepwatch_core::http::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| DemoError::Spawn { name: name.into(), message: e.to_string() })?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.children.iter_mut().find(|p| p.name == name) {
                if let Ok(Some(status)) = p.child.try_wait() {
                    return Err(DemoError::Exited {
                        name: name.into(),
                        status: describe(status),
                        log: tail(&p.log, 15),
                    });
                }
            }
            if let Ok(resp) = client.get(url).send().await {
                if resp.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let log = tail(&self.log_path(name), 15);
                return Err(DemoError::NotReady {
                    name: name.into(),
                    url: url.into(),
                    secs: timeout.as_secs(),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Orderly stop: SIGTERM to the group, SIGKILL after the grace period, every child reaped.
    pub async fn shutdown(mut self) {
        let _ = kill_process_group(self.pgid, Signal::TERM);
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline
            && self.children.iter_mut().any(|p| matches!(p.child.try_wait(), Ok(None)))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill_now();
    }

    /// SIGKILL to the group and to each child, then reap them all.
    fn kill_now(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = kill_process_group(self.pgid, Signal::KILL);
        for p in &mut self.children {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        // Kept as `pids.stopped`: what ran, for checking that none is left.
        let _ = std::fs::rename(&self.pid_file, self.pid_file.with_extension("stopped"));
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// True while a process with this pid exists (zombies included).
pub fn alive(pid: u32) -> bool {
    i32::try_from(pid).ok().and_then(Pid::from_raw).is_some_and(|p| test_kill_process(p).is_ok())
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
