//! The webhook's certificate is reloaded from its files without a restart,
//! and a broken pair never replaces a working one. Its connections are
//! spread over the connection threads, and each stays on its thread.

use crate::common;

use std::num::NonZeroUsize;
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
    let server = Server::start(&TestDb::sqlite()).await;
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
        .args(["--api-addr", "127.0.0.1:0", "--exec-addr", "127.0.0.1:0"])
        .arg("--webhook-addr")
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

/// Serves, over TLS with `threads` connection threads, a handler that
/// answers with the name of the thread it runs on. Returns its address and
/// the CA to trust.
async fn thread_naming_server(threads: usize) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let issued = agyn_secrets::certs::issue("localhost", vec!["127.0.0.1".into()], 1).unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &issued.cert).unwrap();
    std::fs::write(&key, &issued.key).unwrap();
    agyn_secrets::tls::provider();
    let config = agyn_secrets::tls::server_config(
        agyn_secrets::tls::ReloadingCert::load(&cert, &key).unwrap(),
        None,
    );
    let router = axum::Router::new().route(
        "/thread",
        axum::routing::get(|| async {
            std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_owned()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let threads = NonZeroUsize::new(threads).unwrap();
    let shutdown = agyn_secrets::server::Shutdown::default();
    tokio::spawn(agyn_secrets::server::serve_tls(
        listener, config, router, threads, shutdown,
    ));
    (format!("https://{addr}/thread"), issued.ca_cert)
}

/// The thread names that answer three requests on one connection of a
/// fresh client.
async fn threads_of_one_connection(url: &str, ca: &str, http2: bool) -> Vec<String> {
    let builder = common::http_builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    let client = if http2 {
        builder.http2_prior_knowledge()
    } else {
        builder.http1_only()
    }
    .build()
    .unwrap();
    let mut names = Vec::new();
    for _ in 0..3 {
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        names.push(response.text().await.unwrap());
    }
    names
}

#[tokio::test]
async fn connections_take_turns_over_the_threads_and_stay_on_theirs() {
    let (url, ca) = thread_naming_server(2).await;
    for (i, http2) in [false, true, false, true].into_iter().enumerate() {
        let names = threads_of_one_connection(&url, &ca, http2).await;
        let expected = format!("webhook-{}", i % 2);
        assert_eq!(
            names,
            [expected.as_str(); 3],
            "connection {i} (HTTP/2: {http2})"
        );
    }

    let (url, ca) = thread_naming_server(1).await;
    for http2 in [false, true] {
        let names = threads_of_one_connection(&url, &ca, http2).await;
        assert_eq!(names, ["webhook-0"; 3], "HTTP/2: {http2}");
    }
}
