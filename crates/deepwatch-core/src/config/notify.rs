//! The `[notify]` section of `deepwatch.toml`: the notification bridge for chat targets that
//! Alertmanager 0.25 cannot reach natively (WeCom group robot, DingTalk and Feishu custom bots).
//! Alertmanager posts its webhook payload to `POST /notify/{channel}` on the analyzer daemon,
//! which renders a Chinese or English message and signs it the way each service requires.

use super::client::TlsConfig;
use super::{Path, Problems};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Language of the messages unless a channel says otherwise.
    pub language: Language,
    /// Offset of the times shown in messages, `+08:00` (China Standard Time) or `Z` for UTC.
    pub utc_offset: String,
    /// Time allowed for one delivery; a slower service counts as failed (Alertmanager retries).
    #[serde(rename = "timeout_secs", with = "crate::config::duration::secs")]
    pub timeout: Duration,
    /// Alerts listed in one message; the rest are summarised as "and N more".
    pub max_alerts: usize,
    pub channels: Vec<ChannelConfig>,
    /// TLS of the robot webhooks (all https): an extra CA for a corporate proxy or a private
    /// robot gateway, a client certificate.
    pub tls: TlsConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            language: Language::Zh,
            utc_offset: "+08:00".to_string(),
            timeout: Duration::from_secs(10),
            max_alerts: 10,
            channels: Vec::new(),
            tls: TlsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    Zh,
    En,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// WeCom (企业微信) group robot: `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`.
    #[default]
    Wecom,
    /// DingTalk (钉钉) custom robot: `https://oapi.dingtalk.com/robot/send?access_token=...`.
    Dingtalk,
    /// Feishu / Lark (飞书) custom bot: `https://open.feishu.cn/open-apis/bot/v2/hook/...`.
    Feishu,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Wecom => "wecom",
            ChannelKind::Dingtalk => "dingtalk",
            ChannelKind::Feishu => "feishu",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageFormat {
    #[default]
    Markdown,
    Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelConfig {
    /// The `{channel}` of `POST /notify/{channel}`; letters, digits, `_` and `-`.
    pub name: String,
    pub kind: ChannelKind,
    /// The robot's webhook URL, key or access token included.
    pub url: String,
    /// Signing secret (DingTalk "加签" `SEC...`, Feishu "签名校验"); empty when signing is off.
    pub secret: String,
    /// File whose trimmed content is the secret; wins over `secret`.
    pub secret_file: String,
    /// Overrides `[notify].language` for this channel.
    pub language: Option<Language>,
    pub format: MessageFormat,
    /// Also post when alerts resolve.
    pub send_resolved: bool,
    /// Mention everyone (`@all`) on firing messages.
    pub mention_all: bool,
    /// Mobile numbers to mention on firing messages (WeCom text, DingTalk).
    pub mention_mobiles: Vec<String>,
    /// The services throttle robots (WeCom: 20 messages a minute); beyond this the bridge
    /// answers 503 and Alertmanager retries later.
    pub max_per_minute: u32,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            name: String::new(),
            kind: ChannelKind::Wecom,
            url: String::new(),
            secret: String::new(),
            secret_file: String::new(),
            language: None,
            format: MessageFormat::Markdown,
            send_resolved: true,
            mention_all: false,
            mention_mobiles: Vec::new(),
            max_per_minute: 20,
        }
    }
}

impl NotifyConfig {
    /// Parses `utc_offset` into seconds east of UTC.
    pub fn utc_offset_seconds(&self) -> Result<i32, String> {
        parse_utc_offset(&self.utc_offset)
    }

    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        if let Err(e) = self.utc_offset_seconds() {
            problems.push(&path.field("utc_offset"), e);
        }
        problems.duration(
            &path.field("timeout_secs"),
            self.timeout,
            Duration::from_secs(1),
            Duration::from_secs(300),
        );
        problems.range(&path.field("max_alerts"), self.max_alerts, 1, 100);
        self.tls.validate(&path.field("tls"), problems);
        let mut names = HashSet::new();
        for (i, c) in self.channels.iter().enumerate() {
            let at = path.field("channels").index(i);
            let name_ok = !c.name.is_empty()
                && c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
            if !name_ok {
                problems.push(
                    &at.field("name"),
                    format!(
                        "use letters, digits, _ and - only (it is a URL path), got {:?}",
                        c.name
                    ),
                );
            } else if !names.insert(c.name.as_str()) {
                problems.push(&at.field("name"), format!("duplicate channel name {:?}", c.name));
            }
            problems.http_url(&at.field("url"), &c.url);
            c.validate_url_shape(&at.field("url"), problems);
            problems.range(&at.field("max_per_minute"), c.max_per_minute, 1, 10_000);
            if c.kind == ChannelKind::Wecom && (!c.secret.is_empty() || !c.secret_file.is_empty()) {
                problems.push(
                    &at.field("secret"),
                    "WeCom group robots are not signed; the key is in the url",
                );
            }
        }
    }
}

impl ChannelConfig {
    /// The credential each service expects in its URL, so a pasted wrong URL fails at start.
    fn validate_url_shape(&self, at: &Path, problems: &mut Problems) {
        let Ok(url) = url::Url::parse(&self.url) else { return };
        let has_query = |key: &str| url.query_pairs().any(|(k, v)| k == key && !v.is_empty());
        match self.kind {
            ChannelKind::Wecom if !has_query("key") => {
                problems.push(at, "a WeCom robot URL carries ?key=<robot key>")
            }
            ChannelKind::Dingtalk if !has_query("access_token") => {
                problems.push(at, "a DingTalk robot URL carries ?access_token=<token>")
            }
            ChannelKind::Feishu if !url.path().contains("/bot/v2/hook/") => {
                problems.push(at, "a Feishu bot URL looks like .../open-apis/bot/v2/hook/<token>")
            }
            _ => {}
        }
    }
}

/// `Z`, `+08:00`, `-05:30` into seconds east of UTC.
pub fn parse_utc_offset(text: &str) -> Result<i32, String> {
    if text == "Z" || text == "+00:00" {
        return Ok(0);
    }
    let bad = || format!("must be Z or an offset like +08:00, got {text:?}");
    let (sign, rest) = match text.split_at_checked(1) {
        Some(("+", rest)) => (1, rest),
        Some(("-", rest)) => (-1, rest),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 || rest.len() != 5 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// Commented default for this section, part of `deepwatch config example`.
pub const EXAMPLE: &str = r#"
[notify]
# Notification bridge: Alertmanager posts to http://<analyzer.listen>/notify/<channel name>
# (a webhook_configs receiver) and the daemon forwards a rendered message to the chat robot.
# Language of the messages: zh or en (a channel may override it).
language = "zh"
# Times in messages are shown at this offset (Z for UTC).
utc_offset = "+08:00"
# A delivery slower than this fails with 502, so Alertmanager retries it.
timeout_secs = 10
# Alerts listed per message; the rest are summarised.
max_alerts = 10
channels = []

# [[notify.channels]]
# name = "oncall-wecom"                    # POST /notify/oncall-wecom
# kind = "wecom"                           # wecom, dingtalk, feishu
# url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<robot key>"
# format = "markdown"                      # markdown or text
# send_resolved = true
# mention_all = false
# mention_mobiles = []
# max_per_minute = 20                      # WeCom allows 20 messages a minute per robot
#
# [[notify.channels]]
# name = "oncall-dingtalk"
# kind = "dingtalk"
# url = "https://oapi.dingtalk.com/robot/send?access_token=<token>"
# secret_file = "/etc/deepwatch/dingtalk.secret"   # the SEC... signing secret ("加签")
# language = "en"
#
# [[notify.channels]]
# name = "oncall-feishu"
# kind = "feishu"
# url = "https://open.feishu.cn/open-apis/bot/v2/hook/<token>"
# secret = ""                              # signing secret ("签名校验"), empty if off

# TLS towards the robots: the system roots are trusted, plus ca_file (a corporate TLS proxy, a
# private robot gateway); cert_file and key_file present a client certificate.
[notify.tls]
# ca_file = "/etc/deepwatch/ca.pem"
insecure_skip_verify = false
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_utc_offset("+08:00"), Ok(8 * 3600));
        assert_eq!(parse_utc_offset("-05:30"), Ok(-(5 * 3600 + 30 * 60)));
        assert_eq!(parse_utc_offset("Z"), Ok(0));
        assert!(parse_utc_offset("8").is_err());
        assert!(parse_utc_offset("+8:00").is_err());
        assert!(parse_utc_offset("+25:00").is_err());
    }

    #[test]
    fn every_bad_field_is_named_with_its_path() {
        let config = Config::from_toml_str(
            r#"
[notify]
utc_offset = "CST"
[[notify.channels]]
name = "on call"
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
secret = "x"
[[notify.channels]]
name = "d"
kind = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=t"
[[notify.channels]]
name = "d"
kind = "feishu"
url = "https://open.feishu.cn/hook"
max_per_minute = 0
"#,
        )
        .unwrap();
        let text = config.validate().unwrap_err().to_string();
        for expected in [
            "notify.utc_offset: must be Z or an offset like +08:00, got \"CST\"",
            "notify.channels[0].name: use letters, digits, _ and - only",
            "notify.channels[0].url: a WeCom robot URL carries ?key=<robot key>",
            "notify.channels[0].secret: WeCom group robots are not signed",
            "notify.channels[2].name: duplicate channel name \"d\"",
            "notify.channels[2].url: a Feishu bot URL looks like",
            "notify.channels[2].max_per_minute: must be between 1 and 10000, got 0",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("channels[1]"), "{text}");
    }
}
