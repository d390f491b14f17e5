//! One measured request: builds the body, sends it, reads the SSE stream as it arrives and
//! timestamps every chunk that carries generated content (answer or reasoning). Role-only and
//! empty deltas are not content, tokens come from `usage`, and the definitions follow
//! docs/definitions.md (TTFT to the first content chunk; TPOT = (t_last - t_first) /
//! (tokens - 1); ITL = gaps between successive content chunks).

use crate::rng::Rng;
use deepwatch_core::api::openai::{
    ChatRequest, CompletionRequest, Message, Prompt, ResponseBody, StreamOptions, Usage,
};
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// Which OpenAI endpoint to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Chat,
    Completions,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
        }
    }
}

/// What one request measured. Times are seconds; `start_secs` counts from the run's start.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub index: u64,
    pub start_secs: f64,
    /// HTTP status, when one arrived.
    pub status: Option<u16>,
    /// Error class when the request failed: `http_<status>`, `connect`, `timeout`,
    /// `incomplete` (the stream broke or ended without `[DONE]`), `stream_error`, `decode`.
    pub error: Option<String>,
    pub ttft_secs: Option<f64>,
    pub tpot_secs: Option<f64>,
    pub e2e_secs: f64,
    pub itl_secs: Vec<f64>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    /// Whether the token counts came from the server's `usage` (else: content chunks counted).
    pub tokens_from_usage: bool,
    pub requested_prompt_tokens: u64,
    pub requested_output_tokens: u64,
    /// Met every SLO given (false for failed requests).
    pub good: bool,
}

impl RequestRecord {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Everything a request needs that is the same for every request of a run.
pub struct RequestSpec {
    pub client: reqwest::Client,
    pub url: String,
    pub endpoint: Endpoint,
    pub model: String,
    pub stream: bool,
    pub api_key: Option<String>,
    pub timeout: Duration,
}

const WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta", "lambda", "zeta",
    "river", "stone", "cloud", "light", "metal", "paper", "glass", "field", "north", "south",
];

/// A prompt of about `tokens` tokens at 4 characters per token, different for every seed.
pub fn prompt_text(tokens: u64, rng: &mut Rng) -> String {
    let chars = (tokens * 4) as usize;
    let mut s = String::with_capacity(chars + 8);
    while s.len() < chars {
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        s.push(' ');
    }
    s.truncate(chars);
    s
}

fn body(spec: &RequestSpec, prompt: &str, max_tokens: u64) -> serde_json::Value {
    let stream_options = spec.stream.then_some(StreamOptions { include_usage: true });
    let body = match spec.endpoint {
        Endpoint::Chat => serde_json::to_value(ChatRequest {
            model: spec.model.clone(),
            messages: vec![Message::new("user", prompt)],
            stream: spec.stream,
            stream_options,
            max_tokens: Some(max_tokens),
            ..ChatRequest::default()
        }),
        Endpoint::Completions => serde_json::to_value(CompletionRequest {
            model: spec.model.clone(),
            prompt: Prompt::Text(prompt.to_string()),
            stream: spec.stream,
            stream_options,
            max_tokens: Some(max_tokens),
        }),
    };
    // Structs of strings and numbers always serialize.
    body.unwrap_or_default()
}

/// Timestamps and counts gathered while reading a response.
struct Reading {
    first: Option<Instant>,
    last: Option<Instant>,
    content_chunks: u64,
    itl: Vec<f64>,
    usage: Option<Usage>,
    done: bool,
    stream_error: bool,
}

impl Reading {
    fn new() -> Self {
        Reading {
            first: None,
            last: None,
            content_chunks: 0,
            itl: Vec::new(),
            usage: None,
            done: false,
            stream_error: false,
        }
    }

    fn content_at(&mut self, at: Instant) {
        if let Some(last) = self.last {
            self.itl.push((at - last).as_secs_f64());
        }
        self.first.get_or_insert(at);
        self.last = Some(at);
        self.content_chunks += 1;
    }

    /// One SSE line (without its newline).
    fn line(&mut self, line: &[u8], at: Instant) {
        let Some(data) = line.strip_prefix(b"data:") else { return };
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<ResponseBody<'_>>(data) else { return };
        if chunk.error_message().is_some() {
            self.stream_error = true;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if chunk.has_content() {
            self.content_at(at);
        }
    }
}

/// Sends one request and measures it. Never fails: failures are recorded in the result.
pub async fn execute(
    spec: &RequestSpec,
    index: u64,
    run_start: Instant,
    prompt: &str,
    prompt_tokens: u64,
    max_tokens: u64,
) -> RequestRecord {
    let start = Instant::now();
    let mut record = RequestRecord {
        index,
        start_secs: (start - run_start).as_secs_f64(),
        status: None,
        error: None,
        ttft_secs: None,
        tpot_secs: None,
        e2e_secs: 0.0,
        itl_secs: Vec::new(),
        prompt_tokens: None,
        completion_tokens: None,
        reasoning_tokens: None,
        tokens_from_usage: false,
        requested_prompt_tokens: prompt_tokens,
        requested_output_tokens: max_tokens,
        good: false,
    };
    let mut reading = Reading::new();
    let outcome = tokio::time::timeout(
        spec.timeout,
        send(spec, prompt, max_tokens, &mut record, &mut reading),
    )
    .await;
    let end = Instant::now();
    record.e2e_secs = (end - start).as_secs_f64();
    match outcome {
        Err(_) => record.error = Some("timeout".into()),
        Ok(Err(kind)) => record.error = Some(kind),
        Ok(Ok(())) => {}
    }
    if record.error.is_none() && spec.stream && !reading.done {
        record.error = Some("incomplete".into());
    }
    if record.error.is_none() && reading.stream_error {
        record.error = Some("stream_error".into());
    }
    finish(&mut record, reading, start, spec.stream);
    record
}

async fn send(
    spec: &RequestSpec,
    prompt: &str,
    max_tokens: u64,
    record: &mut RequestRecord,
    reading: &mut Reading,
) -> Result<(), String> {
    let mut request = spec.client.post(&spec.url).json(&body(spec, prompt, max_tokens));
    if let Some(key) = &spec.api_key {
        request = request.bearer_auth(key);
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| if e.is_connect() { "connect" } else { "incomplete" }.to_string())?;
    let status = response.status().as_u16();
    record.status = Some(status);
    if !response.status().is_success() {
        // Drain the error body so the connection can be reused.
        let _ = response.bytes().await;
        return Err(format!("http_{status}"));
    }
    if !spec.stream {
        let bytes = response.bytes().await.map_err(|_| "incomplete".to_string())?;
        let at = Instant::now();
        let body: ResponseBody<'_> =
            serde_json::from_slice(&bytes).map_err(|_| "decode".to_string())?;
        reading.usage = body.usage;
        if body.has_content() {
            reading.content_at(at);
        }
        reading.done = true;
        return Ok(());
    }
    let mut pending: Vec<u8> = Vec::new();
    while let Some(bytes) = response.chunk().await.map_err(|_| "incomplete".to_string())? {
        let at = Instant::now();
        pending.extend_from_slice(&bytes);
        let mut consumed = 0;
        while let Some(nl) = pending[consumed..].iter().position(|b| *b == b'\n') {
            let line = &pending[consumed..consumed + nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            reading.line(line, at);
            consumed += nl + 1;
        }
        pending.drain(..consumed);
    }
    Ok(())
}

fn finish(record: &mut RequestRecord, reading: Reading, start: Instant, stream: bool) {
    if let Some(usage) = reading.usage {
        record.tokens_from_usage = true;
        record.prompt_tokens = Some(usage.prompt_tokens);
        record.completion_tokens = Some(usage.completion_tokens);
        record.reasoning_tokens = usage.completion_tokens_details.and_then(|d| d.reasoning_tokens);
    } else if reading.content_chunks > 0 && stream {
        record.completion_tokens = Some(reading.content_chunks);
    }
    if let Some(first) = reading.first {
        record.ttft_secs = Some((first - start).as_secs_f64());
    }
    if let (Some(first), Some(last), Some(tokens)) =
        (reading.first, reading.last, record.completion_tokens)
    {
        if stream && tokens > 1 {
            record.tpot_secs = Some((last - first).as_secs_f64() / (tokens - 1) as f64);
        }
    }
    record.itl_secs = reading.itl;
}
