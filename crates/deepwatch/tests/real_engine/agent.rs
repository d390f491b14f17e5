//! The agent against vLLM: engine kind detection, vLLM's `text/plain; version=1.0.0` payload,
//! and every family of the alias table normalized to exactly vLLM's own numbers, with requests
//! queued beyond `--max-num-seqs` so the queue families move.

use super::stack::{self, scrape, value};
use super::vllm::{self, Hist, MODEL};
use super::{wait_for, Ctx};
use deepwatch_agent::engine::normalize::{Take, ALIASES};
use deepwatch_core::config::agent::EngineKind;
use deepwatch_core::promtext::Family;
use serde_json::json;
use std::time::Duration;

const ENGINE: &str = "vllm-0";

fn engine_labels() -> [(&'static str, &'static str); 3] {
    [("engine", ENGINE), ("engine_kind", "vllm"), ("model", MODEL)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs vLLM: scripts/real-engine.sh test"]
async fn detects_vllm_and_normalizes_every_family() {
    let ctx = &super::ctx().await;
    let (_, content_type) = ctx.vllm.metrics(&ctx.http).await;
    assert!(
        content_type.starts_with("text/plain; version=1.0.0"),
        "vLLM 0.32 serves text format 1.0.0, got {content_type:?}"
    );
    let agent = stack::agent(&[(ENGINE, ctx.vllm.url())], 60).await;
    wait_for("the agent to detect vLLM", Duration::from_secs(30), || async {
        let f = scrape(&ctx.http, agent.addr).await;
        let up = value(&f, "deepwatch_engine_up", &[("engine", ENGINE), ("engine_kind", "vllm")]);
        (up == Some(1.0)).then_some(())
    })
    .await;

    // 24 requests, 16 at a time, against --max-num-seqs 8: half of them wait.
    let url = ctx.vllm.url();
    let burst = tokio::spawn(async move { stack::burst(&url, 24, 16, 200).await });
    let (mut max_running, mut max_waiting, mut max_capacity) = (0.0f64, 0.0f64, 0.0f64);
    let labels = engine_labels();
    while !burst.is_finished() {
        let f = scrape(&ctx.http, agent.addr).await;
        let g = |name| value(&f, name, &labels).unwrap_or(0.0);
        max_running = max_running.max(g("deepwatch_engine_requests_running"));
        max_waiting = max_waiting.max(g("deepwatch_engine_requests_waiting"));
        let capacity = [labels[0], labels[1], labels[2], ("reason", "capacity")];
        max_capacity = max_capacity.max(
            value(&f, "deepwatch_engine_requests_waiting_by_reason", &capacity).unwrap_or(0.0),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bodies = burst.await.expect("burst");
    assert_eq!(bodies.len(), 24);
    eprintln!("agent saw at most {max_running} running, {max_waiting} waiting ({max_capacity} for capacity)");
    assert!(max_running <= 8.0, "vLLM runs at most --max-num-seqs 8, agent saw {max_running}");
    assert!(max_running >= 6.0, "16 concurrent requests must fill the batch: {max_running}");
    assert!(max_waiting >= 1.0 && max_capacity >= 1.0, "requests beyond 8 wait for capacity");

    // Other finish reasons: a stop sequence and an n=2 chat.
    let http = stack::long_client();
    let chat = json!({"model": MODEL, "messages": [{"role": "user", "content": "hello"}],
                      "max_tokens": 8, "n": 2, "temperature": 1.0, "seed": 7});
    let r = http.post(format!("{}/v1/chat/completions", ctx.vllm.url())).json(&chat).send().await;
    assert!(r.expect("n=2 chat").status().is_success());
    let stop = json!({"model": MODEL, "prompt": "hello", "max_tokens": 100, "stop": ["e", "a", "o"],
                      "temperature": 0});
    let r = http.post(format!("{}/v1/completions", ctx.vllm.url())).json(&stop).send().await;
    let body: serde_json::Value = r.expect("stop completion").json().await.expect("json");
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");

    // Idle now: wait until the agent's last scrape is vLLM's current state, then compare.
    let (native, normalized) = caught_up(ctx, agent.addr).await;
    let compared = compare_every_family(&native, &normalized);
    eprintln!("{compared} normalized series equal vLLM's own");
    let queue = Hist::read(&normalized, "deepwatch_engine_request_queue_time_seconds");
    assert!(queue.count >= 24.0 && queue.sum > 0.0, "queue time observed: {queue:?}");
    let finished = |reason| {
        let l = [labels[0], labels[1], labels[2], ("finish_reason", reason)];
        value(&normalized, "deepwatch_engine_requests_finished_total", &l).unwrap_or(0.0)
    };
    assert!(finished("length") >= 26.0, "24 + the n=2 pair ended by length");
    assert!(finished("stop") >= 1.0, "the stop sequence ended one request");
    let errors: f64 = normalized
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| s.name == "deepwatch_engine_scrape_errors_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(errors, 0.0, "no scrape of vLLM failed or skipped a line");
}

/// vLLM's families and the agent's, once the agent has scraped the idle engine's final state.
pub async fn caught_up(ctx: &Ctx, agent: std::net::SocketAddr) -> (Vec<Family>, Vec<Family>) {
    wait_for("the agent to catch up with vLLM", Duration::from_secs(20), || async {
        let (native, _) = ctx.vllm.metrics(&ctx.http).await;
        let normalized = scrape(&ctx.http, agent).await;
        let labels = engine_labels();
        let same = |ours: &str, theirs: &str| {
            value(&normalized, ours, &labels) == Some(vllm::sum(&native, theirs))
        };
        let settled =
            same("deepwatch_engine_generation_tokens_total", "vllm:generation_tokens_total")
                && same(
                    "deepwatch_engine_e2e_request_latency_seconds_count",
                    "vllm:e2e_request_latency_seconds_count",
                )
                && same("deepwatch_engine_requests_running", "vllm:num_requests_running");
        settled.then_some((native, normalized))
    })
    .await
}

/// Every vLLM row of the alias table: the agent's series equal vLLM's, summed over ranks.
/// Returns how many series were compared.
pub fn compare_every_family(native: &[Family], normalized: &[Family]) -> usize {
    let labels = engine_labels();
    let mut compared = 0;
    for alias in ALIASES.iter().filter(|a| a.kind == EngineKind::Vllm) {
        let Some((name, family)) =
            alias.names.iter().find_map(|n| native.iter().find(|f| f.is_named(n)).map(|f| (*n, f)))
        else {
            panic!("vLLM 0.32 exposes none of {:?}", alias.names);
        };
        assert_eq!(name, alias.names[0], "vLLM 0.32 answers to the newest name");
        let spec = alias.spec.name;
        match alias.take {
            Take::Sum | Take::Counter => {
                let want: f64 = family.samples.iter().map(|s| s.value).sum();
                assert_eq!(value(normalized, spec, &labels), Some(want), "{spec} vs {name}");
                compared += 1;
            }
            Take::Mean => {
                let want = family.samples.iter().map(|s| s.value).sum::<f64>()
                    / family.samples.len() as f64;
                assert_eq!(value(normalized, spec, &labels), Some(want), "{spec} vs {name}");
                compared += 1;
            }
            Take::Histogram => {
                let theirs = Hist::read(native, name);
                let ours = Hist::read(normalized, spec);
                assert_eq!(ours.edges, theirs.edges, "{spec}: vLLM's own bucket edges");
                assert_eq!(ours.cumulative, theirs.cumulative, "{spec} buckets vs {name}");
                assert_eq!(ours.count, theirs.count, "{spec} count vs {name}");
                assert!((ours.sum - theirs.sum).abs() <= 1e-9 * theirs.sum.max(1.0), "{spec} sum");
                compared += 1;
            }
            Take::ByLabel(label) => {
                let ours_label = alias.spec.labels.last().expect("split label");
                let values: std::collections::BTreeSet<&str> =
                    family.samples.iter().filter_map(|s| s.label(label)).collect();
                assert!(!values.is_empty(), "{name} has no {label} label");
                for v in values {
                    let want: f64 = family
                        .samples
                        .iter()
                        .filter(|s| s.label(label) == Some(v))
                        .map(|s| s.value)
                        .sum();
                    let l = [labels[0], labels[1], labels[2], (ours_label, v)];
                    assert_eq!(value(normalized, spec, &l), Some(want), "{spec}{{{v}}} vs {name}");
                    compared += 1;
                }
            }
            Take::HistogramSum => unreachable!("no vLLM family is read as a histogram sum"),
        }
    }
    compared
}
