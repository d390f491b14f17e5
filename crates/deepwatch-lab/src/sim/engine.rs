//! The simulated engine: admission (a FIFO waiting queue in front of `max_num_seqs` running
//! sequences and a KV cache counted in tokens), the latency model, and `Generation`, the state
//! machine that produces one request's tokens on tokio time. KV use grows by one token per
//! generated token; a sequence that no longer fits is preempted (vLLM's recompute mode): it
//! frees its cache, goes back to the head of the queue and pays prefill again.

use super::faults::{Faults, Leak};
use super::metrics::{EngineGauges, EngineMetrics, FinishReason};
use crate::rng::Rng;
use deepwatch_core::config::sim::SimConfig;
use deepwatch_core::engines::vllm;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// Tokens emitted in one batch at most when they are all already due (zero latency).
const MAX_BATCH: u64 = 1024;

struct Waiter {
    id: u64,
    need: u64,
    grant: oneshot::Sender<()>,
}

#[derive(Default)]
struct SchedState {
    running: usize,
    kv_used: u64,
    waiting: VecDeque<Waiter>,
    next_id: u64,
}

/// The shared engine behind every request.
pub struct Engine {
    pub config: SimConfig,
    state: Mutex<SchedState>,
    running_now: AtomicUsize,
    /// Tokens processed since the last engine step was recorded (the heartbeat).
    step_tokens: AtomicU64,
    pub metrics: EngineMetrics,
    pub faults: watch::Sender<Faults>,
    pub leak: Leak,
    error_rng: Mutex<Rng>,
    request_counter: AtomicU64,
    prefix_cache: Mutex<PrefixCache>,
}

/// The prefix cache's index: hashes of the blocks computed so far, forgotten all at once when
/// they would fill the KV cache (a crude stand-in for vLLM's LRU eviction).
#[derive(Default)]
struct PrefixCache {
    blocks: std::collections::HashSet<u64>,
}

impl PrefixCache {
    /// Leading blocks of `prompt` already cached; then caches all of them.
    fn lookup_and_insert(&mut self, prompt: &[u64], capacity_blocks: usize) -> usize {
        let hits = prompt.iter().take_while(|h| self.blocks.contains(h)).count();
        if self.blocks.len() + prompt.len() > capacity_blocks {
            self.blocks.clear();
        }
        self.blocks.extend(prompt.iter().copied());
        hits
    }
}

impl Engine {
    pub fn new(config: SimConfig) -> Arc<Engine> {
        let metrics = EngineMetrics::new(
            &config.model,
            config.max_model_len,
            config.kv_cache_tokens,
            config.legacy_metric_names,
        );
        Arc::new(Engine {
            error_rng: Mutex::new(Rng::new(config.seed.wrapping_add(1))),
            leak: Leak::new(config.leak_cap_mb),
            faults: watch::Sender::new(Faults::default()),
            state: Mutex::new(SchedState::default()),
            running_now: AtomicUsize::new(0),
            step_tokens: AtomicU64::new(0),
            request_counter: AtomicU64::new(0),
            prefix_cache: Mutex::new(PrefixCache::default()),
            metrics,
            config,
        })
    }

    /// Running, waiting and KV usage right now.
    pub fn gauges(&self) -> EngineGauges {
        let s = self.state.lock();
        EngineGauges {
            running: s.running,
            waiting: s.waiting.len(),
            kv_usage: s.kv_used as f64 / self.config.kv_cache_tokens as f64,
        }
    }

    /// A process-unique sequence number for response ids.
    pub fn next_request_number(&self) -> u64 {
        self.request_counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a prompt's prefix-cache lookup as vLLM does: queries in prompt tokens, hits in
    /// tokens of the leading blocks found.
    /// Returns the hit tokens (the response's `prompt_tokens_details.cached_tokens`).
    fn count_prefix_cache(&self, plan: &Plan) -> u64 {
        let capacity = (self.config.kv_cache_tokens / vllm::BLOCK_SIZE) as usize;
        let blocks = self.prefix_cache.lock().lookup_and_insert(&plan.prefix_blocks, capacity);
        let hit_tokens = (blocks as u64 * vllm::BLOCK_SIZE).min(plan.prompt_tokens);
        self.metrics.prefix_queries.inc_by(plan.prompt_tokens as f64);
        self.metrics.prefix_hits.inc_by(hit_tokens as f64);
        hit_tokens
    }

    /// Whether this request gets the injected error; returns its status.
    pub fn roll_error(&self) -> Option<u16> {
        let faults = self.faults.borrow();
        if faults.error_rate <= 0.0 {
            return None;
        }
        let hit = self.error_rng.lock().f64() < faults.error_rate;
        hit.then_some(faults.error_status)
    }

    /// Waits for a running slot and `need` KV tokens. `front` puts a preempted sequence back at
    /// the head of the queue.
    async fn admit(self: &Arc<Self>, need: u64, front: bool) -> Slot {
        let rx = {
            let mut s = self.state.lock();
            let fits = s.running < self.config.max_num_seqs as usize
                && s.kv_used + need <= self.config.kv_cache_tokens;
            if fits && (s.waiting.is_empty() || front) {
                s.running += 1;
                s.kv_used += need;
                self.running_now.store(s.running, Ordering::Relaxed);
                return Slot { engine: self.clone(), held: need };
            }
            let (grant, rx) = oneshot::channel();
            let id = s.next_id;
            s.next_id += 1;
            let waiter = Waiter { id, need, grant };
            if front {
                s.waiting.push_front(waiter);
            } else {
                s.waiting.push_back(waiter);
            }
            WaitGuard { engine: self.clone(), id, need, rx: Some(rx) }
        };
        rx.wait().await
    }

    /// Admits queued requests from the head while they fit. Called with the lock held.
    fn wake(&self, s: &mut SchedState) {
        while let Some(head) = s.waiting.front() {
            let fits = s.running < self.config.max_num_seqs as usize
                && s.kv_used + head.need <= self.config.kv_cache_tokens;
            if !fits {
                break;
            }
            let Some(waiter) = s.waiting.pop_front() else { break };
            s.running += 1;
            s.kv_used += waiter.need;
            // A receiver dropped meanwhile is handled by its guard (it finds itself granted).
            let _ = waiter.grant.send(());
        }
        self.running_now.store(s.running, Ordering::Relaxed);
    }

    fn release(&self, held: u64) {
        let mut s = self.state.lock();
        s.running -= 1;
        s.kv_used -= held;
        self.wake(&mut s);
    }

    /// Prefill time of `prompt_tokens` (plus the TTFT fault).
    fn prefill_delay(&self, prompt_tokens: u64, rng: &mut Rng) -> Duration {
        let c = &self.config;
        let base_us =
            (c.ttft_base.as_micros() as u64 + c.prefill_us_per_token * prompt_tokens) as f64;
        let added = Duration::from_millis(self.faults.borrow().ttft_added_ms);
        Duration::from_micros(rng.jitter(base_us, c.jitter_ratio) as u64) + added
    }

    /// Time for the next output token at the current batch size (plus the per-token fault).
    fn token_delay(&self, rng: &mut Rng) -> Duration {
        let c = &self.config;
        let running = self.running_now.load(Ordering::Relaxed) as u64;
        let base_us = (c.tpot_base.as_micros() as u64 + c.tpot_us_per_running_seq * running) as f64;
        let added = Duration::from_millis(self.faults.borrow().per_token_added_ms);
        Duration::from_micros(rng.jitter(base_us, c.jitter_ratio) as u64) + added
    }

    /// Waits while the engine is hung.
    async fn wait_not_hung(&self) {
        if !self.faults.borrow().hang_before_first_token {
            return;
        }
        let mut rx = self.faults.subscribe();
        let _ = rx.wait_for(|f| !f.hang_before_first_token).await;
    }

    /// Records one engine step's tokens into `vllm:iteration_tokens_total` when any were
    /// processed since the last call. Nothing is recorded while the engine makes no progress
    /// (idle or hung), which is what stall detectors watch.
    pub fn record_step(&self) {
        let tokens = self.step_tokens.swap(0, Ordering::Relaxed);
        if tokens > 0 {
            self.metrics.iteration_tokens.observe(tokens as f64);
        }
    }

    /// Interval of the engine-step heartbeat: one decode step.
    pub fn step_interval(&self) -> Duration {
        self.config.tpot_base.max(Duration::from_millis(10))
    }
}

/// A running slot; releases its sequence and KV tokens on drop.
struct Slot {
    engine: Arc<Engine>,
    held: u64,
}

impl Slot {
    /// Grows the KV reservation; false when the cache cannot hold it (preempt).
    fn grow(&mut self, tokens: u64) -> bool {
        let mut s = self.engine.state.lock();
        if s.kv_used + tokens > self.engine.config.kv_cache_tokens {
            return false;
        }
        s.kv_used += tokens;
        self.held += tokens;
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.engine.release(self.held);
    }
}

/// A queued admission; leaves the queue (or gives back a grant it never used) when dropped.
struct WaitGuard {
    engine: Arc<Engine>,
    id: u64,
    need: u64,
    rx: Option<oneshot::Receiver<()>>,
}

impl WaitGuard {
    async fn wait(mut self) -> Slot {
        if let Some(rx) = self.rx.as_mut() {
            // The sender lives in the queue until granted; it is never dropped unsent.
            let _ = rx.await;
        }
        self.rx = None;
        Slot { engine: self.engine.clone(), held: self.need }
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if self.rx.is_none() {
            return;
        }
        let mut s = self.engine.state.lock();
        if let Some(pos) = s.waiting.iter().position(|w| w.id == self.id) {
            s.waiting.remove(pos);
            self.engine.wake(&mut s);
            return;
        }
        // Granted while we were being dropped: give the slot back.
        s.running -= 1;
        s.kv_used -= self.need;
        self.engine.wake(&mut s);
    }
}

/// What a request will produce, fixed when it arrives.
#[derive(Debug, Clone)]
pub struct Plan {
    pub prompt_tokens: u64,
    /// Chained hashes of the prompt's full KV blocks (`tokens::prefix_blocks`).
    pub prefix_blocks: Vec<u64>,
    pub completion_tokens: u64,
    /// The first `reasoning_tokens` completion tokens are reasoning.
    pub reasoning_tokens: u64,
    pub finish: FinishReason,
    /// Seed of the request's text and jitter.
    pub seed: u64,
    /// The wrong-answers fault was on when the request arrived: its answer is nonsense.
    pub wrong_answers: bool,
}

/// The next thing a request produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Completion tokens `from..to` were generated (`from == 0` carries the first token).
    Tokens { from: u64, to: u64 },
    /// Every token was generated.
    Done,
    /// The stream-cut fault fired: abort the connection now.
    Cut,
}

/// One request's generation, driven by `next`. Dropping it early counts as an abort.
pub struct Generation {
    engine: Arc<Engine>,
    pub plan: Plan,
    cut_after: Option<u64>,
    rng: Rng,
    slot: Option<Slot>,
    arrival: Instant,
    admitted: Option<Instant>,
    first_token: Option<Instant>,
    last_due: Instant,
    emitted: u64,
    prompt_counted: bool,
    cached_prompt_tokens: u64,
    finished: bool,
}

impl Generation {
    pub fn new(engine: Arc<Engine>, plan: Plan) -> Generation {
        let cut_after = engine.faults.borrow().cut_after_tokens;
        let now = Instant::now();
        Generation {
            rng: Rng::new(plan.seed ^ 0x5EED),
            engine,
            plan,
            cut_after,
            slot: None,
            arrival: now,
            admitted: None,
            first_token: None,
            last_due: now,
            emitted: 0,
            prompt_counted: false,
            cached_prompt_tokens: 0,
            finished: false,
        }
    }

    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Prompt tokens found in the prefix cache when the prompt was prefilled.
    pub fn cached_prompt_tokens(&self) -> u64 {
        self.cached_prompt_tokens
    }

    pub async fn next(&mut self) -> Step {
        if self.finished {
            return Step::Done;
        }
        loop {
            if self.emitted == self.plan.completion_tokens {
                self.finish(self.plan.finish);
                return Step::Done;
            }
            if self.cut_after.is_some_and(|n| self.emitted >= n) {
                self.finish(FinishReason::Abort);
                return Step::Cut;
            }
            if self.slot.is_none() {
                self.schedule().await;
            }
            self.engine.wait_not_hung().await;
            if self.emitted == 0 {
                if !self.grow_or_preempt(1) {
                    continue;
                }
                return self.first_token();
            }
            let mut due = self.last_due + self.engine.token_delay(&mut self.rng);
            // A timer, even an expired one, waits for the next timer tick (about 1 ms): tokens
            // already due (zero latency) are produced without one.
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            self.engine.wait_not_hung().await;
            let now = Instant::now();
            let limit = self.limit();
            let from = self.emitted;
            let mut to = from;
            loop {
                self.engine.metrics.itl.observe((due - self.last_due).as_secs_f64());
                self.last_due = due;
                to += 1;
                if to >= limit || to - from >= MAX_BATCH {
                    break;
                }
                due = self.last_due + self.engine.token_delay(&mut self.rng);
                if due > now {
                    break;
                }
            }
            if !self.grow_or_preempt(to - from) {
                continue;
            }
            self.emitted = to;
            self.count_tokens(to - from);
            return Step::Tokens { from, to };
        }
    }

    /// Last index (exclusive) this batch may reach: completion length or the cut.
    fn limit(&self) -> u64 {
        let cut = self.cut_after.unwrap_or(u64::MAX);
        self.plan.completion_tokens.min(cut)
    }

    /// Queue for a slot, then prefill the prompt (and, after a preemption, the tokens so far).
    async fn schedule(&mut self) {
        let recompute = self.emitted;
        let need = self.plan.prompt_tokens + recompute;
        let slot = self.engine.admit(need, recompute > 0).await;
        self.slot = Some(slot);
        let admitted = Instant::now();
        if self.admitted.is_none() {
            self.admitted = Some(admitted);
            let queued = admitted - self.arrival;
            self.engine.metrics.queue.observe(queued.as_secs_f64());
        }
        let delay = self.engine.prefill_delay(need, &mut self.rng);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if !self.prompt_counted {
            self.prompt_counted = true;
            self.engine.metrics.prompt_tokens.inc_by(self.plan.prompt_tokens as f64);
            self.cached_prompt_tokens = self.engine.count_prefix_cache(&self.plan);
            self.engine.metrics.prompt_len.observe(self.plan.prompt_tokens as f64);
            let prefill = Instant::now() - admitted;
            self.engine.metrics.prefill.observe(prefill.as_secs_f64());
        }
        self.engine.step_tokens.fetch_add(need, Ordering::Relaxed);
        self.last_due = Instant::now();
    }

    fn first_token(&mut self) -> Step {
        let now = Instant::now();
        self.first_token = Some(now);
        self.last_due = now;
        self.engine.metrics.ttft.observe((now - self.arrival).as_secs_f64());
        self.emitted = 1;
        self.count_tokens(1);
        Step::Tokens { from: 0, to: 1 }
    }

    fn count_tokens(&self, n: u64) {
        self.engine.metrics.generation_tokens.inc_by(n as f64);
        self.engine.step_tokens.fetch_add(n, Ordering::Relaxed);
    }

    /// Reserves KV for `n` new tokens; on a full cache the sequence is preempted (returns false).
    fn grow_or_preempt(&mut self, n: u64) -> bool {
        let Some(slot) = self.slot.as_mut() else { return false };
        if slot.grow(n) {
            return true;
        }
        self.slot = None;
        self.engine.metrics.preemptions.inc();
        false
    }

    fn finish(&mut self, reason: FinishReason) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.slot = None;
        let m = &self.engine.metrics;
        m.finished(reason);
        if reason == FinishReason::Abort {
            return;
        }
        let now = Instant::now();
        m.e2e.observe((now - self.arrival).as_secs_f64());
        m.generation_len.observe(self.emitted as f64);
        if let Some(admitted) = self.admitted {
            m.inference.observe((now - admitted).as_secs_f64());
        }
        if let Some(first) = self.first_token {
            let decode = now - first;
            m.decode.observe(decode.as_secs_f64());
            if self.emitted > 1 {
                m.tpot.observe(decode.as_secs_f64() / (self.emitted - 1) as f64);
            }
        }
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(FinishReason::Abort);
        }
    }
}
