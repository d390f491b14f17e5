//! The OpenAI-compatible API of the simulator: `/v1/chat/completions`, `/v1/completions`
//! (streaming SSE and not), `/v1/models`, plus `/metrics`, `/health` and `/version`. The wire
//! format is vLLM's: `data: {json}\n\n` chunks, the role chunk and the first token when the
//! first token is ready, `finish_reason` on the last token's chunk, a usage chunk with
//! `choices: []` when `stream_options.include_usage` is set, then `data: [DONE]`. Chunks are
//! written by hand into one buffer per batch of tokens; nothing is allocated per token.

use super::engine::{Engine, Generation, Plan, Step};
use super::metrics::FinishReason;
use super::tokens;
use crate::rng::Rng;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::{BufMut, BytesMut};
use deepwatch_core::api::openai::{ChatRequest, CompletionRequest, Prompt};
use deepwatch_core::clock::{Clock, TokioClock};
use deepwatch_core::expo::Format;
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct Api {
    engine: Arc<Engine>,
    /// The model name as a JSON string literal.
    model_json: Arc<str>,
    clock: TokioClock,
}

pub fn router(engine: Arc<Engine>) -> Router {
    let model_json: Arc<str> =
        serde_json::to_string(&engine.config.model).unwrap_or_else(|_| "\"\"".into()).into();
    let api = Api { engine, model_json, clock: TokioClock::new() };
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/version", get(version))
        .with_state(api)
}

/// An error of the engine API in vLLM's own shape (`type` a class name, `code` the status), as a
/// real engine behind the gateway answers; deepwatch's own APIs answer
/// `deepwatch_core::error::ErrorBody`.
pub fn error_response(status: u16, message: impl Into<String>, param: Option<&str>) -> Response {
    let kind = match status {
        400 => "BadRequestError",
        401 => "AuthenticationError",
        403 => "PermissionDeniedError",
        404 => "NotFoundError",
        429 => "RateLimitError",
        503 => "ServiceUnavailableError",
        s if s >= 500 => "InternalServerError",
        _ => "BadRequestError",
    };
    let body =
        json!({"error": {"message": message.into(), "type": kind, "param": param, "code": status}});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
}

/// What the handlers share once the body is parsed.
struct Parsed {
    kind: Kind,
    model: String,
    prompt_tokens: u64,
    prefix_blocks: Vec<u64>,
    max_tokens: Option<u64>,
    stream: bool,
    include_usage: bool,
}

async fn chat(State(api): State<Api>, body: Bytes) -> Response {
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error_response(400, format!("invalid request body: {e}"), None),
    };
    if req.messages.is_empty() {
        return error_response(400, "messages must not be empty", Some("messages"));
    }
    // A message without content still counts (as an empty text) in the chat template.
    let texts: Vec<&str> = req
        .messages
        .iter()
        .flat_map(|m| if m.content.is_none() { vec![""] } else { m.texts() })
        .collect();
    let parsed = Parsed {
        kind: Kind::Chat,
        prompt_tokens: tokens::chat_tokens(texts.iter().copied()),
        prefix_blocks: tokens::prefix_blocks(texts.iter().copied()),
        model: req.model,
        max_tokens: req.max_completion_tokens.or(req.max_tokens),
        stream: req.stream,
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
    };
    serve(api, parsed, &body).await
}

async fn completions(State(api): State<Api>, body: Bytes) -> Response {
    let req: CompletionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error_response(400, format!("invalid request body: {e}"), None),
    };
    let prompt_tokens = match &req.prompt {
        Prompt::Text(t) => tokens::text_tokens(t),
        Prompt::Texts(ts) => ts.iter().map(|t| tokens::text_tokens(t)).sum(),
        Prompt::Tokens(ids) => ids.len() as u64,
    }
    .max(1);
    let prefix_blocks = match &req.prompt {
        Prompt::Text(t) => tokens::prefix_blocks(std::iter::once(t.as_str())),
        Prompt::Texts(ts) => tokens::prefix_blocks(ts.iter().map(String::as_str)),
        Prompt::Tokens(_) => Vec::new(),
    };
    let parsed = Parsed {
        kind: Kind::Completion,
        prompt_tokens,
        prefix_blocks,
        model: req.model,
        max_tokens: req.max_tokens,
        stream: req.stream,
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
    };
    serve(api, parsed, &body).await
}

async fn serve(api: Api, req: Parsed, body: &[u8]) -> Response {
    let engine = api.engine.clone();
    let config = &engine.config;
    if req.model != config.model {
        let message = format!("The model `{}` does not exist.", req.model);
        return error_response(404, message, Some("model"));
    }
    let plan = match plan(&engine, &req, body) {
        Ok(plan) => plan,
        Err(message) => return error_response(400, message, None),
    };
    if let Some(status) = engine.roll_error() {
        if status >= 500 {
            engine.metrics.finished(FinishReason::Error);
        }
        return error_response(status, "injected fault: simulated engine error", None);
    }
    let number = engine.next_request_number();
    let id = match req.kind {
        Kind::Chat => format!("chatcmpl-{:016x}{number:08x}", plan.seed),
        Kind::Completion => format!("cmpl-{:016x}{number:08x}", plan.seed),
    };
    let writer = ChunkWriter::new(&id, req.kind, api.clock.unix_seconds() as u64, &api.model_json);
    let generation = Generation::new(engine.clone(), plan);
    let mut response = if req.stream {
        stream_response(generation, writer, req.include_usage)
    } else {
        whole_response(generation, writer, req.kind, &id, &api).await
    };
    if let Ok(v) = HeaderValue::from_str(&engine.config.model_version) {
        response.headers_mut().insert("x-model-version", v);
    }
    response
}

/// Decides lengths, the finish reason and the seed; errors are 400 messages as vLLM words them.
fn plan(engine: &Engine, req: &Parsed, body: &[u8]) -> Result<Plan, String> {
    let c = &engine.config;
    let mut rng = Rng::from_parts(c.seed, &[body]);
    let prompt = req.prompt_tokens;
    let (completion, finish) = match req.max_tokens {
        Some(0) => return Err("max_tokens must be at least 1, got 0.".into()),
        Some(n) => (n, FinishReason::Length),
        None => {
            let room = c.max_model_len.saturating_sub(prompt);
            let natural = rng.lognormal(c.output_tokens_median as f64, 0.5).round() as u64;
            (natural.clamp(1, room.max(1)), FinishReason::Stop)
        }
    };
    if prompt + completion > c.max_model_len {
        return Err(format!(
            "This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the messages, {} in the completion). Please reduce the length of the messages or completion.",
            c.max_model_len,
            prompt + completion,
            prompt,
            completion
        ));
    }
    let reasoning = if c.reasoning && req.kind == Kind::Chat && completion > 1 {
        ((completion as f64 * c.reasoning_ratio) as u64).min(completion - 1)
    } else {
        0
    };
    Ok(Plan {
        prompt_tokens: prompt,
        prefix_blocks: req.prefix_blocks.clone(),
        completion_tokens: completion,
        reasoning_tokens: reasoning,
        finish,
        seed: rng.next_u64(),
        wrong_answers: engine.faults.borrow().wrong_answers,
    })
}

/// Writes SSE chunks. `head` is everything of a chunk up to `"choices":`.
struct ChunkWriter {
    head: String,
    kind: Kind,
}

impl ChunkWriter {
    fn new(id: &str, kind: Kind, created: u64, model_json: &str) -> Self {
        let object = match kind {
            Kind::Chat => "chat.completion.chunk",
            Kind::Completion => "text_completion",
        };
        let head = format!(
            "data: {{\"id\":\"{id}\",\"object\":\"{object}\",\"created\":{created},\"model\":{model_json},"
        );
        ChunkWriter { head, kind }
    }

    fn role(&self, out: &mut BytesMut) {
        out.put_slice(self.head.as_bytes());
        out.put_slice(br#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#);
        out.put_slice(b"\n\n");
    }

    fn token(&self, out: &mut BytesMut, text: &str, reasoning: bool, finish: Option<FinishReason>) {
        out.put_slice(self.head.as_bytes());
        match (self.kind, reasoning) {
            (Kind::Chat, false) => out.put_slice(br#""choices":[{"index":0,"delta":{"content":""#),
            (Kind::Chat, true) => {
                out.put_slice(br#""choices":[{"index":0,"delta":{"reasoning_content":""#)
            }
            (Kind::Completion, _) => out.put_slice(br#""choices":[{"index":0,"text":""#),
        }
        out.put_slice(text.as_bytes());
        match self.kind {
            Kind::Chat => out.put_slice(br#""},"logprobs":null,"finish_reason":"#),
            Kind::Completion => out.put_slice(br#"","logprobs":null,"finish_reason":"#),
        }
        match finish {
            None => out.put_slice(b"null"),
            Some(reason) => {
                out.put_u8(b'"');
                out.put_slice(reason.as_str().as_bytes());
                out.put_slice(br#"","stop_reason":null"#);
            }
        }
        out.put_slice(b"}]}\n\n");
    }

    fn usage(&self, out: &mut BytesMut, generation: &Generation) {
        out.put_slice(self.head.as_bytes());
        let usage = usage_json(generation);
        out.put_slice(format!("\"choices\":[],\"usage\":{usage}}}\n\n").as_bytes());
    }
}

/// vLLM's usage object (as with `--enable-prompt-tokens-details`: cached prompt tokens too).
fn usage_json(generation: &Generation) -> serde_json::Value {
    let plan = &generation.plan;
    let completion = generation.emitted();
    json!({
        "prompt_tokens": plan.prompt_tokens,
        "total_tokens": plan.prompt_tokens + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": generation.cached_prompt_tokens()},
        "completion_tokens_details": {"reasoning_tokens": plan.reasoning_tokens.min(completion)},
    })
}

const DONE: &[u8] = b"data: [DONE]\n\n";

struct StreamState {
    generation: Generation,
    writer: ChunkWriter,
    include_usage: bool,
    done: bool,
}

impl StreamState {
    fn write_tokens(&self, out: &mut BytesMut, from: u64, to: u64) {
        let plan = &self.generation.plan;
        if from == 0 && self.writer.kind == Kind::Chat {
            self.writer.role(out);
        }
        for i in from..to {
            let reasoning = i < plan.reasoning_tokens;
            let text = tokens::token_text(plan.seed, i, reasoning, plan.wrong_answers);
            let finish = (i + 1 == plan.completion_tokens).then_some(plan.finish);
            self.writer.token(out, text, reasoning, finish);
        }
    }

    fn write_tail(&self, out: &mut BytesMut) {
        if self.include_usage {
            self.writer.usage(out, &self.generation);
        }
        out.put_slice(DONE);
    }
}

fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn stream_response(generation: Generation, writer: ChunkWriter, include_usage: bool) -> Response {
    let state = StreamState { generation, writer, include_usage, done: false };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.generation.next().await {
            Step::Tokens { from, to } => {
                let mut out = BytesMut::with_capacity(((to - from) as usize + 2) * 200);
                st.write_tokens(&mut out, from, to);
                if to == st.generation.plan.completion_tokens {
                    // Completes the request's metrics now rather than on the next poll.
                    let _ = st.generation.next().await;
                    st.write_tail(&mut out);
                    st.done = true;
                }
                Some((Ok::<Bytes, std::io::Error>(out.freeze()), st))
            }
            Step::Done => {
                let mut out = BytesMut::with_capacity(512);
                st.write_tail(&mut out);
                st.done = true;
                Some((Ok(out.freeze()), st))
            }
            Step::Cut => {
                st.done = true;
                // Let the tokens already written reach the socket before the abort.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Some((Err(std::io::Error::other("stream cut by fault")), st))
            }
        }
    });
    sse_response(Body::from_stream(stream))
}

async fn whole_response(
    mut generation: Generation,
    writer: ChunkWriter,
    kind: Kind,
    id: &str,
    api: &Api,
) -> Response {
    drop(writer);
    let mut content = String::new();
    let mut reasoning = String::new();
    loop {
        match generation.next().await {
            Step::Tokens { from, to } => {
                let plan = &generation.plan;
                for i in from..to {
                    let is_reasoning = i < plan.reasoning_tokens;
                    let text = tokens::token_text(plan.seed, i, is_reasoning, plan.wrong_answers);
                    if is_reasoning {
                        reasoning.push_str(text);
                    } else {
                        content.push_str(text);
                    }
                }
            }
            Step::Done => break,
            Step::Cut => {
                // Headers go out, then the connection is aborted mid-body.
                let cut = futures_util::stream::once(async {
                    Err::<Bytes, _>(std::io::Error::other("response cut by fault"))
                });
                let mut response = Response::new(Body::from_stream(cut));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                return response;
            }
        }
    }
    let plan = &generation.plan;
    let created = api.clock.unix_seconds() as u64;
    let usage = usage_json(&generation);
    let finish = plan.finish.as_str();
    let body = match kind {
        Kind::Chat => {
            let mut message = json!({"role": "assistant", "content": content, "tool_calls": []});
            if api.engine.config.reasoning {
                message["reasoning_content"] = json!(reasoning);
            }
            json!({
                "id": id, "object": "chat.completion", "created": created,
                "model": api.engine.config.model,
                "choices": [{"index": 0, "message": message, "logprobs": null,
                             "finish_reason": finish, "stop_reason": null}],
                "usage": usage, "prompt_logprobs": null,
            })
        }
        Kind::Completion => json!({
            "id": id, "object": "text_completion", "created": created,
            "model": api.engine.config.model,
            "choices": [{"index": 0, "text": content, "logprobs": null,
                         "finish_reason": finish, "stop_reason": null}],
            "usage": usage,
        }),
    };
    axum::Json(body).into_response()
}

async fn models(State(api): State<Api>) -> Response {
    let c = &api.engine.config;
    let created = api.clock.unix_seconds() as u64;
    axum::Json(json!({
        "object": "list",
        "data": [{
            "id": c.model, "object": "model", "created": created, "owned_by": "vllm",
            "root": c.model, "parent": null, "max_model_len": c.max_model_len,
            "permission": [],
        }],
    }))
    .into_response()
}

async fn metrics(State(api): State<Api>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let text = api.engine.metrics.render(format, api.engine.gauges());
    ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
}

/// Always 200, even while the engine hangs: that is what vLLM's `/health` does.
async fn health() -> StatusCode {
    StatusCode::OK
}

async fn version(State(api): State<Api>) -> Response {
    axum::Json(json!({"version": api.engine.config.model_version})).into_response()
}
