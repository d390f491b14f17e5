//! The `[probes]` section of `deepwatch.toml`: golden prompts the analyzer daemon sends through
//! the gateway to each model version on an interval. Each answer is checked (exact match,
//! substring or regular expression); accuracy and latency are exported per model_version, so a
//! deployment that still answers fast but answers wrong shows up too. Each request is pinned
//! to its target's pool or model version (the gateway's `x-deepwatch-pool` /
//! `x-deepwatch-model-version` headers), so the answer is attributed to the version that gave it.

use super::duration::{MAX_INTERVAL, MAX_TIMEOUT};
use super::gateway::{MODEL_VERSION_HEADER, POOL_HEADER};
use super::{Path, Problems};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbesConfig {
    pub enabled: bool,
    /// Base URL of the OpenAI-compatible gateway (`/v1/chat/completions` is appended).
    pub gateway_url: String,
    /// API key sent as `Authorization: Bearer`; empty sends none. Pinned probes need a key
    /// listed in the gateway's `pin_keys`.
    pub api_key: String,
    /// File whose trimmed content is the API key; wins over `api_key`.
    pub api_key_file: String,
    /// Time between the starts of two probe rounds.
    #[serde(rename = "interval_secs", with = "crate::config::duration::secs")]
    pub interval: Duration,
    /// One probe request slower than this counts as unavailable (not scored).
    #[serde(rename = "timeout_secs", with = "crate::config::duration::secs")]
    pub timeout: Duration,
    /// Answers are short on purpose: probes must not load the fleet.
    pub max_tokens: u32,
    /// Sampling temperature; 0 makes answers as repeatable as the engine allows.
    pub temperature: f64,
    /// Pin every probe to its target (`x-deepwatch-pool` when the target names a pool,
    /// `x-deepwatch-model-version` otherwise) and count an answer from another pool or version
    /// as unavailable. Off only for a gateway that is not deepwatch's (no pinning, no check).
    pub pin: bool,
    pub targets: Vec<ProbeTarget>,
}

impl Default for ProbesConfig {
    fn default() -> Self {
        ProbesConfig {
            enabled: false,
            gateway_url: "http://127.0.0.1:8080".to_string(),
            api_key: String::new(),
            api_key_file: String::new(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            max_tokens: 64,
            temperature: 0.0,
            pin: true,
            targets: Vec::new(),
        }
    }
}

/// One model version and its golden prompts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeTarget {
    /// Sent as the request's `model` and exported as the `model` label.
    pub model: String,
    /// Exported as the `model_version` label; with `pin` and no `pool`, requests are pinned to
    /// the gateway's pools of this version.
    pub model_version: String,
    /// Gateway pool to pin (`x-deepwatch-pool`); empty pins `model_version` instead. The
    /// answer must come from this pool and, when the gateway says, from `model_version`.
    pub pool: String,
    /// Extra request headers (not the pin headers while `pin` is on).
    pub headers: BTreeMap<String, String>,
    pub prompts: Vec<GoldenPrompt>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// The whole answer, trimmed, equals `expect`.
    Exact,
    /// The answer contains `expect`.
    #[default]
    Contains,
    /// The regular expression `expect` finds a match in the answer.
    Regex,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Exact => "exact",
            Check::Contains => "contains",
            Check::Regex => "regex",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoldenPrompt {
    /// The `probe` label; unique within its target.
    pub name: String,
    /// Optional system message.
    pub system: String,
    pub prompt: String,
    pub check: Check,
    pub expect: String,
    /// Compare case-sensitively (exact and contains; write `(?i)` in a regex instead).
    pub case_sensitive: bool,
}

impl Default for GoldenPrompt {
    fn default() -> Self {
        GoldenPrompt {
            name: String::new(),
            system: String::new(),
            prompt: String::new(),
            check: Check::Contains,
            expect: String::new(),
            case_sensitive: false,
        }
    }
}

impl ProbesConfig {
    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        problems.http_url(&path.field("gateway_url"), &self.gateway_url);
        problems.bearer_token(&path.field("api_key"), &self.api_key);
        problems.positive_duration(&path.field("interval_secs"), self.interval, MAX_INTERVAL);
        problems.positive_duration(&path.field("timeout_secs"), self.timeout, MAX_TIMEOUT);
        if self.timeout > self.interval {
            problems.push(
                &path.field("timeout_secs"),
                format!(
                    "must not exceed interval_secs ({}), got {}",
                    self.interval.as_secs(),
                    self.timeout.as_secs()
                ),
            );
        }
        problems.range(&path.field("max_tokens"), self.max_tokens, 1, 32_768);
        problems.range(&path.field("temperature"), self.temperature, 0.0, 2.0);
        if self.enabled
            && self.pin
            && self.api_key.trim().is_empty()
            && self.api_key_file.is_empty()
        {
            problems.push(
                &path.field("api_key"),
                "pinned probes need a key listed in gateway.pin_keys (set api_key or \
                 api_key_file, or pin = false for a gateway that is not deepwatch's)",
            );
        }
        if self.enabled && self.targets.is_empty() {
            problems.push(&path.field("targets"), "probes are enabled but no target is configured");
        }
        let mut versions = HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let at = path.field("targets").index(i);
            problems.non_empty(&at.field("model"), &t.model);
            problems.non_empty(&at.field("model_version"), &t.model_version);
            if !versions.insert((t.model.as_str(), t.model_version.as_str())) {
                problems.push(&at, format!("duplicate target {}/{}", t.model, t.model_version));
            }
            for name in t.headers.keys() {
                let lower = name.to_ascii_lowercase();
                if self.pin && (lower == POOL_HEADER || lower == MODEL_VERSION_HEADER) {
                    problems.push(
                        &at.field("headers").key(name),
                        "the probe sets the pin header itself while probes.pin is on; \
                         name the pool in `pool` instead",
                    );
                }
            }
            if !self.pin && !t.pool.is_empty() {
                problems.push(&at.field("pool"), "needs probes.pin = true");
            }
            if t.prompts.is_empty() {
                problems.push(&at.field("prompts"), "needs at least one golden prompt");
            }
            let mut names = HashSet::new();
            for (j, p) in t.prompts.iter().enumerate() {
                let pa = at.field("prompts").index(j);
                problems.non_empty(&pa.field("name"), &p.name);
                if !p.name.is_empty() && !names.insert(p.name.as_str()) {
                    problems.push(&pa.field("name"), format!("duplicate probe name {:?}", p.name));
                }
                problems.non_empty(&pa.field("prompt"), &p.prompt);
                problems.non_empty(&pa.field("expect"), &p.expect);
                if p.check == Check::Regex {
                    problems.regex(&pa.field("expect"), &p.expect);
                }
            }
        }
    }
}

/// Commented default for this section, part of `deepwatch config example`.
pub const EXAMPLE: &str = r#"
[probes]
# Golden prompts sent through the gateway to each model version by the analyzer daemon.
# Each request is pinned to its target (header x-deepwatch-pool = pool, or
# x-deepwatch-model-version = model_version when no pool is named), so the answer is scored
# against the version that gave it; an answer from another pool or version counts as unavailable.
# Outcomes: correct, wrong, unavailable (timeout, error, misrouted). Accuracy is
# correct / (correct + wrong): a slow or down model is not a wrong one.
# Exported: deepwatch_probe_accuracy_ratio{model,model_version} (last round; absent while no
# probe is answered), deepwatch_probe_results_total{model,model_version,probe,outcome} and
# deepwatch_probe_duration_seconds{model,model_version}.
enabled = false
gateway_url = "http://127.0.0.1:8080"
# Pinned probes need a key listed in gateway.pin_keys.
api_key = ""
# File holding the API key; wins over `api_key`.
api_key_file = ""
interval_secs = 60
timeout_secs = 30
max_tokens = 64
temperature = 0.0
# false: no pin header and no check of the answering pool (a gateway that is not deepwatch's).
pin = true
targets = []

# [[probes.targets]]
# model = "deepseek-chat"
# model_version = "v3.1"
# pool = "green"                               # pin this pool; empty pins model_version
# headers = { "x-tenant-note" = "probe" }      # extra request headers, if any
# [[probes.targets.prompts]]
# name = "arithmetic"
# prompt = "What is 17 + 25? Answer with the number only."
# check = "exact"                              # exact, contains, regex
# expect = "42"
# [[probes.targets.prompts]]
# name = "capital"
# system = "Answer in one word."
# prompt = "What is the capital of France?"
# check = "contains"
# expect = "paris"
# case_sensitive = false
"#;

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn every_bad_field_is_named_with_its_path() {
        let config = Config::from_toml_str(
            r#"
[probes]
enabled = true
interval_secs = 10
timeout_secs = 20
[[probes.targets]]
model = "m"
model_version = "v1"
prompts = [
  { name = "a", prompt = "p", check = "regex", expect = "(" },
  { name = "a", prompt = "", expect = "x" },
]
[[probes.targets]]
model = "m"
model_version = "v1"
"#,
        )
        .unwrap();
        let text = config.validate().unwrap_err().to_string();
        for expected in [
            "probes.timeout_secs: must not exceed interval_secs (10), got 20",
            "probes.targets[0].prompts[0].expect: is not a valid regular expression",
            "probes.targets[0].prompts[1].name: duplicate probe name \"a\"",
            "probes.targets[0].prompts[1].prompt: must not be empty",
            "probes.targets[1]: duplicate target m/v1",
            "probes.targets[1].prompts: needs at least one golden prompt",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn pinning_problems_are_named() {
        let config = Config::from_toml_str(
            r#"
[probes]
enabled = true
[[probes.targets]]
model = "m"
model_version = "v1"
headers = { "X-DeepWatch-Pool" = "blue" }
prompts = [{ name = "a", prompt = "p", expect = "x" }]
"#,
        )
        .unwrap();
        let text = config.validate().unwrap_err().to_string();
        for expected in [
            "probes.api_key: pinned probes need a key listed in gateway.pin_keys",
            "probes.targets[0].headers.X-DeepWatch-Pool: the probe sets the pin header itself",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        let unpinned = Config::from_toml_str(
            r#"
[probes]
enabled = true
pin = false
[[probes.targets]]
model = "m"
model_version = "v1"
pool = "blue"
headers = { "x-deepwatch-pool" = "blue" }
prompts = [{ name = "a", prompt = "p", expect = "x" }]
"#,
        )
        .unwrap();
        let text = unpinned.validate().unwrap_err().to_string();
        assert!(text.contains("probes.targets[0].pool: needs probes.pin = true"), "{text}");
        assert!(!text.contains("api_key"), "{text}");
        assert!(!text.contains("headers"), "{text}");
    }

    #[test]
    fn enabled_without_targets_is_refused() {
        let config = Config::from_toml_str("[probes]\nenabled = true\n").unwrap();
        let text = config.validate().unwrap_err().to_string();
        assert!(text.contains("probes.targets: probes are enabled but no target"), "{text}");
    }
}
