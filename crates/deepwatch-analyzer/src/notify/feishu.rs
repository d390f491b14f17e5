//! Feishu / Lark (飞书) custom bot: `POST https://open.feishu.cn/open-apis/bot/v2/hook/<token>`.
//! With "签名校验" on, the body carries `timestamp` (Unix seconds, as a string) and `sign`:
//! base64 of HMAC-SHA256 keyed with "timestamp\nsecret" over an empty message. Markdown goes as
//! an interactive card (`lark_md`), text as `msg_type: text`. Answers `{"code": 0, ...}` (older
//! deployments `{"StatusCode": 0}`); 19021 is a bad signature, 11232 a frequency limit.

use super::template::{truncate_bytes, Message};
use super::{Channel, Mentions, ServiceError};
use base64::Engine as _;
use deepwatch_core::config::notify::{ChannelKind, MessageFormat};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Feishu refuses request bodies over 20 KB.
pub const LIMIT: usize = 18_000;

/// base64(HMAC-SHA256(key = "{timestamp}\n{secret}", message = "")).
pub fn sign(timestamp_secs: i64, secret: &str) -> String {
    let key = format!("{timestamp_secs}\n{secret}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("hmac takes any key");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub struct Feishu {
    pub url: url::Url,
    pub secret: String,
    pub format: MessageFormat,
    pub mentions: Mentions,
}

impl Channel for Feishu {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Feishu
    }

    fn request(&self, message: &Message, now_unix_ms: i64) -> (url::Url, Value) {
        let at_all = message.firing && self.mentions.all;
        let mut body = match self.format {
            MessageFormat::Markdown => {
                let mut md = message.markdown.clone();
                if at_all {
                    md.push_str("\n<at id=all></at>");
                }
                let template = if message.firing { "red" } else { "green" };
                json!({"msg_type": "interactive", "card": {
                    "config": {"wide_screen_mode": true},
                    "header": {"title": {"tag": "plain_text", "content": message.title}, "template": template},
                    "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": truncate_bytes(&md, LIMIT)}}]
                }})
            }
            MessageFormat::Text => {
                let mut text = message.text.clone();
                if at_all {
                    text.push_str("\n<at user_id=\"all\">所有人</at>");
                }
                json!({"msg_type": "text", "content": {"text": truncate_bytes(&text, LIMIT)}})
            }
        };
        if !self.secret.is_empty() {
            let ts = now_unix_ms.div_euclid(1000);
            body["timestamp"] = json!(ts.to_string());
            body["sign"] = json!(sign(ts, &self.secret));
        }
        (self.url.clone(), body)
    }

    fn check(&self, answer: &Value) -> Result<(), ServiceError> {
        let code = answer
            .get("code")
            .or_else(|| answer.get("StatusCode"))
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        if code == 0 {
            return Ok(());
        }
        let message = answer
            .get("msg")
            .or_else(|| answer.get("StatusMessage"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Err(ServiceError { code, message, retryable: code == 11232 || code == -1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_uses_the_timestamped_secret_as_the_key() {
        // Python reference: base64(hmac.new(f"{ts}\n{secret}".encode(), b"", sha256).digest()).
        assert_eq!(sign(1_700_000_000, "SECabc"), "XprR1de+0SSBnwWyU/4k6x2TL+Q2SJlM5NNEdAv7MWg=");
        assert_eq!(
            sign(1_599_360_473, "test-secret"),
            "wSds2BzzFIIGf/WrhUO+NI1q/9j+FRJd3JNHKAq0NZY="
        );
        let f = Feishu {
            url: url::Url::parse("https://open.feishu.cn/open-apis/bot/v2/hook/x").unwrap(),
            secret: "SECabc".into(),
            format: MessageFormat::Text,
            mentions: Mentions::default(),
        };
        let m = Message { title: "t".into(), firing: true, markdown: "m".into(), text: "x".into() };
        let (_, body) = f.request(&m, 1_700_000_000_999);
        assert_eq!(body["timestamp"], "1700000000");
        assert_eq!(body["sign"], "XprR1de+0SSBnwWyU/4k6x2TL+Q2SJlM5NNEdAv7MWg=");
        assert_eq!(body["content"]["text"], "x");
    }
}
