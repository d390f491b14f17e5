//! Which headers cross the gateway. Upstream: every client header except hop-by-hop ones
//! (RFC 9110 §7.6.1, and those the client's `Connection` names), the ones the gateway owns
//! (`Host`, `Content-Length`, `Authorization` (set per pool), `X-Request-ID`, `Accept-Encoding`
//! (bodies are scanned, so they travel uncompressed), `x-deepwatch-*`) and the configured
//! `gateway.forward_headers_deny`; `X-Forwarded-For` gets the client's address appended.
//! Downstream: every upstream response header except hop-by-hop ones, the framing and the ones
//! the gateway sets itself, so `Retry-After`, `x-ratelimit-*` and custom headers reach clients.
//! A leaf: `admit` and `forward` use it.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// Hop-by-hop headers: meaningful for one connection only.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the gateway sets or consumes itself.
const OWNED_REQUEST: &[&str] =
    &["host", "content-length", "authorization", "x-request-id", "accept-encoding", "expect"];

/// Response headers the gateway sets itself.
const OWNED_RESPONSE: &[&str] = &["content-length", "x-request-id", "date", "server"];

const GATEWAY_PREFIX: &str = "x-deepwatch-";

fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The client's headers as they go upstream (without `Authorization`, which `forward` sets
/// per pool), `X-Forwarded-For` extended with `client`.
pub fn upstream_request(headers: &HeaderMap, deny: &[String], client: Option<IpAddr>) -> HeaderMap {
    let named = connection_tokens(headers);
    let mut out = HeaderMap::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || OWNED_REQUEST.contains(&n)
            || n.starts_with(GATEWAY_PREFIX)
            || n == "x-forwarded-for"
            || named.iter().any(|t| t == n)
            || deny.iter().any(|d| d == n)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    let earlier: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let mut chain = earlier.join(", ");
    if let Some(ip) = client {
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(&ip.to_string());
    }
    if let Ok(v) = HeaderValue::from_str(&chain) {
        if !chain.is_empty() {
            out.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
    }
    out
}

/// Copies the upstream's response headers the client should see into `out`.
pub fn downstream_response(upstream: &HeaderMap, out: &mut HeaderMap) {
    let named = connection_tokens(upstream);
    for (name, value) in upstream {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || OWNED_RESPONSE.contains(&n)
            || n.starts_with(GATEWAY_PREFIX)
            || named.iter().any(|t| t == n)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn request_keeps_tracing_and_custom_headers_and_drops_hop_by_hop_and_owned_ones() {
        let h = map(&[
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("baggage", "userId=alice"),
            ("openai-organization", "org-1"),
            ("user-agent", "OpenAI/Python 1.60.0"),
            ("x-custom", "a"),
            ("x-custom", "b"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("host", "gateway:8080"),
            ("authorization", "Bearer client"),
            ("accept-encoding", "gzip"),
            ("x-deepwatch-pool", "green"),
            ("cookie", "session=1"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        let out = upstream_request(&h, &["cookie".to_string()], Some("10.1.2.3".parse().unwrap()));
        for kept in ["traceparent", "tracestate", "baggage", "openai-organization", "user-agent"] {
            assert_eq!(out.get(kept), h.get(kept), "{kept}");
        }
        assert_eq!(out.get_all("x-custom").iter().count(), 2);
        for dropped in [
            "connection",
            "x-secret-hop",
            "keep-alive",
            "transfer-encoding",
            "host",
            "authorization",
            "accept-encoding",
            "x-deepwatch-pool",
            "cookie",
        ] {
            assert!(out.get(dropped).is_none(), "{dropped} went upstream");
        }
        assert_eq!(out["x-forwarded-for"], "203.0.113.7, 10.1.2.3");
    }

    #[test]
    fn response_keeps_rate_limit_and_retry_after_and_drops_framing() {
        let up = map(&[
            ("retry-after", "7"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-engine", "vllm"),
            ("content-length", "12"),
            ("transfer-encoding", "chunked"),
            ("connection", "close"),
            ("x-request-id", "upstream-id"),
        ]);
        let mut out = HeaderMap::new();
        downstream_response(&up, &mut out);
        assert_eq!(out["retry-after"], "7");
        assert_eq!(out["x-ratelimit-remaining-requests"], "0");
        assert_eq!(out["x-engine"], "vllm");
        for dropped in ["content-length", "transfer-encoding", "connection", "x-request-id"] {
            assert!(out.get(dropped).is_none(), "{dropped} came back");
        }
    }
}
