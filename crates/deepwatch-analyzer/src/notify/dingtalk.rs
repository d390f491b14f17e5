//! DingTalk (钉钉) custom robot: `POST https://oapi.dingtalk.com/robot/send?access_token=...`.
//! With "加签" on, the URL also carries `timestamp` (Unix milliseconds) and `sign`: HMAC-SHA256
//! keyed with the secret over "timestamp\nsecret", base64, URL-encoded. Body
//! `{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles", "isAtAll"}}`
//! (a mention only notifies when the text also contains `@<mobile>`). Answers
//! `{"errcode": 0, "errmsg": "ok"}`; 130101 means messages are sent too fast.

use super::template::{truncate_bytes, Message};
use super::{Channel, Mentions, ServiceError};
use base64::Engine as _;
use deepwatch_core::config::notify::{ChannelKind, MessageFormat};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// DingTalk accepts about 20 000 bytes of message text; keep a margin for the JSON around it.
pub const LIMIT: usize = 18_000;

/// The `sign` value before URL encoding: base64(HMAC-SHA256(secret, "{timestamp}\n{secret}")).
pub fn sign(timestamp_ms: i64, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub struct Dingtalk {
    pub url: url::Url,
    pub secret: String,
    pub format: MessageFormat,
    pub mentions: Mentions,
}

impl Channel for Dingtalk {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Dingtalk
    }

    fn request(&self, message: &Message, now_unix_ms: i64) -> (url::Url, Value) {
        let mut url = self.url.clone();
        if !self.secret.is_empty() {
            // query_pairs_mut encodes once: '+' -> %2B, '/' -> %2F, '=' -> %3D, as DingTalk expects.
            url.query_pairs_mut()
                .append_pair("timestamp", &now_unix_ms.to_string())
                .append_pair("sign", &sign(now_unix_ms, &self.secret));
        }
        let mention = message.firing;
        let at_line: String = if mention {
            self.mentions.mobiles.iter().map(|m| format!("@{m} ")).collect()
        } else {
            String::new()
        };
        let at = json!({
            "atMobiles": if mention { self.mentions.mobiles.clone() } else { Vec::new() },
            "isAtAll": mention && self.mentions.all,
        });
        let body = match self.format {
            MessageFormat::Markdown => {
                let text = format!("### {}\n{}\n{at_line}", message.title, message.markdown);
                json!({"msgtype": "markdown",
                       "markdown": {"title": message.title, "text": truncate_bytes(text.trim_end(), LIMIT)},
                       "at": at})
            }
            MessageFormat::Text => {
                let text = format!("{}\n{at_line}", message.text);
                json!({"msgtype": "text", "text": {"content": truncate_bytes(text.trim_end(), LIMIT)}, "at": at})
            }
        };
        (url, body)
    }

    fn check(&self, answer: &Value) -> Result<(), ServiceError> {
        let code = answer.get("errcode").and_then(Value::as_i64).unwrap_or(-1);
        if code == 0 {
            return Ok(());
        }
        Err(ServiceError {
            code,
            message: answer.get("errmsg").and_then(Value::as_str).unwrap_or("").to_string(),
            retryable: code == 130101 || code == -1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_documented_algorithm() {
        // Python reference (DingTalk's documented sample): hmac.new(secret, f"{ts}\n{secret}",
        // sha256), base64, quote_plus. The same vector is published by the `dingding` crate.
        assert_eq!(
            sign(1_700_000_000_000, "secret"),
            "OuzzJR5+xZ4/EYwqtNt6sMYZQMTa/HEGvc9miJe7XzY="
        );
        let d = Dingtalk {
            url: url::Url::parse("https://oapi.dingtalk.com/robot/send?access_token=t").unwrap(),
            secret: "secret".into(),
            format: MessageFormat::Markdown,
            mentions: Mentions::default(),
        };
        let m = Message { title: "t".into(), firing: true, markdown: "m".into(), text: "x".into() };
        let (url, _) = d.request(&m, 1_700_000_000_000);
        assert_eq!(
            url.query(),
            Some("access_token=t&timestamp=1700000000000&sign=OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D")
        );
    }
}
