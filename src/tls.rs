//! The webhook's TLS: rustls, TLS 1.2 and 1.3 only, with a certificate that
//! is reloaded when its files change.
//!
//! Kubernetes swaps mounted Secret files through a `..data` symlink, which
//! file-change notifications can miss, so the files are re-read on a short
//! interval and compared by content. A pair that fails to load leaves the
//! previous certificate in service.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no usable PEM private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("certificate {cert} and key {key} do not belong together: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("{path} holds no usable CA certificate: {reason}")]
    BadCa { path: PathBuf, reason: String },
}

/// The process's rustls crypto provider: aws-lc-rs, installed as the process
/// default on first use, so that every TLS server and client, reqwest's
/// included, uses the same one.
pub fn provider() -> Arc<CryptoProvider> {
    if let Some(provider) = CryptoProvider::get_default() {
        return provider.clone();
    }
    // Another thread may install it first; either way one is installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .expect("a provider is installed just above")
        .clone()
}

/// Loads and checks a certificate chain and its private key.
pub fn load_pair(cert_path: &Path, key_path: &Path) -> Result<(CertifiedKey, [u8; 32]), TlsError> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = zeroize::Zeroizing::new(read(key_path)?);
    let fingerprint = fingerprint(&cert_pem, &key_pem);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate {
            path: cert_path.to_owned(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Mismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            reason: e.to_string(),
        })?;
    Ok((certified, fingerprint))
}

fn fingerprint(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update((cert.len() as u64).to_le_bytes());
    hash.update(cert);
    hash.update(key);
    hash.finalize().into()
}

/// Serves the current certificate and swaps in new ones as the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    fingerprint: Mutex<[u8; 32]>,
    last_error: Mutex<Option<String>>,
}

impl ReloadingCert {
    /// Loads the pair once; an error here stops start-up before any port is bound.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let (certified, fingerprint) = load_pair(cert_path, key_path)?;
        Ok(Arc::new(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: ArcSwap::from_pointee(certified),
            fingerprint: Mutex::new(fingerprint),
            last_error: Mutex::new(None),
        }))
    }

    /// Re-reads the files; returns whether a new certificate went into service.
    pub fn reload(&self) -> bool {
        let unchanged = {
            let (Ok(cert), Ok(key)) = (fs::read(&self.cert_path), fs::read(&self.key_path)) else {
                self.report("cannot read the certificate or key file".into());
                return false;
            };
            let key = zeroize::Zeroizing::new(key);
            fingerprint(&cert, &key) == *self.fingerprint.lock().expect("lock poisoned")
        };
        if unchanged {
            return false;
        }
        match load_pair(&self.cert_path, &self.key_path) {
            Ok((certified, fingerprint)) => {
                self.current.store(Arc::new(certified));
                *self.fingerprint.lock().expect("lock poisoned") = fingerprint;
                *self.last_error.lock().expect("lock poisoned") = None;
                tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
                true
            }
            Err(error) => {
                self.report(error.to_string());
                false
            }
        }
    }

    fn report(&self, message: String) {
        report(
            &self.last_error,
            message,
            "New TLS certificate not loaded; the previous one keeps serving",
        );
    }
}

/// Logs `message` once, until a different one or a success replaces it.
fn report(last: &Mutex<Option<String>>, message: String, what: &str) {
    let mut last = last.lock().expect("lock poisoned");
    if last.as_deref() != Some(message.as_str()) {
        tracing::warn!(error = %message, "{what}");
        *last = Some(message);
    }
}

/// Something that re-reads its files on request.
pub trait Reload: Send + Sync + 'static {
    /// Re-reads the files; returns whether something new went into service.
    fn reload(&self) -> bool;
}

impl Reload for ReloadingCert {
    fn reload(&self) -> bool {
        ReloadingCert::reload(self)
    }
}

/// Re-reads `files` every `every`, off the async threads, until the task
/// is dropped.
pub fn spawn_watcher<T: Reload>(files: Arc<T>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let files = files.clone();
            let _ = tokio::task::spawn_blocking(move || files.reload()).await;
        }
    })
}

/// Verifies client certificates against a CA bundle that is reloaded when
/// its file changes. Client authentication is offered, not required: a
/// caller without a certificate completes the handshake and is refused per
/// route (`/mutate` answers 401), while a certificate that does not chain to
/// the CA fails the handshake.
#[derive(Debug)]
pub struct ReloadingClientCa {
    path: PathBuf,
    current: ArcSwap<Arc<dyn ClientCertVerifier>>,
    fingerprint: Mutex<[u8; 32]>,
    last_error: Mutex<Option<String>>,
}

impl ReloadingClientCa {
    /// Loads the bundle once; an error here stops start-up before any port is bound.
    pub fn load(path: &Path) -> Result<Arc<Self>, TlsError> {
        let pem = fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let verifier = client_verifier(path, &pem)?;
        Ok(Arc::new(Self {
            path: path.to_owned(),
            current: ArcSwap::from_pointee(verifier),
            fingerprint: Mutex::new(fingerprint(&pem, &[])),
            last_error: Mutex::new(None),
        }))
    }

    fn verifier(&self) -> Arc<Arc<dyn ClientCertVerifier>> {
        self.current.load_full()
    }
}

impl Reload for ReloadingClientCa {
    fn reload(&self) -> bool {
        let what = "New client CA not loaded; the previous one keeps verifying callers";
        let pem = match fs::read(&self.path) {
            Ok(pem) => pem,
            Err(error) => {
                report(
                    &self.last_error,
                    format!("cannot read {}: {error}", self.path.display()),
                    what,
                );
                return false;
            }
        };
        let new = fingerprint(&pem, &[]);
        if new == *self.fingerprint.lock().expect("lock poisoned") {
            return false;
        }
        match client_verifier(&self.path, &pem) {
            Ok(verifier) => {
                self.current.store(Arc::new(verifier));
                *self.fingerprint.lock().expect("lock poisoned") = new;
                *self.last_error.lock().expect("lock poisoned") = None;
                tracing::info!(ca = %self.path.display(), "Client CA reloaded");
                true
            }
            Err(error) => {
                report(&self.last_error, error.to_string(), what);
                false
            }
        }
    }
}

fn client_verifier(path: &Path, pem: &[u8]) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let bad = |reason: String| TlsError::BadCa {
        path: path.to_owned(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad(e.to_string()))
}

impl ClientCertVerifier for ReloadingClientCa {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No hints: a client with a certificate sends it (Go's TLS client, the
    /// API server's, does when the list is empty), and the CA's name is not
    /// told to whoever connects.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
}

/// The verified client certificate of a webhook connection: who called.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// The certificate's subject, e.g. `CN=kube-apiserver, O=agyn-secrets`.
    pub subject: Arc<str>,
}

impl ClientIdentity {
    /// The identity of a connection whose handshake verified `chain`.
    pub fn of(chain: &[CertificateDer<'_>]) -> Option<Self> {
        let leaf = chain.first()?;
        let subject = match x509_parser::parse_x509_certificate(leaf) {
            Ok((_, cert)) => cert.subject().to_string(),
            // Verified by webpki, so it parses; never let a quirk deny.
            Err(_) => "<unparsed subject>".to_owned(),
        };
        Some(Self {
            subject: subject.into(),
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The webhook's server configuration: TLS 1.3 and 1.2, HTTP/2 and
/// HTTP/1.1, and client certificates verified against `client_ca` when
/// given.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    client_ca: Option<Arc<ReloadingClientCa>>,
) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("TLS 1.2 and 1.3 are supported by the aws-lc-rs provider");
    let builder = match client_ca {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}
