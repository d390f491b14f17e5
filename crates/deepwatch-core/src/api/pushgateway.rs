//! The one Pushgateway client: the agent's push mode replaces its whole group every interval
//! (PUT), `deepwatch push` replaces only the families it sends (POST), both under a grouping
//! key `job/<job>/instance/<instance>` whose values use the Pushgateway's base64 form when they
//! hold characters a path segment cannot.

use crate::config::client::TlsConfig;
use crate::expo::Format;
use crate::http;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("invalid pushgateway url {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("push to {url} failed: {message}")]
    Send { url: String, message: String },
    #[error("push to {url} answered HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
}

/// One grouping key on one Pushgateway.
pub struct Pushgateway {
    url: String,
    client: reqwest::Client,
}

impl Pushgateway {
    /// `base` is the Pushgateway's URL; `grouping` the label pairs of the group, `job` first.
    pub fn new(
        base: &str,
        grouping: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Pushgateway, PushError> {
        Self::with_tls(base, grouping, timeout, &TlsConfig::default())
    }

    /// `new` with TLS options for an https Pushgateway (extra CA, client certificate).
    pub fn with_tls(
        base: &str,
        grouping: &[(&str, &str)],
        timeout: Duration,
        tls: &TlsConfig,
    ) -> Result<Pushgateway, PushError> {
        let bad = |message: String| PushError::Url { url: base.to_string(), message };
        let parsed = url::Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(bad("must be an http(s) URL with a host".into()));
        }
        let mut url = format!("{}/metrics", base.trim_end_matches('/'));
        for (name, value) in grouping {
            url.push('/');
            url.push_str(&segment(name, value));
        }
        let client = http::client_builder(tls)
            .map_err(|e| bad(e.to_string()))?
            .timeout(timeout)
            .build()
            .map_err(|e| bad(http::chain(&e)))?;
        Ok(Pushgateway { url, client })
    }

    /// The group's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// PUT: the body replaces every metric of the group.
    pub async fn replace_group(&self, body: String) -> Result<(), PushError> {
        self.send(reqwest::Method::PUT, body).await
    }

    /// POST: the body replaces only the metric families it holds; the group's others stay.
    pub async fn replace_families(&self, body: String) -> Result<(), PushError> {
        self.send(reqwest::Method::POST, body).await
    }

    async fn send(&self, method: reqwest::Method, body: String) -> Result<(), PushError> {
        let resp = self
            .client
            .request(method, &self.url)
            .header(reqwest::header::CONTENT_TYPE, Format::Text004.content_type())
            .body(body)
            .send()
            .await
            .map_err(|e| PushError::Send { url: self.url.clone(), message: http::chain(&e) })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default().trim().to_string();
        Err(PushError::Status { url: self.url.clone(), status: status.as_u16(), body })
    }
}

/// A path segment pair of a grouping key; values outside `[A-Za-z0-9-_.:]` (or empty) use the
/// Pushgateway's `name@base64/<base64url>` form.
fn segment(name: &str, value: &str) -> String {
    let safe = !value.is_empty()
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if safe {
        format!("{name}/{value}")
    } else {
        format!("{name}@base64/{}", base64_url(value.as_bytes()))
    }
}

/// RFC 4648 §5 base64url with padding (an empty value is `=`, as the Pushgateway documents).
fn base64_url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if bytes.is_empty() {
        return "=".to_string();
    }
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_key_values_a_segment_cannot_hold_use_base64() {
        let gw = Pushgateway::new(
            "http://pgw:9091/",
            &[("job", "deepwatch-agent"), ("instance", "node/3")],
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            gw.url(),
            "http://pgw:9091/metrics/job/deepwatch-agent/instance@base64/bm9kZS8z"
        );
        // The Pushgateway's own examples: "/var/tmp" is "L3Zhci90bXA=", an empty value "=".
        assert_eq!(segment("path", "/var/tmp"), "path@base64/L3Zhci90bXA=");
        assert_eq!(segment("instance", ""), "instance@base64/=");
        assert_eq!(base64_url(b"a?b"), "YT9i");
        assert_eq!(base64_url(b"ab"), "YWI=");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        for base in ["pgw:9091", "ftp://pgw", ""] {
            let err = Pushgateway::new(base, &[("job", "j")], Duration::from_secs(1)).err();
            assert!(matches!(err, Some(PushError::Url { .. })), "{base}: {err:?}");
        }
    }
}
