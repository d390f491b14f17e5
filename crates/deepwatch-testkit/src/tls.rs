//! TLS for tests, never the internet: a CA generated in the test (rcgen, ring) that issues
//! server and client certificates as PEM files, and `TlsFront`, a TLS-terminating TCP relay
//! that puts any plain local server (a robot stand-in, the Pushgateway, the simulator) behind
//! https on 127.0.0.1, optionally requiring a client certificate from the CA.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// A certificate and its key, as PEM files in the CA's temp dir.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A throwaway certificate authority whose `ca_file` a client can trust.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM).
    pub ca_file: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    issued: AtomicUsize,
}

impl TestCa {
    /// A new CA named `name` (the common name, so two CAs of one test differ).
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-signed CA");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).expect("write ca.pem");
        TestCa { dir, ca_file, issuer: Issuer::new(params, key), issued: AtomicUsize::new(0) }
    }

    /// A server certificate for `names` (DNS names or IP addresses, e.g. "127.0.0.1").
    pub fn server_cert(&self, names: &[&str]) -> CertFiles {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with common name `name`, for mutual TLS.
    pub fn client_cert(&self, name: &str) -> CertFiles {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> CertFiles {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, names[0].clone());
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let cert_file = self.dir.path().join(format!("leaf{n}.pem"));
        let key_file = self.dir.path().join(format!("leaf{n}.key"));
        std::fs::write(&cert_file, cert.pem()).expect("write leaf cert");
        std::fs::write(&key_file, key.serialize_pem()).expect("write leaf key");
        CertFiles { cert_file, key_file }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server config presenting `cert`; with `client_ca`, clients must present a
/// certificate issued by it.
pub fn server_config(cert: &CertFiles, client_ca: Option<&TestCa>) -> rustls::ServerConfig {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.cert_file)
        .expect("read cert")
        .collect::<Result<_, _>>()
        .expect("parse cert");
    let key = PrivateKeyDer::from_pem_file(&cert.key_file).expect("read key");
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&ca.ca_file).expect("read CA") {
                roots.add(c.expect("parse CA")).expect("add CA");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(chain, key).expect("server cert")
}

/// https on a free loopback port in front of a plain TCP `backend`: each accepted connection
/// is handshaken and its bytes relayed both ways. Stops on drop.
pub struct TlsFront {
    pub addr: SocketAddr,
    /// TLS handshakes that failed (untrusted client, wrong certificate, plain HTTP).
    pub failed_handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    /// Starts the relay; `config` usually comes from `server_config`.
    pub async fn start(config: rustls::ServerConfig, backend: SocketAddr) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind TLS front");
        let addr = listener.local_addr().expect("local addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let failed_handshakes = Arc::new(AtomicUsize::new(0));
        let failed = failed_handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let failed = failed.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(backend).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront { addr, failed_handshakes, task }
    }

    /// `https://127.0.0.1:<port>` (the server certificate must name 127.0.0.1).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
