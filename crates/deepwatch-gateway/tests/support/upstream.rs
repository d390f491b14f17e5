//! A test upstream speaking the OpenAI wire format exactly as vLLM does (SSE framing, role
//! chunk, finish chunk, usage chunk only with `include_usage`, `[DONE]`, error bodies), with
//! knobs for delays, errors, cut connections and garbage. Stopping it closes every connection,
//! so the port refuses connections like a crashed engine.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct Knobs {
    pub model: String,
    /// Words of the answer, one per content chunk.
    pub words: Vec<String>,
    pub reasoning_words: usize,
    pub header_delay_ms: u64,
    pub ttft_ms: u64,
    pub token_delay_ms: u64,
    /// Answer this status with a vLLM error body.
    pub fail_status: Option<u16>,
    /// Close the connection after this many content chunks (streams) or mid-body (non-streams).
    pub cut_after: Option<usize>,
    /// Send a non-JSON data event after the first chunk.
    pub garbage: bool,
    pub healthy: bool,
    /// Added to every chat/completions response.
    pub response_headers: Vec<(String, String)>,
    /// Close keep-alive connections idle this long (uvicorn's `timeout_keep_alive`).
    pub idle_close_ms: Option<u64>,
    /// Streams: hold the body open this long after `[DONE]` before ending it.
    pub linger_after_done_ms: u64,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            model: "m".into(),
            words: ["Hello", " there", ",", " friend", "."].iter().map(|s| s.to_string()).collect(),
            reasoning_words: 0,
            header_delay_ms: 0,
            ttft_ms: 0,
            token_delay_ms: 0,
            fail_status: None,
            cut_after: None,
            garbage: false,
            healthy: true,
            response_headers: Vec::new(),
            idle_close_ms: None,
            linger_after_done_ms: 0,
        }
    }
}

#[derive(Default)]
pub struct Seen {
    pub requests: AtomicU64,
    /// Generation probes from the gateway (not in `requests`).
    pub probes: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    pub bodies: Mutex<Vec<Value>>,
    pub headers: Mutex<Vec<HeaderMap>>,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub knobs: Arc<Mutex<Knobs>>,
    pub seen: Arc<Seen>,
    conns: Arc<Mutex<Option<JoinSet<()>>>>,
    accept: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Clone)]
struct AppState {
    knobs: Arc<Mutex<Knobs>>,
    seen: Arc<Seen>,
}

impl Upstream {
    pub async fn start(knobs: Knobs) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Upstream::serve(listener, Arc::new(Mutex::new(knobs)), Arc::new(Seen::default()))
    }

    fn serve(listener: TcpListener, knobs: Arc<Mutex<Knobs>>, seen: Arc<Seen>) -> Upstream {
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .route("/health", get(health))
            .with_state(AppState { knobs: knobs.clone(), seen: seen.clone() });
        let conns = Arc::new(Mutex::new(Some(JoinSet::new())));
        let conns2 = conns.clone();
        let (seen2, knobs2) = (seen.clone(), knobs.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                seen2.connections.fetch_add(1, Ordering::SeqCst);
                let idle_close = knobs2.lock().idle_close_ms;
                let app = app.clone();
                let mut guard = conns2.lock();
                let Some(set) = guard.as_mut() else { return };
                set.spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            tower::ServiceExt::oneshot(app.clone(), req)
                        },
                    );
                    let mut builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    if let Some(ms) = idle_close {
                        builder
                            .http1()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(Duration::from_millis(ms));
                    }
                    let _ =
                        builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                });
            }
        });
        Upstream { addr, knobs, seen, conns, accept: Some(accept) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, f: impl FnOnce(&mut Knobs)) {
        f(&mut self.knobs.lock());
    }

    pub fn requests(&self) -> u64 {
        self.seen.requests.load(Ordering::SeqCst)
    }

    /// Closes the listener and every connection: the port now refuses connections.
    pub async fn stop(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
            let _ = a.await;
        }
        if let Some(mut set) = self.conns.lock().take() {
            set.abort_all();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Serves again on the same port.
    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let mut again = Upstream::serve(listener, self.knobs.clone(), self.seen.clone());
        self.conns = std::mem::replace(&mut again.conns, Arc::new(Mutex::new(None)));
        self.accept = again.accept.take();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        if let Some(mut set) = self.conns.lock().take() {
            set.abort_all();
        }
    }
}

async fn health(State(s): State<AppState>) -> StatusCode {
    if s.knobs.lock().healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn models(State(s): State<AppState>) -> Response {
    let model = s.knobs.lock().model.clone();
    axum::Json(
        json!({"object": "list", "data": [{"id": model, "object": "model", "owned_by": "vllm"}]}),
    )
    .into_response()
}

async fn embeddings(State(s): State<AppState>, body: Bytes) -> Response {
    s.seen.requests.fetch_add(1, Ordering::SeqCst);
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.seen.bodies.lock().push(v);
    axum::Json(json!({
        "object": "list", "model": "m",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3}
    }))
    .into_response()
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let c = json!({
        "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    format!("data: {c}\n\n")
}

async fn chat(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let extra = s.knobs.lock().response_headers.clone();
    let mut resp = chat_inner(s, headers, body).await;
    for (k, v) in extra {
        resp.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}

async fn chat_inner(s: AppState, headers: HeaderMap, body: Bytes) -> Response {
    let probe = headers
        .get("user-agent")
        .is_some_and(|v| v.as_bytes() == b"deepwatch-gateway-generation-probe");
    if probe {
        // The gateway's generation probes are not client traffic.
        s.seen.probes.fetch_add(1, Ordering::SeqCst);
    } else {
        s.seen.requests.fetch_add(1, Ordering::SeqCst);
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !probe {
        s.seen.bodies.lock().push(req.clone());
        s.seen.headers.lock().push(headers);
    }
    let k = s.knobs.lock().clone();
    if k.header_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(k.header_delay_ms)).await;
    }
    if let Some(status) = k.fail_status {
        let body = json!({"error": {"message": format!("engine failed with {status}"), "type": "InternalServerError", "param": null, "code": status}});
        return (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    }
    let prompt_tokens = 7u64;
    let completion_tokens = (k.words.len() + k.reasoning_words) as u64;
    let usage = json!({
        "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": k.reasoning_words}
    });
    let stream = req.get("stream").and_then(|v| v.as_bool()).unwrap_or(false);
    if !stream {
        if k.ttft_ms > 0 {
            tokio::time::sleep(Duration::from_millis(k.ttft_ms)).await;
        }
        let content: String = k.words.concat();
        let full = json!({
            "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": k.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "tool_calls": []},
                         "logprobs": null, "finish_reason": "stop", "stop_reason": null}],
            "usage": usage
        });
        let text = full.to_string();
        if k.cut_after.is_some() {
            // Promise more bytes than we send, flush half, then close: a broken body.
            let half = Bytes::from(text[..text.len() / 2].to_string());
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
            tokio::spawn(async move {
                let _ = tx.send(Ok(half)).await;
                tokio::time::sleep(Duration::from_millis(30)).await;
                let _ = tx.send(Err(std::io::Error::other("engine crashed"))).await;
            });
            return Response::builder()
                .header("content-type", "application/json")
                .header("content-length", text.len().to_string())
                .body(Body::from_stream(tokio_stream_from(rx)))
                .unwrap();
        }
        return ([("content-type", "application/json")], text).into_response();
    }
    let include_usage =
        req.pointer("/stream_options/include_usage").and_then(|v| v.as_bool()).unwrap_or(false);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let model = k.model.clone();
        let send = |s: String| {
            let tx = tx.clone();
            async move { tx.send(Ok(Bytes::from(s))).await.is_ok() }
        };
        if !send(chunk(&model, json!({"role": "assistant", "content": ""}), None)).await {
            return;
        }
        if k.ttft_ms > 0 {
            tokio::time::sleep(Duration::from_millis(k.ttft_ms)).await;
        }
        let mut sent = 0usize;
        for i in 0..k.reasoning_words {
            if !send(chunk(&model, json!({"reasoning_content": format!("think{i} ")}), None)).await
            {
                return;
            }
        }
        for w in &k.words {
            if sent > 0 && k.token_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(k.token_delay_ms)).await;
            }
            if !send(chunk(&model, json!({"content": w}), None)).await {
                return;
            }
            sent += 1;
            if k.garbage && sent == 1 {
                let _ = send("data: <html>502 Bad Gateway</html>\n\n".to_string()).await;
            }
            if k.cut_after == Some(sent) {
                // What was sent reached the wire before the engine died.
                tokio::time::sleep(Duration::from_millis(30)).await;
                let _ = tx.send(Err(std::io::Error::other("engine crashed"))).await;
                return;
            }
        }
        let _ = send(chunk(&model, json!({"content": ""}), Some("stop"))).await;
        if include_usage {
            let c = json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1,
                           "model": model, "choices": [], "usage": usage});
            let _ = send(format!("data: {c}\n\n")).await;
        }
        let _ = send("data: [DONE]\n\n".to_string()).await;
        tokio::time::sleep(Duration::from_millis(k.linger_after_done_ms)).await;
    });
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .body(Body::from_stream(tokio_stream_from(rx)))
        .unwrap()
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
