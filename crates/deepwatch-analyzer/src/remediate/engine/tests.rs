//! Engine tests with in-process actions (no network), under paused time.

use super::*;
use deepwatch_core::clock::{system_time_from_unix, TokioClock};
use deepwatch_core::config::remediation::{ActionConfig, ActionKind, PolicyConfig};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts runs; fails when told to; its precondition can be switched off.
struct Probe {
    name: String,
    runs: AtomicUsize,
    reverts: AtomicUsize,
    fail: bool,
    applies: std::sync::atomic::AtomicBool,
    slow: Option<Duration>,
}

impl Probe {
    fn new(name: &str) -> Arc<Probe> {
        Arc::new(Probe {
            name: name.into(),
            runs: AtomicUsize::new(0),
            reverts: AtomicUsize::new(0),
            fail: false,
            applies: std::sync::atomic::AtomicBool::new(true),
            slow: None,
        })
    }
}

impl Action for Probe {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> ActionKind {
        ActionKind::Failover
    }
    fn plan<'a>(&'a self, _ctx: &'a ActionContext) -> BoxFuture<'a, Result<Plan, PlanError>> {
        async move {
            if !self.applies.load(Ordering::SeqCst) {
                return Err(PlanError::Precondition("does not apply".into()));
            }
            Ok(Plan { summary: "probe".into(), request: serde_json::json!({"x": 1}) })
        }
        .boxed()
    }
    fn execute<'a>(
        &'a self,
        _c: &'a ActionContext,
        _p: &'a Plan,
    ) -> BoxFuture<'a, Result<String, ActionError>> {
        async move {
            if let Some(d) = self.slow {
                tokio::time::sleep(d).await;
            }
            self.runs.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                Err(ActionError::Failed("boom".into()))
            } else {
                Ok("done".into())
            }
        }
        .boxed()
    }
    fn revert<'a>(
        &'a self,
        _c: &'a ActionContext,
    ) -> Option<BoxFuture<'a, Result<String, ActionError>>> {
        Some(
            async move {
                self.reverts.fetch_add(1, Ordering::SeqCst);
                Ok("undone".into())
            }
            .boxed(),
        )
    }
}

fn config(dir: &std::path::Path, actions: &[(&str, u64, u32)], revert: bool) -> RemediationConfig {
    RemediationConfig {
        state_dir: dir.display().to_string(),
        max_actions_per_hour: 0,
        policies: vec![PolicyConfig {
            name: "p1".into(),
            matchers: vec!["alertname=\"Down\"".into()],
            actions: actions.iter().map(|a| a.0.to_string()).collect(),
            revert_on_resolve: revert,
        }],
        actions: actions
            .iter()
            .map(|(n, cooldown, max)| ActionConfig {
                name: n.to_string(),
                kind: ActionKind::Failover,
                pool: Some("standby".into()),
                cooldown: std::time::Duration::from_secs(*cooldown),
                max_per_hour: *max,
                ..ActionConfig::default()
            })
            .collect(),
        ..RemediationConfig::default()
    }
}

fn engine(cfg: &RemediationConfig, probes: Vec<Arc<Probe>>, clock: SharedClock) -> Remediator {
    let actions = probes.iter().map(|p| (p.name.clone(), p.clone() as Arc<dyn Action>)).collect();
    Remediator::new(cfg, actions, clock).unwrap()
}

fn alert(fp: &str, starts_at: &str, status: AlertStatus) -> Alert {
    let mut a =
        Alert { status, fingerprint: fp.into(), starts_at: starts_at.into(), ..Alert::default() };
    a.labels.insert("alertname".into(), "Down".into());
    a
}

fn clock() -> SharedClock {
    Arc::new(TokioClock::anchored_at(system_time_from_unix(1_800_000_000.0)))
}

#[tokio::test(start_paused = true)]
async fn runs_once_per_alert_with_intent_before_result() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("failover", 0, 0)], false);
    let probe = Probe::new("failover");
    let e = engine(&cfg, vec![probe.clone()], clock());
    let a = alert("fp1", "t1", AlertStatus::Firing);
    let r = e.handle(&a).await;
    assert_eq!(r[0].outcome, "ok", "{r:?}");
    assert_eq!(e.handle(&a).await[0].outcome, "already_attempted");
    assert_eq!(probe.runs.load(Ordering::SeqCst), 1);
    let records = e.audit().read_all().unwrap();
    let kinds: Vec<_> = records.iter().map(|r| r.record).collect();
    assert_eq!(kinds, vec![RecordKind::Intent, RecordKind::Result]);
    assert_eq!(records[0].id, records[1].id);
    assert_eq!(records[0].plan.as_ref().unwrap().summary, "probe");
    assert_eq!(records[1].outcome.as_deref(), Some("ok"));
    assert_eq!(e.counter().get(&["failover", "ok"]), 1.0);
    // An alert that matches no policy does nothing.
    let mut other = alert("fp2", "t", AlertStatus::Firing);
    other.labels.insert("alertname".into(), "Other".into());
    assert!(e.handle(&other).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn cooldown_and_rate_limit_hold_actions_back_under_paused_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("failover", 600, 2)], false);
    let probe = Probe::new("failover");
    let e = engine(&cfg, vec![probe.clone()], clock());
    assert_eq!(e.handle(&alert("a", "t", AlertStatus::Firing)).await[0].outcome, "ok");
    tokio::time::advance(Duration::from_secs(599)).await;
    let r = e.handle(&alert("b", "t", AlertStatus::Firing)).await;
    assert_eq!(r[0].outcome, "skipped_cooldown");
    assert!(r[0].detail.contains("1s more"), "{}", r[0].detail);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(e.handle(&alert("c", "t", AlertStatus::Firing)).await[0].outcome, "ok");
    tokio::time::advance(Duration::from_secs(600)).await;
    // Two runs in the last hour: the third is rate-limited although the cooldown is over.
    assert_eq!(
        e.handle(&alert("d", "t", AlertStatus::Firing)).await[0].outcome,
        "skipped_rate_limit"
    );
    assert_eq!(probe.runs.load(Ordering::SeqCst), 2);
    assert_eq!(e.counter().get(&["failover", "skipped_cooldown"]), 1.0);
    assert_eq!(e.counter().get(&["failover", "skipped_rate_limit"]), 1.0);
    // Skips are audited too, as `skipped` records.
    let skipped = e
        .audit()
        .read_all()
        .unwrap()
        .into_iter()
        .filter(|r| r.record == RecordKind::Skipped)
        .count();
    assert_eq!(skipped, 2);
}

#[tokio::test(start_paused = true)]
async fn a_restart_neither_repeats_actions_nor_forgets_cooldowns() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("failover", 600, 0)], false);
    let probe = Probe::new("failover");
    let clock = clock();
    let e = engine(&cfg, vec![probe.clone()], clock.clone());
    let a = alert("a", "t", AlertStatus::Firing);
    assert_eq!(e.handle(&a).await[0].outcome, "ok");
    drop(e);
    tokio::time::advance(Duration::from_secs(60)).await;
    let e = engine(&cfg, vec![probe.clone()], clock.clone());
    assert_eq!(e.handle(&a).await[0].outcome, "already_attempted");
    let r = e.handle(&alert("b", "t", AlertStatus::Firing)).await;
    assert_eq!(r[0].outcome, "skipped_cooldown", "{r:?}");
    assert!(r[0].detail.contains("540s"), "{}", r[0].detail);
    assert_eq!(probe.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn dry_run_audits_the_plan_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &[("failover", 0, 0)], false);
    cfg.dry_run = true;
    let probe = Probe::new("failover");
    let e = engine(&cfg, vec![probe.clone()], clock());
    let r = e.handle(&alert("a", "t", AlertStatus::Firing)).await;
    assert_eq!(r[0].outcome, "dry_run");
    assert!(r[0].detail.contains("would probe"), "{}", r[0].detail);
    assert_eq!(probe.runs.load(Ordering::SeqCst), 0);
    let records = e.audit().read_all().unwrap();
    assert!(records.iter().all(|r| r.dry_run));
    assert_eq!(e.counter().get(&["failover", "dry_run"]), 1.0);
}

#[tokio::test(start_paused = true)]
async fn preconditions_failures_and_timeouts_have_their_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &[("a", 0, 0), ("b", 0, 0), ("c", 0, 0)], false);
    cfg.action_timeout = std::time::Duration::from_secs(5);
    let a = Probe::new("a");
    a.applies.store(false, Ordering::SeqCst);
    let b = Arc::new(Probe { fail: true, ..Arc::try_unwrap(Probe::new("b")).ok().unwrap() });
    let c = Arc::new(Probe {
        slow: Some(Duration::from_secs(60)),
        ..Arc::try_unwrap(Probe::new("c")).ok().unwrap()
    });
    let e = engine(&cfg, vec![a.clone(), b.clone(), c.clone()], clock());
    let r = e.handle(&alert("x", "t", AlertStatus::Firing)).await;
    let outcomes: Vec<_> = r.iter().map(|r| (r.action.as_str(), r.outcome)).collect();
    assert_eq!(outcomes, vec![("a", "skipped_precondition"), ("b", "failed"), ("c", "failed")]);
    assert!(r[1].detail.contains("boom"));
    assert!(r[2].detail.contains("timed out after 5s"), "{}", r[2].detail);
    assert_eq!(c.runs.load(Ordering::SeqCst), 0, "the slow action was cancelled");
}

#[tokio::test(start_paused = true)]
async fn resolving_reverts_only_what_ran_and_only_when_the_policy_says() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("failover", 0, 0)], true);
    let probe = Probe::new("failover");
    let e = engine(&cfg, vec![probe.clone()], clock());
    // Resolved without a successful run: nothing to undo.
    assert!(e.handle(&alert("never", "t", AlertStatus::Resolved)).await.is_empty());
    e.handle(&alert("a", "t", AlertStatus::Firing)).await;
    let r = e.handle(&alert("a", "t", AlertStatus::Resolved)).await;
    assert_eq!(r[0].outcome, "reverted");
    assert!(e.handle(&alert("a", "t", AlertStatus::Resolved)).await.is_empty(), "once");
    assert_eq!(probe.reverts.load(Ordering::SeqCst), 1);

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("failover", 0, 0)], false);
    let e = engine(&cfg, vec![probe.clone()], clock());
    e.handle(&alert("b", "t", AlertStatus::Firing)).await;
    assert!(e.handle(&alert("b", "t", AlertStatus::Resolved)).await.is_empty());
    assert_eq!(probe.reverts.load(Ordering::SeqCst), 1);
}
