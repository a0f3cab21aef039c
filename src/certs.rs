//! Certificates for the webhook: a private CA and a serving certificate
//! signed by it, for `certs generate` and for `serve --dev`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A CA and a serving certificate, all PEM.
pub struct Issued {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

/// Issues a CA and a serving certificate for `names` (DNS names or IP
/// addresses), valid for `days`.
pub fn issue(common_name: &str, names: Vec<String>, days: i64) -> anyhow::Result<Issued> {
    let now = OffsetDateTime::now_utc();
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, format!("{common_name} CA"));
    ca.distinguished_name
        .push(DnType::OrganizationName, "agyn-secrets");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - Duration::hours(1);
    ca.not_after = now + Duration::days(days.max(1) * 2);
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca, ca_key)?;

    let mut leaf = CertificateParams::new(names)?;
    leaf.distinguished_name
        .push(DnType::CommonName, common_name);
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = now - Duration::hours(1);
    leaf.not_after = now + Duration::days(days.max(1));
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &ca)?;
    Ok(Issued {
        ca_cert: ca.pem(),
        ca_key: ca_key_pem,
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The names a webhook Service answers to inside the cluster.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Writes `ca.crt`, `ca.key`, `tls.crt`, `tls.key` and `ca-bundle.b64` (the
/// caBundle of the MutatingWebhookConfiguration) into `out`.
pub fn generate(service: &str, namespace: &str, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    for (what, name) in [("service", service), ("namespace", namespace)] {
        anyhow::ensure!(
            crate::validate::is_dns_label(name),
            "{what} {name:?} {}",
            crate::validate::DNS_LABEL_RULE
        );
    }
    let issued = issue(
        &format!("{service}.{namespace}.svc"),
        service_names(service, namespace),
        365,
    )?;
    write_issued(out, &issued)
}

fn write_issued(out: &Path, issued: &Issued) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let bundle = STANDARD.encode(issued.ca_cert.as_bytes());
    let files = [
        ("ca.crt", issued.ca_cert.as_str(), 0o644),
        ("ca.key", issued.ca_key.as_str(), 0o600),
        ("tls.crt", issued.cert.as_str(), 0o644),
        ("tls.key", issued.key.as_str(), 0o600),
        ("ca-bundle.b64", bundle.as_str(), 0o644),
    ];
    let mut written = Vec::new();
    for (name, content, mode) in files {
        let path = out.join(name);
        write_file(&path, content, mode).with_context(|| format!("write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes a file through a temporary name, so that a reader watching it never
/// sees half a certificate.
pub fn write_file(path: &Path, content: &str, mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, content)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    fs::rename(&tmp, path)
}

/// A development certificate for `localhost`, written into `dir` unless one
/// is already there. Returns the certificate and key paths.
pub fn ensure_dev_certificate(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    if !(cert.exists() && key.exists()) {
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        write_issued(dir, &issue("localhost", names, 365)?)?;
    }
    Ok((cert, key))
}
