//! Watchers for end-to-end tests that time an incident: the alerts Prometheus holds (first
//! seen firing, last seen, per alert name and label set; polled every 100 ms) and
//! the outcome of every request of an in-process load run (`deepwatch_lab::load::Progress`).

use deepwatch_lab::load::{Progress, RequestRecord};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One alert instance as Prometheus showed it over time.
#[derive(Debug, Clone)]
pub struct AlertSeen {
    pub labels: BTreeMap<String, String>,
    pub firing: Option<Instant>,
    pub last: Instant,
}

/// Polls `GET /api/v1/alerts`; stops when dropped.
pub struct AlertWatcher {
    seen: Arc<Mutex<Vec<AlertSeen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AlertWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn labels_of(alert: &Value) -> BTreeMap<String, String> {
    alert["labels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default()
}

impl AlertWatcher {
    /// Watches the Prometheus at `prom_url`; a failed poll is skipped, not fatal.
    pub fn start(prom_url: &str) -> AlertWatcher {
        let seen: Arc<Mutex<Vec<AlertSeen>>> = Arc::default();
        let shared = seen.clone();
        let url = format!("{}/api/v1/alerts", prom_url.trim_end_matches('/'));
        let http = deepwatch_testkit::http_client();
        let task = tokio::spawn(async move {
            loop {
                let doc: Option<Value> = match http.get(&url).send().await {
                    Ok(resp) => resp.json().await.ok(),
                    Err(_) => None,
                };
                let alerts =
                    doc.and_then(|d| d["data"]["alerts"].as_array().cloned()).unwrap_or_default();
                record(&shared, alerts, Instant::now());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        AlertWatcher { seen, task }
    }

    /// Every instance seen of `alertname`, in order of appearance.
    pub fn instances(&self, alertname: &str) -> Vec<AlertSeen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.labels.get("alertname").is_some_and(|n| n == alertname))
            .cloned()
            .collect()
    }

    /// Every instance seen, for failure messages.
    pub fn all(&self) -> Vec<AlertSeen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Folds one poll of `GET /api/v1/alerts` into what was seen.
fn record(shared: &Mutex<Vec<AlertSeen>>, alerts: Vec<Value>, now: Instant) {
    let mut list = shared.lock().unwrap();
    for alert in alerts {
        let labels = labels_of(&alert);
        let firing = alert["state"] == "firing";
        // A new instance once the previous one with these labels was gone a while.
        let current = list
            .iter_mut()
            .rev()
            .find(|s| s.labels == labels && now.duration_since(s.last) < Duration::from_secs(2));
        match current {
            Some(s) => {
                s.last = now;
                if firing {
                    s.firing.get_or_insert(now);
                }
            }
            None => list.push(AlertSeen { labels, firing: firing.then_some(now), last: now }),
        }
    }
}

/// One finished request of a load run, timed on this process's clock.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub started: Instant,
    pub finished: Instant,
    pub error: Option<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// A `Progress` that keeps every request's outcome.
#[derive(Default, Clone)]
pub struct Outcomes(Arc<Mutex<Vec<Outcome>>>);

impl Progress for Outcomes {
    fn finished(&self, record: &RequestRecord) {
        let finished = Instant::now();
        let started = finished
            .checked_sub(Duration::from_secs_f64(record.e2e_secs.max(0.0)))
            .unwrap_or(finished);
        self.0.lock().unwrap().push(Outcome { started, finished, error: record.error.clone() });
    }
}

impl Outcomes {
    /// Outcomes so far, in order of finishing.
    pub fn list(&self) -> Vec<Outcome> {
        self.0.lock().unwrap().clone()
    }
}
