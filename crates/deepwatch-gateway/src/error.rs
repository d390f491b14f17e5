//! Errors that reach a client, on the proxy or the admin listener, and their one mapping to an
//! HTTP response: status from `deepwatch_core::error::ErrorCode`, body
//! `deepwatch_core::error::ErrorBody` (OpenAI's shape, so SDKs raise their usual exception types).

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use deepwatch_core::error::{ErrorBody, ErrorCode, HasErrorCode};
use http::{header, HeaderValue, StatusCode};

/// An error answered to a client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    /// The OpenAI `error.code` string (`model_not_found`, `rate_limit_exceeded`, ...).
    pub reason: &'static str,
    pub message: String,
    /// Status to answer instead of the one `code` maps to (an upstream's own status).
    pub status_override: Option<u16>,
}

impl ApiError {
    pub fn new(code: ErrorCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), status_override: None }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::BadRequest, "bad_request", message)
    }
    pub fn not_found(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::NotFound, reason, message)
    }
    pub fn conflict(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Conflict, reason, message)
    }
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }
    pub fn with_status(mut self, status: u16) -> Self {
        self.status_override = Some(status);
        self
    }

    pub fn status(&self) -> u16 {
        self.status_override.unwrap_or_else(|| self.code.http_status())
    }

    /// The JSON body, also used inside SSE error events.
    pub fn body_json(&self) -> String {
        ErrorBody::new(self.code, self.reason, self.message.as_str()).to_json()
    }

    /// An SSE event carrying this error, for streams that already started.
    pub fn sse_event(&self) -> Bytes {
        Bytes::from(format!("data: {}\n\n", self.body_json()))
    }
}

impl HasErrorCode for ApiError {
    fn error_code(&self) -> ErrorCode {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut resp = (status, self.body_json()).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_openai_shaped_and_status_follows_the_code() {
        let e = ApiError::new(ErrorCode::TooManyRequests, "rate_limit_exceeded", "slow \"down\"");
        assert_eq!(e.status(), 429);
        let v: serde_json::Value = serde_json::from_str(&e.body_json()).unwrap();
        assert_eq!(v["error"]["message"], "slow \"down\"");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(e.clone().with_status(503).status(), 503);
        assert!(e.sse_event().starts_with(b"data: {\"error\""));
    }
}
