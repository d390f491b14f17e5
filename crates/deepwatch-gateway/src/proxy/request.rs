//! What the gateway reads from a client request body, and the few rewrites it makes before
//! forwarding: ask for usage on streams (`stream_options.include_usage`), cap `max_tokens`
//! under degradation. The common case (no `stream_options` yet) is a byte splice, no re-encode.

use crate::error::ApiError;
use serde::Deserialize;

/// The fields the gateway needs from a request body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestInfo {
    pub model: String,
    pub stream: bool,
    /// The client asked for the usage chunk itself.
    pub client_wants_usage: bool,
    /// `stream_options` is present (then a splice cannot add it).
    pub has_stream_options: bool,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    model: Option<serde_json::Value>,
    #[serde(default)]
    stream: Option<serde_json::Value>,
    #[serde(default)]
    stream_options: Option<serde_json::Value>,
    #[serde(default)]
    max_tokens: Option<serde_json::Value>,
    #[serde(default)]
    max_completion_tokens: Option<serde_json::Value>,
}

fn json_error(e: &serde_json::Error) -> ApiError {
    ApiError::bad_request(format!(
        "request body is not valid JSON: {e} (line {}, column {})",
        e.line(),
        e.column()
    ))
    .with_reason("invalid_json")
}

/// Parses and checks a body of `/v1/chat/completions`, `/v1/completions` or `/v1/embeddings`.
pub fn parse(body: &[u8]) -> Result<RequestInfo, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(
            ApiError::bad_request("request body must be a JSON object").with_reason("invalid_json")
        );
    }
    let wire: Wire = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::bad_request("request body must be a JSON object").with_reason("invalid_json")
        } else {
            json_error(&e)
        }
    })?;
    let model = match wire.model {
        None | Some(serde_json::Value::Null) => {
            return Err(ApiError::bad_request("you must provide a model parameter")
                .with_reason("missing_model"))
        }
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        Some(_) => {
            return Err(ApiError::bad_request("model must be a non-empty string")
                .with_reason("invalid_model"))
        }
    };
    let stream = match wire.stream {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(other) => {
            return Err(ApiError::bad_request(format!("stream must be a boolean, got {other}"))
                .with_reason("invalid_stream"))
        }
    };
    let count = |v: Option<serde_json::Value>, name: &str| -> Result<Option<u64>, ApiError> {
        match v {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(other) => Err(ApiError::bad_request(format!(
                "{name} must be a non-negative integer, got {other}"
            ))),
        }
    };
    let client_wants_usage = wire
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    Ok(RequestInfo {
        model,
        stream,
        client_wants_usage,
        has_stream_options: wire.stream_options.as_ref().is_some_and(|v| !v.is_null()),
        max_tokens: count(wire.max_tokens, "max_tokens")?,
        max_completion_tokens: count(wire.max_completion_tokens, "max_completion_tokens")?,
    })
}

/// The body to send upstream: usage asked for on streams, `max_tokens` capped. `None` when the
/// original bytes can go as they are.
pub fn rewrite(body: &[u8], info: &RequestInfo, cap: Option<u64>) -> Option<Vec<u8>> {
    let add_usage = info.stream && !info.client_wants_usage;
    let over_cap = |v: Option<u64>| match (v, cap) {
        (Some(v), Some(c)) => v > c,
        _ => false,
    };
    let needs_cap = cap.is_some()
        && (over_cap(info.max_tokens)
            || over_cap(info.max_completion_tokens)
            || (info.max_tokens.is_none() && info.max_completion_tokens.is_none()));
    if !add_usage && !needs_cap {
        return None;
    }
    if !needs_cap && !info.has_stream_options {
        // Splice after the opening brace: valid JSON, and the key cannot be a duplicate.
        let open = body.iter().position(|b| *b == b'{')?;
        let mut out = Vec::with_capacity(body.len() + 40);
        out.extend_from_slice(&body[..=open]);
        out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
        let rest = &body[open + 1..];
        if rest.iter().any(|b| !b.is_ascii_whitespace() && *b != b'}') {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        return Some(out);
    }
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object_mut()?;
    if add_usage {
        let opts = obj
            .entry("stream_options")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if !opts.is_object() {
            *opts = serde_json::Value::Object(Default::default());
        }
        opts.as_object_mut()?.insert("include_usage".into(), true.into());
    }
    if let Some(cap) = cap {
        let mut capped = false;
        for key in ["max_tokens", "max_completion_tokens"] {
            if let Some(n) = obj.get(key).and_then(|x| x.as_u64()) {
                capped = true;
                if n > cap {
                    obj.insert(key.into(), cap.into());
                }
            }
        }
        if !capped {
            obj.insert("max_tokens".into(), cap.into());
        }
    }
    serde_json::to_vec(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_malformed_and_mistyped_fields_are_named() {
        let e = parse(b"{\"messages\":[]}").unwrap_err();
        assert_eq!((e.status(), e.reason), (400, "missing_model"));
        let e = parse(b"{\"model\":\"m\",").unwrap_err();
        assert_eq!(e.reason, "invalid_json");
        assert!(e.message.contains("line 1"), "{}", e.message);
        let e = parse(b"[1,2]").unwrap_err();
        assert!(e.message.contains("JSON object"), "{}", e.message);
        let e = parse(b"{\"model\":\"m\",\"stream\":\"yes\"}").unwrap_err();
        assert!(e.message.contains("stream must be a boolean"), "{}", e.message);
        let e = parse(b"{\"model\":\"m\",\"max_tokens\":-1}").unwrap_err();
        assert!(e.message.contains("max_tokens"), "{}", e.message);
    }

    #[test]
    fn usage_is_spliced_in_for_streams_that_did_not_ask() {
        let body = br#"{"model":"m","stream":true,"messages":[]}"#;
        let info = parse(body).unwrap();
        assert!(info.stream && !info.client_wants_usage);
        let out = rewrite(body, &info, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["model"], "m");
        // A client that asked keeps its body untouched.
        let asked = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
        assert!(rewrite(asked, &parse(asked).unwrap(), None).is_none());
        // One that said false gets it turned on (and the chunk stripped later).
        let no = br#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#;
        let out = rewrite(no, &parse(no).unwrap(), None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        // Non-streams are left alone.
        let plain = br#"{"model":"m"}"#;
        assert!(rewrite(plain, &parse(plain).unwrap(), None).is_none());
    }

    #[test]
    fn max_tokens_cap_lowers_or_sets_the_limit() {
        let body = br#"{"model":"m","max_tokens":1000}"#;
        let v: serde_json::Value =
            serde_json::from_slice(&rewrite(body, &parse(body).unwrap(), Some(256)).unwrap())
                .unwrap();
        assert_eq!(v["max_tokens"], 256);
        let small = br#"{"model":"m","max_tokens":10}"#;
        assert!(rewrite(small, &parse(small).unwrap(), Some(256)).is_none());
        let none = br#"{"model":"m"}"#;
        let v: serde_json::Value =
            serde_json::from_slice(&rewrite(none, &parse(none).unwrap(), Some(256)).unwrap())
                .unwrap();
        assert_eq!(v["max_tokens"], 256);
    }
}
