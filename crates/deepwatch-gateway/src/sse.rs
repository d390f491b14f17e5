//! A sans-IO scanner of OpenAI server-sent events. The stream layer feeds it upstream frames as
//! they arrive; it splits complete events (a blank line ends one), parses each `data:` payload
//! just enough to know whether it carries generated content, usage, a finish_reason or an
//! error, and hands back each event's raw bytes so they can be forwarded unchanged. Bytes of an
//! unfinished event wait for the rest of it; nothing else is held back.

use bytes::{Bytes, BytesMut};
use deepwatch_core::api::openai::ResponseBody;
/// `usage` as OpenAI and vLLM send it (the shared wire type).
pub use deepwatch_core::api::openai::Usage as WireUsage;
use std::borrow::Cow;

/// Token counts from an upstream's `usage` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    /// Of `prompt_tokens`, those served from the engine's prefix cache.
    pub cached_prompt_tokens: u64,
}

/// Which field of a choice a piece of generated text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextField {
    Content,
    Reasoning,
    /// `choices[].text` of the completions API.
    Text,
}

/// Generated text of one choice in one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub index: u32,
    pub field: TextField,
    pub text: String,
}

/// What one event says.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// Comment lines only (`: ping`), or an event without data.
    Comment,
    /// `data: [DONE]`.
    Done,
    Chunk(ChunkInfo),
    /// The upstream reported an error inside the stream; the message.
    Error(String),
    /// `data:` that is neither JSON nor `[DONE]`.
    Garbage,
}

/// The parts of a completion chunk the gateway measures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkInfo {
    /// Carries generated content (answer, reasoning, completion text or a tool call).
    pub content: bool,
    pub usage: Option<Usage>,
    /// `choices` is empty and `usage` is set: the chunk `include_usage` adds at the end.
    pub usage_only: bool,
    pub finish_reason: Option<String>,
    /// Generated text, filled only when the scanner asked for text.
    pub deltas: Vec<Delta>,
}

/// One complete event and its bytes as received.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub raw: Bytes,
    pub kind: EventKind,
}

/// Splits a byte stream into events.
#[derive(Debug, Default)]
pub struct SseScanner {
    buf: BytesMut,
    want_text: bool,
}

impl SseScanner {
    /// `want_text`: also collect the generated text (for the sensitive-data scanner or logs).
    pub fn new(want_text: bool) -> Self {
        SseScanner { buf: BytesMut::new(), want_text }
    }

    /// Feeds one frame; returns the events it completed, in order.
    pub fn push(&mut self, frame: &Bytes, out: &mut Vec<SseEvent>) {
        if self.buf.is_empty() {
            // Fast path: split the frame itself without copying.
            let mut start = 0;
            while let Some(end) = event_end(&frame[start..]) {
                let raw = frame.slice(start..start + end);
                out.push(SseEvent { kind: classify(&raw, self.want_text), raw });
                start += end;
            }
            if start < frame.len() {
                self.buf.extend_from_slice(&frame[start..]);
            }
            return;
        }
        self.buf.extend_from_slice(frame);
        while let Some(end) = event_end(&self.buf) {
            let raw = self.buf.split_to(end).freeze();
            out.push(SseEvent { kind: classify(&raw, self.want_text), raw });
        }
    }

    /// Bytes of an event that never ended (the upstream closed mid-event).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Length up to and including the blank line that ends the first event, if complete.
fn event_end(buf: &[u8]) -> Option<usize> {
    for i in memchr::memchr_iter(b'\n', buf) {
        match buf.get(i + 1) {
            Some(b'\n') => return Some(i + 2),
            Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
            _ => {}
        }
    }
    None
}

/// Concatenated `data:` lines of an event (per the SSE spec, joined by `\n`).
fn data_of(raw: &[u8]) -> Option<Cow<'_, [u8]>> {
    let mut data: Option<Cow<'_, [u8]>> = None;
    for line in raw.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(rest) = line.strip_prefix(b"data:") else { continue };
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        data = Some(match data {
            None => Cow::Borrowed(rest),
            Some(prev) => {
                let mut joined = prev.into_owned();
                joined.push(b'\n');
                joined.extend_from_slice(rest);
                Cow::Owned(joined)
            }
        });
    }
    data
}

impl From<&WireUsage> for Usage {
    fn from(u: &WireUsage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            reasoning_tokens: u.reasoning_tokens(),
            cached_prompt_tokens: u.cached_prompt_tokens(),
        }
    }
}

/// The message of an error object (`{"error":{"message":..}}` or vLLM's `{"object":"error"}`).
pub fn error_message(error: &serde_json::Value) -> String {
    error
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| error.to_string())
}

fn classify(raw: &[u8], want_text: bool) -> EventKind {
    let Some(data) = data_of(raw) else { return EventKind::Comment };
    let data = data.as_ref();
    if data.trim_ascii() == b"[DONE]" {
        return EventKind::Done;
    }
    if let Some(info) = fast_chunk(data, want_text) {
        return EventKind::Chunk(info);
    }
    let Ok(chunk) = serde_json::from_slice::<ResponseBody<'_>>(data) else {
        return EventKind::Garbage;
    };
    if let Some(err) = &chunk.error {
        return EventKind::Error(error_message(err));
    }
    if chunk.object.as_deref() == Some("error") {
        return EventKind::Error(chunk.message.map(|m| m.into_owned()).unwrap_or_default());
    }
    let Some(choices) = chunk.choices else {
        if let Some(u) = &chunk.usage {
            return EventKind::Chunk(ChunkInfo {
                usage: Some(u.into()),
                usage_only: true,
                ..ChunkInfo::default()
            });
        }
        return EventKind::Garbage;
    };
    let mut info = ChunkInfo {
        usage: chunk.usage.as_ref().map(Usage::from),
        usage_only: choices.is_empty() && chunk.usage.is_some(),
        ..ChunkInfo::default()
    };
    for choice in choices {
        if let Some(reason) = choice.finish_reason {
            info.finish_reason = Some(reason.into_owned());
        }
        let mut texts: [(TextField, Option<Cow<'_, str>>); 3] = [
            (TextField::Text, choice.text),
            (TextField::Content, None),
            (TextField::Reasoning, None),
        ];
        if let Some(delta) = choice.delta {
            info.content |= delta.tool_calls.is_some();
            texts[1].1 = delta.content;
            texts[2].1 = delta.reasoning_content.or(delta.reasoning);
        }
        for (field, text) in texts {
            let Some(text) = text else { continue };
            if text.is_empty() {
                continue;
            }
            info.content = true;
            if want_text {
                info.deltas.push(Delta { index: choice.index, field, text: text.into_owned() });
            }
        }
    }
    EventKind::Chunk(info)
}

/// Classifies the common compact content chunk (vLLM, SGLang, OpenAI) by one pass over its
/// quote characters instead of a JSON parse; `None` whenever it is not sure (usage,
/// finish_reason, errors, other spacing, escapes in collected text, several choices), and the
/// full parse decides. Raw `"` bytes only delimit strings in JSON (quotes inside text are
/// escaped), so the key patterns below cannot be forged by generated text.
fn fast_chunk(data: &[u8], want_text: bool) -> Option<ChunkInfo> {
    const UNSURE: [&[u8]; 4] = [b"\"usage\":{", b"\"error\"", b"\"finish_reason\":\"", b"\": "];
    const TEXT: [(&[u8], TextField); 4] = [
        (b"\"content\":\"", TextField::Content),
        (b"\"reasoning_content\":\"", TextField::Reasoning),
        (b"\"reasoning\":\"", TextField::Reasoning),
        (b"\"text\":\"", TextField::Text),
    ];
    let d = data.trim_ascii();
    if d.first() != Some(&b'{') || d.last() != Some(&b'}') {
        return None;
    }
    let (mut choices, mut indexes) = (false, 0);
    let mut info = ChunkInfo::default();
    let mut index = 0u32;
    for i in memchr::memchr_iter(b'"', d) {
        let rest = &d[i..];
        // Dispatch on the byte after the quote: most quotes start a key or value that no
        // pattern below can match, and are skipped without comparing.
        let Some(&next) = rest.get(1) else { break };
        match next {
            b':' if rest.get(2) == Some(&b' ') => return None,
            b'u' | b'e' | b'f' if UNSURE.iter().any(|p| rest.starts_with(p)) => return None,
            b'c' => choices |= rest.starts_with(b"\"choices\":[{"),
            b't' => info.content |= rest.starts_with(b"\"tool_calls\":[{"),
            b'i' if want_text && rest.starts_with(b"\"index\":") => {
                indexes += 1;
                let digits = &rest[8..];
                let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
                index = std::str::from_utf8(&digits[..n]).ok()?.parse().ok()?;
                continue;
            }
            _ => {}
        }
        if !matches!(next, b'c' | b'r' | b't') {
            continue;
        }
        for (key, field) in TEXT {
            if !rest.starts_with(key) || rest.get(key.len()) == Some(&b'"') {
                continue;
            }
            info.content = true;
            if want_text {
                let value = &rest[key.len()..];
                let end = value.iter().position(|b| *b == b'"')?;
                if value[..end].contains(&b'\\') {
                    return None;
                }
                let text = std::str::from_utf8(&value[..end]).ok()?.to_string();
                info.deltas.push(Delta { index: 0, field, text });
            }
        }
    }
    if !choices || indexes > 1 || info.deltas.len() > 1 {
        return None;
    }
    for d in &mut info.deltas {
        d.index = index;
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(frames: &[&str], want_text: bool) -> Vec<SseEvent> {
        let mut s = SseScanner::new(want_text);
        let mut out = Vec::new();
        for f in frames {
            s.push(&Bytes::copy_from_slice(f.as_bytes()), &mut out);
        }
        out
    }

    const ROLE: &str = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
    const HELLO: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\\\"lo\"},\"finish_reason\":null}]}\n\n";
    const STOP: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
    const USAGE: &str = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"total_tokens\":19,\"completion_tokens\":12,\"completion_tokens_details\":{\"reasoning_tokens\":4}}}\n\n";

    #[test]
    fn role_chunk_is_not_content_and_text_is_unescaped() {
        let ev = scan(&[ROLE, HELLO], true);
        assert_eq!(ev.len(), 2);
        let EventKind::Chunk(role) = &ev[0].kind else { panic!() };
        assert!(!role.content);
        let EventKind::Chunk(hello) = &ev[1].kind else { panic!() };
        assert!(hello.content);
        assert_eq!(hello.deltas[0].text, "Hel\"lo");
        assert_eq!(ev[1].raw, HELLO.as_bytes());
    }

    #[test]
    fn events_split_across_frames_and_crlf_are_reassembled() {
        let all = format!("{HELLO}{STOP}{USAGE}data: [DONE]\n\n");
        // Feed one byte at a time: every event still comes out whole and in order.
        let bytes: Vec<String> = all.chars().map(|c| c.to_string()).collect();
        let refs: Vec<&str> = bytes.iter().map(String::as_str).collect();
        let ev = scan(&refs, false);
        assert_eq!(ev.len(), 4);
        let EventKind::Chunk(stop) = &ev[1].kind else { panic!() };
        assert_eq!(stop.finish_reason.as_deref(), Some("stop"));
        let EventKind::Chunk(usage) = &ev[2].kind else { panic!() };
        assert!(usage.usage_only);
        assert_eq!(
            usage.usage,
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 12,
                reasoning_tokens: 4,
                cached_prompt_tokens: 0
            })
        );
        assert_eq!(ev[3].kind, EventKind::Done);
        let crlf = scan(&["data: [DONE]\r\n\r\n: ping\r\n\r\n"], false);
        assert_eq!(crlf[0].kind, EventKind::Done);
        assert_eq!(crlf[1].kind, EventKind::Comment);
    }

    #[test]
    fn reasoning_errors_and_garbage_are_told_apart() {
        let ev = scan(
            &[
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think\"}}]}\n\n",
                "data: {\"error\":{\"message\":\"boom\",\"type\":\"x\"}}\n\n",
                "data: {\"object\":\"error\",\"message\":\"vllm says no\",\"code\":400}\n\n",
                "data: <html>oops</html>\n\n",
            ],
            true,
        );
        let EventKind::Chunk(r) = &ev[0].kind else { panic!() };
        assert!(r.content);
        assert_eq!(r.deltas[0].field, TextField::Reasoning);
        assert_eq!(ev[1].kind, EventKind::Error("boom".into()));
        assert_eq!(ev[2].kind, EventKind::Error("vllm says no".into()));
        assert_eq!(ev[3].kind, EventKind::Garbage);
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_parse() {
        let chunks = [
            ROLE,
            HELLO,
            STOP,
            USAGE,
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hm\"},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"say \\\"content\\\":\\\"\\\" and \\\"error\\\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"text\":\" x\",\"finish_reason\":null}]}\n\n",
            "data: {\"choices\": [{\"index\": 0, \"delta\": {\"content\": \"spaced\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{}}]}\n\n",
            "data: {\"error\":{\"message\":\"boom\"}}\n\n",
        ];
        for c in chunks {
            let raw = c.as_bytes();
            let data = data_of(raw).unwrap();
            let full = {
                let Ok(chunk) = serde_json::from_slice::<ResponseBody<'_>>(&data) else {
                    panic!("{c}")
                };
                chunk.choices.map(|ch| ch.len())
            };
            let slow = classify_full(raw);
            if let Some(f) = fast_chunk(&data, false) {
                assert!(full.is_some());
                assert_eq!(EventKind::Chunk(f), slow, "fast path disagrees on {c}");
            }
            if let Some(f) = fast_chunk(&data, true) {
                assert_eq!(
                    EventKind::Chunk(f),
                    classify_with_text(raw),
                    "fast text disagrees on {c}"
                );
            }
        }
        // The compact content chunk takes the fast path, with its text.
        let hello = "data: {\"choices\":[{\"index\":2,\"delta\":{\"content\":\" world\"}}]}\n\n";
        let fast = fast_chunk(data_of(hello.as_bytes()).unwrap().as_ref(), true).unwrap();
        assert_eq!(
            fast.deltas,
            vec![Delta { index: 2, field: TextField::Content, text: " world".into() }]
        );
        assert!(fast_chunk(data_of(STOP.as_bytes()).unwrap().as_ref(), false).is_none());
        // Escaped text goes to the full parse.
        assert!(fast_chunk(data_of(HELLO.as_bytes()).unwrap().as_ref(), true).is_none());
    }

    /// The full parse, with text.
    fn classify_with_text(raw: &[u8]) -> EventKind {
        let data = data_of(raw).unwrap();
        let chunk: ResponseBody<'_> = serde_json::from_slice(&data).unwrap();
        let _ = chunk;
        // Force the slow path by parsing a copy with a space the fast path refuses.
        let spaced = String::from_utf8(data.to_vec()).unwrap().replacen("{", "{ ", 1);
        let spaced = spaced.replacen("\"choices\":", "\"choices\": ", 1);
        classify(format!("data: {spaced}\n\n").as_bytes(), true)
    }

    fn classify_full(raw: &[u8]) -> EventKind {
        // want_text = true never takes the fast path; drop the text to compare.
        match classify(raw, true) {
            EventKind::Chunk(mut info) => {
                info.deltas.clear();
                EventKind::Chunk(info)
            }
            other => other,
        }
    }

    #[test]
    fn unfinished_event_stays_pending() {
        let mut s = SseScanner::new(false);
        let mut out = Vec::new();
        s.push(&Bytes::from_static(b"data: {\"choices\":[]"), &mut out);
        assert!(out.is_empty());
        assert_eq!(s.pending(), 19);
    }
}
