//! The `tls` sub-table every outgoing HTTP client accepts (`analyzer.prometheus_tls`,
//! `notify.tls`, `push.tls`, ...): an extra CA to trust beside the system roots, an optional
//! client certificate for mutual TLS, and the explicit, off-by-default escape hatch that skips
//! verification. `deepwatch_core::http` turns it into a rustls config.

use super::{Path, Problems};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// TLS options of one HTTP client. The default trusts the system roots only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of CA certificates trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) presented for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. Only for a lab; never for a network you do not own.
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// True when nothing differs from the default (system roots, verification on).
    pub fn is_default(&self) -> bool {
        *self == TlsConfig::default()
    }

    /// Checks that the named files exist and that certificate and key come together. Reading
    /// and parsing the PEM happens when the client is built (`deepwatch_core::http`), and its
    /// errors name the file too.
    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        for (field, file) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ] {
            let Some(file) = file else { continue };
            let at = path.field(field);
            if file.as_os_str().is_empty() {
                problems.push(&at, "must not be empty (leave it out to use the system roots only)");
                continue;
            }
            match std::fs::metadata(file) {
                Ok(meta) if meta.is_file() => {}
                Ok(_) => problems.push(&at, format!("{} is not a file", file.display())),
                Err(e) => problems.push(&at, format!("cannot read {}: {e}", file.display())),
            }
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => {
                problems.push(&path.field("key_file"), "must be set when cert_file is set")
            }
            (None, Some(_)) => {
                problems.push(&path.field("cert_file"), "must be set when key_file is set")
            }
            _ => {}
        }
    }
}

/// Extra request headers (`name = "value"`): valid names and values, and no `Authorization`
/// (that comes from the auth table, so it is never logged with the headers).
pub fn validate_headers(path: &Path, headers: &BTreeMap<String, String>, problems: &mut Problems) {
    for (name, value) in headers {
        let at = path.key(name);
        match http::HeaderName::from_bytes(name.as_bytes()) {
            Err(_) => problems.push(&at, format!("{name:?} is not a valid header name")),
            Ok(n) if n == http::header::AUTHORIZATION => problems.push(
                &at,
                "set Authorization through the auth table (bearer_token or username/password)",
            ),
            Ok(_) => {}
        }
        if http::HeaderValue::from_str(value).is_err() {
            problems.push(&at, "holds characters that cannot be sent in a header");
        }
    }
}

/// How a client proves who it is to the server: nothing, a bearer token, or HTTP basic auth.
/// Secrets come from the config or, better, from a file or an environment variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpAuthConfig {
    /// `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// File whose trimmed content is the bearer token (re-read at start).
    pub bearer_token_file: Option<PathBuf>,
    /// HTTP basic auth user; the password comes from `password` or `password_file`.
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl HttpAuthConfig {
    pub fn validate(&self, path: &Path, problems: &mut Problems) {
        let bearer = self.bearer_token.is_some() || self.bearer_token_file.is_some();
        let basic =
            self.username.is_some() || self.password.is_some() || self.password_file.is_some();
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            problems.push(
                &path.field("bearer_token_file"),
                "set either bearer_token or bearer_token_file, not both",
            );
        }
        if bearer && basic {
            problems.push(
                path,
                "set either a bearer token (bearer_token, bearer_token_file) or basic auth \
                 (username, password, password_file), not both",
            );
        }
        if let Some(token) = &self.bearer_token {
            problems.non_empty(&path.field("bearer_token"), token);
            problems.bearer_token(&path.field("bearer_token"), token);
        }
        if self.password.is_some() && self.password_file.is_some() {
            problems.push(
                &path.field("password_file"),
                "set either password or password_file, not both",
            );
        }
        if (self.password.is_some() || self.password_file.is_some()) && self.username.is_none() {
            problems.push(&path.field("username"), "must be set when a password is set");
        }
        if let Some(user) = &self.username {
            if user.is_empty() || user.contains(':') {
                problems.push(&path.field("username"), "must be non-empty and contain no ':'");
            }
        }
        for (field, file) in
            [("bearer_token_file", &self.bearer_token_file), ("password_file", &self.password_file)]
        {
            let Some(file) = file else { continue };
            if let Err(e) = std::fs::metadata(file) {
                problems.push(&path.field(field), format!("cannot read {}: {e}", file.display()));
            }
        }
    }

    pub fn is_default(&self) -> bool {
        *self == HttpAuthConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(f: impl FnOnce(&Path, &mut Problems)) -> String {
        let mut problems = Problems::default();
        f(&Path::root("x").field("tls"), &mut problems);
        problems.to_string()
    }

    #[test]
    fn default_has_no_problems() {
        assert_eq!(problems_of(|p, pr| TlsConfig::default().validate(p, pr)), "");
        assert_eq!(problems_of(|p, pr| HttpAuthConfig::default().validate(p, pr)), "");
    }

    #[test]
    fn missing_ca_file_is_named() {
        let tls = TlsConfig { ca_file: Some("/nonexistent/ca.pem".into()), ..TlsConfig::default() };
        let text = problems_of(|p, pr| tls.validate(p, pr));
        assert!(text.contains("x.tls.ca_file: cannot read /nonexistent/ca.pem"), "{text}");
    }

    #[test]
    fn cert_without_key_is_named() {
        let dir = std::env::temp_dir();
        let tls = TlsConfig { cert_file: Some(dir.clone()), ..TlsConfig::default() };
        let text = problems_of(|p, pr| tls.validate(p, pr));
        assert!(text.contains("x.tls.key_file: must be set when cert_file is set"), "{text}");
        assert!(text.contains("x.tls.cert_file:") && text.contains("is not a file"), "{text}");
    }

    #[test]
    fn bad_headers_are_named() {
        let headers = BTreeMap::from([
            ("X-Scope-OrgID".to_string(), "team-a".to_string()),
            ("bad header".to_string(), "v".to_string()),
            ("Authorization".to_string(), "Bearer x".to_string()),
            ("X-Ok".to_string(), "line\nbreak".to_string()),
        ]);
        let text = problems_of(|p, pr| validate_headers(&p.field("headers"), &headers, pr));
        assert!(
            text.contains("x.tls.headers.\"bad header\": \"bad header\" is not a valid"),
            "{text}"
        );
        assert!(text.contains("x.tls.headers.Authorization: set Authorization through"), "{text}");
        assert!(text.contains("x.tls.headers.X-Ok: holds characters"), "{text}");
        assert!(!text.contains("X-Scope-OrgID"), "{text}");
    }

    #[test]
    fn bearer_and_basic_together_are_refused() {
        let auth = HttpAuthConfig {
            bearer_token: Some("t0k".into()),
            username: Some("admin".into()),
            password: Some("pw".into()),
            ..HttpAuthConfig::default()
        };
        let text = problems_of(|p, pr| auth.validate(p, pr));
        assert!(text.contains("x.tls: set either a bearer token"), "{text}");
        let auth = HttpAuthConfig { password: Some("pw".into()), ..HttpAuthConfig::default() };
        let text = problems_of(|p, pr| auth.validate(p, pr));
        assert!(text.contains("x.tls.username: must be set when a password is set"), "{text}");
    }
}
