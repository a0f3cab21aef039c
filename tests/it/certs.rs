//! `certs generate` writes a CA and a serving certificate that openssl
//! accepts for the webhook's Service names.

use crate::common;

use std::process::Command;

use common::needs;

fn openssl(args: &[&str]) -> String {
    let program = common::tool("openssl").expect("openssl, there when the test began");
    let output = Command::new(program)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[needs(openssl)]
#[test]
fn generated_certificates_verify_and_name_the_service() {
    if common::tool("openssl").is_none() {
        common::skip("openssl is not installed; certificate checks not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let status = Command::new(common::BIN)
        .args([
            "certs",
            "generate",
            "--service",
            "agyn-secrets",
            "--namespace",
            "platform",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let path = |name: &str| out.join(name).to_str().unwrap().to_owned();

    let verified = openssl(&[
        "verify",
        "-CAfile",
        &path("ca.crt"),
        "-purpose",
        "sslserver",
        &path("tls.crt"),
    ]);
    assert!(verified.contains(": OK"), "{verified}");

    let leaf = openssl(&["x509", "-in", &path("tls.crt"), "-noout", "-text"]);
    for name in [
        "DNS:agyn-secrets,",
        "DNS:agyn-secrets.platform,",
        "DNS:agyn-secrets.platform.svc,",
        "DNS:agyn-secrets.platform.svc.cluster.local",
    ] {
        assert!(leaf.contains(name), "missing {name}:\n{leaf}");
    }
    assert!(leaf.contains("TLS Web Server Authentication"), "{leaf}");
    assert!(leaf.contains("Digital Signature"), "{leaf}");
    assert!(leaf.contains("CA:FALSE"), "{leaf}");

    let ca = openssl(&["x509", "-in", &path("ca.crt"), "-noout", "-text"]);
    assert!(ca.contains("CA:TRUE"), "{ca}");
    assert!(ca.contains("Certificate Sign"), "{ca}");

    // The key matches the certificate.
    let cert_key = openssl(&["x509", "-in", &path("tls.crt"), "-noout", "-pubkey"]);
    let key_pub = openssl(&["pkey", "-in", &path("tls.key"), "-pubout"]);
    assert_eq!(cert_key, key_pub);

    // ca-bundle.b64 is the CA, base64 on one line, as caBundle wants it.
    let bundle = std::fs::read_to_string(path("ca-bundle.b64")).unwrap();
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(bundle.trim())
        .unwrap();
    assert_eq!(decoded, std::fs::read(path("ca.crt")).unwrap());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key must not be readable by others"
        );
    }
}
