//! The admission webhook over real TLS, driven with AdmissionReview JSON as
//! the API server sends it.

use crate::common;

use std::collections::BTreeMap;

use common::{Backend, Server, TestDb, apply_patch, fixture, needs, patch_ops, sqlite};
use k8s_openapi::api::core::v1::Pod;
use rstest::rstest;
use serde_json::{Value, json};

const STRIPE: &str = "sk_live_51HqTestValueForWebhook";
const DB: &str = "pg-pass-9f8e7d6c";

async fn seeded() -> Server {
    seeded_on(&sqlite()).await
}

async fn seeded_on(db: &TestDb) -> Server {
    let server = Server::start(db).await;
    server
        .seed(
            "acme",
            "team-a",
            &[("stripe-api-key", STRIPE), ("db-password", DB)],
        )
        .await;
    server
}

/// Env of each container and init container, by container name.
fn env_of(pod: &Pod) -> BTreeMap<String, BTreeMap<String, String>> {
    let spec = pod.spec.as_ref().unwrap();
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| {
            let env = c
                .env
                .iter()
                .flatten()
                .map(|e| {
                    let shown = match (&e.value, &e.value_from) {
                        (Some(v), None) => v.clone(),
                        (None, Some(_)) => "<valueFrom>".to_owned(),
                        other => panic!("env {} has {other:?}", e.name),
                    };
                    (e.name.clone(), shown)
                })
                .collect();
            (c.name.clone(), env)
        })
        .collect()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A pod fixture and the env each of its containers must end with.
type Injection = (
    &'static str,
    &'static [(&'static str, &'static [(&'static str, &'static str)])],
);

const NO_ENV: Injection = (
    "pod-no-env.json",
    &[
        (
            "log-shipper",
            &[("STRIPE_API_KEY", STRIPE), ("DB_PASSWORD", DB)],
        ),
        ("agent", &[("STRIPE_API_KEY", STRIPE), ("DB_PASSWORD", DB)]),
    ],
);
const ENV_VALUE: Injection = (
    "pod-env-value.json",
    &[(
        "agent",
        &[
            ("LOG_LEVEL", "info"),
            ("STRIPE_API_KEY", STRIPE),
            ("DB_PASSWORD", DB),
        ],
    )],
);
const ENV_VALUE_FROM: Injection = (
    "pod-env-valuefrom.json",
    &[(
        "agent",
        &[
            ("DB_PASSWORD", DB),
            ("POD_IP", "<valueFrom>"),
            ("STRIPE_API_KEY", STRIPE),
        ],
    )],
);
const ENV_FROM_ONLY: Injection = (
    "pod-envfrom-only.json",
    &[("agent", &[("STRIPE_API_KEY", STRIPE)])],
);
const CONTAINER_SPECIFIC: Injection = (
    "pod-container-specific.json",
    &[
        ("agent", &[("STRIPE_API_KEY", STRIPE)]),
        ("mcp", &[("PORT", "3000"), ("DB_PASSWORD", DB)]),
    ],
);
const JOB: Injection = ("pod-job.json", &[("migrate", &[("DB_PASSWORD", DB)])]);
const DRY_RUN: Injection = (
    "pod-dry-run.json",
    &[("agent", &[("STRIPE_API_KEY", STRIPE), ("DB_PASSWORD", DB)])],
);

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[needs(postgres)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn injects_env_and_is_idempotent(
    #[case] backend: Backend,
    #[values(
        NO_ENV,
        ENV_VALUE,
        ENV_VALUE_FROM,
        ENV_FROM_ONLY,
        CONTAINER_SPECIFIC,
        JOB,
        DRY_RUN
    )]
    pod: Injection,
) {
    let Some(db) = backend.db().await else {
        return;
    };
    let server = seeded_on(&db).await;
    let (file, expected) = pod;
    inject_and_review_again(&server, file, expected).await;
}

async fn inject_and_review_again(
    server: &Server,
    file: &str,
    expected: &[(&str, &[(&str, &str)])],
) {
    let review = fixture(file);
    let answer = server.review(&review).await;
    let response = &answer["response"];
    assert_eq!(response["uid"], review["request"]["uid"]);
    assert_eq!(response["allowed"], true, "{answer}");
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");

    let original = &review["request"]["object"];
    let patched = apply_patch(original, &answer);
    let pod: Pod = serde_json::from_value(patched.clone()).expect("the patched object is a Pod");
    let got = env_of(&pod);
    for (container, vars) in expected {
        assert_eq!(got[*container], env(vars), "container {container}");
    }
    // envFrom is left alone.
    assert_eq!(
        patched.pointer("/spec/containers/0/envFrom"),
        original.pointer("/spec/containers/0/envFrom")
    );
    let stamp = pod.metadata.annotations.as_ref().unwrap()["secrets.agyn.io/injected"].clone();
    assert!(stamp.contains("@1"), "{stamp}");
    assert!(!stamp.contains(STRIPE) && !stamp.contains(DB));

    // Our own output, reviewed again (reinvocationPolicy IfNeeded), changes nothing.
    let mut again = review.clone();
    again["request"]["object"] = patched;
    again["request"]["uid"] = json!("second-pass");
    let second = server.review(&again).await;
    assert_eq!(second["response"]["allowed"], true);
    assert_eq!(second["response"]["uid"], "second-pass");
    assert!(patch_ops(&second).is_empty(), "{:?}", patch_ops(&second));
}

#[tokio::test]
async fn references_are_recorded_except_for_dry_runs() {
    let server = seeded().await;
    let owner = server.client();
    server.review(&fixture("pod-dry-run.json")).await;
    let refs = owner
        .get("/v1/organizations/acme/secrets/stripe-api-key/references")
        .await
        .expect(200);
    assert_eq!(refs["items"], json!([]), "a dry run records nothing");

    server.review(&fixture("pod-no-env.json")).await;
    let refs = owner
        .get("/v1/organizations/acme/secrets/stripe-api-key/references")
        .await
        .expect(200);
    let items = refs["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{refs}");
    let agent = items.iter().find(|r| r["container"] == "agent").unwrap();
    assert_eq!(agent["kind"], "pod");
    assert_eq!(agent["namespace"], "team-a");
    assert_eq!(agent["pod"], "agent-7d9f8c6b5d-");
    assert_eq!(agent["owner_kind"], "ReplicaSet");
    assert_eq!(agent["owner_name"], "agent-7d9f8c6b5d");
    assert_eq!(agent["env_var"], "STRIPE_API_KEY");

    let guarded = owner
        .delete("/v1/organizations/acme/secrets/stripe-api-key")
        .await;
    assert_eq!(guarded.status, 409, "{}", guarded.text);
    assert_eq!(guarded.body["references"].as_array().unwrap().len(), 2);
    assert!(!guarded.text.contains(STRIPE));
}

/// A pod review with the given annotations and containers, in namespace `ns`.
fn review_with(ns: &str, annotation: &str, containers: Value) -> Value {
    let mut review = fixture("pod-no-env.json");
    review["request"]["namespace"] = json!(ns);
    review["request"]["object"]["metadata"]["namespace"] = json!(ns);
    review["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] =
        json!(annotation);
    review["request"]["object"]["spec"]["containers"] = containers;
    review["request"]["object"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("initContainers");
    review
}

#[rstest]
#[case::unbound(
    "team-z",
    "A=stripe-api-key",
    "namespace \"team-z\" is not bound to an organization"
)]
#[case::unknown_secret(
    "team-a",
    "A=nope",
    "secret \"nope\" not found in organization \"acme\""
)]
#[case::two_unknown(
    "team-a",
    "A=nope,B=gone",
    "secrets \"gone\", \"nope\" not found in organization \"acme\""
)]
#[case::malformed(
    "team-a",
    "A=stripe-api-key,B=db-password,FOO",
    "annotation secrets.agyn.io/env: entry 3 \"FOO\" has no \"=\""
)]
#[case::unknown_container(
    "team-a",
    "worker:A=stripe-api-key",
    "container \"worker\" not found in pod"
)]
#[case::duplicate(
    "team-a",
    "A=stripe-api-key,agent:A=db-password",
    "A is set twice for container \"agent\""
)]
#[tokio::test]
async fn denials_say_what_to_fix(
    #[case] ns: &str,
    #[case] annotation: &str,
    #[case] expected: &str,
) {
    let server = seeded().await;
    let review = review_with(
        ns,
        annotation,
        json!([{"name": "agent", "image": "busybox"}]),
    );
    let answer = server.review(&review).await;
    let response = &answer["response"];
    assert_eq!(response["allowed"], false, "{answer}");
    assert_eq!(response["uid"], review["request"]["uid"]);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains(expected), "{message}");
    assert!(!message.contains(STRIPE) && !message.contains(DB));
    assert!(response.get("patch").is_none());
}

#[tokio::test]
async fn other_requests_pass_unchanged() {
    let server = seeded().await;
    let base = fixture("pod-no-env.json");

    let mut update = base.clone();
    update["request"]["operation"] = json!("UPDATE");
    let mut deployment = base.clone();
    deployment["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    let mut plain = base.clone();
    plain["request"]["object"]["metadata"]["annotations"] = json!({"other": "x"});
    let mut no_annotations = base.clone();
    no_annotations["request"]["object"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");

    for review in [update, deployment, plain, no_annotations] {
        let answer = server.review(&review).await;
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        assert!(answer["response"].get("patch").is_none(), "{answer}");
    }
}

#[tokio::test]
async fn rotation_reaches_the_next_pod() {
    let server = seeded().await;
    let owner = server.client();
    let rotated = owner
        .patch(
            "/v1/organizations/acme/secrets/stripe-api-key",
            json!({"value": "sk_live_rotated_2"}),
        )
        .await
        .expect(200);
    assert_eq!(rotated["version"], 2);
    let review = fixture("pod-envfrom-only.json");
    let answer = server.review(&review).await;
    let patched = apply_patch(&review["request"]["object"], &answer);
    assert_eq!(
        patched.pointer("/spec/containers/0/env/0/value").unwrap(),
        "sk_live_rotated_2"
    );
    assert_eq!(
        patched
            .pointer("/metadata/annotations/secrets.agyn.io~1injected")
            .unwrap(),
        "stripe-api-key@2"
    );
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason() {
    let server = seeded().await;
    // Over HTTP/2 (which other clients may speak; the API server sends
    // HTTP/1.1): an early 413 arrives while the body is still being sent.
    let client = common::http_builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("{}/mutate", server.webhook);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"not json".to_vec(), 400, "not JSON"),
        (b"{}".to_vec(), 400, "apiVersion"),
        (
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"}}}"#.to_vec(),
            400,
            "admission.k8s.io/v1",
        ),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), 400, "no request"),
        (vec![b' '; (3 << 20) + 1], 413, "at most"),
    ];
    for (body, status, reason) in cases {
        let response = client.post(&url).body(body).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let text = response.text().await.unwrap();
        assert!(text.contains(reason), "{text}");
    }
    // Still serving.
    let answer = server.review(&fixture("pod-envfrom-only.json")).await;
    assert_eq!(answer["response"]["allowed"], true);
}

#[tokio::test]
async fn plain_http_and_old_tls_are_refused() {
    let server = seeded().await;
    let plain = server.webhook.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());
    let tls11_only = common::http_builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_1)
        .build();
    // rustls cannot even offer TLS 1.1; either refusal proves the point.
    if let Ok(client) = tls11_only {
        assert!(
            client
                .get(format!("{}/healthz", server.webhook))
                .send()
                .await
                .is_err()
        );
    }
    let tls12 = common::http_builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    let response = tls12
        .get(format!("{}/healthz", server.webhook))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn metrics_count_admissions_without_values() {
    let server = seeded().await;
    server.review(&fixture("pod-no-env.json")).await;
    server
        .review(&review_with(
            "team-a",
            "A=nope",
            json!([{"name": "agent", "image": "busybox"}]),
        ))
        .await;
    let metrics = reqwest::get(format!("{}/metrics", server.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("agyn_admissions_total{result=\"allowed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agyn_admissions_total{result=\"denied\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("agyn_admission_duration_seconds_bucket"));
    assert!(
        metrics.contains("agyn_resolution_errors_total{kind=\"not_found\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains(STRIPE) && !metrics.contains(DB) && !metrics.contains("stripe-api-key")
    );
}
