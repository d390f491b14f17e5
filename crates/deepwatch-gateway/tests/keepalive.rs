//! Upstream keep-alive: engines close idle connections (uvicorn after 5 s). The gateway drops
//! its idle ones before that (`upstream_keepalive_ms`), and a request that still meets one the
//! upstream closed is retried once on a new connection without the client noticing. Time-scaled:
//! the upstream closes idle connections after 200 ms, 20 rounds each.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use std::sync::atomic::Ordering;
use std::time::Duration;

async fn rounds(keepalive_ms: u64, pause_ms: u64) -> (Upstream, String) {
    let up = Upstream::start(Knobs { idle_close_ms: Some(200), ..Knobs::default() }).await;
    let mut p = pool("blue", &[up.url()]);
    p.health.generation_probe = false;
    p.health.probe_path = String::new();
    let mut cfg = config(vec![p]);
    cfg.upstream_keepalive = Duration::from_millis(keepalive_ms);
    cfg.workers = 1;
    cfg.retry.attempts = 0;
    let gw = start(cfg).await;
    let c = client();
    for round in 0..20 {
        for stream in [false, true] {
            let resp = c.post(chat_url(&gw)).json(&chat_body(stream)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "round {round}");
            let text = resp.text().await.unwrap();
            assert!(text.contains("friend"), "round {round}: {text}");
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
    let m = metrics(&gw).await;
    (up, m)
}

#[tokio::test]
async fn idle_connections_are_reused_within_the_keepalive_and_dropped_after_it() {
    let (up, m) = rounds(10_000, 50).await;
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "ok")]), 40.0, "{m}");
    let reused = up.seen.connections.load(Ordering::SeqCst);
    assert!(reused <= 3, "{reused} connections for 40 requests 50 ms apart");
    // Idle 175 ms: the upstream would still accept (it closes at 200 ms), the gateway's
    // 150 ms keep-alive has passed, so every round opens a new connection.
    let (up, m) = rounds(150, 175).await;
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "ok")]), 40.0, "{m}");
    assert!(up.seen.connections.load(Ordering::SeqCst) >= 20);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_replaced_without_the_client_noticing() {
    // Idle 260 ms with a 10 s keep-alive: every round meets a connection the upstream closed.
    let (up, m) = rounds(10_000, 260).await;
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "ok")]), 40.0, "{m}");
    assert_eq!(sum(&m, "deepwatch_retries_total", &[]), 0.0, "{m}");
    assert!(up.seen.connections.load(Ordering::SeqCst) >= 20);
}
