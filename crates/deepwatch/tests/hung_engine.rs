//! A hung engine behind the real gateway binary, with real simulator processes and steady
//! concurrent load (half streaming, half not). Two faults, one after the other: the simulator's
//! `hang_before_first_token` (the port and `/health` keep answering 200, no token comes) and
//! SIGSTOP of the primary simulator process (the kernel still accepts connections).
//!
//! For each: no non-streaming request and no stream that had not started fails; requests
//! started later than the first-token deadline + 500 ms after the fault go to the standby at
//! once; the hung primary is not readmitted while it does not generate (its `/health` says
//! 200 throughout the first fault); it returns once it generates again.

use crate::support::procs::{args, deepwatch, sim};
use deepwatch_testkit::{free_addr, Server};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const MODEL: &str = "deepseek-v3";
const TOKEN: &str = "hung-sim-token";
const ADMIN: &str = "hung-gateway-token";
const DEADLINE_MS: u64 = 1_000;
/// Concurrent client loops.
const CLIENTS: usize = 96;

/// One finished request as a client saw it.
#[derive(Debug)]
struct Seen {
    started: Instant,
    took: Duration,
    stream: bool,
    status: u16,
    pool: String,
    /// Streams: content arrived before any error event.
    had_content: bool,
    ok: bool,
    text: String,
}

async fn one(c: &reqwest::Client, url: &str, stream: bool) -> Seen {
    let started = Instant::now();
    let body = json!({"model": MODEL, "stream": stream, "max_tokens": 12,
                      "messages": [{"role": "user", "content": "hello there"}]});
    let resp = c.post(url).json(&body).send().await;
    let Ok(resp) = resp else {
        let text = format!("{resp:?}");
        return Seen {
            started,
            took: started.elapsed(),
            stream,
            status: 0,
            pool: String::new(),
            had_content: false,
            ok: false,
            text,
        };
    };
    let status = resp.status().as_u16();
    let pool = resp
        .headers()
        .get("x-deepwatch-pool")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.unwrap_or_else(|e| format!("body error: {e}"));
    let (ok, had_content) = if stream {
        let error_at = text.find("\"error\"");
        let content_at = text.find("\"content\":\"");
        let ok = status == 200 && error_at.is_none() && text.contains("[DONE]");
        (ok, matches!((content_at, error_at), (Some(c), Some(e)) if c < e))
    } else {
        (status == 200 && text.contains("\"choices\""), false)
    };
    Seen { started, took: started.elapsed(), stream, status, pool, had_content, ok, text }
}

/// Client loops until `stop`; every request's account.
fn load(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Seen>> {
    tokio::spawn(async move {
        let c = deepwatch_core::http::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let mut loops = Vec::new();
        for i in 0..CLIENTS {
            let (c, url, stop) = (c.clone(), url.clone(), stop.clone());
            loops.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    seen.push(one(&c, &url, n % 2 == 0).await);
                    n += 1;
                }
                seen
            }));
        }
        let mut all = Vec::new();
        for l in loops {
            all.extend(l.await.unwrap());
        }
        all
    })
}

async fn upstream(c: &reqwest::Client, admin: &str, url: &str) -> Value {
    let doc: Value = c
        .get(format!("{admin}/admin/pools"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["pools"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["upstreams"].as_array().unwrap().clone())
        .find(|u| u["url"] == url)
        .unwrap_or(Value::Null)
}

/// Runs load through one fault: `start` applies it, `stop` lifts it.
async fn survive(
    what: &str,
    gateway: &str,
    admin: &str,
    primary_url: &str,
    start: impl AsyncFnOnce(),
    stop: impl AsyncFnOnce(),
) {
    let c = deepwatch_core::http::builder().build().unwrap();
    let halt = Arc::new(AtomicBool::new(false));
    let running = load(format!("{gateway}/v1/chat/completions"), halt.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fault_at = Instant::now();
    start().await;
    tokio::time::sleep(Duration::from_millis(DEADLINE_MS + 3_000)).await;
    halt.store(true, Ordering::Relaxed);
    let seen = running.await.unwrap();

    let before: Vec<&Seen> = seen.iter().filter(|s| s.started < fault_at).collect();
    let after: Vec<&Seen> = seen.iter().filter(|s| s.started >= fault_at).collect();
    assert!(before.iter().any(|s| s.pool == "primary"), "{what}: primary never served");
    let secs = (Instant::now() - fault_at).as_secs_f64() + 1.5;
    eprintln!(
        "{what}: {} requests ({:.0}/s), {} started after the fault",
        seen.len(),
        seen.len() as f64 / secs,
        after.len()
    );
    for s in &seen {
        // Only a stream that had already produced content may end with an error.
        let allowed = s.stream && s.had_content;
        assert!(s.ok || allowed, "{what}: failed request (status {}) {s:?}", s.status);
    }
    let cut = seen.iter().filter(|s| !s.ok).count();
    let cut_text = seen.iter().find(|s| !s.ok).map(|s| s.text.as_str()).unwrap_or_default();
    let last_event = cut_text.trim_end().rsplit("\n\n").next().unwrap_or_default();
    eprintln!("{what}: {cut} streams cut mid-way, each after content, ending {last_event}");
    // Requests started deadline + 500 ms after the fault went to the standby without waiting.
    let settle = fault_at + Duration::from_millis(DEADLINE_MS + 500);
    let late: Vec<&&Seen> = after.iter().filter(|s| s.started >= settle).collect();
    assert!(late.len() >= CLIENTS, "{what}: too little traffic after the fault: {}", late.len());
    for s in &late {
        assert_eq!(s.pool, "standby", "{what}: {s:?}");
        assert!(s.took < Duration::from_millis(DEADLINE_MS), "{what}: waited {:?}", s.took);
    }
    let last_primary = after.iter().filter(|s| s.pool == "primary").map(|s| s.started).max();
    if let Some(t) = last_primary {
        eprintln!("{what}: last request sent to primary {:?} after the fault", t - fault_at);
    }
    let doc = upstream(&c, admin, primary_url).await;
    assert_eq!(doc["healthy"], false, "{what}: hung primary readmitted: {doc}");

    stop().await;
    let back = Instant::now();
    loop {
        if upstream(&c, admin, primary_url).await["healthy"] == true {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(15), "{what}: primary never readmitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{what}: primary readmitted {:?} after it generates again", back.elapsed());
}

fn gateway_config(proxy: &str, admin: &str, primary: &str, standby: &str) -> String {
    format!(
        r#"
[gateway]
listen = "{proxy}"
admin_listen = "{admin}"
admin_token = "{ADMIN}"
first_token_timeout_ms = {DEADLINE_MS}
[[gateway.pools]]
name = "primary"
model_version = "v1"
upstreams = ["{primary}"]
[gateway.pools.health]
probe_interval_ms = 200
probe_timeout_ms = 300
generation_probe_interval_ms = 500
[[gateway.pools]]
name = "standby"
priority = 1
model_version = "v1"
upstreams = ["{standby}"]
[gateway.pools.health]
probe_interval_ms = 200
probe_timeout_ms = 300
generation_probe_interval_ms = 500
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_or_stopped_engine_loses_no_request_that_had_not_started() {
    let (p, pa, s, sa) = (free_addr(), free_addr(), free_addr(), free_addr());
    let primary: Server = sim("sim-primary", p, pa, MODEL, TOKEN, 1).await;
    let _standby = sim("sim-standby", s, sa, MODEL, TOKEN, 2).await;
    let (proxy, admin) = (free_addr(), free_addr());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("deepwatch.toml");
    let primary_url = format!("http://{p}");
    std::fs::write(
        &cfg,
        gateway_config(
            &proxy.to_string(),
            &admin.to_string(),
            &primary_url,
            &format!("http://{s}"),
        ),
    )
    .unwrap();
    let _gw = deepwatch(
        "gateway",
        &args(&["gateway", "--config", cfg.to_str().unwrap()]),
        admin,
        "/healthz",
    )
    .await;
    let gateway = format!("http://{proxy}");
    let admin_url = format!("http://{admin}");
    let faults = format!("http://{pa}/admin/faults");
    let c = deepwatch_core::http::builder().build().unwrap();
    let hang = |on: bool| {
        let (c, faults) = (c.clone(), faults.clone());
        async move {
            let r = c
                .put(faults)
                .bearer_auth(TOKEN)
                .json(&json!({"hang_before_first_token": on}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    };
    survive(
        "hang fault",
        &gateway,
        &admin_url,
        &primary_url,
        async || {
            hang(true).await;
            // The hung engine still says it is healthy.
            let h = c.get(format!("http://{p}/health")).send().await.unwrap();
            assert_eq!(h.status(), 200);
        },
        async || hang(false).await,
    )
    .await;

    let pid = primary.pid().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    };
    survive(
        "SIGSTOP",
        &gateway,
        &admin_url,
        &primary_url,
        async || signal("-STOP"),
        async || signal("-CONT"),
    )
    .await;
}
