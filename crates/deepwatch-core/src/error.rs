//! Error codes shared by every HTTP-facing component, the one place that maps them to HTTP
//! status codes, and the one JSON error body they answer with. Component error types implement
//! `HasErrorCode`; handlers call `http_status()` instead of picking numbers themselves and send
//! an `ErrorBody`.

use serde::{Deserialize, Serialize};

/// A deliberately small set of error classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed (bad JSON, missing field, wrong type).
    BadRequest,
    /// Missing or wrong credentials.
    Unauthorized,
    /// Credentials are fine but the action is not allowed (policy block).
    Forbidden,
    /// The thing asked for does not exist (unknown model, route, pool).
    NotFound,
    /// The request conflicts with current state (a rollout already running).
    Conflict,
    /// The request body is over the configured limit.
    PayloadTooLarge,
    /// Rate limit or load shedding.
    TooManyRequests,
    /// Our own bug or an unexpected state.
    Internal,
    /// An upstream answered with an error or garbage.
    BadGateway,
    /// No healthy upstream, or the component is degraded.
    Unavailable,
    /// An upstream did not answer in time.
    GatewayTimeout,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Internal => 500,
            ErrorCode::BadGateway => 502,
            ErrorCode::Unavailable => 503,
            ErrorCode::GatewayTimeout => 504,
        }
    }

    /// The OpenAI-style `error.type` string for API error bodies.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorCode::BadRequest | ErrorCode::NotFound | ErrorCode::PayloadTooLarge => {
                "invalid_request_error"
            }
            ErrorCode::Unauthorized => "authentication_error",
            ErrorCode::Forbidden => "permission_error",
            ErrorCode::Conflict => "conflict_error",
            ErrorCode::TooManyRequests => "rate_limit_error",
            ErrorCode::Internal
            | ErrorCode::BadGateway
            | ErrorCode::Unavailable
            | ErrorCode::GatewayTimeout => "api_error",
        }
    }
}

/// Implemented by error types that reach an HTTP response.
pub trait HasErrorCode {
    fn error_code(&self) -> ErrorCode;
}

/// The error body of every deepwatch HTTP API (gateway proxy and admin API, analyzer, simulator
/// admin API), in OpenAI's shape so SDKs raise their usual exception types:
/// `{"error": {"message": "unknown pool \"green\"", "type": "invalid_request_error",
/// "code": "pool_not_found"}}`. Clients read it leniently (absent fields default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorObject {
    pub message: String,
    /// `ErrorCode::openai_type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A stable snake_case reason (`pool_not_found`, `rate_limit_exceeded`).
    pub code: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, reason: &str, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                message: message.into(),
                kind: code.openai_type().to_string(),
                code: reason.to_string(),
            },
        }
    }

    /// The body as JSON text.
    pub fn to_json(&self) -> String {
        // A struct of strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_distinct() {
        use std::collections::HashSet;
        let all = [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::PayloadTooLarge,
            ErrorCode::TooManyRequests,
            ErrorCode::Internal,
            ErrorCode::BadGateway,
            ErrorCode::Unavailable,
            ErrorCode::GatewayTimeout,
        ];
        let statuses: HashSet<_> = all.iter().map(|c| c.http_status()).collect();
        assert_eq!(statuses.len(), all.len());
        assert_eq!(ErrorCode::PayloadTooLarge.http_status(), 413);
    }

    #[test]
    fn the_error_body_has_the_openai_shape() {
        let body = ErrorBody::new(ErrorCode::NotFound, "pool_not_found", "unknown pool \"green\"");
        let v: serde_json::Value = serde_json::from_str(&body.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "unknown pool \"green\"",
                "type": "invalid_request_error", "code": "pool_not_found"}})
        );
        let back: ErrorBody = serde_json::from_value(v).unwrap();
        assert_eq!(back, body);
    }
}
