//! Push mode, for nodes Prometheus cannot reach (behind NAT, short-lived): every interval the
//! agent renders its whole `/metrics` and PUTs it to a Pushgateway group
//! `job/<job>/instance/<instance>`, replacing the previous push. Outcomes are counted in
//! `deepwatch_agent_pushes_total{outcome}`, which the next push carries.

use crate::collector::CollectorSet;
use deepwatch_core::catalog::agent as cat;
use deepwatch_core::config::agent::AgentPushConfig;
use deepwatch_core::expo::{Format, MetricSink};
use deepwatch_core::metrics::{CounterVec, Encode};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("push to {url} failed: {message}")]
    Send { url: String, message: String },
    #[error("push to {url} answered HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
}

pub struct Pusher {
    url: String,
    timeout: Duration,
    interval: Duration,
    client: reqwest::Client,
    outcomes: Arc<CounterVec>,
}

/// This host's name, the default `instance`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Path segments of a grouping key; values with `/` use the Pushgateway's base64 form.
fn segment(name: &str, value: &str) -> String {
    let safe = !value.is_empty()
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if safe {
        format!("{name}/{value}")
    } else {
        format!("{name}@base64/{}", base64_url(value.as_bytes()))
    }
}

fn base64_url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Pusher {
    pub fn new(config: &AgentPushConfig) -> Result<Pusher, reqwest::Error> {
        let instance =
            if config.instance.is_empty() { hostname() } else { config.instance.clone() };
        let url = format!(
            "{}/metrics/{}/{}",
            config.url.trim_end_matches('/'),
            segment("job", &config.job),
            segment("instance", &instance)
        );
        let outcomes = Arc::new(CounterVec::new(&cat::AGENT_PUSHES));
        outcomes.with(&["ok"]);
        outcomes.with(&["error"]);
        Ok(Pusher {
            url,
            timeout: Duration::from_millis(config.timeout_ms),
            interval: Duration::from_millis(config.interval_ms.max(1)),
            client: reqwest::Client::builder().build()?,
            outcomes,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Renders every collector and PUTs the result.
    pub async fn push_once(&self, collectors: &Arc<CollectorSet>) -> Result<(), PushError> {
        let mut body = collectors.scrape(Format::Text004).await;
        let mut own = MetricSink::new(Format::Text004);
        self.outcomes.encode(&mut own);
        body.push_str(&own.render());
        let result = self
            .client
            .put(&self.url)
            .header(reqwest::header::CONTENT_TYPE, Format::Text004.content_type())
            .timeout(self.timeout)
            .body(body)
            .send()
            .await;
        let outcome = match result {
            Err(e) => Err(PushError::Send { url: self.url.clone(), message: e.to_string() }),
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                Err(PushError::Status { url: self.url.clone(), status, body })
            }
        };
        self.outcomes.inc(&[if outcome.is_ok() { "ok" } else { "error" }]);
        outcome
    }

    /// Pushes every interval until the task is aborted; logs failures when they start and stop.
    pub fn spawn(self, collectors: Arc<CollectorSet>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                match self.push_once(&collectors).await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!(url = %self.url, "push recovered");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "push failed");
                    }
                    Err(e) => tracing::debug!(error = %e, "push failed"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_key_values_with_slashes_use_base64() {
        assert_eq!(segment("instance", "gpu-node-1"), "instance/gpu-node-1");
        // The Pushgateway's own example: "/var/tmp" is "L3Zhci90bXA=".
        assert_eq!(segment("path", "/var/tmp"), "path@base64/L3Zhci90bXA=");
        assert_eq!(segment("instance", ""), "instance@base64/");
    }
}
