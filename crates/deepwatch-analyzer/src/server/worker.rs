//! The alert worker: takes jobs from the webhook queue one at a time, journals each, runs
//! remediation first (time matters), then starts root-cause ranking for firing alerts in the
//! background (at most two at once) and indexes the report.

use super::reports::{IndexEntry, ReportIndex};
use crate::prom::PromClient;
use crate::remediate::Remediator;
use crate::webhook::{AlertStatus, Job, Receiver};
use deepwatch_core::catalog::analyzer::RCA_REPORTS;
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::analyzer::{BaselineConfig, RcaConfig};
use deepwatch_core::metrics::CounterVec;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{error, info, warn};

/// Root-cause ranking on firing alerts.
pub struct Rca {
    pub prom: PromClient,
    pub config: RcaConfig,
    /// The symptom's band in each report comes from this baseline model.
    pub baseline: BaselineConfig,
    pub index: Arc<ReportIndex>,
    pub reports: Arc<CounterVec>,
    pub clock: SharedClock,
    pub running: Arc<Semaphore>,
}

impl Rca {
    pub fn new(
        prom: PromClient,
        config: RcaConfig,
        baseline: BaselineConfig,
        index: Arc<ReportIndex>,
        clock: SharedClock,
    ) -> Rca {
        Rca {
            prom,
            config,
            baseline,
            index,
            reports: Arc::new(CounterVec::new(&RCA_REPORTS)),
            clock,
            running: Arc::new(Semaphore::new(2)),
        }
    }

    /// Ranks in the background; the report lands in the index when done.
    fn spawn(&self, job: &Job) {
        let (prom, config, baseline, index, reports, clock, running) = (
            self.prom.clone(),
            self.config.clone(),
            self.baseline.clone(),
            self.index.clone(),
            self.reports.clone(),
            self.clock.clone(),
            self.running.clone(),
        );
        let alert = job.alert.clone();
        tokio::spawn(async move {
            let Ok(_permit) = running.acquire_owned().await else { return };
            let at = chrono::DateTime::parse_from_rfc3339(&alert.starts_at)
                .map(|t| t.timestamp_millis() as f64 / 1000.0)
                .unwrap_or_else(|_| clock.unix_seconds());
            let name = alert.alertname().to_string();
            let report = match crate::rca::rank(&prom, at, Some(&name), &config, &baseline).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(alertname = %name, error = %e, "no root-cause report");
                    return;
                }
            };
            let written = report.write_to(index.dir());
            let (md, json) = match written {
                Ok(paths) => paths,
                Err(e) => {
                    error!(alertname = %name, error = %e, "cannot write root-cause report");
                    return;
                }
            };
            let file_name = |p: &std::path::Path| {
                p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
            };
            let entry = IndexEntry {
                fingerprint: alert.fingerprint(),
                alertname: name.clone(),
                starts_at: alert.starts_at.clone(),
                markdown: file_name(&md),
                json: file_name(&json),
                unix_ms: clock.unix_millis(),
            };
            if let Err(e) = index.add(entry) {
                error!(error = %e, "cannot index root-cause report");
            }
            reports.inc(&[&name]);
            info!(alertname = %name, report = %md.display(), "root-cause report written");
        });
    }
}

/// Processes jobs until `stop` turns true, then drains what is queued for up to `drain`.
pub async fn run(
    mut jobs: mpsc::Receiver<Job>,
    receiver: Arc<Receiver>,
    remediator: Arc<Remediator>,
    rca: Option<Arc<Rca>>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => handle(&job, &receiver, &remediator, rca.as_deref()).await,
                None => return,
            },
            _ = super::stopped(&mut stop) => break,
        }
    }
    let deadline = tokio::time::Instant::now() + drain;
    while let Ok(job) = jobs.try_recv() {
        if tokio::time::Instant::now() >= deadline {
            warn!(
                "shutdown: alerts left in the queue are journaled and replayed at the next start"
            );
            break;
        }
        handle(&job, &receiver, &remediator, rca.as_deref()).await;
    }
}

async fn handle(job: &Job, receiver: &Receiver, remediator: &Remediator, rca: Option<&Rca>) {
    match receiver.start(job) {
        Ok(true) => {}
        Ok(false) => return,
        // The audit log still guards against repeats: an action never runs without its intent.
        Err(e) => error!(key = %job.key, error = %e, "cannot journal alert; handling it anyway"),
    }
    info!(alertname = job.alert.alertname(), status = job.alert.status.as_str(), key = %job.key,
          receiver = %job.receiver, "alert");
    remediator.handle(&job.alert).await;
    if job.alert.status == AlertStatus::Firing {
        if let Some(rca) = rca {
            rca.spawn(job);
        }
    }
}
