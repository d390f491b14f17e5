//! A hung engine: vLLM's EngineCore process is SIGSTOPped while requests run. The API server
//! keeps answering `/health` and `/metrics` (the hang vLLM users report), so only progress
//! tells: the agent must report `deepwatch_engine_stalled 1` once the counters have stood still
//! for `stall_after_secs`, Prometheus must fire the generated `EngineStalled` alert, and both
//! must clear once the engine is continued and the requests finish.

use super::observe::start_stack;
use super::stack::{self, scrape, value};
use super::vllm::MODEL;
use std::process::Command;
use std::time::Duration;
use tokio::time::Instant;

const ENGINE: &str = super::observe::ENGINE;
/// Generated `for:` durations divided by this (EngineStalled's 10 s becomes 1 s).
const TIME_SCALE: u64 = 12;
const STALL_AFTER_SECS: u64 = 3;
const STREAMS: usize = 8;
const TOKENS: u32 = 480;

/// Continues the process on drop, so a failed assertion never leaves vLLM stopped.
struct Stopped(i32);

impl Stopped {
    fn signal(pid: i32, signal: &str) {
        let ok = Command::new("kill").args([signal, &pid.to_string()]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill {signal} {pid}");
    }
    fn stop(pid: i32) -> Stopped {
        Stopped::signal(pid, "-STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0.to_string()]).status();
    }
}

/// A streamed completion read to its end; returns its usage's completion tokens.
async fn stream(http: reqwest::Client, base: String, i: usize) -> Result<u64, String> {
    let body = serde_json::json!({"model": MODEL, "prompt": format!("stream {i}"),
        "max_tokens": TOKENS, "ignore_eos": true, "stream": true,
        "stream_options": {"include_usage": true}});
    let resp = http
        .post(format!("{base}/v1/completions"))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if !text.trim_end().ends_with("data: [DONE]") {
        return Err(format!(
            "stream without [DONE]: ...{}",
            &text[text.len().saturating_sub(200)..]
        ));
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find_map(|v| v["usage"]["completion_tokens"].as_u64())
        .ok_or_else(|| "no usage in the stream".to_string())
}

fn stalled(f: &[deepwatch_core::promtext::Family]) -> Option<f64> {
    value(f, "deepwatch_engine_stalled", &[("engine", ENGINE), ("engine_kind", "vllm")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs vLLM: scripts/real-engine.sh test"]
async fn sigstopped_engine_core_is_stalled_while_health_answers() {
    let ctx = &super::ctx().await;
    let s = start_stack(ctx, TIME_SCALE, STALL_AFTER_SECS).await;
    let agent = &s.agent;
    let http = stack::long_client();
    let streams: Vec<_> =
        (0..STREAMS).map(|i| tokio::spawn(stream(http.clone(), ctx.vllm.url(), i))).collect();
    super::wait_for("the agent to see requests running", Duration::from_secs(20), || async {
        let f = scrape(&ctx.http, agent.addr).await;
        let running = value(&f, "deepwatch_engine_requests_running", &[("engine", ENGINE)]);
        running.filter(|r| *r >= 1.0).map(|_| ())
    })
    .await;

    let core = ctx.vllm.engine_core_pid();
    let hung = Stopped::stop(core);
    let stopped_at = Instant::now();
    eprintln!("SIGSTOP to vLLM's EngineCore (pid {core})");

    let detected =
        super::wait_for("deepwatch_engine_stalled 1", Duration::from_secs(20), || async {
            let f = scrape(&ctx.http, agent.addr).await;
            (stalled(&f) == Some(1.0)).then(|| (Instant::now(), f))
        })
        .await;
    let after = detected.0.duration_since(stopped_at).as_secs_f64();
    eprintln!("stalled after {after:.1}s (stall_after_secs {STALL_AFTER_SECS})");
    // Not before the counters stood still for stall_after_secs; within one more second or so
    // (250 ms scrapes, the last progress seen up to one scrape before the stop).
    assert!(after >= STALL_AFTER_SECS as f64 - 0.3, "stalled too early: {after:.2}s");
    assert!(
        after <= STALL_AFTER_SECS as f64 + 2.0,
        "stalled too late: {after:.2}s\nagent log:\n{}",
        agent.server.log()
    );
    let f = &detected.1;
    assert_eq!(
        value(f, "deepwatch_engine_up", &[("engine", ENGINE)]),
        Some(1.0),
        "/metrics still answers: the engine looks up"
    );
    let running = value(f, "deepwatch_engine_requests_running", &[("engine", ENGINE)]);
    assert!(running.is_some_and(|r| r >= 1.0), "requests still running: {running:?}");
    let firing = super::wait_for("EngineStalled firing", Duration::from_secs(20), || async {
        s.watcher.instances("EngineStalled").into_iter().find_map(|a| a.firing)
    })
    .await;
    let firing_after = firing.duration_since(stopped_at).as_secs_f64();
    eprintln!(
        "EngineStalled firing {firing_after:.1}s after the SIGSTOP (time scale {TIME_SCALE})"
    );
    let alert = s.watcher.instances("EngineStalled").remove(0);
    assert_eq!(alert.labels.get("engine").map(String::as_str), Some(ENGINE));
    assert_eq!(alert.labels.get("severity").map(String::as_str), Some("critical"));
    // The hang vLLM users report: /health says 200 all along.
    let health = ctx
        .http
        .get(format!("{}/health", ctx.vllm.url()))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(health.ok(), Some(200), "vLLM's /health answers while its engine is stopped");

    // Continued: progress resumes, the stall clears, every stream ends with all its tokens.
    drop(hung);
    let continued = Instant::now();
    super::wait_for("deepwatch_engine_stalled 0", Duration::from_secs(10), || async {
        (stalled(&scrape(&ctx.http, agent.addr).await) == Some(0.0)).then_some(())
    })
    .await;
    eprintln!("stall cleared {:.1}s after SIGCONT", continued.elapsed().as_secs_f64());
    for s in streams {
        let tokens = s.await.expect("stream task").unwrap_or_else(|e| {
            panic!("a stream broke in the hang: {e}\nvLLM:\n{}", ctx.vllm.log())
        });
        assert_eq!(tokens, u64::from(TOKENS), "every stream gets all its tokens");
    }
}
