//! `Authorization: Bearer <token>`, parsed one way by every listener (gateway proxy and admin
//! API, analyzer webhook, simulator admin API). Strict per RFC 6750 §2.1 and RFC 7235: the scheme
//! is matched case-insensitively, then one or more spaces, then a `b64token`
//! (`A-Z a-z 0-9 - . _ ~ + /`, then `=` padding only at the end); anything else is no token.

use http::header::AUTHORIZATION;
use http::HeaderMap;

/// The token of a `Bearer` credentials value, or `None` when the value is not one.
pub fn token(value: &str) -> Option<&str> {
    // Whitespace around a field value is not part of it (RFC 9110 §5.5).
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    is_b64token(token).then_some(token)
}

/// The bearer token of a request, or `None` when the header is absent, repeated, not visible
/// ASCII, or not `Bearer` credentials.
pub fn from_headers(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    token(value.to_str().ok()?)
}

/// Whether the request carries exactly `expected` as its bearer token. Compares without an early
/// exit, so the time taken says nothing about how much of the token matched. An empty
/// `expected` matches nothing.
pub fn matches(headers: &HeaderMap, expected: &str) -> bool {
    !expected.is_empty()
        && from_headers(headers).is_some_and(|given| constant_time_eq(given, expected))
}

/// Whether `token` could be sent as a bearer token: `b64token` of RFC 6750 §2.1.
pub fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_exact() {
        for value in ["Bearer sk-1", "bearer sk-1", "BEARER sk-1", "Bearer   sk-1", " Bearer sk-1 "]
        {
            assert_eq!(token(value), Some("sk-1"), "{value:?}");
        }
        assert_eq!(token("Bearer abc.DEF_~+/=="), Some("abc.DEF_~+/=="));
    }

    #[test]
    fn anything_but_bearer_credentials_is_no_token() {
        for value in [
            "",
            "Bearer",
            "Bearer ",
            "Bearersk-1",
            "Basic dXNlcjpwYXNz",
            "Bearer\tsk-1",
            "Bearer sk 1",
            "Bearer sk-1,",
            "Bearer ==",
            "Bearer a=b",
            "Token sk-1",
        ] {
            assert_eq!(token(value), None, "{value:?}");
        }
    }

    #[test]
    fn a_repeated_header_is_refused_and_the_comparison_is_exact() {
        let mut headers = HeaderMap::new();
        assert!(!matches(&headers, "t0k"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer t0k"));
        assert!(matches(&headers, "t0k"));
        assert!(!matches(&headers, "t0"));
        assert!(!matches(&headers, "t0kk"));
        assert!(!matches(&headers, ""));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer t0k"));
        assert_eq!(from_headers(&headers), None);
    }
}
