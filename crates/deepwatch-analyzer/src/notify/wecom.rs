//! WeCom (企业微信) group robot: `POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`
//! with `{"msgtype": "markdown", "markdown": {"content": ...}}` (at most 4096 bytes) or
//! `{"msgtype": "text", "text": {"content", "mentioned_list", "mentioned_mobile_list"}}` (at
//! most 2048 bytes). Not signed: the key in the URL is the credential. Answers
//! `{"errcode": 0, "errmsg": "ok"}`; 45009 means the robot's 20 messages a minute are used up.

use super::template::{truncate_bytes, Message};
use super::{Channel, Mentions, ServiceError};
use deepwatch_core::config::notify::{ChannelKind, MessageFormat};
use serde_json::{json, Value};

pub const MARKDOWN_LIMIT: usize = 4096;
pub const TEXT_LIMIT: usize = 2048;

pub struct Wecom {
    pub url: url::Url,
    pub format: MessageFormat,
    pub mentions: Mentions,
}

impl Channel for Wecom {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Wecom
    }

    fn request(&self, message: &Message, _now_unix_ms: i64) -> (url::Url, Value) {
        let body = match self.format {
            MessageFormat::Markdown => {
                let color = if message.firing { "warning" } else { "info" };
                let content = format!(
                    "<font color=\"{color}\">**{}**</font>\n{}",
                    message.title, message.markdown
                );
                json!({"msgtype": "markdown", "markdown": {"content": truncate_bytes(&content, MARKDOWN_LIMIT)}})
            }
            MessageFormat::Text => {
                let mut text = json!({"content": truncate_bytes(&message.text, TEXT_LIMIT)});
                if message.firing {
                    if self.mentions.all {
                        text["mentioned_list"] = json!(["@all"]);
                    }
                    if !self.mentions.mobiles.is_empty() {
                        text["mentioned_mobile_list"] = json!(self.mentions.mobiles);
                    }
                }
                json!({"msgtype": "text", "text": text})
            }
        };
        (self.url.clone(), body)
    }

    fn check(&self, answer: &Value) -> Result<(), ServiceError> {
        let code = answer.get("errcode").and_then(Value::as_i64).unwrap_or(-1);
        if code == 0 {
            return Ok(());
        }
        Err(ServiceError {
            code,
            message: answer.get("errmsg").and_then(Value::as_str).unwrap_or("").to_string(),
            retryable: code == 45009 || code == -1,
        })
    }
}
