//! `deepwatch demo` as a user runs it: the real binary with the real Prometheus and
//! Alertmanager. Non-interactively (`--duration`) its timeline must show the latency fault's
//! alert firing, being notified and resolving after the recovery hold; and however it ends
//! (the duration, Ctrl-C, SIGKILL of the demo itself) no process it started may remain. A
//! missing Prometheus gives the install hint. The tests run one at a time: each starts a whole
//! stack, and CI has two cores.

use crate::support::procs::binary;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Time scale the demo runs at here: a 10-minute hold becomes 10 s.
const TIME_SCALE: u64 = 60;
const HOLD_SECS: f64 = 600.0 / TIME_SCALE as f64;

fn timeline(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("timeline.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Pids of every process the demo started, and its process group, from the `stack ready` event.
fn started(events: &[Value]) -> Option<(Vec<u32>, u32)> {
    let ready = events.iter().find(|e| e["kind"] == "stack" && e["detail"]["pids"].is_array())?;
    let pids = ready["detail"]["pids"]
        .as_array()?
        .iter()
        .filter_map(|p| p.as_str()?.rsplit_once('=')?.1.parse().ok())
        .collect();
    Some((pids, ready["detail"]["pgid"].as_u64()? as u32))
}

/// State letter of a process (`R`, `S`, `Z`, ...) from `/proc/<pid>/stat`; `None` when gone.
fn state(pid: &str) -> Option<(char, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp ...
    let (_, rest) = stat.rsplit_once(')')?;
    Some((rest.split_whitespace().next()?.chars().next()?, stat.trim().to_string()))
}

/// Processes still running (not gone, not a zombie waiting to be reaped by init) among `pids`,
/// plus any running process still in group `pgid`.
fn left_over(pids: &[u32], pgid: u32) -> Vec<String> {
    let running = |s: &(char, String)| !matches!(s.0, 'Z' | 'X');
    let mut left: Vec<String> =
        pids.iter().filter_map(|p| state(&p.to_string()).filter(running).map(|s| s.1)).collect();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(s) = state(&entry.file_name().to_string_lossy()).filter(running) else { continue };
        let Some((_, rest)) = s.1.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) && !left.contains(&s.1) {
            left.push(format!("in the demo's group: {}", s.1));
        }
    }
    left
}

/// Waits until nothing of the demo is left, or returns what is.
async fn all_gone(pids: &[u32], pgid: u32, within: Duration) -> Result<(), Vec<String>> {
    let deadline = Instant::now() + within;
    loop {
        let left = left_over(pids, pgid);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(left);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn demo(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(["demo", "--state-dir"])
        .arg(dir)
        .args(["--time-scale", &TIME_SCALE.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn find(events: &[Value], pred: impl Fn(&Value) -> bool) -> Option<&Value> {
    events.iter().find(|e| pred(e))
}

fn t(e: &Value) -> f64 {
    e["t"].as_f64().unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_timeline_shows_the_latency_alert_fire_and_resolve_and_nothing_is_left() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let started_at = Instant::now();
    let out = demo(
        dir.path(),
        &["--duration", "75s", "--fault", "latency", "--warmup", "5s", "--fault-for", "15s"],
    )
    .output()
    .expect("run deepwatch demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {}\n{stdout}\n{stderr}", out.status);
    eprintln!("demo ran {:.1}s", started_at.elapsed().as_secs_f64());
    let events = timeline(dir.path());

    // The same story on the terminal and in timeline.jsonl.
    for needle in [
        "fault injected: latency",
        "RequestLatencyCritical",
        "firing",
        "resolved",
        "Prometheus alerts",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not printed:\n{stdout}");
    }
    let injected = find(&events, |e| e["kind"] == "fault" && e["detail"]["state"] == "injected")
        .unwrap_or_else(|| panic!("no fault injected:\n{stdout}"));
    let removed = find(&events, |e| e["kind"] == "fault" && e["detail"]["state"] == "removed")
        .unwrap_or_else(|| panic!("fault never removed:\n{stdout}"));
    let alert = |state: &'static str| {
        move |e: &Value| {
            e["kind"] == "alert"
                && e["detail"]["alert"] == "RequestLatencyCritical"
                && e["detail"]["labels"]["pool"] == "blue"
                && e["detail"]["state"] == state
        }
    };
    let pending =
        find(&events, alert("pending")).unwrap_or_else(|| panic!("never pending:\n{stdout}"));
    let firing =
        find(&events, alert("firing")).unwrap_or_else(|| panic!("never firing:\n{stdout}"));
    let resolved =
        find(&events, alert("resolved")).unwrap_or_else(|| panic!("never resolved:\n{stdout}"));
    let notified = find(&events, |e| {
        e["kind"] == "notification"
            && e["detail"]["receiver"] == "phone-sms"
            && e["detail"]["alert"] == "RequestLatencyCritical"
            && e["detail"]["status"] == "firing"
    })
    .unwrap_or_else(|| panic!("the phone webhook never got the alert:\n{stdout}"));
    assert!(t(injected) < t(pending) && t(pending) <= t(firing) && t(firing) <= t(notified));
    assert!(t(removed) < t(resolved), "resolved before the fault was removed:\n{stdout}");
    assert!(
        t(resolved) - t(removed) >= HOLD_SECS,
        "resolved {:.1}s after the fault ended, inside the {HOLD_SECS}s hold:\n{stdout}",
        t(resolved) - t(removed)
    );
    // The warning of the same alert was held back while its critical fired.
    assert!(
        find(&events, |e| e["kind"] == "inhibited"
            && e["detail"]["alert"] == "InferenceLatencyHigh"
            && e["detail"]["labels"]["severity"] == "warning")
        .is_some(),
        "no inhibited InferenceLatencyHigh warning:\n{stdout}"
    );
    assert!(stdout.contains("Summary"), "{stdout}");
    // The latency fault's root-cause report names the blue engine (or its pool) first, and the
    // summary prints each report's top-1 with its incident page.
    let report = find(&events, |e| {
        e["kind"] == "report" && e["detail"]["alert"] == "RequestLatencyCritical"
    })
    .unwrap_or_else(|| panic!("no root-cause report for RequestLatencyCritical:\n{stdout}"));
    let top1 = report["detail"]["top1"].as_str().unwrap_or_default();
    assert!(
        top1.contains("engine=\"blue\"") || top1.contains("pool=\"blue\""),
        "the latency report's top-1 is {top1:?}, not the blue engine:\n{stdout}"
    );
    assert!(stdout.contains("Root-cause reports"), "{stdout}");
    assert!(stdout.contains("/incidents/rca-"), "{stdout}");
    eprintln!(
        "demo figures: fault -> pending {:.1}s -> firing {:.1}s -> phone webhook {:.1}s; fault removed -> resolved {:.1}s",
        t(pending) - t(injected),
        t(firing) - t(injected),
        t(notified) - t(injected),
        t(resolved) - t(removed)
    );

    let (pids, pgid) = started(&events).expect("stack ready event with pids");
    assert!(
        pids.len() >= 8,
        "expected sims, gateway, agent, analyzer, Prometheus, Alertmanager: {pids:?}"
    );
    all_gone(&pids, pgid, Duration::from_secs(2))
        .await
        .unwrap_or_else(|left| panic!("left behind: {left:#?}"));
    assert!(!dir.path().join("pids").exists(), "pid file not moved to pids.stopped");
    assert!(stdout.contains("none left"), "{stdout}");
}

/// Starts a demo and waits for its stack; returns the child and what it started.
async fn start_demo(mut cmd: Command, dir: &Path) -> (std::process::Child, Vec<u32>, u32) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn demo");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((pids, pgid)) = started(&timeline(dir)) {
            return (child, pids, pgid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("demo exited early with {status}");
        }
        assert!(Instant::now() < deadline, "demo stack not ready after 60s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_every_child() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let quiet = demo(dir.path(), &["--no-fault", "--no-load", "--duration", "10m"]);
    let (mut child, pids, pgid) = start_demo(quiet, dir.path()).await;
    assert!(left_over(&pids, pgid).len() >= pids.len(), "children not running");
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "demo still running 20s after Ctrl-C");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "demo exit after Ctrl-C: {status}");
    all_gone(&pids, pgid, Duration::from_secs(2))
        .await
        .unwrap_or_else(|left| panic!("left behind: {left:#?}"));
    let events = timeline(dir.path());
    assert!(
        events.iter().any(|e| e["text"].as_str().is_some_and(|t| t.contains("stopping (Ctrl-C)"))),
        "{events:#?}"
    );
}

/// SIGKILLs a running demo and waits for all it started to disappear.
async fn kill_demo_and_check(pdeathsig: bool, within: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = demo(dir.path(), &["--no-fault", "--no-load", "--duration", "10m"]);
    if !pdeathsig {
        cmd.env("DEEPWATCH_DEMO_PDEATHSIG", "off");
    }
    let (mut child, pids, pgid) = start_demo(cmd, dir.path()).await;
    let killed_at = Instant::now();
    child.kill().unwrap(); // SIGKILL: the demo runs no cleanup at all
    child.wait().unwrap();
    all_gone(&pids, pgid, within).await.unwrap_or_else(|left| panic!("left behind: {left:#?}"));
    eprintln!(
        "demo SIGKILLed (pdeathsig {}): all {} children gone after {:.2}s",
        if pdeathsig { "on" } else { "off, watchdog only" },
        pids.len(),
        killed_at.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_die_when_the_demo_is_killed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // pdeathsig ends them at once.
    kill_demo_and_check(true, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_alone_ends_the_children_of_a_killed_demo() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Polls its parent every second, then SIGKILLs the group.
    kill_demo_and_check(false, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_fails_stops_the_demo_and_all_the_others() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Occupy the port Prometheus gets (the 11th of --port-base's range).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let base = port.checked_sub(10).expect("a port above 10");
    let out =
        demo(dir.path(), &["--port-base", &base.to_string(), "--no-load", "--duration", "2m"])
            .output()
            .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "demo succeeded with its Prometheus port taken");
    assert!(
        stderr.contains("stopped unexpectedly") || stderr.contains("did not answer"),
        "{stderr}"
    );
    let stopped = std::fs::read_to_string(dir.path().join("pids.stopped")).expect("pids.stopped");
    let pids: Vec<u32> =
        stopped.lines().filter_map(|l| l.split_whitespace().nth(1)?.parse().ok()).collect();
    assert!(pids.len() >= 5, "{stopped}");
    let watchdog = pids[0];
    all_gone(&pids, watchdog, Duration::from_secs(2))
        .await
        .unwrap_or_else(|left| panic!("left behind: {left:#?}"));
    drop(taken);
}

#[test]
fn missing_prometheus_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo(dir.path(), &["--prometheus", "/nonexistent/prometheus", "--duration", "10s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("prometheus not found at /nonexistent/prometheus"), "{stderr}");
    assert!(stderr.contains("apt-get install prometheus"), "{stderr}");
    assert!(stderr.contains("scripts/install-deps.sh"), "{stderr}");
    assert!(!dir.path().join("pids").exists(), "nothing may have been started");
}
