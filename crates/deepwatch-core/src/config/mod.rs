//! The `deepwatch.toml` schema. One file configures every component; each component owns one
//! section (`agent.rs`, `gateway.rs`, ...). Parsing is strict (`deny_unknown_fields`) and
//! `validate()` then reports every problem at once, each with its path
//! (`agent.engines[0].url: ...`). `example()` renders the full commented default, which is
//! committed as `deepwatch.example.toml` and drift-tested.

pub mod agent;
pub mod analyzer;
pub mod client;
pub mod cost;
pub mod duration;
pub mod gateway;
pub mod notify;
pub mod probes;
pub mod push;
pub mod remediation;
pub mod rules;
pub mod sim;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path as FsPath;
use std::time::Duration;

/// The whole `deepwatch.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub agent: agent::AgentConfig,
    pub gateway: gateway::GatewayConfig,
    pub analyzer: analyzer::AnalyzerConfig,
    pub remediation: remediation::RemediationConfig,
    pub notify: notify::NotifyConfig,
    pub probes: probes::ProbesConfig,
    pub rules: rules::RulesConfig,
    pub sim: sim::SimConfig,
    pub push: push::PushConfig,
}

impl Config {
    /// The `[rules]` spec with what other sections decide about the generated files: the
    /// analyzer receiver's bearer token comes from `remediation.webhook_token_file` (as
    /// `credentials_file`) or `remediation.webhook_token`.
    pub fn rules_spec(&self) -> rules::RulesConfig {
        let mut spec = self.rules.clone();
        let r = &self.remediation;
        spec.receivers.analyzer_authorization = if !r.webhook_token_file.is_empty() {
            Some(rules::WebhookAuthorization::CredentialsFile(r.webhook_token_file.clone()))
        } else if !r.webhook_token.is_empty() {
            Some(rules::WebhookAuthorization::Credentials(r.webhook_token.clone()))
        } else {
            None
        };
        spec
    }

    /// Parses TOML text; syntax errors, wrongly typed values and unknown keys name their line
    /// and key, every one of them (up to `MAX_PARSE_ERRORS`), not only the first.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        parse_all(text).map_err(|message| ConfigError::Parse { origin: None, message })
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &FsPath) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let config = parse_all(&text).map_err(|message| ConfigError::Parse {
            origin: Some(path.display().to_string()),
            message,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every section; returns all problems, not just the first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        self.agent.validate(&Path::root("agent"), &mut problems);
        self.gateway.validate(&Path::root("gateway"), &mut problems);
        self.analyzer.validate(&Path::root("analyzer"), &mut problems);
        self.remediation.validate(&Path::root("remediation"), &mut problems);
        self.notify.validate(&Path::root("notify"), &mut problems);
        self.probes.validate(&Path::root("probes"), &mut problems);
        self.rules.validate(&Path::root("rules"), &mut problems);
        self.sim.validate(&Path::root("sim"), &mut problems);
        self.push.validate(&Path::root("push"), &mut problems);
        problems.into_result()
    }
}

/// Parse errors reported at most per file.
pub const MAX_PARSE_ERRORS: usize = 20;
/// A config line is quoted in an error up to this many characters.
const QUOTED_LINE_CHARS: usize = 120;

/// Deserializes `text`, collecting every error: serde stops at the first, so the line it names
/// is blanked (line numbers stay) and the text parsed again, as long as what is left is still
/// valid TOML and no table header had to go (its keys would land in the wrong table).
fn parse_all(text: &str) -> Result<Config, String> {
    let mut work = text.to_string();
    let mut found: Vec<String> = Vec::new();
    while found.len() < MAX_PARSE_ERRORS {
        let err = match toml::from_str::<Config>(&work) {
            Ok(config) if found.is_empty() => return Ok(config),
            Ok(_) => break,
            Err(e) => e,
        };
        found.push(describe(&work, &err));
        let Some(span) = err.span() else { break };
        let start = work[..span.start.min(work.len())].rfind('\n').map_or(0, |i| i + 1);
        let end = work[span.end.min(work.len())..].find('\n').map_or(work.len(), |i| span.end + i);
        let lines = &work[start..end];
        if lines.lines().any(|l| l.trim_start().starts_with('[')) {
            break;
        }
        let blanked: String = lines.chars().map(|c| if c == '\n' { c } else { ' ' }).collect();
        work.replace_range(start..end, &blanked);
        if work.parse::<toml::Table>().is_err() {
            break;
        }
    }
    let stopped = found.len() == MAX_PARSE_ERRORS;
    // In file order (serde reads the sections in the struct's order).
    found.sort_by_key(|e| {
        e.strip_prefix("line ")
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
    });
    if stopped {
        found.push(format!("(stopped after {MAX_PARSE_ERRORS} errors)"));
    }
    Err(found.join("\n"))
}

/// `line L, column C (key `section.key`): message`, quoting the line shortened.
fn describe(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    let Some(span) = err.span() else { return message.to_string() };
    let at = span.start.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_no = text[..at].matches('\n').count() + 1;
    let column = text[line_start..at].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let key = line.split_once('=').map(|(k, _)| k.trim()).filter(|k| !k.is_empty());
    let key = match (table, key) {
        (Some(t), Some(k)) => format!(" (key `{t}.{k}`)"),
        (None, Some(k)) => format!(" (key `{k}`)"),
        _ => String::new(),
    };
    let mut quoted: String = line.trim().chars().take(QUOTED_LINE_CHARS).collect();
    if line.trim().chars().count() > QUOTED_LINE_CHARS {
        quoted.push('…');
    }
    format!("line {line_no}, column {column}{key}: {message}\n    | {quoted}")
}

/// The full commented default configuration, section by section.
pub fn example() -> String {
    let mut out = String::from(HEADER);
    for section in [
        agent::EXAMPLE,
        gateway::EXAMPLE,
        analyzer::EXAMPLE,
        remediation::EXAMPLE,
        notify::EXAMPLE,
        probes::EXAMPLE,
        rules::EXAMPLE,
        sim::EXAMPLE,
        push::EXAMPLE,
    ] {
        out.push('\n');
        out.push_str(section.trim_start_matches('\n'));
    }
    out
}

const HEADER: &str = "\
# deepwatch.toml: one file configures every deepwatch component.
# Generated by `deepwatch config example`; every value shown is the default.
# Check a file with `deepwatch config check FILE`.
";

/// Where a value sits in the config, for error messages: `agent.engines[0].url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    pub fn root(section: &str) -> Path {
        Path(section.to_string())
    }
    pub fn field(&self, name: &str) -> Path {
        Path(format!("{}.{name}", self.0))
    }
    pub fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }
    /// A key of a table (`tenants.acme`); keys that are not bare TOML keys are quoted.
    pub fn key(&self, key: &str) -> Path {
        let bare = !key.is_empty()
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if bare {
            self.field(key)
        } else {
            Path(format!("{}.{:?}", self.0, key))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Problems collected while validating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, path: &Path, message: impl Into<String>) {
        self.0.push(Problem { path: path.0.clone(), message: message.into() });
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_result(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(self))
        }
    }

    // === common checks, so every section words the same problem the same way ===

    /// `value` must be in `min..=max`.
    pub fn range<T: PartialOrd + fmt::Display>(&mut self, path: &Path, value: T, min: T, max: T) {
        if value < min || value > max {
            self.push(path, format!("must be between {min} and {max}, got {value}"));
        }
    }

    /// `value` must be strictly positive.
    pub fn positive<T: PartialOrd + Default + fmt::Display>(&mut self, path: &Path, value: T) {
        if value <= T::default() {
            self.push(path, format!("must be greater than 0, got {value}"));
        }
    }

    /// A duration must lie in `min..=max`. The message speaks the unit of the key the path ends
    /// in (`timeout_ms` in milliseconds, `window_secs` in seconds), as the user wrote it; a
    /// zero where zero is not allowed reads like [`positive`](Self::positive).
    pub fn duration(&mut self, path: &Path, value: Duration, min: Duration, max: Duration) {
        let unit = duration::Unit::of_key(path.as_str());
        if value.is_zero() && !min.is_zero() {
            self.push(path, "must be greater than 0, got 0");
        } else if value < min || value > max {
            self.push(
                path,
                format!(
                    "must be between {} and {}, got {}",
                    unit.render(min),
                    unit.render(max),
                    unit.render(value)
                ),
            );
        }
    }

    /// A duration must be greater than zero and at most `max`.
    pub fn positive_duration(&mut self, path: &Path, value: Duration, max: Duration) {
        let smallest = match duration::Unit::of_key(path.as_str()) {
            duration::Unit::Millis => Duration::from_millis(1),
            duration::Unit::Secs => Duration::from_secs(1),
        };
        self.duration(path, value, smallest, max);
    }

    /// `value` must be an absolute http(s) URL.
    pub fn http_url(&mut self, path: &Path, value: &str) {
        match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(u) => self
                .push(path, format!("must be an http or https URL, got scheme {:?}", u.scheme())),
            Err(e) => self.push(path, format!("is not a valid URL ({e}): {value:?}")),
        }
    }

    /// `value` must be a socket address such as `127.0.0.1:9844`.
    pub fn socket_addr(&mut self, path: &Path, value: &str) {
        if value.parse::<std::net::SocketAddr>().is_err() {
            self.push(path, format!("must be an address like 127.0.0.1:9844, got {value:?}"));
        }
    }

    /// `value` must compile as a regular expression.
    pub fn regex(&mut self, path: &Path, value: &str) {
        if let Err(e) = regex::Regex::new(value) {
            let first_line = e.to_string().lines().last().unwrap_or("invalid").trim().to_string();
            self.push(path, format!("is not a valid regular expression: {first_line}"));
        }
    }

    /// `value` must not be empty.
    pub fn non_empty(&mut self, path: &Path, value: &str) {
        if value.trim().is_empty() {
            self.push(path, "must not be empty");
        }
    }

    /// A token sent as `Authorization: Bearer <token>` (empty is allowed: the caller decides
    /// what empty means). The value is a secret and is never echoed.
    pub fn bearer_token(&mut self, path: &Path, value: &str) {
        if !value.is_empty() && !crate::api::bearer::is_b64token(value) {
            self.push(
                path,
                "cannot be sent as a bearer token: use only A-Z a-z 0-9 - . _ ~ + / \
                 (and = at the end)",
            );
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {message}")]
    Read { path: String, message: String },
    #[error("{}{message}", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    Parse { origin: Option<String>, message: String },
    #[error("invalid config:\n{0}")]
    Invalid(Problems),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_validates_and_equals_default() {
        let text = example();
        let parsed = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        parsed.validate().unwrap();
        assert_eq!(parsed, Config::default(), "example and Default disagree");
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err =
            Config::from_toml_str("[agent]\nlisten_adress = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("listen_adress"), "{err}");
        let err = Config::from_toml_str("[nosuchsection]\n").unwrap_err().to_string();
        assert!(err.contains("nosuchsection"), "{err}");
    }

    #[test]
    fn every_type_error_is_reported_with_its_line_and_key_and_long_lines_are_cut() {
        let long = "x".repeat(10_000);
        let text = format!(
            "[gateway]\nlisten = 5\nworkers = \"two\"\n\n[agent]\nlisten = [\"{long}\"]\nlisten_adress = 1\n"
        );
        let err = Config::from_toml_str(&text).unwrap_err().to_string();
        for needle in [
            "line 2, column 10 (key `gateway.listen`)",
            "line 3, column 11 (key `gateway.workers`)",
            "line 6, column 10 (key `agent.listen`)",
            "line 7, column 1 (key `agent.listen_adress`)",
            "listen_adress",
        ] {
            assert!(err.contains(needle), "{needle:?} missing in:\n{err}");
        }
        assert!(err.len() < 2_000, "the 10k-character line is echoed: {} bytes", err.len());
        let gateway_at = err.find("line 2,").unwrap();
        assert!(gateway_at < err.find("line 6,").unwrap(), "not in file order:\n{err}");
        // A syntax error stops there: the rest cannot be read reliably.
        let err = Config::from_toml_str("[agent]\nlisten = \"a\nx = 1\n").unwrap_err().to_string();
        assert!(err.starts_with("line 2"), "{err}");
        // A good file still parses, with the blanking loop never run.
        assert!(Config::from_toml_str("[agent]\nlisten = \"127.0.0.1:1\"\n").is_ok());
    }

    #[test]
    fn paths_render_like_toml() {
        let p = Path::root("agent").field("engines").index(0).field("url");
        assert_eq!(p.as_str(), "agent.engines[0].url");
        assert_eq!(
            Path::root("gateway").field("tenants").key("a b").as_str(),
            "gateway.tenants.\"a b\""
        );
    }

    #[test]
    fn problems_collects_every_failure() {
        let mut p = Problems::default();
        let root = Path::root("x");
        p.range(&root.field("weight"), 150, 0, 100);
        p.http_url(&root.field("url"), "ftp://a");
        p.socket_addr(&root.field("listen"), "nope");
        p.regex(&root.field("re"), "(");
        p.positive(&root.field("n"), 0);
        let text = p.to_string();
        assert_eq!(p.0.len(), 5, "{text}");
        assert!(text.contains("x.weight: must be between 0 and 100, got 150"), "{text}");
        assert!(text.contains("x.url: must be an http or https URL"), "{text}");
    }
}

#[cfg(test)]
mod duration_bounds {
    use super::*;

    /// The default config plus one entry in every list whose entries hold durations, so that
    /// every duration key of the schema appears.
    fn every_section() -> Config {
        let mut c = Config::default();
        c.agent.push.url = "http://127.0.0.1:8428/api/v1/write".into();
        c.agent.engines.push(agent::EngineConfig {
            name: "e".into(),
            url: "http://127.0.0.1:8000/metrics".into(),
            ..Default::default()
        });
        c.agent
            .logs
            .push(agent::LogFileConfig { path: "/var/log/e.log".into(), ..Default::default() });
        c.agent.peers.push(agent::PeerConfig {
            name: "p".into(),
            address: "10.0.0.2:22".into(),
            ..Default::default()
        });
        c.gateway.first_token_timeout = Some(Duration::from_secs(10));
        c.gateway.pools.push(gateway::PoolConfig {
            name: "blue".into(),
            first_token_timeout: Some(Duration::from_secs(5)),
            upstreams: vec!["http://127.0.0.1:8000".into()],
            ..Default::default()
        });
        c.gateway.faults.rules.push(gateway::FaultRule {
            endpoint: "/v1/chat/completions".into(),
            ..Default::default()
        });
        c
    }

    /// Paths (`agent.engines[0].timeout_ms`) of every integer whose key ends in `_ms` or
    /// `_secs`, with the TOML value to rewrite.
    fn duration_keys(value: &toml::Value, path: String, out: &mut Vec<String>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let at = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    let is_duration = k.ends_with("_ms") || k.ends_with("_secs");
                    match v {
                        toml::Value::Integer(_) if is_duration => out.push(at),
                        toml::Value::Array(a) if is_duration && !a.is_empty() => {
                            if matches!(a[0], toml::Value::Integer(_)) {
                                out.push(format!("{at}[0]"));
                            }
                        }
                        _ => duration_keys(v, at, out),
                    }
                }
            }
            toml::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    duration_keys(v, format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }

    fn set(value: &mut toml::Value, path: &str, to: i64) {
        let mut at = value;
        for part in path.split('.') {
            let (key, index) = match part.split_once('[') {
                Some((k, i)) => (k, Some(i.trim_end_matches(']').parse::<usize>().unwrap())),
                None => (part, None),
            };
            at = at.get_mut(key).unwrap();
            if let Some(i) = index {
                at = at.get_mut(i).unwrap();
            }
        }
        *at = toml::Value::Integer(to);
    }

    /// Every duration key is bounded: a value that would hang a loop or overflow an `Instant`
    /// (here i64::MAX, the largest integer TOML holds) is rejected by `config check`, and the
    /// problem names the key.
    #[test]
    fn absurd_durations_are_rejected_naming_the_key() {
        let config = every_section();
        config.validate().unwrap();
        let value = toml::Value::try_from(&config).unwrap();
        let mut keys = Vec::new();
        duration_keys(&value, String::new(), &mut keys);
        assert!(keys.len() >= 50, "found only {} duration keys: {keys:?}", keys.len());
        let mut unbounded = Vec::new();
        for key in &keys {
            let mut v = value.clone();
            set(&mut v, key, i64::MAX);
            let parsed: Config = v.try_into().unwrap_or_else(|e| panic!("{key}: {e}"));
            match parsed.validate() {
                Err(ConfigError::Invalid(p)) if p.0.iter().any(|p| p.path == *key) => {}
                other => unbounded.push(format!("{key}: {other:?}")),
            }
        }
        assert!(unbounded.is_empty(), "durations accepted at i64::MAX:\n{}", unbounded.join("\n"));
    }

    #[test]
    fn duration_problems_speak_the_key_unit() {
        let mut p = Problems::default();
        let root = Path::root("x");
        p.positive_duration(&root.field("timeout_ms"), Duration::ZERO, duration::MAX_TIMEOUT);
        p.positive_duration(
            &root.field("timeout_ms"),
            Duration::from_secs(7200),
            duration::MAX_TIMEOUT,
        );
        p.duration(
            &root.field("window_secs"),
            Duration::from_secs(10),
            Duration::from_secs(300),
            Duration::from_secs(600),
        );
        p.positive_duration(&root.field("ok_secs"), Duration::from_secs(1), duration::MAX_TIMEOUT);
        let text = p.to_string();
        assert_eq!(p.0.len(), 3, "{text}");
        assert!(text.contains("x.timeout_ms: must be greater than 0, got 0"), "{text}");
        assert!(
            text.contains("x.timeout_ms: must be between 1 and 3600000, got 7200000"),
            "{text}"
        );
        assert!(text.contains("x.window_secs: must be between 300 and 600, got 10"), "{text}");
    }
}

#[cfg(test)]
mod drift {
    /// `deepwatch.example.toml` at the repository root must be what `deepwatch config example`
    /// prints. Regenerate with `DEEPWATCH_BLESS=1 cargo test -p deepwatch-core drift`.
    #[test]
    fn committed_example_matches_generator() {
        let committed = include_str!("../../../../deepwatch.example.toml");
        let generated = super::example();
        if std::env::var_os("DEEPWATCH_BLESS").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deepwatch.example.toml");
            std::fs::write(path, &generated).unwrap();
            return;
        }
        if committed != generated {
            panic!(
                "deepwatch.example.toml drifted from `deepwatch config example`; regenerate it with\n  DEEPWATCH_BLESS=1 cargo test -p deepwatch-core drift\n--- generated ---\n{generated}"
            );
        }
    }
}

#[cfg(test)]
mod defaults_agree {
    use super::Config;

    /// The default scrape targets of the rules spec are where the default agent, gateway admin
    /// listener and analyzer listen, so `deepwatch rules` with no config scrapes a default stack.
    #[test]
    fn rules_targets_match_component_listen_defaults() {
        let c = Config::default();
        assert_eq!(c.rules.targets.agents, vec![c.agent.listen.clone()]);
        assert_eq!(c.rules.targets.gateways, vec![c.gateway.admin_listen.clone()]);
        assert_eq!(c.rules.targets.analyzer, vec![c.analyzer.listen.clone()]);
        assert!(c.rules.receivers.analyzer_webhook_url.contains(&c.analyzer.listen));
    }
}
