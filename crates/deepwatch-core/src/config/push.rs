//! The `[push]` section of `deepwatch.toml`: where `deepwatch push` sends batch-job results,
//! how many results make one push, and how much a gauge must move to be pushed again.

use super::{Path, Problems};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Base URL of the Pushgateway.
    pub pushgateway_url: String,
    /// Grouping key: `/metrics/job/<job>/instance/<instance>`.
    pub job: String,
    pub instance: String,
    /// `model` label of results that do not name one.
    pub model: String,
    /// Push once per this many results (and once more on exit).
    pub batch_size: usize,
    /// Gauges that moved less than this fraction since their last push are not re-pushed.
    pub min_change_ratio: f64,
    #[serde(rename = "timeout_ms", with = "crate::config::duration::millis")]
    pub timeout: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            pushgateway_url: "http://127.0.0.1:9091".into(),
            job: "batch_inference".into(),
            instance: "batch-1".into(),
            model: "deepseek-r1".into(),
            batch_size: 100,
            min_change_ratio: 0.05,
            timeout: Duration::from_millis(5000),
        }
    }
}

fn grouping_value(path: &Path, value: &str, problems: &mut Problems) {
    let ok = !value.is_empty()
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if !ok {
        problems
            .push(path, format!("must be non-empty and use only [A-Za-z0-9_.:-], got {value:?}"));
    }
}

impl PushConfig {
    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        problems.http_url(&path.field("pushgateway_url"), &self.pushgateway_url);
        grouping_value(&path.field("job"), &self.job, problems);
        grouping_value(&path.field("instance"), &self.instance, problems);
        problems.non_empty(&path.field("model"), &self.model);
        problems.range(&path.field("batch_size"), self.batch_size, 1, 1_000_000);
        problems.range(&path.field("min_change_ratio"), self.min_change_ratio, 0.0, 1.0);
        problems.duration(
            &path.field("timeout_ms"),
            self.timeout,
            Duration::from_millis(1),
            Duration::from_secs(600),
        );
    }
}

/// Commented default for this section, part of `deepwatch config example`.
pub const EXAMPLE: &str = r#"
# `deepwatch push`: a batch job pipes one result per line (a latency in seconds, or JSON such
# as {"latency_seconds": 0.42, "ok": true, "model": "deepseek-r1"}) into deepwatch push.
[push]
pushgateway_url = "http://127.0.0.1:9091"
# Pushed to /metrics/job/<job>/instance/<instance>.
job = "batch_inference"
instance = "batch-1"
model = "deepseek-r1"
# One push per batch_size results, and a final one at end of input.
batch_size = 100
# Latency gauges that moved less than this fraction are not pushed again.
min_change_ratio = 0.05
timeout_ms = 5000
"#;

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn wrong_fixture_names_every_field() {
        let text = "[push]\npushgateway_url = \"nope\"\njob = \"a/b\"\nbatch_size = 0\nmin_change_ratio = 2.0\n";
        let err = Config::from_toml_str(text).unwrap().validate().unwrap_err().to_string();
        for expected in [
            "push.pushgateway_url: is not a valid URL",
            "push.job: must be non-empty and use only",
            "push.batch_size: must be between 1 and 1000000, got 0",
            "push.min_change_ratio: must be between 0 and 1, got 2",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in\n{err}");
        }
    }
}
