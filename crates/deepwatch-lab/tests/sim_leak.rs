//! The leak fault really allocates and touches memory: the simulator's own
//! `process_resident_memory_bytes` grows, `/admin/status` reports it, and reset gives it back.
//! (Its own test binary, so no other test's allocations blur the resident-memory readings.)

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

const MIB: f64 = 1_048_576.0;

async fn rss(sim: &deepwatch_lab::sim::SimHandle) -> f64 {
    sample(&metrics_text(sim).await, "process_resident_memory_bytes", &[]).unwrap()
}

#[tokio::test]
async fn leak_grows_resident_memory_up_to_the_cap_and_reset_releases_it() {
    let sim = start_sim(|c| c.leak_cap_mb = 96).await;
    let before = rss(&sim).await;
    // 100 MiB per second: the cap is reached within two ticks.
    let resp = put_faults(&sim, json!({"leak_mb_per_min": 6000.0})).await;
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let status: Value = client()
        .get(format!("{}/admin/status", sim.admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["leaked_bytes"].as_f64(), Some(96.0 * MIB), "capped at leak_cap_mb");
    let grown = rss(&sim).await;
    assert!(grown - before > 80.0 * MIB, "resident memory grew {} MiB", (grown - before) / MIB);

    reset(&sim).await;
    assert_eq!(sim.engine.leak.held_bytes(), 0);
    let after = rss(&sim).await;
    assert!(grown - after > 80.0 * MIB, "reset returned {} MiB", (grown - after) / MIB);
}
