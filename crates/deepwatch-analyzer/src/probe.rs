//! Golden-prompt probes: on an interval, known prompts go through the gateway to each model
//! version (`POST /v1/chat/completions`, temperature 0, short answers) and each answer is
//! checked by exact match, substring or regular expression. A deployment that still answers
//! fast but answers wrong (bad weights, a broken template, a quantisation regression) shows up
//! in `deepwatch_probe_accuracy_ratio`, which the analytics helper's accuracy detector watches.
//!
//! Each request is pinned to its target (`x-deepwatch-pool` when the target names a pool,
//! `x-deepwatch-model-version` otherwise; the gateway honours them for keys in its `pin_keys`),
//! and the gateway's `x-deepwatch-pool` / `x-deepwatch-model-version` response headers must
//! confirm it: an answer from another pool or version is unavailable, never scored, so accuracy
//! and latency always belong to the version that answered.
//!
//! Each probe is correct, wrong or unavailable (no usable answer: a timeout, a refused
//! connection, an HTTP error, a misrouted answer). Accuracy is correct / (correct + wrong): a
//! slow or down model is not a wrong one, so latency faults never lower it; a round without
//! any scored answer removes the accuracy series until answers come back.

use deepwatch_core::api::openai::{ChatRequest, Message, ResponseBody};
use deepwatch_core::catalog::analyzer::{PROBE_ACCURACY, PROBE_DURATION, PROBE_RESULTS};
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::gateway::{MODEL_VERSION_HEADER, POOL_HEADER};
use deepwatch_core::config::probes::{Check, GoldenPrompt, ProbesConfig};
use deepwatch_core::expo::MetricSink;
use deepwatch_core::metrics::{CounterVec, Encode, GaugeVec, HistogramVec};
use futures_util::future::join_all;
use regex::Regex;
use std::time::Duration;
use tracing::{debug, warn};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probes.gateway_url: {0}")]
    Url(String),
    #[error("probes.api_key_file: cannot read {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("probes.targets[{target}].prompts[{prompt}].expect: {message}")]
    Regex { target: usize, prompt: usize, message: String },
    #[error("probes.targets[{target}].headers: {message}")]
    Header { target: usize, message: String },
}

/// How one probe went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The answer passed its check.
    Correct,
    /// An answer came back but failed its check.
    Wrong,
    /// No usable answer: transport error, timeout, HTTP error, malformed body, misrouted.
    /// Not scored: it says nothing about whether the model answers right.
    Unavailable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Correct => "correct",
            Outcome::Wrong => "wrong",
            Outcome::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub model: String,
    pub model_version: String,
    pub probe: String,
    pub outcome: Outcome,
    pub latency: Duration,
    pub answer: String,
    pub detail: String,
    /// The gateway's `x-deepwatch-pool` response header: which pool answered.
    pub served_by: String,
    /// The gateway's `x-deepwatch-model-version` response header: the version that answered.
    pub served_version: String,
}

enum Checker {
    Exact { expect: String, case_sensitive: bool },
    Contains { expect: String, case_sensitive: bool },
    Regex(Regex),
}

impl Checker {
    fn new(p: &GoldenPrompt) -> Result<Checker, String> {
        Ok(match p.check {
            Check::Exact => Checker::Exact {
                expect: p.expect.trim().to_string(),
                case_sensitive: p.case_sensitive,
            },
            Check::Contains => {
                Checker::Contains { expect: p.expect.clone(), case_sensitive: p.case_sensitive }
            }
            Check::Regex => Checker::Regex(Regex::new(&p.expect).map_err(|e| e.to_string())?),
        })
    }

    fn passes(&self, answer: &str) -> bool {
        let fold = |s: &str, cs: bool| if cs { s.to_string() } else { s.to_lowercase() };
        match self {
            Checker::Exact { expect, case_sensitive } => {
                fold(answer.trim(), *case_sensitive) == fold(expect, *case_sensitive)
            }
            Checker::Contains { expect, case_sensitive } => {
                fold(answer, *case_sensitive).contains(&fold(expect, *case_sensitive))
            }
            Checker::Regex(re) => re.is_match(answer),
        }
    }
}

struct Prompt {
    name: String,
    system: String,
    prompt: String,
    checker: Checker,
}

struct Target {
    model: String,
    model_version: String,
    /// The pinned pool; empty pins `model_version` (when pinning is on).
    pool: String,
    headers: reqwest::header::HeaderMap,
    prompts: Vec<Prompt>,
}

pub struct Prober {
    url: url::Url,
    api_key: String,
    max_tokens: u32,
    temperature: f64,
    interval: Duration,
    pin: bool,
    targets: Vec<Target>,
    http: reqwest::Client,
    clock: SharedClock,
    accuracy: GaugeVec,
    results: CounterVec,
    duration: HistogramVec,
}

impl Prober {
    pub fn new(config: &ProbesConfig, clock: SharedClock) -> Result<Prober, ProbeError> {
        let base =
            url::Url::parse(&config.gateway_url).map_err(|e| ProbeError::Url(e.to_string()))?;
        let url = base
            .join(&format!("{}/v1/chat/completions", base.path().trim_end_matches('/')))
            .map_err(|e| ProbeError::Url(e.to_string()))?;
        let api_key = if config.api_key_file.is_empty() {
            config.api_key.clone()
        } else {
            std::fs::read_to_string(&config.api_key_file).map(|k| k.trim().to_string()).map_err(
                |e| ProbeError::KeyFile {
                    path: config.api_key_file.clone(),
                    message: e.to_string(),
                },
            )?
        };
        let mut targets = Vec::new();
        for (ti, t) in config.targets.iter().enumerate() {
            let mut headers = reqwest::header::HeaderMap::new();
            let pin = match (config.pin, t.pool.is_empty()) {
                (false, _) => None,
                (true, false) => Some((POOL_HEADER, t.pool.as_str())),
                (true, true) => Some((MODEL_VERSION_HEADER, t.model_version.as_str())),
            };
            for (k, v) in t.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(pin) {
                let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| ProbeError::Header { target: ti, message: format!("{k}: {e}") })?;
                let value = reqwest::header::HeaderValue::from_str(v)
                    .map_err(|e| ProbeError::Header { target: ti, message: format!("{k}: {e}") })?;
                headers.insert(name, value);
            }
            let mut prompts = Vec::new();
            for (pi, p) in t.prompts.iter().enumerate() {
                let checker = Checker::new(p).map_err(|message| ProbeError::Regex {
                    target: ti,
                    prompt: pi,
                    message,
                })?;
                prompts.push(Prompt {
                    name: p.name.clone(),
                    system: p.system.clone(),
                    prompt: p.prompt.clone(),
                    checker,
                });
            }
            targets.push(Target {
                model: t.model.clone(),
                model_version: t.model_version.clone(),
                pool: t.pool.clone(),
                headers,
                prompts,
            });
        }
        let http = deepwatch_core::http::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ProbeError::Url(e.to_string()))?;
        Ok(Prober {
            url,
            api_key,
            max_tokens: config.max_tokens,
            temperature: config.temperature,
            interval: config.interval,
            pin: config.pin,
            targets,
            http,
            clock,
            accuracy: GaugeVec::new(&PROBE_ACCURACY),
            results: CounterVec::new(&PROBE_RESULTS),
            duration: HistogramVec::new(&PROBE_DURATION),
        })
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// One round: every target concurrently, its prompts one after another (probes must not
    /// load the fleet). Updates the metrics and returns every result.
    pub async fn round(&self) -> Vec<ProbeResult> {
        let per_target = join_all(self.targets.iter().map(|t| self.probe_target(t))).await;
        per_target.into_iter().flatten().collect()
    }

    async fn probe_target(&self, target: &Target) -> Vec<ProbeResult> {
        let mut results = Vec::new();
        for prompt in &target.prompts {
            let r = self.probe_one(target, prompt).await;
            let labels = [target.model.as_str(), target.model_version.as_str()];
            self.results.inc(&[labels[0], labels[1], &r.probe, r.outcome.as_str()]);
            if r.outcome != Outcome::Unavailable {
                self.duration.observe(&labels, r.latency.as_secs_f64());
            }
            debug!(model = %r.model, version = %r.model_version, probe = %r.probe,
                   outcome = r.outcome.as_str(), pool = %r.served_by,
                   served_version = %r.served_version, detail = %r.detail, "probe");
            results.push(r);
        }
        let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
        let (correct, wrong) = (count(Outcome::Correct), count(Outcome::Wrong));
        let labels = [target.model.as_str(), target.model_version.as_str()];
        if correct + wrong == 0 {
            self.accuracy.remove(&labels);
        } else {
            self.accuracy.set(&labels, correct as f64 / (correct + wrong) as f64);
        }
        if wrong > 0 {
            warn!(model = %target.model, version = %target.model_version, correct, wrong,
                  "golden prompts answered wrong");
        }
        results
    }

    async fn probe_one(&self, target: &Target, prompt: &Prompt) -> ProbeResult {
        let mut messages = Vec::new();
        if !prompt.system.is_empty() {
            messages.push(Message::new("system", prompt.system.as_str()));
        }
        messages.push(Message::new("user", prompt.prompt.as_str()));
        let body = ChatRequest {
            model: target.model.clone(),
            messages,
            max_tokens: Some(u64::from(self.max_tokens)),
            temperature: Some(self.temperature),
            stream: false,
            ..ChatRequest::default()
        };
        let mut req = self.http.post(self.url.clone()).headers(target.headers.clone()).json(&body);
        if !self.api_key.is_empty() {
            req = req.bearer_auth(&self.api_key);
        }
        let started = self.clock.now();
        let (mut served_by, mut served_version) = (String::new(), String::new());
        let answer = match req.send().await {
            Err(e) => Err(format!("request failed: {e}")),
            Ok(resp) => {
                let status = resp.status();
                let header = |name: &str| {
                    let value = resp.headers().get(name).and_then(|v| v.to_str().ok());
                    value.unwrap_or("").to_string()
                };
                served_by = header(POOL_HEADER);
                served_version = header(MODEL_VERSION_HEADER);
                let body = resp.bytes().await;
                // A misrouted answer is an error whatever it says: it is not this version's.
                let misrouted = if status.is_success() {
                    self.misrouted(target, &served_by, &served_version)
                } else {
                    None
                };
                match misrouted {
                    Some(why) => Err(why),
                    None => read_answer(status, body),
                }
            }
        };
        let latency = self.clock.now().saturating_duration_since(started);
        let (outcome, answer, detail) = match answer {
            Err(detail) => (Outcome::Unavailable, String::new(), detail),
            Ok(a) if prompt.checker.passes(&a) => (Outcome::Correct, a, String::new()),
            Ok(a) => {
                let detail = format!("answer {:?} failed its check", clip(&a, 200));
                (Outcome::Wrong, a, detail)
            }
        };
        ProbeResult {
            model: target.model.clone(),
            model_version: target.model_version.clone(),
            probe: prompt.name.clone(),
            outcome,
            latency,
            answer,
            detail,
            served_by,
            served_version,
        }
    }

    /// Why an answer does not belong to the pinned target (`None` when it does, or when
    /// pinning is off): another pool, another version, or no word from the gateway about it.
    fn misrouted(&self, target: &Target, pool: &str, version: &str) -> Option<String> {
        if !self.pin {
            return None;
        }
        if !target.pool.is_empty() && pool != target.pool {
            if pool.is_empty() {
                return Some(format!(
                    "the answer has no {POOL_HEADER} header: is probes.gateway_url a deepwatch \
                     gateway? (probes.pin = false otherwise)"
                ));
            }
            return Some(format!(
                "answered by pool {pool:?}, not the pinned pool {:?}",
                target.pool
            ));
        }
        if version.is_empty() {
            if target.pool.is_empty() {
                return Some(format!(
                    "the answer has no {MODEL_VERSION_HEADER} header: is probes.gateway_url a \
                     deepwatch gateway? (probes.pin = false otherwise)"
                ));
            }
            return None;
        }
        (version != target.model_version).then(|| {
            format!(
                "answered by model_version {version:?} (pool {pool:?}), not {:?}",
                target.model_version
            )
        })
    }

    /// Runs rounds on the interval until `stop` resolves.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => { self.round().await; }
            }
        }
    }
}

/// The answer's text, or why there is none.
fn read_answer(
    status: reqwest::StatusCode,
    body: Result<impl AsRef<[u8]>, reqwest::Error>,
) -> Result<String, String> {
    let bytes = body.map_err(|e| format!("HTTP {status}, body unreadable: {e}"))?;
    let body: ResponseBody<'_> = serde_json::from_slice(bytes.as_ref())
        .map_err(|e| format!("HTTP {status}, body is not JSON: {e}"))?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", body.error_message().unwrap_or_default()));
    }
    body.choices()
        .first()
        .and_then(|c| c.message.as_ref())
        .and_then(|m| m.content.as_deref())
        .map(str::to_string)
        .ok_or_else(|| "no choices[0].message.content in the answer".to_string())
}

fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Encode for Prober {
    fn encode(&self, sink: &mut MetricSink) {
        self.accuracy.encode(sink);
        self.results.encode(sink);
        self.duration.encode(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(check: Check, expect: &str, case_sensitive: bool) -> Checker {
        Checker::new(&GoldenPrompt {
            name: "p".into(),
            prompt: "q".into(),
            check,
            expect: expect.into(),
            case_sensitive,
            ..GoldenPrompt::default()
        })
        .unwrap()
    }

    #[test]
    fn checks_compare_as_documented() {
        assert!(checker(Check::Exact, "42", true).passes(" 42\n"));
        assert!(!checker(Check::Exact, "42", true).passes("42."));
        assert!(checker(Check::Exact, "Paris", false).passes("paris"));
        assert!(!checker(Check::Exact, "Paris", true).passes("paris"));
        assert!(checker(Check::Contains, "paris", false).passes("It is Paris."));
        assert!(!checker(Check::Contains, "paris", true).passes("It is Paris."));
        assert!(checker(Check::Regex, r"^\s*4\s*2\b", true).passes(" 4 2 apples"));
        assert!(!checker(Check::Regex, r"^42$", true).passes("420"));
    }
}
