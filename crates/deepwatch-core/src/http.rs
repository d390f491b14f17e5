//! The one way deepwatch builds an outgoing HTTP client: rustls with the ring provider, the
//! system roots (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus an optional
//! `ca_file`, an optional client certificate, and auth and extra headers sent with every
//! request. `Chain` prints an error with its whole cause chain, so a failed request says why
//! ("invalid peer certificate: UnknownIssuer") and not only "error sending request for url".

use crate::config::client::{HttpAuthConfig, TlsConfig};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Why a client could not be built. Each names the file or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot read {field} {path}: {message}")]
    Read { field: &'static str, path: String, message: String },
    #[error("{field} {path} holds no PEM certificate")]
    NoCertificate { field: &'static str, path: String },
    #[error("tls: {0}")]
    Tls(String),
    #[error("{field}: {message}")]
    Header { field: String, message: String },
    #[error("cannot build http client: {0}")]
    Client(String),
}

/// The ring provider, the only crypto provider deepwatch uses.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// The system's trusted roots, loaded once per process. Unreadable entries are skipped (and
/// logged by nobody: the handshake error names the missing issuer if it matters).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// Reads every certificate of a PEM file.
pub fn read_certs(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let shown = path.display().to_string();
    let text = std::fs::read(path).map_err(|e| HttpError::Read {
        field,
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HttpError::Read { field, path: shown.clone(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(HttpError::NoCertificate { field, path: shown });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, HttpError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| HttpError::Read {
        field: "key_file",
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The rustls client config for `tls`, without ALPN (the caller sets the protocols it speaks).
/// Used by `client_builder` and by the gateway's own upstream connections.
pub fn rustls_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, HttpError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?;
    let builder = if tls.insecure_skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(system_roots().iter().cloned());
        if let Some(ca_file) = &tls.ca_file {
            for cert in read_certs("ca_file", ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| HttpError::Tls(format!("ca_file {}: {e}", ca_file.display())))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let certs = read_certs("cert_file", cert_file)?;
            let key = read_key(key_file)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                HttpError::Tls(format!(
                    "client certificate {} with key {}: {e}",
                    cert_file.display(),
                    key_file.display()
                ))
            })
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(HttpError::Tls("cert_file and key_file must be set together".into())),
    }
}

/// Makes ring the process-wide rustls provider, so that a reqwest client built without
/// `client_builder` works too (reqwest is built without a provider of its own and would panic).
/// Cheap and idempotent; `client_builder` and `builder` call it.
pub fn install_default_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // Err means another provider was installed first: that one is used, which is fine.
        let _ = CryptoProvider::install_default(rustls::crypto::ring::default_provider());
    });
}

/// A reqwest client builder that speaks https with `tls` (HTTP/2 or HTTP/1.1, chosen by
/// ALPN). Every deepwatch HTTP client starts here. Do not call `http1_only()` on it: ALPN
/// would still offer h2.
pub fn client_builder(tls: &TlsConfig) -> Result<reqwest::ClientBuilder, HttpError> {
    install_default_provider();
    let mut config = rustls_config(tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    #[allow(clippy::disallowed_methods)] // the one place a reqwest builder starts
    Ok(reqwest::Client::builder().tls_backend_preconfigured(config))
}

/// `client_builder` with the default TLS options (system roots): for clients that have no TLS
/// settings of their own. Never fails (the default options read no file).
#[allow(clippy::disallowed_methods)] // the fallback still has ring installed as the default
pub fn builder() -> reqwest::ClientBuilder {
    install_default_provider();
    client_builder(&TlsConfig::default()).unwrap_or_else(|_| reqwest::Client::builder())
}

/// `client_builder` with the default TLS options (system roots), built.
pub fn default_client(timeout: std::time::Duration) -> Result<reqwest::Client, HttpError> {
    client_builder(&TlsConfig::default())?
        .timeout(timeout)
        .build()
        .map_err(|e| HttpError::Client(Chain(&e).to_string()))
}

/// Headers sent with every request: `Authorization` from `auth` (marked sensitive so it never
/// shows in debug output) and `extra` (such as `X-Scope-OrgID` for Mimir). `auth_at` and
/// `headers_at` are their config paths, for error messages.
pub fn default_headers(
    auth_at: &str,
    auth: &HttpAuthConfig,
    headers_at: &str,
    extra: &BTreeMap<String, String>,
) -> Result<HeaderMap, HttpError> {
    let mut headers = HeaderMap::new();
    for (name, value) in extra {
        let field = format!("{headers_at}.{name}");
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| HttpError::Header { field: field.clone(), message: e.to_string() })?;
        if name == AUTHORIZATION {
            return Err(HttpError::Header {
                field,
                message: "set Authorization through bearer_token or username/password".into(),
            });
        }
        let value = HeaderValue::from_str(value)
            .map_err(|e| HttpError::Header { field, message: e.to_string() })?;
        headers.insert(name, value);
    }
    if let Some(value) = authorization(auth_at, auth)? {
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

fn read_secret(field: &'static str, path: &Path) -> Result<String, HttpError> {
    let text = std::fs::read_to_string(path).map_err(|e| HttpError::Read {
        field,
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(text.trim().to_string())
}

/// The `Authorization` value `auth` asks for, if any.
pub fn authorization(at: &str, auth: &HttpAuthConfig) -> Result<Option<HeaderValue>, HttpError> {
    use base64::Engine as _;
    let bearer = match (&auth.bearer_token, &auth.bearer_token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(file)) => Some(read_secret("bearer_token_file", file)?),
        (None, None) => None,
    };
    let raw = if let Some(token) = bearer {
        format!("Bearer {token}")
    } else if let Some(user) = &auth.username {
        let password = match (&auth.password, &auth.password_file) {
            (Some(password), _) => password.clone(),
            (None, Some(file)) => read_secret("password_file", file)?,
            (None, None) => String::new(),
        };
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    } else {
        return Ok(None);
    };
    let mut value = HeaderValue::from_str(&raw).map_err(|_| HttpError::Header {
        field: at.to_string(),
        message: "holds characters that cannot be sent in a header".into(),
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Displays an error followed by each of its causes: `a: b: c`. A cause whose text the
/// previous message already contains is skipped (some errors repeat their source).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    /// The messages joined by `: `, with the credentials of any URL in them redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&redact_urls(&last))?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            let text = err.to_string();
            if !last.contains(&text) {
                write!(f, ": {}", redact_urls(&text))?;
            }
            last = text;
            cause = err.source();
        }
        Ok(())
    }
}

/// What a URL's credentials (`scheme://user:password@host`) become wherever it is shown.
pub const REDACTED: &str = "***";

/// `text` with the user information of every URL in it (`http://user:pass@host/...` becomes
/// `http://***@host/...`), for anything a URL from a config can reach: metric labels, events,
/// logs, error messages, admin documents. Text without such a URL comes back borrowed.
pub fn redact_urls(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let start = from + i + 3;
        let authority_len = text[start..]
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`') || c.is_whitespace()
            })
            .unwrap_or(text.len() - start);
        let authority = &text[start..start + authority_len];
        if let Some(at) = authority.rfind('@') {
            let buf = out.get_or_insert_with(String::new);
            buf.push_str(&text[copied..start]);
            buf.push_str(REDACTED);
            copied = start + at;
        }
        from = start + authority_len;
    }
    match out {
        Some(mut buf) => {
            buf.push_str(&text[copied..]);
            std::borrow::Cow::Owned(buf)
        }
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// `Chain` as a `String`, for error types that carry a message.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    Chain(err).to_string()
}

/// `insecure_skip_verify`: accepts any certificate but still checks the handshake signatures
/// with the provider's algorithms, so the connection is encrypted, just not authenticated.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_and_nothing_else() {
        assert_eq!(redact_urls("http://user:s3cret@engine:8000/v1"), "http://***@engine:8000/v1");
        assert_eq!(redact_urls("https://tok@h"), "https://***@h");
        assert_eq!(
            redact_urls("cannot connect to http://a:b@x:1/metrics and https://c:d@y?k=1: refused"),
            "cannot connect to http://***@x:1/metrics and https://***@y?k=1: refused"
        );
        // An @ in the path or query is not user information.
        assert!(matches!(redact_urls("http://host/a@b?c=d@e"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(redact_urls("no url here"), "no url here");
        assert_eq!(redact_urls("http://p:q@"), "http://***@");
        // A password holding an @ is redacted whole.
        assert_eq!(redact_urls("http://u:p@ss@h:1"), "http://***@h:1");
    }

    #[test]
    fn chains_redact_the_urls_in_every_message() {
        #[derive(Debug, thiserror::Error)]
        #[error("scrape of http://u:pw@a:1/metrics failed")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("refused by https://v:pw2@b"));
        let text = chain(&err);
        assert!(!text.contains("pw"), "{text}");
        assert!(
            text.contains("http://***@a:1/metrics") && text.contains("https://***@b"),
            "{text}"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_prints_every_cause_once() {
        let inner = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert_eq!(chain(&Outer(inner)), "outer: invalid peer certificate: UnknownIssuer");
    }

    #[test]
    fn missing_ca_file_names_field_and_path() {
        let tls = TlsConfig { ca_file: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        let err = rustls_config(&tls).unwrap_err().to_string();
        assert!(err.starts_with("cannot read ca_file /nonexistent/ca.pem:"), "{err}");
    }

    #[test]
    fn ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let tls = TlsConfig { ca_file: Some(path.clone()), ..Default::default() };
        let err = rustls_config(&tls).unwrap_err().to_string();
        assert_eq!(err, format!("ca_file {} holds no PEM certificate", path.display()));
    }

    #[test]
    fn basic_auth_and_extra_headers() {
        let auth = HttpAuthConfig {
            username: Some("admin".into()),
            password: Some("s3cret".into()),
            ..Default::default()
        };
        let extra = BTreeMap::from([("X-Scope-OrgID".to_string(), "tenant-a".to_string())]);
        let headers = default_headers("x.auth", &auth, "x.headers", &extra).unwrap();
        // base64("admin:s3cret")
        assert_eq!(headers[AUTHORIZATION], "Basic YWRtaW46czNjcmV0");
        assert!(headers[AUTHORIZATION].is_sensitive());
        assert_eq!(headers["x-scope-orgid"], "tenant-a");
        let bad = BTreeMap::from([("Authorization".to_string(), "x".to_string())]);
        let err = default_headers("x.auth", &auth, "x.headers", &bad).unwrap_err().to_string();
        assert!(err.starts_with("x.headers.Authorization:"), "{err}");
    }
}
