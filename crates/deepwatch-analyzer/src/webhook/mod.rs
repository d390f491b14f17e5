//! The Alertmanager webhook receiver. Alertmanager 0.25 has no webhook timeout, so the handler
//! only parses, deduplicates, journals and enqueues; a worker does the slow part (root-cause
//! ranking, remediation). The 200 goes out only after the accepted alerts are fsynced to the
//! journal (`journal.rs`), since Alertmanager will not resend before its repeat interval: a
//! daemon killed right after answering replays them at start. Each alert is identified by
//! (fingerprint, status, startsAt): Alertmanager re-sends every alert of a group on each group
//! change and repeat, and the same alert that fires again after resolving keeps its fingerprint
//! but gets a new startsAt. Started keys are journaled too, so a restart does not act twice.

pub mod journal;

use deepwatch_core::catalog::analyzer::{
    WEBHOOK_ALERTS, WEBHOOK_DUPLICATES, WEBHOOK_REFUSED, WEBHOOK_REPLAYED,
};
use deepwatch_core::expo::MetricSink;
use deepwatch_core::metrics::{CounterVec, Encode};
use journal::Journal;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Label or annotation set.
pub type Labels = BTreeMap<String, String>;

/// Alertmanager's webhook body (`version: "4"`). Every field but `alerts` is optional and
/// unknown fields (later versions add some, e.g. `notification_reason`) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Payload {
    pub version: String,
    pub group_key: String,
    pub truncated_alerts: u64,
    pub status: String,
    pub receiver: String,
    pub group_labels: Labels,
    pub common_labels: Labels,
    pub common_annotations: Labels,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    #[default]
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert of the payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Alert {
    pub status: AlertStatus,
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

impl Alert {
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").map(String::as_str).unwrap_or("")
    }

    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }

    /// The fingerprint Alertmanager sent, or the same value computed from the labels
    /// (Prometheus `model.LabelSet.Fingerprint`: FNV-1a 64 over sorted name, 0xff, value, 0xff).
    pub fn fingerprint(&self) -> String {
        if !self.fingerprint.is_empty() {
            return self.fingerprint.clone();
        }
        label_set_fingerprint(&self.labels)
    }

    pub fn key(&self) -> AlertKey {
        AlertKey {
            fingerprint: self.fingerprint(),
            status: self.status,
            starts_at: self.starts_at.clone(),
        }
    }
}

/// Prometheus' label-set fingerprint, as `%016x`.
pub fn label_set_fingerprint(labels: &Labels) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut write = |bytes: &[u8]| {
        for b in bytes {
            hash ^= *b as u64;
            hash = hash.wrapping_mul(PRIME);
        }
    };
    // BTreeMap iterates in name order, as the Go code sorts.
    for (name, value) in labels {
        write(name.as_bytes());
        write(&[0xff]);
        write(value.as_bytes());
        write(&[0xff]);
    }
    format!("{hash:016x}")
}

/// Identity of one alert notification for deduplication.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    pub fingerprint: String,
    pub status: AlertStatus,
    pub starts_at: String,
}

impl fmt::Display for AlertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.fingerprint, self.status.as_str(), self.starts_at)
    }
}

/// One alert handed to the worker, with the payload context it came in.
#[derive(Debug, Clone)]
pub struct Job {
    pub alert: Alert,
    pub key: AlertKey,
    pub receiver: String,
    pub external_url: String,
}

/// What the receiver did with one payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub accepted: usize,
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The queue is full: answer 503 so Alertmanager retries the whole payload later.
    #[error("alert queue is full ({capacity} waiting)")]
    QueueFull { capacity: usize },
    /// The worker is gone (shutting down).
    #[error("alert worker has stopped")]
    Closed,
    /// The journal could not store the alerts: answer 503 so Alertmanager retries.
    #[error("cannot journal alerts: {0}")]
    Journal(std::io::Error),
}

impl ReceiveError {
    /// The `reason` label of `deepwatch_webhook_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ReceiveError::QueueFull { .. } => "queue_full",
            ReceiveError::Closed => "shutting_down",
            ReceiveError::Journal(_) => "journal_failed",
        }
    }
}

/// Distinct `alertname` label values exported before the rest fold into `other`.
pub const MAX_ALERTNAMES: usize = 500;

/// Deduplicates, journals and enqueues alerts. Keys are "taken" when accepted (so a duplicate
/// arriving while the first copy waits is dropped) and journaled twice: when accepted, with the
/// alert, and when the worker starts on them.
pub struct Receiver {
    journal: Arc<Journal>,
    /// Held while one payload is accepted, so the queue room it measured stays its own.
    accepting: Mutex<()>,
    pending: Mutex<HashSet<AlertKey>>,
    /// Alert names seen, to bound the `alertname` label (anything can post to the webhook).
    names: Mutex<HashSet<String>>,
    queue: mpsc::Sender<Job>,
    capacity: usize,
    alerts: CounterVec,
    duplicates: CounterVec,
    refused: CounterVec,
    replayed: CounterVec,
}

impl Receiver {
    /// A receiver and the queue's consuming end, which the worker owns. The alerts the journal
    /// holds as accepted but never started are queued first (the queue grows to hold them).
    pub fn new(journal: Arc<Journal>, capacity: usize) -> (Receiver, mpsc::Receiver<Job>) {
        let replay = journal.take_unfinished();
        let (tx, rx) = mpsc::channel(capacity.max(1) + replay.len());
        let receiver = Receiver {
            journal,
            accepting: Mutex::new(()),
            pending: Mutex::new(replay.iter().map(|job| job.key.clone()).collect()),
            names: Mutex::new(HashSet::new()),
            queue: tx,
            capacity,
            alerts: CounterVec::new(&WEBHOOK_ALERTS),
            duplicates: CounterVec::new(&WEBHOOK_DUPLICATES),
            refused: CounterVec::new(&WEBHOOK_REFUSED),
            replayed: CounterVec::new(&WEBHOOK_REPLAYED),
        };
        receiver.replayed.inc_by(&[], replay.len() as f64);
        for job in replay {
            // Cannot fail: the channel was sized for them and nothing else has sent yet.
            let _ = receiver.queue.try_send(job);
        }
        // Exported at 0 from the start, so "none yet" is a value, not a missing series.
        receiver.duplicates.with(&[]);
        (receiver, rx)
    }

    /// Counts a webhook call answered with an error (`reason`: unauthorized, bad_request,
    /// queue_full, journal_failed, shutting_down): Alertmanager logs these, nobody else sees them.
    pub fn refuse(&self, reason: &str) {
        self.refused.inc(&[reason]);
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Takes every alert of the payload that was not seen before, journals them (fsync) and
    /// queues them. On a full queue the alerts that fit are taken and the rest released, so
    /// Alertmanager's retry of the whole payload brings back exactly what was not taken. Blocks
    /// on the fsync: call it off the async workers.
    pub fn receive(&self, payload: Payload) -> Result<Accepted, ReceiveError> {
        let result = self.take(payload);
        if let Err(e) = &result {
            self.refuse(e.reason());
        }
        result
    }

    fn take(&self, payload: Payload) -> Result<Accepted, ReceiveError> {
        if payload.truncated_alerts > 0 {
            // max_alerts in the webhook config cut the group: those alerts never reach us.
            tracing::warn!(
                truncated = payload.truncated_alerts,
                group_key = %payload.group_key,
                "alertmanager truncated the alert group; raise max_alerts on the webhook receiver"
            );
        }
        let _one_payload_at_a_time = self.accepting.lock();
        let mut result = Accepted::default();
        let mut fresh = Vec::new();
        for alert in payload.alerts {
            let name = self.label_for(alert.alertname());
            self.alerts.inc(&[&name, alert.status.as_str()]);
            let key = alert.key();
            let is_new = !self.journal.contains(&key) && self.pending.lock().insert(key.clone());
            if !is_new {
                self.duplicates.inc(&[]);
                result.duplicates += 1;
                continue;
            }
            fresh.push(Job {
                alert,
                key,
                receiver: payload.receiver.clone(),
                external_url: payload.external_url.clone(),
            });
        }
        let room = self.queue.capacity();
        let refused = fresh.split_off(fresh.len().min(room));
        self.release(&refused);
        if let Err(e) = self.journal.accept(&fresh) {
            self.release(&fresh);
            return Err(ReceiveError::Journal(e));
        }
        for job in fresh {
            // Journaled: if the worker is gone the next start replays it.
            if self.queue.try_send(job).is_err() {
                return Err(ReceiveError::Closed);
            }
            result.accepted += 1;
        }
        if !refused.is_empty() {
            return Err(ReceiveError::QueueFull { capacity: self.capacity });
        }
        Ok(result)
    }

    fn release(&self, jobs: &[Job]) {
        let mut pending = self.pending.lock();
        for job in jobs {
            pending.remove(&job.key);
        }
    }

    /// The `alertname` label value: the name itself for the first `MAX_ALERTNAMES` names, then
    /// `other`, so a flood of made-up names cannot blow up the series count.
    fn label_for(&self, name: &str) -> String {
        let mut names = self.names.lock();
        if names.contains(name) {
            return name.to_string();
        }
        if names.len() < MAX_ALERTNAMES {
            names.insert(name.to_string());
            return name.to_string();
        }
        "other".to_string()
    }

    /// Called by the worker before acting on a job: the key is journaled (fsynced) as started
    /// and leaves the pending set. A crash after this point means the alert is not acted on
    /// again (actions are not idempotent; the audit log shows the interrupted one).
    /// `Ok(false)`: the key was already journaled (a copy queued twice); skip the job.
    pub fn start(&self, job: &Job) -> std::io::Result<bool> {
        if self.journal.contains(&job.key) {
            self.pending.lock().remove(&job.key);
            return Ok(false);
        }
        let recorded = self.journal.record(&job.key, job.alert.alertname());
        self.pending.lock().remove(&job.key);
        recorded.map(|()| true)
    }
}

impl Encode for Receiver {
    fn encode(&self, sink: &mut MetricSink) {
        self.alerts.encode(sink);
        self.duplicates.encode(sink);
        self.refused.encode(sink);
        self.replayed.encode(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &str = r#"{
      "version": "4", "groupKey": "{}:{alertname=\"X\"}", "truncatedAlerts": 0,
      "status": "firing", "receiver": "selfheal", "groupLabels": {"alertname": "X"},
      "commonLabels": {"alertname": "X"}, "commonAnnotations": {},
      "externalURL": "http://am:9093", "notification_reason": "new in a later version",
      "alerts": [{
        "status": "firing", "labels": {"alertname": "X", "pool": "primary"},
        "annotations": {"summary": "s"}, "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph",
        "fingerprint": "abc123", "someFutureField": 1
      }]
    }"#;

    #[test]
    fn version_4_payload_parses_and_unknown_fields_are_ignored() {
        let p: Payload = serde_json::from_str(PAYLOAD).unwrap();
        assert_eq!(p.version, "4");
        assert_eq!(p.receiver, "selfheal");
        assert_eq!(p.external_url, "http://am:9093");
        assert_eq!(p.alerts[0].fingerprint(), "abc123");
        assert_eq!(p.alerts[0].label("pool"), "primary");
        assert_eq!(p.alerts[0].generator_url, "http://prom/graph");
    }

    #[test]
    fn fingerprint_matches_prometheus_for_a_known_label_set() {
        // The empty set hashes to the FNV-1a offset basis; {foo="bar"} is FNV-1a 64 of
        // "foo\xffbar\xff" (computed independently). The integration test with a real
        // Alertmanager checks the same function against the fingerprints it sends.
        assert_eq!(label_set_fingerprint(&Labels::new()), "cbf29ce484222325");
        let mut l = Labels::new();
        l.insert("foo".into(), "bar".into());
        assert_eq!(label_set_fingerprint(&l), "3fff2c2d7595e046");
    }

    #[tokio::test]
    async fn duplicates_are_dropped_while_pending_and_after_journaling() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(
            Journal::open(
                dir.path(),
                std::time::Duration::from_secs(3600),
                deepwatch_core::clock::TokioClock::shared(),
            )
            .unwrap(),
        );
        let (receiver, mut rx) = Receiver::new(journal, 8);
        let p: Payload = serde_json::from_str(PAYLOAD).unwrap();
        assert_eq!(receiver.receive(p.clone()).unwrap(), Accepted { accepted: 1, duplicates: 0 });
        assert_eq!(receiver.receive(p.clone()).unwrap(), Accepted { accepted: 0, duplicates: 1 });
        let job = rx.recv().await.unwrap();
        assert!(receiver.start(&job).unwrap());
        assert!(!receiver.start(&job).unwrap(), "a second start of the same key is refused");
        assert_eq!(receiver.receive(p.clone()).unwrap(), Accepted { accepted: 0, duplicates: 1 });
        // The same alert resolving is a new notification.
        let mut resolved = p.clone();
        resolved.alerts[0].status = AlertStatus::Resolved;
        assert_eq!(receiver.receive(resolved).unwrap().accepted, 1);
        // Firing again after resolving: new startsAt, new incident.
        let mut again = p;
        again.alerts[0].starts_at = "2026-01-01T01:00:00Z".into();
        assert_eq!(receiver.receive(again).unwrap().accepted, 1);
        assert_eq!(receiver.duplicates.get(&[]), 2.0);
        assert_eq!(receiver.alerts.get(&["X", "firing"]), 4.0);
    }

    #[test]
    fn alertnames_beyond_the_cap_fold_into_other() {
        let dir = tempfile::tempdir().unwrap();
        let clock = deepwatch_core::clock::TokioClock::shared();
        let journal =
            Arc::new(Journal::open(dir.path(), std::time::Duration::from_secs(60), clock).unwrap());
        let (receiver, _rx) = Receiver::new(journal, 8);
        for i in 0..MAX_ALERTNAMES {
            assert_eq!(receiver.label_for(&format!("A{i}")), format!("A{i}"));
        }
        assert_eq!(receiver.label_for("A0"), "A0");
        assert_eq!(receiver.label_for("Flood"), "other");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_the_payload_and_releases_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(
            Journal::open(
                dir.path(),
                std::time::Duration::from_secs(3600),
                deepwatch_core::clock::TokioClock::shared(),
            )
            .unwrap(),
        );
        let (receiver, mut rx) = Receiver::new(journal, 1);
        let mut p: Payload = serde_json::from_str(PAYLOAD).unwrap();
        let mut second = p.alerts[0].clone();
        second.fingerprint = "def456".into();
        p.alerts.push(second);
        let err = receiver.receive(p.clone()).unwrap_err();
        assert!(matches!(err, ReceiveError::QueueFull { capacity: 1 }), "{err}");
        // The first alert stayed queued; the retry finds it pending or journaled and takes only
        // the second.
        let first = rx.recv().await.unwrap();
        receiver.start(&first).unwrap();
        assert_eq!(receiver.receive(p).unwrap(), Accepted { accepted: 1, duplicates: 1 });
        assert_eq!(receiver.refused.get(&["queue_full"]), 1.0);
    }

    #[tokio::test]
    async fn alerts_answered_200_but_never_started_are_replayed_by_the_next_receiver() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let clock = deepwatch_core::clock::TokioClock::shared();
            Arc::new(
                Journal::open(dir.path(), std::time::Duration::from_secs(3600), clock).unwrap(),
            )
        };
        let (receiver, rx) = Receiver::new(open(), 8);
        let mut p: Payload = serde_json::from_str(PAYLOAD).unwrap();
        let mut second = p.alerts[0].clone();
        second.fingerprint = "def456".into();
        p.alerts.push(second);
        assert_eq!(receiver.receive(p.clone()).unwrap().accepted, 2);
        // The process dies before the worker took anything.
        drop((receiver, rx));
        let (receiver, mut rx) = Receiver::new(open(), 8);
        assert_eq!(receiver.replayed.get(&[]), 2.0);
        // Alertmanager's own retry of the same payload finds them pending.
        assert_eq!(receiver.receive(p).unwrap(), Accepted { accepted: 0, duplicates: 2 });
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!(
            (first.key.fingerprint.as_str(), second.key.fingerprint.as_str()),
            ("abc123", "def456")
        );
        assert_eq!(first.receiver, "selfheal");
        assert!(receiver.start(&first).unwrap() && receiver.start(&second).unwrap());
        assert!(rx.try_recv().is_err(), "each replayed once");
    }
}
