//! Shared by the end-to-end tests of the `deepwatch` binary: HTTP receivers that record what
//! Alertmanager delivers (webhook, WeCom API), an SMTP sink (python3-aiosmtpd), the Grafana
//! panel-query expander, the child processes of the real binary, and watchers that time an
//! incident (alerts in Prometheus, outcomes of load requests).

pub mod grafana;
pub mod procs;
pub mod recorder;
pub mod smtp;
pub mod watch;

use std::time::Duration;
use tokio::time::Instant;

/// Seconds since `t0`, for figures printed by the tests.
pub fn secs_since(t0: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(t0).as_secs_f64()
}

/// Polls `check` every 200 ms until it returns `Some`, or returns `None` after `timeout`.
pub async fn poll<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The generated Prometheus/Alertmanager files for `config`, at the tests' time scale.
pub fn generate(
    config: &deepwatch_core::config::Config,
    time_scale: u64,
) -> deepwatch_rules::Generated {
    deepwatch_rules::generate(&config.rules, deepwatch_rules::Options { time_scale })
        .expect("rules generate")
}

/// Debian's Prometheus with the generated `prometheus.yml` and every generated rule file.
pub async fn prometheus_with_rules(
    generated: &deepwatch_rules::Generated,
) -> deepwatch_testkit::Prometheus {
    let rules: Vec<(&str, &str)> = generated
        .files
        .iter()
        .filter_map(|(path, text)| Some((path.strip_prefix("prometheus/")?, text.as_str())))
        .filter(|(path, _)| path.starts_with("rules/"))
        .collect();
    deepwatch_testkit::Prometheus::start(&generated.files["prometheus/prometheus.yml"], &rules)
        .await
}
