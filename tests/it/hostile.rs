//! Hostile traffic against the real binary: large and stalled bodies,
//! amplifying reviews, floods of names, made-up pods, values in the wrong
//! field, and SIGTERM in the middle of admissions. Each test asserts bounds
//! (memory, answers, table sizes), never timings, and that a genuine review
//! is still answered meanwhile.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Server, fixture, sqlite};
use serde_json::{Value, json};

/// The chart's memory limit for the product's container.
const MEMORY_LIMIT_MIB: f64 = 128.0;
const STRIPE: &str = "sk_live_51HqHostileTrafficValue";

async fn seeded(args: &[&str]) -> Server {
    let server = Server::start_with(&sqlite(), args, &[]).await;
    server
        .seed("acme", "team-a", &[("stripe-api-key", STRIPE)])
        .await;
    server
}

/// Reviews a genuine pod until `stop`, asserting each answer; returns how
/// many were answered.
async fn genuine_reviews(server: &Server, stop: &AtomicBool) -> usize {
    let review = fixture("pod-envfrom-only.json");
    let mut answered = 0;
    while !stop.load(Ordering::SeqCst) || answered == 0 {
        let answer = server.review(&review).await;
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        let patched = common::apply_patch(&review["request"]["object"], &answer);
        assert_eq!(
            patched.pointer("/spec/containers/0/env/0/value"),
            Some(&json!(STRIPE))
        );
        answered += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    answered
}

/// Runs `attack` while genuine reviews go on, then checks the server's
/// peak memory.
async fn under_attack<F: std::future::Future<Output = Vec<u16>>>(
    server: &Server,
    attack: F,
) -> Vec<u16> {
    let (before, _) = server.memory_mib();
    eprintln!("resident memory before the attack {before:.1} MiB");
    let stop = AtomicBool::new(false);
    let (statuses, answered) = tokio::join!(
        async {
            let statuses = attack.await;
            stop.store(true, Ordering::SeqCst);
            statuses
        },
        genuine_reviews(server, &stop)
    );
    assert!(answered > 0);
    let (rss, peak) = server.memory_mib();
    eprintln!("resident memory {rss:.1} MiB, peak {peak:.1} MiB, statuses {statuses:?}");
    assert!(
        peak < MEMORY_LIMIT_MIB,
        "peak resident memory {peak:.1} MiB"
    );
    statuses
}

/// `count` requests at once to `/mutate` with a body of `size` bytes.
async fn large_bodies(client: reqwest::Client, url: String, count: usize, size: usize) -> Vec<u16> {
    let body = bytes::Bytes::from(vec![b' '; size]);
    let requests = (0..count).map(|_| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            match client.post(url).body(body).send().await {
                Ok(response) => response.status().as_u16(),
                // The server may close a connection whose body it refused.
                Err(_) => 0,
            }
        }
    });
    futures::future::join_all(requests).await
}

fn trusting(server: &Server) -> reqwest::ClientBuilder {
    common::http_builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
}

#[tokio::test]
async fn one_http2_connection_with_many_large_bodies() {
    let server = seeded(&[]).await;
    let client = trusting(&server).http2_prior_knowledge().build().unwrap();
    let url = format!("{}/mutate", server.webhook);
    // Larger than an AdmissionReview may be: refused before being read.
    let statuses = under_attack(
        &server,
        large_bodies(client.clone(), url.clone(), 25, 8 << 20),
    )
    .await;
    assert!(
        statuses.iter().all(|s| [413, 0].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&413));
    // At the limit: read while the budget allows (then 400, not a review), 503 beyond.
    let statuses = under_attack(&server, large_bodies(client, url, 25, 3 << 20)).await;
    assert!(
        statuses.iter().all(|s| [400, 503, 0].contains(s)),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn many_http1_connections_with_large_bodies() {
    let server = seeded(&[]).await;
    let client = trusting(&server).http1_only().build().unwrap();
    let url = format!("{}/mutate", server.webhook);
    let statuses = under_attack(&server, large_bodies(client, url, 20, 3 << 20)).await;
    assert!(
        statuses.iter().all(|s| [400, 503, 0].contains(s)),
        "{statuses:?}"
    );
    let metrics = server.client().get("/metrics").await.text;
    assert!(metrics.contains("agyn_webhook_busy_total"), "{metrics}");
}

#[tokio::test]
async fn a_body_that_stops_half_way_is_dropped_at_the_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = seeded(&["--admission-timeout", "1s"]).await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(&server.ca_pem()) {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(agyn_secrets::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.webhook.trim_start_matches("https://"))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"apiVersion\"")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection was still open after 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive in time"), "{answer}");
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A review of a pod with `containers` containers that asks for
/// `entries` variables, all from `secret`.
fn amplifying(containers: usize, entries: usize, secret: &str) -> Value {
    let mut review = fixture("pod-no-env.json");
    let env: Vec<String> = (0..entries).map(|i| format!("V{i}={secret}")).collect();
    let object = &mut review["request"]["object"];
    object["metadata"]["annotations"]["secrets.agyn.io/env"] = json!(env.join(","));
    object["spec"]["containers"] = (0..containers)
        .map(|i| json!({"name": format!("c{i}"), "image": "busybox"}))
        .collect();
    object["spec"]
        .as_object_mut()
        .unwrap()
        .remove("initContainers");
    review
}

#[tokio::test]
async fn a_small_review_cannot_ask_for_a_huge_answer() {
    let server = seeded(&[]).await;
    let owner = server.client();
    let big = "x".repeat(64 * 1024 - 16);
    owner
        .post(
            "/v1/organizations/acme/secrets",
            json!({"name": "big", "storage": "local", "value": big}),
        )
        .await
        .expect(201);
    for containers in [10, 40] {
        let review = amplifying(containers, 100, "big");
        let size = serde_json::to_vec(&review).unwrap().len();
        assert!(size < 8 * 1024, "{size} bytes of review");
        let answer = server.review(&review).await;
        let response = &answer["response"];
        assert_eq!(response["allowed"], false, "{answer}");
        assert_eq!(response["status"]["code"], 403);
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("in the webhook's answer")
                && message.contains("over the limit of 1.0 MiB (--max-injected-bytes)")
                && message.contains(&format!(
                    "{} variables in {containers} containers",
                    100 * containers
                ))
                && message.contains("delivery \"secret\""),
            "{message}"
        );
        assert!(answer.to_string().len() < 4096);
    }
    let (_, peak) = server.memory_mib();
    assert!(
        peak < MEMORY_LIMIT_MIB,
        "peak resident memory {peak:.1} MiB"
    );
    // Within the limit, the same value in fewer places is fine.
    let answer = server.review(&amplifying(2, 5, "big")).await;
    assert_eq!(answer["response"]["allowed"], true);
}

#[tokio::test]
async fn names_that_do_not_exist_do_not_grow_the_cache() {
    let server = seeded(&[]).await;
    let mut review = fixture("pod-envfrom-only.json");
    let mut plateau = 0.0;
    for round in 0..1_200 {
        let env: Vec<String> = (0..256).map(|i| format!("V{i}=none-{round}-{i}")).collect();
        review["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] =
            json!(env.join(","));
        let answer = server.review(&review).await;
        assert_eq!(answer["response"]["allowed"], false);
        if round == 600 {
            plateau = server.memory_mib().0;
        }
    }
    let (rss, peak) = server.memory_mib();
    eprintln!("after 600 reviews {plateau:.1} MiB, after 1200 {rss:.1} MiB, peak {peak:.1} MiB");
    assert!(
        peak < MEMORY_LIMIT_MIB,
        "peak resident memory {peak:.1} MiB"
    );
    // 307,200 names in all, more than the cache's 16 MiB hold: it is
    // cleared on the way rather than grown.
    assert!(
        rss < plateau + 12.0,
        "still growing: {plateau:.1} → {rss:.1} MiB"
    );
    let stop = AtomicBool::new(true);
    genuine_reviews(&server, &stop).await;
}

#[tokio::test]
async fn made_up_pod_names_are_refused_and_record_nothing() {
    let server = seeded(&[]).await;
    let owner = server.client();
    for (what, name) in [
        ("long", "p".repeat(5_000)),
        ("nul", "web\u{0}1".to_owned()),
        ("bidi", "web\u{202e}1".to_owned()),
        ("upper", "Web".to_owned()),
    ] {
        let mut review = fixture("pod-dry-run.json");
        review["request"]["dryRun"] = json!(false);
        review["request"]["object"]["metadata"]["name"] = json!(name);
        let answer = server.review(&review).await;
        assert_eq!(answer["response"]["allowed"], false, "{what}");
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("is not a valid Kubernetes name"),
            "{what}: {message}"
        );
        assert!(
            message.len() < 400,
            "{what}: the name is shortened in the message"
        );
    }
    let mut review = fixture("pod-envfrom-only.json");
    review["request"]["object"]["metadata"]["ownerReferences"][0]["kind"] = json!("Replica Set");
    let answer = server.review(&review).await;
    assert_eq!(answer["response"]["allowed"], false);
    let references = owner
        .get("/v1/organizations/acme/secrets/stripe-api-key/references")
        .await
        .expect(200);
    assert_eq!(references["items"], json!([]), "{references}");
}

#[tokio::test]
async fn a_value_in_the_wrong_form_is_never_echoed() {
    let server = seeded(&[]).await;
    let owner = server.client();
    for value in [
        json!(4111111111111111u64),
        json!({"card": "4111111111111111"}),
        json!(["4111111111111111"]),
    ] {
        let reply = owner
            .post(
                "/v1/organizations/acme/secrets",
                json!({"name": "card", "storage": "local", "value": value}),
            )
            .await;
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert_eq!(reply.body["error"]["field"], "value");
        assert!(!reply.text.contains("4111"), "{}", reply.text);
        assert!(!server.logs().contains("4111111111111111"));
    }
}

#[tokio::test]
async fn sigterm_finishes_what_is_in_flight_and_exits_cleanly() {
    let mut server = seeded(&["--shutdown-delay", "2s", "--admission-timeout", "6s"]).await;
    let review = serde_json::to_vec(&fixture("pod-envfrom-only.json")).unwrap();
    let url = format!("{}/mutate", server.webhook);
    let client = trusting(&server).http1_only().build().unwrap();

    // A review whose body is still arriving when the listeners stop.
    let (half, rest) = review.split_at(review.len() / 2);
    let (half, rest) = (
        bytes::Bytes::copy_from_slice(half),
        bytes::Bytes::copy_from_slice(rest),
    );
    let slow_body = async_stream_body(half, rest, Duration::from_millis(3_500));
    let slow = {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(slow_body))
                .send()
                .await?;
            let status = response.status().as_u16();
            let answer: Value = response.json().await?;
            Ok::<_, reqwest::Error>((status, answer))
        })
    };

    // Steady admissions until the pod is reported not ready, as
    // Kubernetes stops routing to it.
    let draining = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, review, draining) = (
                client.clone(),
                url.clone(),
                review.clone(),
                draining.clone(),
            );
            tokio::spawn(async move {
                let mut answered = 0;
                while !draining.load(Ordering::SeqCst) {
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(review.clone())
                        .send()
                        .await
                        .expect("an admission sent while the pod was ready is answered");
                    assert_eq!(response.status(), 200);
                    let answer: Value = response.json().await.unwrap();
                    assert_eq!(answer["response"]["allowed"], true);
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.terminate();
    let ready = loop {
        let status = reqwest::get(format!("{}/readyz", server.api))
            .await
            .unwrap()
            .status();
        if status == 503 {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready, 503);
    draining.store(true, Ordering::SeqCst);
    for worker in workers {
        assert!(worker.await.unwrap() > 0);
    }

    let (status, answer) = slow.await.unwrap().expect("the slow admission is answered");
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let exit = server.wait_exit(Duration::from_secs(15)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit status {exit:?}:\n{}",
        server.logs()
    );
    let logs = server.logs();
    assert!(logs.contains("Every in-flight request answered"), "{logs}");
}

/// A body that sends `first`, waits `pause`, then sends `second`.
fn async_stream_body(
    first: bytes::Bytes,
    second: bytes::Bytes,
    pause: Duration,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures::stream::once(async move { Ok(first) }).chain(futures::stream::once(async move {
        tokio::time::sleep(pause).await;
        Ok(second)
    }))
}

use futures::StreamExt;
