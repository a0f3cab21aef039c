//! Hostile input and abuse, against the real binary: oversized and slow
//! headers on both ports, adversarial AdmissionReviews and API bodies,
//! failed-authentication limits, and provider addresses that lead to a
//! metadata service however they are spelled.
//!
//! Covered elsewhere: plain HTTP and TLS below 1.2 on the webhook port
//! (`tests/webhook.rs`), oversized bodies (`tests/webhook.rs`,
//! `tests/api.rs`), 404s for other organizations' objects and the basic
//! per-source limit (`tests/api.rs`).

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Api, Server, sqlite};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VALUE: &str = "sk_live_HostileInputValue_3f9a";

async fn seeded() -> Server {
    let server = Server::start(&sqlite()).await;
    server
        .seed("acme", "team-a", &[("stripe-api-key", VALUE)])
        .await;
    server
}

/// A TLS client of the webhook over a raw socket, trusting the dev CA and
/// offering only `alpn`.
async fn tls_stream(
    server: &Server,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&server.ca_pem()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(agyn_secrets::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let addr = server.webhook.trim_start_matches("https://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends `request` and reads what comes back until the server closes or
/// `limit` passes. Returns the bytes, and whether the connection was closed
/// (or reset) by the server within the limit.
async fn exchange<S>(mut stream: S, request: &[u8], limit: Duration) -> (Vec<u8>, bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // The server may refuse before it has read everything: a failed write
    // is an answer too.
    let _ = stream.write_all(request).await;
    let _ = stream.flush().await;
    let mut received = Vec::new();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (received, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

fn status_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// A header block of `size` bytes in one header, or `count` small headers.
fn big_request(size: usize, count: usize) -> Vec<u8> {
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    if size > 0 {
        request.extend_from_slice(b"X-Big: ");
        request.extend(std::iter::repeat_n(b'a', size));
        request.extend_from_slice(b"\r\n");
    }
    for i in 0..count {
        request.extend_from_slice(format!("X-Many-{i}: x\r\n").as_bytes());
    }
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    request
}

/// A refusal: 431 (or 400), or the connection closed without a success.
fn refused(answer: &(Vec<u8>, bool)) -> bool {
    let line = status_line(&answer.0);
    line.contains(" 431 ") || line.contains(" 400 ") || (answer.0.is_empty() && answer.1)
}

#[tokio::test]
async fn oversized_headers_are_refused_on_both_ports() {
    let server = seeded().await;
    let api_addr = server.api.trim_start_matches("http://").to_owned();
    let limit = Duration::from_secs(10);
    let mut failures = Vec::new();
    for (what, request) in [
        ("one 100 KiB header", big_request(100 * 1024, 0)),
        ("one 1 MiB header", big_request(1 << 20, 0)),
        ("500 headers", big_request(0, 500)),
    ] {
        let started = Instant::now();
        let api = exchange(
            tokio::net::TcpStream::connect(&api_addr).await.unwrap(),
            &request,
            limit,
        )
        .await;
        if !refused(&api) {
            failures.push(format!(
                "API, {what}: {:?} after {:?}",
                status_line(&api.0),
                started.elapsed()
            ));
        }
        let started = Instant::now();
        let webhook = exchange(tls_stream(&server, b"http/1.1").await, &request, limit).await;
        if !refused(&webhook) {
            failures.push(format!(
                "webhook, {what}: {:?} after {:?}",
                status_line(&webhook.0),
                started.elapsed()
            ));
        }
    }

    // HTTP/2, which clients other than the API server may speak.
    let h2 = common::http_builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let answer = tokio::time::timeout(
        limit,
        h2.get(format!("{}/healthz", server.webhook))
            .header("x-big", "a".repeat(100 * 1024))
            .send(),
    )
    .await
    .expect("an HTTP/2 request with a 100 KiB header must not hang");
    match answer {
        Ok(response) if response.status() != 431 => {
            failures.push(format!("webhook over HTTP/2: {}", response.status()))
        }
        Ok(response) => eprintln!("webhook over HTTP/2: {}", response.status()),
        Err(error) => eprintln!("webhook over HTTP/2: refused ({error})"),
    }

    // Both still serve.
    assert_eq!(
        reqwest::get(format!("{}/healthz", server.api))
            .await
            .unwrap()
            .status(),
        200
    );
    let answer = server
        .review(&common::fixture("pod-envfrom-only.json"))
        .await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(failures.is_empty(), "not refused: {failures:#?}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let server = seeded().await;
    let api_addr = server.api.trim_start_matches("http://").to_owned();
    let partial = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    let limit = Duration::from_secs(20);
    let started = Instant::now();
    let (api, webhook) = tokio::join!(
        async {
            let tcp = tokio::net::TcpStream::connect(&api_addr).await.unwrap();
            exchange(tcp, partial, limit).await
        },
        async { exchange(tls_stream(&server, b"http/1.1").await, partial, limit).await },
    );
    eprintln!("slow headers: cut off after {:?}", started.elapsed());
    assert!(
        webhook.1,
        "the webhook kept a half-sent request open for {limit:?}"
    );
    assert!(api.1, "the API kept a half-sent request open for {limit:?}");
}

#[tokio::test]
async fn api_bodies_declared_too_large_are_refused_before_they_are_sent() {
    let server = seeded().await;
    let api_addr = server.api.trim_start_matches("http://").to_owned();
    let request = format!(
        "POST /v1/organizations/acme/secrets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{{",
        server.admin_token
    );
    let started = Instant::now();
    let tcp = tokio::net::TcpStream::connect(&api_addr).await.unwrap();
    let (answer, _) = exchange(tcp, request.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        status_line(&answer).contains(" 413 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// AdmissionReviews no API server would send. Each gets an answer (200 with
/// a review, 400 or 413), quickly; nothing crashes the server.
#[tokio::test]
async fn adversarial_admission_reviews_get_an_answer_and_change_nothing() {
    let server = seeded().await;
    let base = common::fixture("pod-envfrom-only.json");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut review = base.clone();
        edit(&mut review);
        serde_json::to_vec(&review).unwrap()
    };
    let full = serde_json::to_vec(&base).unwrap();
    let deep = |depth: usize| {
        let mut text = String::from(
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"deep","kind":{"kind":"Pod"},"operation":"CREATE","object":"#,
        );
        text.push_str(&"[".repeat(depth));
        text.push_str(&"]".repeat(depth));
        text.push_str("}}");
        text.into_bytes()
    };
    let many_entries: String = (0..20_000)
        .map(|i| format!("V{i}=stripe-api-key"))
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", full[..full.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("invalid UTF-8", {
            let mut bytes = full.clone();
            let at = bytes.windows(6).position(|w| w == b"STRIPE").unwrap();
            bytes[at] = 0xff;
            bytes
        }),
        ("byte order mark", [b"\xef\xbb\xbf".as_slice(), &full].concat()),
        ("nested 100,000 deep", deep(100_000)),
        ("nested 120 deep", deep(120)),
        ("number out of range", br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":1e999}}"#.to_vec()),
        ("uid of 1 MiB", with(&|r| r["request"]["uid"] = json!("u".repeat(1 << 20)))),
        ("object is a number", with(&|r| r["request"]["object"] = json!(5))),
        ("object missing", with(&|r| { r["request"].as_object_mut().unwrap().remove("object"); })),
        ("annotations are a list", with(&|r| r["request"]["object"]["metadata"]["annotations"] = json!(["x"]))),
        ("annotation is a number", with(&|r| r["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] = json!(7))),
        ("containers are an object", with(&|r| r["request"]["object"]["spec"]["containers"] = json!({"name": "agent"}))),
        ("container without a name", with(&|r| r["request"]["object"]["spec"]["containers"] = json!([{"image": "x"}]))),
        ("spec is a string", with(&|r| r["request"]["object"]["spec"] = json!("spec"))),
        ("env is a string", with(&|r| r["request"]["object"]["spec"]["containers"][0]["env"] = json!("A=b"))),
        ("20,000 entries for one variable each", with(&|r| r["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] = json!(many_entries))),
        ("NUL and control characters", with(&|r| r["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] = json!("A\u{0}=stripe-api-key,\u{1b}[31mB=x"))),
        ("10,000 containers", with(&|r| r["request"]["object"]["spec"]["containers"] = (0..10_000).map(|i| json!({"name": format!("c{i}"), "image": "x"})).collect())),
        ("namespace of another organization", with(&|r| { r["request"]["namespace"] = json!("kube-system"); r["request"]["object"]["metadata"]["namespace"] = json!("kube-system"); })),
        ("namespace missing", with(&|r| { r["request"].as_object_mut().unwrap().remove("namespace"); r["request"]["object"]["metadata"].as_object_mut().unwrap().remove("namespace"); })),
        ("subresource", with(&|r| r["request"]["subResource"] = json!("ephemeralcontainers"))),
    ];
    let client = server.webhook_client();
    for (what, body) in cases {
        let started = Instant::now();
        let response = client
            .post(format!("{}/mutate", server.webhook))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{what}: {took:?}");
        assert!(matches!(status, 200 | 400 | 413), "{what}: {status} {text}");
        // An allowed answer's patch is base64: the value never shows as is.
        assert!(!text.contains(VALUE), "{what}: {text}");
        if status == 200 {
            let answer: Value = serde_json::from_str(&text).unwrap();
            let response = &answer["response"];
            if response["allowed"] == false {
                let message = response["status"]["message"].as_str().unwrap();
                assert!(
                    message.len() < 4096,
                    "{what}: a message of {} bytes",
                    message.len()
                );
                assert!(!message.contains(VALUE), "{what}: {message}");
            }
        }
        eprintln!("{what}: {status} in {took:?}");
    }
    // Still serving, and the first review is still answered as before.
    let answer = server.review(&base).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(server.logs().contains("TRACE"));
    assert!(!server.logs().contains(VALUE));
}

/// API bodies no client should send: each gets a 4xx with the error shape.
#[tokio::test]
async fn adversarial_api_bodies_get_a_client_error() {
    let server = seeded().await;
    let http = common::http();
    let url = format!("{}/v1/organizations/acme/secrets", server.api);
    let deep = format!(
        r#"{{"name":"deep","value":{}1{}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("nested 50,000 deep", deep.into_bytes()),
        (
            "invalid UTF-8",
            b"{\"name\":\"a\",\"value\":\"\xff\xfe\"}".to_vec(),
        ),
        (
            "duplicate field",
            br#"{"name":"a","name":"b","value":"HostileDuplicateField"}"#.to_vec(),
        ),
        (
            "name of 10,000 characters",
            format!(
                r#"{{"name":"{}","value":"HostileLongName"}}"#,
                "a".repeat(10_000)
            )
            .into_bytes(),
        ),
        (
            "value of the wrong type",
            br#"{"name":"a","value":{"nested":true}}"#.to_vec(),
        ),
        (
            "trailing garbage",
            br#"{"name":"a","value":"HostileTrailing"} {"#.to_vec(),
        ),
        ("a list", b"[]".to_vec()),
        (
            "a number out of range",
            br#"{"name":"a","value":"HostileNumber","storage":1e999}"#.to_vec(),
        ),
    ];
    for (what, body) in cases {
        let response = http
            .post(&url)
            .bearer_auth(&server.admin_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        common::record_response("POST", "/v1/organizations/acme/secrets", status, &text);
        assert!((400..500).contains(&status), "{what}: {status} {text}");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
        assert!(body["error"]["code"].is_string(), "{what}: {text}");
        assert!(
            !text.contains("Hostile"),
            "{what}: the answer repeats the value: {text}"
        );
    }
    assert_eq!(
        server
            .client()
            .get("/v1/organizations/acme/secrets")
            .await
            .expect(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn from_source(server: &Server, ip: &str, token: Option<&str>) -> Api {
    Api {
        base: server.api.clone(),
        token: token.map(str::to_owned),
        http: common::http_builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap(),
    }
}

/// What the per-source limit adds to `tests/api.rs`: requests without any
/// token count, the answer says when to retry, and the limit touches
/// nothing else: other sources, health checks, the webhook.
#[tokio::test]
async fn failed_authentication_limit_is_per_source_and_api_only() {
    let server = seeded().await;
    let anonymous = from_source(&server, "127.0.0.4", None);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(anonymous.get("/v1/organizations/acme/secrets").await.status);
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 2], "{statuses:?}");
    let response = anonymous
        .http
        .get(format!("{}/v1/whoami", server.api))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    // The limited source keeps its health checks.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let status = anonymous
            .http
            .get(format!("{}{path}", server.api))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{path}");
    }
    // A valid token from the limited source is served: one client behind a
    // shared proxy cannot lock out the others.
    let valid_there = from_source(&server, "127.0.0.4", Some(&server.admin_token))
        .get("/v1/whoami")
        .await;
    assert_eq!(valid_there.status, 200, "{}", valid_there.text);
    // Other sources: a bad token is still just a 401, a good one works.
    let other_bad = from_source(&server, "127.0.0.5", Some("agyn_bad"))
        .get("/v1/whoami")
        .await;
    assert_eq!(other_bad.status, 401, "{}", other_bad.text);
    let other_good = from_source(&server, "127.0.0.5", Some(&server.admin_token))
        .get("/v1/whoami")
        .await;
    assert_eq!(other_good.status, 200, "{}", other_good.text);
    // The webhook has no tokens and no limit.
    let answer = server
        .review(&common::fixture("pod-envfrom-only.json"))
        .await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(
        reqwest::get(format!("{}/metrics", server.api))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("agyn_auth_failures_total")
    );
}

/// Cloud metadata addresses (AWS, GCP, Azure, Alibaba, Oracle, and the
/// link-local range), and spellings of them that a URL parser turns back
/// into them: each is refused when a provider of either kind is written,
/// or refused without a connection when the provider is used.
#[tokio::test]
async fn metadata_addresses_are_refused_however_they_are_written() {
    let server = seeded().await;
    let owner = server.client();
    owner
        .post(
            "/v1/organizations/acme/secrets",
            json!({"name": "vault-token", "value": "HostileVaultToken-1"}),
        )
        .await
        .expect(201);
    let addresses = [
        "http://169.254.169.254",
        "http://169.254.0.1:8200",
        "https://[fd00:ec2::254]",
        "http://100.100.100.200",
        "http://192.0.0.192",
        "http://168.63.129.16",
        "http://[fd20:ce::254]",
        "http://[::ffff:169.254.169.254]",
        "http://[::ffff:a9fe:a9fe]",
        "http://[::ffff:100.100.100.200]",
        "http://[fe80::1]:8200",
        "http://metadata.google.internal",
        "http://2852039166",
        "http://0xa9fea9fe",
        "http://1684301000",
        "http://0251.0376.0251.0376",
        "http://169.254.169.254.:8200",
        "http://100.100.100.200.",
    ];
    type Body = fn(&str) -> Value;
    let kinds: [(&str, Body); 2] = [
        ("endpoint", |address| {
            json!({"kind": "aws-secrets-manager", "region": "eu-west-1", "endpoint": address,
                   "sts_endpoint": "http://127.0.0.1:1",
                   "auth": {"method": "static", "access_key_id": "AKIAAGYNTESTKEY00001",
                            "secret_access_key_secret": "vault-token"}})
        }),
        ("address", |address| {
            json!({"kind": "vault", "address": address,
                   "auth": {"method": "token", "token_secret": "vault-token"}})
        }),
    ];
    for (field, body) in kinds {
        for (i, address) in addresses.iter().enumerate() {
            let mut body = body(address);
            body["name"] = json!(format!("{field}-{i}"));
            let created = owner.post("/v1/organizations/acme/providers", body).await;
            if created.status == 422 {
                assert_eq!(created.body["error"]["field"], field, "{address}");
                continue;
            }
            assert_eq!(created.status, 201, "{address}: {}", created.text);
            let id = created.body["id"].as_str().unwrap();
            let checked = owner
                .post(
                    &format!("/v1/organizations/acme/providers/{id}/check"),
                    json!({}),
                )
                .await;
            let message = checked.text.clone();
            assert!(
                message.contains("link-local or cloud metadata"),
                "{address}: accepted when written, and not refused when used: {message}"
            );
            eprintln!("{field} {address}: accepted when written, refused when used");
        }
    }
}
