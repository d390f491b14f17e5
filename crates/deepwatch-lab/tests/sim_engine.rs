//! The latency model and admission on paused tokio time: TTFT grows with prompt length and with
//! the queue, TPOT with the number of running sequences, requests beyond `max_num_seqs` wait,
//! and a full KV cache preempts.

use deepwatch_core::config::sim::SimConfig;
use deepwatch_lab::sim::engine::{Engine, Generation, Plan, Step};
use deepwatch_lab::sim::metrics::FinishReason;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

fn config(tweak: impl FnOnce(&mut SimConfig)) -> SimConfig {
    let mut c = SimConfig {
        ttft_base: std::time::Duration::from_millis(10),
        prefill_us_per_token: 1000,
        tpot_base: std::time::Duration::from_millis(10),
        tpot_us_per_running_seq: 0,
        jitter_ratio: 0.0,
        ..SimConfig::default()
    };
    tweak(&mut c);
    c
}

fn plan(prompt: u64, completion: u64) -> Plan {
    Plan {
        prompt_tokens: prompt,
        prefix_blocks: Vec::new(),
        completion_tokens: completion,
        reasoning_tokens: 0,
        finish: FinishReason::Length,
        seed: 1,
        wrong_answers: false,
    }
}

/// Runs a generation to the end; returns (time to first token, end time) from `start`.
async fn run(engine: Arc<Engine>, plan: Plan, start: Instant) -> (Duration, Duration) {
    let mut g = Generation::new(engine, plan);
    let mut first = None;
    loop {
        match g.next().await {
            Step::Tokens { from: 0, .. } => first = Some(start.elapsed()),
            Step::Tokens { .. } => {}
            Step::Done => break,
            Step::Cut => panic!("no cut configured"),
        }
    }
    (first.unwrap(), start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn ttft_grows_with_prompt_length() {
    let engine = Engine::new(config(|_| {}));
    let start = Instant::now();
    let (short, _) = run(engine.clone(), plan(100, 1), start).await;
    let start = Instant::now();
    let (long, _) = run(engine.clone(), plan(1000, 1), start).await;
    assert_eq!(short, Duration::from_millis(10 + 100));
    assert_eq!(long, Duration::from_millis(10 + 1000));
    assert_eq!(engine.metrics.ttft.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn requests_beyond_max_num_seqs_queue_and_their_ttft_grows() {
    let engine = Engine::new(config(|c| c.max_num_seqs = 2));
    let start = Instant::now();
    // Each request: prefill 10 + 10 ms, then 4 more tokens at 10 ms = 60 ms in a slot.
    let tasks: Vec<_> =
        (0..6).map(|_| tokio::spawn(run(engine.clone(), plan(10, 5), start))).collect();
    tokio::task::yield_now().await;
    let g = engine.gauges();
    assert_eq!((g.running, g.waiting), (2, 4));
    let mut ttfts = Vec::new();
    for t in tasks {
        ttfts.push(t.await.unwrap().0.as_millis());
    }
    ttfts.sort();
    assert_eq!(ttfts, [20, 20, 80, 80, 140, 140]);
    let g = engine.gauges();
    assert_eq!((g.running, g.waiting, g.kv_usage), (0, 0, 0.0));
    assert_eq!(engine.metrics.queue.count(), 6);
}

#[tokio::test(start_paused = true)]
async fn tpot_grows_with_running_sequences() {
    let alone = Engine::new(config(|c| c.tpot_us_per_running_seq = 5000));
    let start = Instant::now();
    let (first, end) = run(alone.clone(), plan(10, 11), start).await;
    let tpot_alone = (end - first) / 10;
    assert_eq!(tpot_alone, Duration::from_millis(15));

    let busy = Engine::new(config(|c| c.tpot_us_per_running_seq = 5000));
    let start = Instant::now();
    let tasks: Vec<_> =
        (0..4).map(|_| tokio::spawn(run(busy.clone(), plan(10, 11), start))).collect();
    let (first, end) = tasks.into_iter().next().unwrap().await.unwrap();
    let tpot_busy = (end - first) / 10;
    assert!(tpot_busy >= Duration::from_millis(25), "{tpot_busy:?}");
}

#[tokio::test(start_paused = true)]
async fn kv_cache_limits_admission_and_preempts_growing_sequences() {
    // 100-token cache: two 40-token prompts fit, and growing by 30 tokens each does not.
    let engine = Engine::new(config(|c| {
        c.max_model_len = 100;
        c.kv_cache_tokens = 100;
    }));
    let start = Instant::now();
    let a = tokio::spawn(run(engine.clone(), plan(40, 30), start));
    let b = tokio::spawn(run(engine.clone(), plan(40, 30), start));
    let c = tokio::spawn(run(engine.clone(), plan(40, 5), start));
    tokio::task::yield_now().await;
    let g = engine.gauges();
    assert_eq!((g.running, g.waiting), (2, 1), "the third prompt does not fit");
    assert!((g.kv_usage - 0.8).abs() < 1e-9, "{}", g.kv_usage);
    for t in [a, b, c] {
        t.await.unwrap();
    }
    assert!(engine.metrics.preemptions.get() >= 1.0, "growth past the cache preempts");
    let g = engine.gauges();
    assert_eq!((g.running, g.waiting, g.kv_usage), (0, 0, 0.0));
    assert_eq!(engine.metrics.finished_count(FinishReason::Length), 3.0);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_queued_or_running_request_frees_its_slot_and_counts_an_abort() {
    let engine = Engine::new(config(|c| c.max_num_seqs = 1));
    let start = Instant::now();
    let running = tokio::spawn(run(engine.clone(), plan(10, 100), start));
    let queued = tokio::spawn(run(engine.clone(), plan(10, 100), start));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!((engine.gauges().running, engine.gauges().waiting), (1, 1));
    queued.abort();
    let _ = queued.await;
    assert_eq!(engine.gauges().waiting, 0);
    running.abort();
    let _ = running.await;
    assert_eq!(engine.gauges().running, 0);
    assert_eq!(engine.metrics.finished_count(FinishReason::Abort), 2.0);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_counts_steps_only_while_tokens_flow() {
    let engine = Engine::new(config(|_| {}));
    engine.record_step();
    assert_eq!(engine.metrics.iteration_tokens.count(), 0, "idle engine records no step");
    let task = tokio::spawn(run(engine.clone(), plan(10, 50), Instant::now()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    engine.record_step();
    assert_eq!(engine.metrics.iteration_tokens.count(), 1);
    engine.faults.send_modify(|f| f.hang_before_first_token = true);
    tokio::time::sleep(Duration::from_millis(30)).await;
    engine.record_step(); // drains tokens emitted before the hang took effect
    let before = engine.metrics.iteration_tokens.count();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        engine.record_step();
    }
    assert_eq!(engine.metrics.iteration_tokens.count(), before, "hung engine makes no steps");
    assert_eq!(engine.gauges().running, 1);
    engine.faults.send_modify(|f| f.hang_before_first_token = false);
    task.await.unwrap();
    engine.record_step();
    assert!(engine.metrics.iteration_tokens.count() > before);
}
