//! The OpenAI wire format as deepwatch speaks it, defined once: request bodies (built by the
//! load generator and the analyzer's probes, parsed by the simulator) and the response body
//! or stream chunk (read by the load generator and the probes). Only the fields deepwatch uses
//! are typed; others are ignored on reading and absent on writing. Response text borrows from
//! the input where it can, since the readers sit on per-chunk paths.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Prompt,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
}

/// One chat message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

impl Message {
    pub fn new(role: &str, text: impl Into<String>) -> Message {
        Message { role: role.to_string(), content: Some(Content::Text(text.into())) }
    }

    /// The message's text parts (one for plain text; none without content).
    pub fn texts(&self) -> Vec<&str> {
        match &self.content {
            None => Vec::new(),
            Some(Content::Text(t)) => vec![t.as_str()],
            Some(Content::Parts(parts)) => parts.iter().filter_map(|p| p.text.as_deref()).collect(),
        }
    }
}

/// A message's content: a string, or an array of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A completion prompt: text, several texts, or token ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u64>),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Ask for a last chunk with `usage` and `choices: []`.
    #[serde(default)]
    pub include_usage: bool,
}

/// A response body or one streamed chunk (`data: {...}`): both carry `choices` (with `delta`
/// when streamed, `message` when not, `text` for completions) and `usage`. An error arrives as
/// `error` (OpenAI) or as a top-level `object: "error"` with `message` (older vLLM).
#[derive(Debug, Default, Deserialize)]
pub struct ResponseBody<'a> {
    /// Absent (not empty) in error events and bare usage objects.
    #[serde(default, borrow)]
    pub choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    #[serde(default, borrow)]
    pub object: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
}

impl ResponseBody<'_> {
    /// The error message, when this body is an error.
    pub fn error_message(&self) -> Option<String> {
        if let Some(error) = &self.error {
            let message = error.get("message").and_then(|m| m.as_str());
            return Some(message.map(str::to_string).unwrap_or_else(|| error.to_string()));
        }
        (self.object.as_deref() == Some("error"))
            .then(|| self.message.as_deref().unwrap_or("").to_string())
    }

    pub fn choices(&self) -> &[Choice<'_>] {
        self.choices.as_deref().unwrap_or(&[])
    }

    /// Whether any choice carries generated text (answer or reasoning).
    pub fn has_content(&self) -> bool {
        self.choices().iter().any(Choice::has_content)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Choice<'a> {
    #[serde(default)]
    pub index: u32,
    /// Streamed chat.
    #[serde(default, borrow)]
    pub delta: Option<Delta<'a>>,
    /// Whole chat response.
    #[serde(default, borrow)]
    pub message: Option<Delta<'a>>,
    /// Completions.
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
}

impl Choice<'_> {
    pub fn has_content(&self) -> bool {
        [&self.delta, &self.message].into_iter().flatten().any(Delta::has_content)
            || self.text.as_deref().is_some_and(|t| !t.is_empty())
    }
}

/// The generated part of a chunk (`delta`) or of a whole answer (`message`).
#[derive(Debug, Default, Deserialize)]
pub struct Delta<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
    /// DeepSeek and vLLM's reasoning parsers.
    #[serde(default, borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// Newer vLLM and SGLang.
    #[serde(default, borrow)]
    pub reasoning: Option<Cow<'a, str>>,
    #[serde(default)]
    pub tool_calls: Option<IgnoredAny>,
}

impl Delta<'_> {
    pub fn has_content(&self) -> bool {
        [&self.content, &self.reasoning_content, &self.reasoning]
            .iter()
            .any(|f| f.as_deref().is_some_and(|s| !s.is_empty()))
    }
}

/// `usage` as OpenAI and vLLM send it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<UsageDetails>,
    /// OpenAI's and vLLM's (`--enable-prompt-tokens-details`) prompt breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptDetails {
    /// Prompt tokens served from the prefix cache.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// Reasoning tokens among the completion tokens; 0 when the engine does not say.
    pub fn reasoning_tokens(&self) -> u64 {
        self.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0)
    }

    /// Prompt tokens served from the prefix cache, at most `prompt_tokens`; 0 when the engine
    /// does not say.
    pub fn cached_prompt_tokens(&self) -> u64 {
        let cached = self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0);
        cached.min(self.prompt_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_chat_request_writes_only_what_is_set() {
        let req = ChatRequest {
            model: "m".into(),
            messages: vec![Message::new("user", "hi")],
            stream: true,
            stream_options: Some(StreamOptions { include_usage: true }),
            max_tokens: Some(8),
            ..ChatRequest::default()
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true,
                   "stream_options": {"include_usage": true}, "max_tokens": 8})
        );
    }

    #[test]
    fn requests_read_text_parts_and_every_prompt_form() {
        let req: ChatRequest = serde_json::from_value(json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}]},
            {"role": "assistant", "content": null}]}))
        .unwrap();
        let texts: Vec<Vec<&str>> = req.messages.iter().map(Message::texts).collect();
        assert_eq!(texts, vec![vec!["be brief"], vec!["a"], vec![]]);
        for (prompt, want) in [
            (json!("x"), Prompt::Text("x".into())),
            (json!(["x", "y"]), Prompt::Texts(vec!["x".into(), "y".into()])),
            (json!([1, 2]), Prompt::Tokens(vec![1, 2])),
        ] {
            let req: CompletionRequest =
                serde_json::from_value(json!({"model": "m", "prompt": prompt})).unwrap();
            assert_eq!(req.prompt, want);
        }
    }

    #[test]
    fn chunks_bodies_and_errors_read_as_engines_send_them() {
        let chunk: ResponseBody<'_> = serde_json::from_str(
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hm"},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert!(chunk.has_content() && chunk.error_message().is_none());
        let role_only: ResponseBody<'_> =
            serde_json::from_str(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#)
                .unwrap();
        assert!(!role_only.has_content());
        let usage: ResponseBody<'_> = serde_json::from_str(
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,
                "completion_tokens_details":{"reasoning_tokens":2}}}"#,
        )
        .unwrap();
        assert_eq!(usage.usage.unwrap().reasoning_tokens(), 2);
        assert_eq!(usage.usage.unwrap().cached_prompt_tokens(), 0);
        let cached: Usage = serde_json::from_str(
            r#"{"prompt_tokens":40,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":32}}"#,
        )
        .unwrap();
        assert_eq!(cached.cached_prompt_tokens(), 32);
        // An engine claiming more cached tokens than the prompt has is capped at the prompt.
        let over: Usage = serde_json::from_str(
            r#"{"prompt_tokens":4,"prompt_tokens_details":{"cached_tokens":16}}"#,
        )
        .unwrap();
        assert_eq!(over.cached_prompt_tokens(), 4);
        let whole: ResponseBody<'_> =
            serde_json::from_str(r#"{"choices":[{"message":{"content":"Paris"}}]}"#).unwrap();
        assert_eq!(whole.choices()[0].message.as_ref().unwrap().content.as_deref(), Some("Paris"));
        let openai: ResponseBody<'_> =
            serde_json::from_str(r#"{"error":{"message":"boom","type":"api_error"}}"#).unwrap();
        assert_eq!(openai.error_message().as_deref(), Some("boom"));
        let vllm: ResponseBody<'_> =
            serde_json::from_str(r#"{"object":"error","message":"old","code":400}"#).unwrap();
        assert_eq!(vllm.error_message().as_deref(), Some("old"));
    }
}
