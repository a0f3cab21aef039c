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

/// A private CA that signs serving and client certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    key_pem: String,
}

/// A certificate and its private key, both PEM.
pub struct Pair {
    pub cert: String,
    pub key: String,
}

impl Ca {
    /// A new CA named `<common_name> CA`, valid for twice `days`, so that it
    /// outlives the certificates it signs.
    pub fn new(common_name: &str, days: i64) -> anyhow::Result<Self> {
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
        let key = KeyPair::generate()?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            issuer: CertifiedIssuer::self_signed(ca, key)?,
            key_pem,
        })
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A serving certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, common_name: &str, names: Vec<String>, days: i64) -> anyhow::Result<Pair> {
        self.leaf(
            common_name,
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
            days,
        )
    }

    /// A client certificate whose subject is `common_name`, `O=agyn-secrets`.
    pub fn client(&self, common_name: &str, days: i64) -> anyhow::Result<Pair> {
        self.leaf(
            common_name,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            days,
        )
    }

    fn leaf(
        &self,
        common_name: &str,
        names: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
        days: i64,
    ) -> anyhow::Result<Pair> {
        let now = OffsetDateTime::now_utc();
        let mut leaf = CertificateParams::new(names)?;
        leaf.distinguished_name
            .push(DnType::CommonName, common_name);
        if usage == ExtendedKeyUsagePurpose::ClientAuth {
            leaf.distinguished_name
                .push(DnType::OrganizationName, "agyn-secrets");
        }
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![usage];
        leaf.use_authority_key_identifier_extension = true;
        leaf.not_before = now - Duration::hours(1);
        leaf.not_after = now + Duration::days(days.max(1));
        let key = KeyPair::generate()?;
        let cert = leaf.signed_by(&key, &self.issuer)?;
        Ok(Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// Issues a CA and a serving certificate for `names` (DNS names or IP
/// addresses), valid for `days`.
pub fn issue(common_name: &str, names: Vec<String>, days: i64) -> anyhow::Result<Issued> {
    let ca = Ca::new(common_name, days)?;
    let Pair { cert, key } = ca.server(common_name, names, days)?;
    Ok(Issued {
        ca_cert: ca.cert_pem(),
        ca_key: ca.key_pem().to_owned(),
        cert,
        key,
    })
}

/// The subject's common name of the client certificate made for the API server.
pub const APISERVER_CLIENT_NAME: &str = "kube-apiserver";

/// The names a webhook Service answers to inside the cluster.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// The files `certs generate` writes into `out`, and with `client` the API
/// server's too.
fn generated_files(client: bool) -> Vec<&'static str> {
    let mut files = vec!["ca.crt", "ca.key", "tls.crt", "tls.key", "ca-bundle.b64"];
    if client {
        files.extend([
            "client.crt",
            "client.key",
            "kube-apiserver/webhook-kubeconfig.yaml",
            "kube-apiserver/admission-config.yaml",
        ]);
    }
    files
}

/// Refuses to write into `out` when it already holds any of the files
/// `certs generate` would write, naming them.
pub fn refuse_to_replace(out: &Path, client: bool) -> anyhow::Result<()> {
    let present: Vec<&str> = generated_files(client)
        .into_iter()
        .filter(|name| out.join(name).exists())
        .collect();
    anyhow::ensure!(
        present.is_empty(),
        "{} already holds {}; nothing was written. A new CA needs a new caBundle in the webhook \
         configuration (and, with --client, new credentials for the API server): keep these, \
         choose another --out, or pass --force to replace them",
        out.display(),
        present.join(", ")
    );
    Ok(())
}

/// Writes `ca.crt`, `ca.key`, `tls.crt`, `tls.key` and `ca-bundle.b64` (the
/// caBundle of the MutatingWebhookConfiguration) into `out`; with `client`,
/// also `client.crt` and `client.key`, a client certificate for the API
/// server signed by the same CA (so `ca.crt` is the webhook's client CA).
pub fn generate(
    service: &str,
    namespace: &str,
    out: &Path,
    client: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    for (what, name) in [("service", service), ("namespace", namespace)] {
        anyhow::ensure!(
            crate::validate::is_dns_label(name),
            "{what} {name:?} {}",
            crate::validate::DNS_LABEL_RULE
        );
    }
    let host = format!("{service}.{namespace}.svc");
    let ca = Ca::new(&host, 365)?;
    let Pair { cert, key } = ca.server(&host, service_names(service, namespace), 365)?;
    let issued = Issued {
        ca_cert: ca.cert_pem(),
        ca_key: ca.key_pem().to_owned(),
        cert,
        key,
    };
    let mut written = write_issued(out, &issued)?;
    if client {
        let pair = ca.client(APISERVER_CLIENT_NAME, 365)?;
        for (name, content, mode) in [
            ("client.crt", pair.cert.as_str(), 0o644),
            ("client.key", pair.key.as_str(), 0o600),
        ] {
            let path = out.join(name);
            write_file(&path, content, mode)
                .with_context(|| format!("write {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Writes, under `<out>/kube-apiserver/`, what makes kube-apiserver present
/// `<out>/client.crt` to the webhook: `webhook-kubeconfig.yaml`, with the
/// certificate and key inline under a user named after the webhook's
/// Service host, and `admission-config.yaml`, the AdmissionConfiguration
/// for `--admission-control-config-file` that points the mutating webhook
/// plugin at that kubeconfig as `<apiserver_dir>/webhook-kubeconfig.yaml`.
pub fn write_apiserver_config(
    service: &str,
    namespace: &str,
    out: &Path,
    apiserver_dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let read = |name: &str| {
        let path = out.join(name);
        fs::read(&path).with_context(|| format!("read {}", path.display()))
    };
    let cert = read("client.crt")?;
    let key = zeroize::Zeroizing::new(read("client.key")?);
    let key_b64 = zeroize::Zeroizing::new(STANDARD.encode(&*key));
    // kube-apiserver picks the user whose name matches the host it calls:
    // `<service>.<namespace>.svc` for a Service on port 443.
    let kubeconfig = format!(
        "# Credentials kube-apiserver presents to the agyn-secrets webhook.\n\
         # Written by `agyn-secrets certs generate --client`; keep it readable by the API server only.\n\
         apiVersion: v1\n\
         kind: Config\n\
         users:\n\
         - name: {service}.{namespace}.svc\n  \
         user:\n    \
         client-certificate-data: {cert}\n    \
         client-key-data: {key}\n",
        cert = STANDARD.encode(&cert),
        key = key_b64.as_str(),
    );
    let kubeconfig_path = apiserver_dir.join("webhook-kubeconfig.yaml");
    let kubeconfig_path = kubeconfig_path
        .to_str()
        .context("--apiserver-config-dir is not valid UTF-8")?;
    let admission = format!(
        "# For kube-apiserver's --admission-control-config-file. Written by\n\
         # `agyn-secrets certs generate --client`.\n\
         apiVersion: apiserver.config.k8s.io/v1\n\
         kind: AdmissionConfiguration\n\
         plugins:\n\
         - name: MutatingAdmissionWebhook\n  \
         configuration:\n    \
         apiVersion: apiserver.config.k8s.io/v1\n    \
         kind: WebhookAdmissionConfiguration\n    \
         kubeConfigFile: {}\n",
        serde_json::to_string(kubeconfig_path).expect("a string serializes"),
    );
    let dir = out.join("kube-apiserver");
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, content, mode) in [
        ("webhook-kubeconfig.yaml", kubeconfig.as_str(), 0o600),
        ("admission-config.yaml", admission.as_str(), 0o644),
    ] {
        let path = dir.join(name);
        write_file(&path, content, mode).with_context(|| format!("write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
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
