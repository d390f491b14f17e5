//! Progressive rollouts. A rollout moves a canary pool through weight steps. Every second it
//! compares canary with stable over the requests of the current step (error ratio, stream-cut
//! ratio, TTFT p95, TPOT p95; sequential tests in `judge`): a significant regression rolls back
//! at once; a step passes as soon as both sides have `min_samples` requests and every check is
//! within its limit, so a step lasts as long as its sample size needs; `step_secs` without
//! passing counts an extension (a stalled step). A step of 100 promotes.

use crate::error::ApiError;
use crate::events::EventLog;
use crate::metrics::labels::PoolIds;
use crate::metrics::GatewayMetrics;
use crate::pools::{Pool, Pools};
use crate::util::rfc3339;
pub use deepwatch_core::api::admin::{
    Analysis, RolloutDoc, RolloutRequest, RolloutStatus, SideStats, Verdict,
};
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::gateway::RolloutConfig;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

mod judge;

use judge::Window;
pub use judge::{judge, upper_tail, Sample};

const HISTORY: usize = 20;
/// How often a running step is looked at.
const LOOK_EVERY: Duration = Duration::from_secs(1);

struct Run {
    doc: RolloutDoc,
    params: RolloutConfig,
    canary: Arc<Pool>,
    stable: Arc<Pool>,
    canary_w: Window,
    stable_w: Window,
    /// Looks taken at this step (the sequential tests' spending index).
    looks: u32,
    /// When the step counts as extended if it has not passed.
    deadline: Instant,
    task: Option<tokio::task::AbortHandle>,
}

#[derive(Default)]
struct Inner {
    current: Option<Run>,
    history: VecDeque<RolloutDoc>,
}

pub struct Rollouts {
    inner: Mutex<Inner>,
    active: AtomicBool,
    next_id: AtomicU64,
    defaults: RolloutConfig,
    pools: Arc<Pools>,
    events: Arc<EventLog>,
    metrics: Arc<GatewayMetrics>,
    clock: SharedClock,
}

impl Rollouts {
    pub fn new(
        defaults: RolloutConfig,
        pools: Arc<Pools>,
        events: Arc<EventLog>,
        metrics: Arc<GatewayMetrics>,
        clock: SharedClock,
    ) -> Arc<Rollouts> {
        for p in pools.all() {
            metrics.rollout_step.set(&PoolIds { pool: &p.name }, 0.0);
        }
        Arc::new(Rollouts {
            inner: Mutex::new(Inner::default()),
            active: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            defaults,
            pools,
            events,
            metrics,
            clock,
        })
    }

    /// Feeds one finished request of `pool` into the running analysis (cheap when none runs).
    pub fn observe(&self, pool: &str, sample: Sample) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let mut inner = self.inner.lock();
        if let Some(run) = inner.current.as_mut() {
            if run.canary.name == pool {
                run.canary_w.add(sample);
            } else if run.stable.name == pool {
                run.stable_w.add(sample);
            }
        }
    }

    /// Whether a running rollout controls this pool's weight.
    pub fn controls(&self, pool: &str) -> bool {
        self.inner
            .lock()
            .current
            .as_ref()
            .is_some_and(|r| r.canary.name == pool || r.stable.name == pool)
    }

    pub fn current(&self) -> Option<RolloutDoc> {
        self.inner.lock().current.as_ref().map(|r| r.doc.clone())
    }

    pub fn history(&self) -> Vec<RolloutDoc> {
        self.inner.lock().history.iter().cloned().collect()
    }

    pub fn start(self: &Arc<Self>, req: RolloutRequest) -> Result<RolloutDoc, ApiError> {
        let d = &self.defaults;
        let params = RolloutConfig {
            steps: req.steps.clone().unwrap_or_else(|| d.steps.clone()),
            step: req.step_secs.map(Duration::from_secs).unwrap_or(d.step),
            min_samples: req.min_samples.unwrap_or(d.min_samples),
            max_ttft_p95_ratio: req.max_ttft_p95_ratio.unwrap_or(d.max_ttft_p95_ratio),
            max_tpot_p95_ratio: req.max_tpot_p95_ratio.unwrap_or(d.max_tpot_p95_ratio),
            latency_slack: req
                .latency_slack_ms
                .map(Duration::from_millis)
                .unwrap_or(d.latency_slack),
            max_error_ratio_increase: req
                .max_error_ratio_increase
                .unwrap_or(d.max_error_ratio_increase),
            max_stream_cut_ratio_increase: req
                .max_stream_cut_ratio_increase
                .unwrap_or(d.max_stream_cut_ratio_increase),
            false_rollback_rate: req.false_rollback_rate.unwrap_or(d.false_rollback_rate),
        };
        let mut problems = deepwatch_core::config::Problems::default();
        let probe = deepwatch_core::config::gateway::GatewayConfig {
            rollout: params.clone(),
            ..Default::default()
        };
        probe.validate(&deepwatch_core::config::Path::root("rollout"), &mut problems);
        if !problems.is_empty() {
            let text = problems.to_string().replace("rollout.rollout.", "");
            return Err(ApiError::bad_request(text));
        }
        let canary = self.pools.get(&req.pool).cloned().ok_or_else(|| {
            ApiError::not_found("pool_not_found", format!("unknown pool {:?}", req.pool))
        })?;
        let stable = match &req.stable {
            Some(name) => self.pools.get(name).cloned().ok_or_else(|| {
                ApiError::not_found("pool_not_found", format!("unknown pool {name:?}"))
            })?,
            None => self
                .pools
                .all()
                .iter()
                .filter(|p| p.priority == canary.priority && p.name != canary.name)
                .max_by_key(|p| p.weight())
                .cloned()
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "no stable pool of priority {} besides {:?}",
                        canary.priority, canary.name
                    ))
                })?,
        };
        if stable.name == canary.name {
            return Err(ApiError::bad_request("canary and stable must be different pools"));
        }
        if stable.priority != canary.priority {
            return Err(ApiError::bad_request(format!(
                "canary {:?} (priority {}) and stable {:?} (priority {}) must share a priority",
                canary.name, canary.priority, stable.name, stable.priority
            )));
        }
        let mut inner = self.inner.lock();
        if let Some(run) = &inner.current {
            return Err(ApiError::conflict(
                "rollout_running",
                format!("rollout {} of {:?} is running", run.doc.id, run.doc.canary),
            ));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        let run = Run {
            doc: RolloutDoc {
                id,
                canary: canary.name.clone(),
                stable: stable.name.clone(),
                steps: params.steps.clone(),
                step_index: 0,
                weight: 0,
                status: RolloutStatus::Running,
                reason: None,
                step_secs: params.step.as_secs(),
                extensions: 0,
                started_at: rfc3339(self.clock.wall()),
                finished_at: None,
                last_analysis: None,
            },
            deadline: now + params.step,
            params,
            canary,
            stable,
            canary_w: Window::default(),
            stable_w: Window::default(),
            looks: 0,
            task: None,
        };
        self.events.record(
            "start",
            &run.doc.canary,
            format!("rollout {id}: steps {:?}, stable {}", run.doc.steps, run.doc.stable),
        );
        inner.current = Some(run);
        self.active.store(true, Ordering::Relaxed);
        self.enter_step(&mut inner, 0);
        if inner.current.is_some() {
            let me = self.clone();
            let handle = tokio::spawn(async move { me.drive(id).await });
            if let Some(run) = inner.current.as_mut() {
                run.task = Some(handle.abort_handle());
            }
        }
        Ok(inner
            .current
            .as_ref()
            .map(|r| r.doc.clone())
            .or_else(|| inner.history.front().cloned())
            .unwrap_or_else(|| unreachable_doc(id)))
    }

    /// Sets the weights of step `index` (a weight of 100 promotes).
    fn enter_step(&self, inner: &mut Inner, index: usize) {
        let Some(run) = inner.current.as_mut() else { return };
        let weight = run.doc.steps[index];
        if weight >= 100 {
            self.finish(inner, RolloutStatus::Promoted, "reached 100%".into());
            return;
        }
        run.doc.step_index = index;
        run.doc.weight = weight;
        run.doc.extensions = 0;
        run.canary_w = Window::default();
        run.stable_w = Window::default();
        run.looks = 0;
        run.deadline = self.clock.now() + run.params.step;
        self.pools.set_weight(&run.canary, weight);
        self.pools.set_weight(&run.stable, 100 - weight);
        self.metrics.rollout_step.set(&PoolIds { pool: &run.canary.name }, (index + 1) as f64);
        self.events.record("step", &run.doc.canary, format!("step {} weight {weight}%", index + 1));
    }

    fn finish(&self, inner: &mut Inner, status: RolloutStatus, reason: String) {
        let Some(mut run) = inner.current.take() else { return };
        self.active.store(false, Ordering::Relaxed);
        let (canary_w, stable_w, event) = match status {
            RolloutStatus::Promoted => (100, 0, "promote"),
            _ => (0, 100, "rollback"),
        };
        self.pools.set_weight(&run.canary, canary_w);
        self.pools.set_weight(&run.stable, stable_w);
        self.metrics.rollout_step.set(&PoolIds { pool: &run.canary.name }, 0.0);
        run.doc.status = status;
        run.doc.weight = canary_w;
        run.doc.reason = Some(reason.clone());
        run.doc.finished_at = Some(rfc3339(self.clock.wall()));
        self.events.record(event, &run.doc.canary, format!("rollout {}: {reason}", run.doc.id));
        if let Some(task) = run.task.take() {
            task.abort();
        }
        inner.history.push_front(run.doc);
        inner.history.truncate(HISTORY);
    }

    /// Forces the outcome of the running rollout.
    pub fn force(&self, promote: bool, reason: Option<String>) -> Result<RolloutDoc, ApiError> {
        let mut inner = self.inner.lock();
        if inner.current.is_none() {
            return Err(ApiError::conflict("no_rollout", "no rollout is running"));
        }
        let (status, default_reason) = if promote {
            (RolloutStatus::Promoted, "promoted on command")
        } else {
            (RolloutStatus::RolledBack, "rolled back on command")
        };
        self.finish(&mut inner, status, reason.unwrap_or_else(|| default_reason.to_string()));
        inner.history.front().cloned().ok_or_else(|| ApiError::conflict("no_rollout", "gone"))
    }

    /// One look; returns false when the rollout is over.
    fn evaluate(&self, id: u64) -> bool {
        let mut inner = self.inner.lock();
        let Some(run) = inner.current.as_mut() else { return false };
        if run.doc.id != id {
            return false;
        }
        run.looks += 1;
        let analysis = judge(&run.canary_w, &run.stable_w, &run.params, run.looks);
        let verdict = analysis.verdict;
        let reason = analysis.reasons.join("; ");
        run.doc.last_analysis = Some(analysis);
        match verdict {
            Verdict::Fail => {
                self.finish(&mut inner, RolloutStatus::RolledBack, reason);
                false
            }
            Verdict::Pass => {
                let next = run.doc.step_index + 1;
                if next >= run.doc.steps.len() {
                    self.finish(&mut inner, RolloutStatus::Promoted, "every step passed".into());
                    return false;
                }
                self.enter_step(&mut inner, next);
                inner.current.is_some()
            }
            Verdict::NotEnoughSamples | Verdict::Inconclusive => {
                let now = self.clock.now();
                if now >= run.deadline {
                    run.doc.extensions += 1;
                    run.deadline = now + run.params.step;
                }
                true
            }
        }
    }

    async fn drive(self: Arc<Self>, id: u64) {
        loop {
            if !matches!(self.inner.lock().current.as_ref(), Some(run) if run.doc.id == id) {
                return;
            }
            tokio::time::sleep_until(self.clock.now() + LOOK_EVERY).await;
            if !self.evaluate(id) {
                return;
            }
        }
    }
}

fn unreachable_doc(id: u64) -> RolloutDoc {
    RolloutDoc { id, ..RolloutDoc::default() }
}
