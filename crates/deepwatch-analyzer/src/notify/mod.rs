//! The notification bridge: Alertmanager 0.25 cannot post custom bodies, so it posts its
//! webhook payload to `POST /notify/{channel}` and the bridge renders a Chinese or English
//! message (`template.rs`) and delivers it the way the chat service wants, signing it where the
//! service requires (`wecom.rs`, `dingtalk.rs`, `feishu.rs`: one `Channel` each). Delivery is
//! synchronous with a timeout, so a failure answers 5xx and Alertmanager retries it.

pub mod dingtalk;
pub mod feishu;
pub mod template;
pub mod wecom;

use crate::webhook::{AlertStatus, Payload};
use deepwatch_core::catalog::analyzer::NOTIFICATIONS;
use deepwatch_core::clock::SharedClock;
use deepwatch_core::config::notify::{ChannelConfig, ChannelKind, NotifyConfig};
use deepwatch_core::error::{ErrorCode, HasErrorCode};
use deepwatch_core::expo::MetricSink;
use deepwatch_core::metrics::{CounterVec, Encode};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use template::{Message, RenderOptions};
use tokio::time::Instant;

/// Who a firing message mentions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mentions {
    pub all: bool,
    pub mobiles: Vec<String>,
}

/// A chat service's refusal, from its JSON answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceError {
    pub code: i64,
    pub message: String,
    /// Rate limiting and the like: worth retrying later.
    pub retryable: bool,
}

/// One kind of chat target: how a message becomes a request and how the answer reads.
pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;
    /// URL (signed where the service wants it) and JSON body.
    fn request(&self, message: &Message, now_unix_ms: i64) -> (url::Url, Value);
    fn check(&self, answer: &Value) -> Result<(), ServiceError>;
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no notify channel is named {0:?}")]
    UnknownChannel(String),
    #[error("channel {channel} sent {max_per_minute} messages in the last minute; retry later")]
    RateLimited { channel: String, max_per_minute: u32, retry_after: Duration },
    #[error("channel {channel}: {message}")]
    Transport { channel: String, message: String },
    #[error("channel {channel}: {kind} answered HTTP {status}: {body}")]
    Status { channel: String, kind: &'static str, status: u16, body: String },
    #[error("channel {channel}: {kind} refused the message: errcode {code} {message}")]
    Service { channel: String, kind: &'static str, code: i64, message: String, retryable: bool },
    #[error("notify.channels[{index}] ({name}): {message}")]
    Config { index: usize, name: String, message: String },
    #[error("notify.tls: {0}")]
    Tls(String),
}

impl NotifyError {
    /// The `error.code` reason the bridge endpoint answers with.
    pub fn reason(&self) -> &'static str {
        match self {
            NotifyError::UnknownChannel(_) => "unknown_channel",
            NotifyError::RateLimited { .. } => "rate_limited",
            _ => "delivery_failed",
        }
    }
}

/// The status the bridge endpoint answers Alertmanager with (5xx: it retries).
impl HasErrorCode for NotifyError {
    fn error_code(&self) -> ErrorCode {
        match self {
            NotifyError::UnknownChannel(_) => ErrorCode::NotFound,
            NotifyError::RateLimited { .. } => ErrorCode::Unavailable,
            NotifyError::Service { retryable: true, .. } => ErrorCode::Unavailable,
            _ => ErrorCode::BadGateway,
        }
    }
}

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Only resolved alerts and the channel does not send those.
    Skipped(&'static str),
}

struct Entry {
    name: String,
    config: ChannelConfig,
    channel: Box<dyn Channel>,
    sent: Mutex<VecDeque<Instant>>,
}

/// Every configured channel, ready to deliver.
pub struct Bridge {
    channels: HashMap<String, Entry>,
    defaults: RenderOptions,
    http: reqwest::Client,
    clock: SharedClock,
    outcomes: CounterVec,
}

fn read_secret(c: &ChannelConfig) -> Result<String, String> {
    if c.secret_file.is_empty() {
        return Ok(c.secret.clone());
    }
    std::fs::read_to_string(&c.secret_file)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("cannot read secret_file {}: {e}", c.secret_file))
}

/// Builds the channel for one config entry: the registry, one line per kind.
pub fn build_channel(c: &ChannelConfig) -> Result<Box<dyn Channel>, String> {
    let url = url::Url::parse(&c.url).map_err(|e| format!("url: {e}"))?;
    let secret = read_secret(c)?;
    let mentions = Mentions { all: c.mention_all, mobiles: c.mention_mobiles.clone() };
    let format = c.format;
    Ok(match c.kind {
        ChannelKind::Wecom => Box::new(wecom::Wecom { url, format, mentions }),
        ChannelKind::Dingtalk => Box::new(dingtalk::Dingtalk { url, secret, format, mentions }),
        ChannelKind::Feishu => Box::new(feishu::Feishu { url, secret, format, mentions }),
    })
}

impl Bridge {
    pub fn new(
        config: &NotifyConfig,
        report_base: Option<String>,
        clock: SharedClock,
    ) -> Result<Bridge, NotifyError> {
        let config_error = |index: usize, name: &str, message: String| NotifyError::Config {
            index,
            name: name.to_string(),
            message,
        };
        let mut channels = HashMap::new();
        for (i, c) in config.channels.iter().enumerate() {
            let channel = build_channel(c).map_err(|m| config_error(i, &c.name, m))?;
            channels.insert(
                c.name.clone(),
                Entry { name: c.name.clone(), config: c.clone(), channel, sent: Mutex::default() },
            );
        }
        let http = deepwatch_core::http::client_builder(&config.tls)
            .map_err(|e| NotifyError::Tls(e.to_string()))?
            .timeout(config.timeout)
            .build()
            .map_err(|e| NotifyError::Tls(deepwatch_core::http::chain(&e)))?;
        let outcomes = CounterVec::new(&NOTIFICATIONS);
        for c in &config.channels {
            for outcome in ["ok", "failed"] {
                outcomes.with(&[c.name.as_str(), outcome]);
            }
        }
        Ok(Bridge {
            channels,
            defaults: RenderOptions {
                language: config.language,
                utc_offset_secs: config.utc_offset_seconds().unwrap_or(0),
                max_alerts: config.max_alerts,
                report_base,
            },
            http,
            clock,
            outcomes,
        })
    }

    pub fn channel_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.channels.keys().map(String::as_str).collect();
        names.sort();
        names
    }

    pub fn counter(&self) -> &CounterVec {
        &self.outcomes
    }

    /// Renders the payload for the channel, as it would be sent.
    pub fn render(&self, name: &str, payload: &Payload) -> Result<Message, NotifyError> {
        let entry =
            self.channels.get(name).ok_or_else(|| NotifyError::UnknownChannel(name.into()))?;
        let mut opts = self.defaults.clone();
        if let Some(language) = entry.config.language {
            opts.language = language;
        }
        Ok(template::render(payload, &opts))
    }

    /// Renders, signs and posts the payload to the named channel.
    pub async fn deliver(&self, name: &str, payload: &Payload) -> Result<Delivery, NotifyError> {
        let entry =
            self.channels.get(name).ok_or_else(|| NotifyError::UnknownChannel(name.into()))?;
        let all_resolved = payload.alerts.iter().all(|a| a.status == AlertStatus::Resolved);
        if all_resolved && !entry.config.send_resolved {
            self.outcomes.inc(&[name, "skipped"]);
            return Ok(Delivery::Skipped("resolved alerts are not sent to this channel"));
        }
        if let Err(e) = self.admit(entry) {
            self.outcomes.inc(&[name, "rate_limited"]);
            return Err(e);
        }
        let message = self.render(name, payload)?;
        let result = self.post(entry, &message).await;
        self.outcomes.inc(&[name, if result.is_ok() { "ok" } else { "failed" }]);
        if let Err(e) = &result {
            tracing::warn!(channel = name, error = %e, "notification not delivered");
        }
        result.map(|()| Delivery::Sent)
    }

    /// A sliding one-minute window per channel, on the injectable clock.
    fn admit(&self, entry: &Entry) -> Result<(), NotifyError> {
        let now = self.clock.now();
        let minute = Duration::from_secs(60);
        let mut sent = entry.sent.lock();
        while sent.front().is_some_and(|t| now.saturating_duration_since(*t) >= minute) {
            sent.pop_front();
        }
        if sent.len() >= entry.config.max_per_minute as usize {
            let oldest = sent.front().copied().unwrap_or(now);
            return Err(NotifyError::RateLimited {
                channel: entry.name.clone(),
                max_per_minute: entry.config.max_per_minute,
                retry_after: minute.saturating_sub(now.saturating_duration_since(oldest)),
            });
        }
        sent.push_back(now);
        Ok(())
    }

    async fn post(&self, entry: &Entry, message: &Message) -> Result<(), NotifyError> {
        let kind = entry.channel.kind().as_str();
        let channel = entry.name.clone();
        let (url, body) = entry.channel.request(message, self.clock.unix_millis());
        // The robot URL carries its key or token: the error keeps the cause, not the URL.
        let transport = |e: reqwest::Error| NotifyError::Transport {
            channel: channel.clone(),
            message: deepwatch_core::http::chain(&e.without_url()),
        };
        let resp = self.http.post(url).json(&body).send().await.map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        if !status.is_success() {
            let body = text.chars().take(300).collect();
            return Err(NotifyError::Status { channel, kind, status: status.as_u16(), body });
        }
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        entry.channel.check(&answer).map_err(|e| NotifyError::Service {
            channel,
            kind,
            code: e.code,
            message: e.message,
            retryable: e.retryable,
        })
    }
}

impl Encode for Bridge {
    fn encode(&self, sink: &mut MetricSink) {
        self.outcomes.encode(sink);
    }
}
