//! The webhook's certificate is reloaded from its files without a restart,
//! and a broken pair never replaces a working one.

mod common;

use std::time::{Duration, Instant};

use common::{Server, TestDb};

fn client_trusting(ca_pem: &[u8]) -> reqwest::Client {
    common::http_builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// A full handshake from a fresh client (no pooled connection, no resumed session).
async fn handshake_ok(ca_pem: &[u8], server: &Server) -> bool {
    client_trusting(ca_pem)
        .get(format!("{}/healthz", server.webhook))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

#[tokio::test]
async fn certificate_rotation_and_broken_files() {
    let server = Server::start(&TestDb {
        label: "sqlite",
        url: None,
    })
    .await;
    let tls_dir = server.data_dir.join("tls");
    let old = server.ca_pem();
    assert!(handshake_ok(&old, &server).await);

    // Rotate, as cert-manager would: a new CA and a new serving pair.
    let issued = agyn_secrets::certs::issue(
        "localhost",
        vec!["localhost".into(), "127.0.0.1".into()],
        30,
    )
    .unwrap();
    agyn_secrets::certs::write_file(&tls_dir.join("tls.key"), &issued.key, 0o600).unwrap();
    agyn_secrets::certs::write_file(&tls_dir.join("tls.crt"), &issued.cert, 0o644).unwrap();
    let new = issued.ca_cert.as_bytes();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !handshake_ok(new, &server).await {
        assert!(
            Instant::now() < deadline,
            "new certificate not served:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !handshake_ok(&old, &server).await,
        "a new handshake must present the new certificate"
    );

    // Garbage in the files: the last good certificate keeps serving.
    std::fs::write(tls_dir.join("tls.crt"), "not a certificate").unwrap();
    std::fs::write(tls_dir.join("tls.key"), "not a key").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.logs().contains("New TLS certificate not loaded") {
        assert!(
            Instant::now() < deadline,
            "broken files not noticed:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(handshake_ok(new, &server).await);
    assert!(
        server.logs().contains("holds no PEM certificate"),
        "{}",
        server.logs()
    );
}

#[tokio::test]
async fn a_bad_certificate_stops_start_up_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, "junk").unwrap();
    std::fs::write(&key, "junk").unwrap();
    let port = common::free_port();
    let output = std::process::Command::new(common::BIN)
        .args(["serve", "--dev", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--api-addr", "127.0.0.1:0", "--webhook-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tls.crt holds no PEM certificate"),
        "{stderr}"
    );
}
