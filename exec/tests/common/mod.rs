//! What the wrapper's tests share: a certificate authority, a loopback HTTPS server that
//! plays the agyn-secrets exec listener, a loopback DNS server, and the rule for tests
//! that need what a machine may lack.

#![allow(dead_code)]

pub mod dns;
pub mod https;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A token and values that must never appear in anything the wrapper prints.
pub const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.tok-4f0c9e2a.sig";
pub const VALUE: &str = "val-91d7b3e5";
pub const OTHER_VALUE: &str = "val-0c55aa18";

/// Whether tests that cannot run here must fail rather than skip (as in CI).
pub fn require_all() -> bool {
    std::env::var_os("AGYN_TEST_REQUIRE_ALL").is_some_and(|v| v == "1")
}

/// For a test that runs although something it needs is missing (the build,
/// through `#[needs(...)]`, found it, and it has gone since): skips loudly, or
/// fails when `AGYN_TEST_REQUIRE_ALL=1`.
pub fn skip(reason: &str) {
    if require_all() {
        panic!("AGYN_TEST_REQUIRE_ALL=1 but this test cannot run: {reason}");
    }
    // Straight to the file descriptor: the test harness captures `eprintln!`, and a
    // skip must be seen even when the test passes.
    let banner = format!(
        "\n************************************************************\n\
         SKIPPED: {reason}\n\
         ************************************************************\n"
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
}

/// Whether this process runs as root (binding port 53, chroot).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// True when running as root; otherwise skips (or fails) naming `what` needs it.
pub fn require_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(&format!("{what} needs root (id -u is not 0)"));
    false
}

/// A certificate authority and a serving certificate it issued.
pub struct Pki {
    pub ca_pem: String,
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl Pki {
    /// A new CA, and a serving certificate for `names` (host names or IP addresses).
    pub fn new(names: &[&str]) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "agyn-secrets test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        leaf.distinguished_name.push(DnType::CommonName, names[0]);
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }
}

/// The settings' environment variables for a server at `url` trusted through `pki`.
pub fn exec_env(url: &str, pki: &Pki, token_file: &Path) -> Vec<(String, OsString)> {
    vec![
        ("AGYN_EXEC_URL".into(), url.into()),
        ("AGYN_EXEC_CA".into(), pki.ca_pem.clone().into()),
        ("AGYN_EXEC_CONTAINER".into(), "app".into()),
        ("AGYN_EXEC_TOKEN_FILE".into(), token_file.into()),
        ("AGYN_EXEC_TIMEOUT".into(), "20s".into()),
    ]
}

/// Writes the token where a pod has it, under `dir`, and returns its path.
pub fn write_token(dir: &Path) -> PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path
}

/// Asserts that `text` holds neither the token nor a value.
pub fn assert_no_secret(text: &str) {
    for secret in [TOKEN, "tok-4f0c9e2a", VALUE, OTHER_VALUE] {
        assert!(!text.contains(secret), "{secret:?} leaked into: {text}");
    }
}

/// The `{"env":{...}}` answer the server gives for the test's values.
pub fn env_body() -> String {
    format!(
        r#"{{"env":{{"API_KEY":"{VALUE}","DATABASE_URL":"{OTHER_VALUE}","HOME":"/override"}}}}"#
    )
}

/// An error answer as the server writes it.
pub fn error_body(code: &str, message: &str) -> String {
    format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#)
}
