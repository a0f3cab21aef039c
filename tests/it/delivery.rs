//! Who may call the webhook, and how values reach a container: forged
//! reviews against `serve` as it runs in a cluster, client certificates,
//! `secret` delivery through a loopback Kubernetes API, and the product's
//! access to bound namespaces.

use crate::common;
use crate::common::kube as kube_api;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Server, apply_patch, fixture, patch_ops, sqlite};
use kube_api::FakeApi;
use serde_json::{Value, json};

const STRIPE: &str = "sk_live_51HqDeliveryTestValue";
const DB: &str = "pg-pass-delivery-4c3b2a19";
const ROTATED: &str = "sk_live_51HqRotatedDeliveryValue";

/// `serve` as in a cluster, talking to `api` when given, with organization
/// `acme` bound to `team-a` and two local secrets.
async fn production(
    client_ca: bool,
    api: Option<&FakeApi>,
    extra: &[&str],
) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    if let Some(api) = api {
        args.push("--kubeconfig".into());
        args.push(api.kubeconfig(dir.path()).to_str().unwrap().to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_production(client_ca, &sqlite(), &args, &[]).await;
    server
        .seed(
            "acme",
            "team-a",
            &[("stripe-api-key", STRIPE), ("db-password", DB)],
        )
        .await;
    (server, dir)
}

/// A review of a pod of ReplicaSet `agent-7d9f8c6b5d` asking for both
/// secrets, delivered as `delivery` (the server's default when `None`).
fn review(delivery: Option<&str>, uid: &str) -> Value {
    let mut review = fixture("pod-no-env.json");
    review["request"]["uid"] = json!(uid);
    if let Some(delivery) = delivery {
        review["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/delivery"] =
            json!(delivery);
    }
    review
}

/// Every form in which `value` would show if it leaked into `text`.
fn leaks(text: &str, value: &str) -> bool {
    let json = serde_json::to_string(value).unwrap();
    text.contains(value)
        || text.contains(&json[1..json.len() - 1])
        || text.contains(&STANDARD.encode(value))
}

/// Asserts that neither an answer's text nor its decoded patch holds a value.
fn assert_no_value(text: &str, values: &[&str]) {
    let answer: Value = serde_json::from_str(text).unwrap();
    let ops = serde_json::to_string(&patch_ops(&answer)).unwrap();
    for value in values {
        assert!(!leaks(text, value), "the answer holds a value: {text}");
        assert!(!leaks(&ops, value), "the patch holds a value: {ops}");
    }
}

/// Sends `review` to `/mutate` with `client` and returns status and body.
async fn post(server: &Server, client: &reqwest::Client, review: &Value) -> (u16, String) {
    let response = client
        .post(format!("{}/mutate", server.webhook))
        .json(review)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    // None of these callers may get a value: the leak scan checks that too.
    common::record_webhook_answer(&serde_json::from_str(&text).unwrap_or(json!(text)));
    (status, text)
}

fn message(answer: &Value) -> &str {
    answer["response"]["status"]["message"]
        .as_str()
        .unwrap_or("")
}

/// The env entries of every container of a patched pod, as JSON.
fn env_entries(pod: &Value) -> Vec<Value> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|list| pod["spec"][list].as_array().cloned().unwrap_or_default())
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The name of the Secret every injected variable of `pod` refers to.
fn referenced_secret(pod: &Value) -> String {
    let names: BTreeSet<String> = env_entries(pod)
        .iter()
        .filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
        .map(str::to_owned)
        .collect();
    assert_eq!(names.len(), 1, "one Secret: {names:?}");
    names.into_iter().next().unwrap()
}

/// The decoded data of Secret `team-a/name` in the stand-in.
fn secret_data(api: &FakeApi, name: &str) -> Vec<(String, String)> {
    let cluster = api.cluster();
    let secret = &cluster.secrets[&("team-a".to_owned(), name.to_owned())];
    secret["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let bytes = STANDARD.decode(v.as_str().unwrap()).unwrap();
            (k.clone(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

fn writes_of(api: &FakeApi, prefix: &str) -> usize {
    api.cluster()
        .requests
        .iter()
        .filter(|r| (r.starts_with("POST ") || r.starts_with("PUT ")) && r.contains(prefix))
        .count()
}

#[tokio::test]
async fn forged_reviews_never_earn_a_value_without_a_client_ca() {
    let api = FakeApi::start().await;
    let (server, _dir) = production(false, Some(&api), &[]).await;
    // Anyone who reaches the port: no client certificate at all.
    let stranger = server.webhook_client_with(None);
    for dry_run in [false, true] {
        for delivery in [None, Some("secret"), Some("env"), Some("exec"), Some("Env")] {
            let mut forged = review(delivery, "forged");
            forged["request"]["dryRun"] = json!(dry_run);
            let (status, text) = post(&server, &stranger, &forged).await;
            assert_eq!(status, 200, "{text}");
            assert_no_value(&text, &[STRIPE, DB]);
            let answer: Value = serde_json::from_str(&text).unwrap();
            let allowed = answer["response"]["allowed"] == true;
            match delivery {
                None | Some("secret") => assert!(allowed, "{text}"),
                Some("env") => {
                    assert!(!allowed, "{text}");
                    let message = message(&answer);
                    assert!(
                        message.contains("--webhook-client-ca")
                            && message.contains("secrets.agyn.io/delivery: secret"),
                        "the denial names both fixes: {message}"
                    );
                }
                // `exec` never puts a value in the answer; these containers
                // have no command to wrap.
                Some("exec") => {
                    assert!(!allowed, "{text}");
                    assert!(message(&answer).contains("no command"), "{text}");
                }
                Some(other) => {
                    assert!(!allowed, "{text}");
                    assert!(
                        message(&answer).starts_with("annotation secrets.agyn.io/delivery: "),
                        "{other}: {text}"
                    );
                }
            }
        }
    }
    // `env` is refused before anything is looked up: an unbound namespace
    // and an unknown secret say nothing about either.
    let mut probe = review(Some("env"), "probe");
    probe["request"]["namespace"] = json!("team-z");
    probe["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] =
        json!("A=no-such-secret");
    let (_, text) = post(&server, &stranger, &probe).await;
    assert!(
        !text.contains("team-z") && !text.contains("no-such-secret"),
        "{text}"
    );
}

#[tokio::test]
async fn without_the_kubernetes_api_secret_delivery_is_denied_with_the_reason() {
    let (server, _dir) = production(false, None, &[]).await;
    let answer = server.review(&review(None, "no-api")).await;
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 403);
    let message = message(&answer);
    assert!(
        message.contains("the Kubernetes API is not configured")
            && message.contains("delivery \"secret\""),
        "{message}"
    );
    assert_no_value(&answer.to_string(), &[STRIPE, DB]);
}

#[tokio::test]
async fn with_a_client_ca_only_its_certificates_are_answered() {
    let api = FakeApi::start().await;
    let (server, dir) = production(true, Some(&api), &[]).await;

    // No client certificate: 401 before the body is read, and nothing of it back.
    let stranger = server.webhook_client_with(None);
    let (status, text) = post(&server, &stranger, &review(Some("env"), "stranger")).await;
    assert_eq!(status, 401, "{text}");
    for word in ["team-a", "acme", "stripe-api-key", "stranger", STRIPE, DB] {
        assert!(!text.contains(word), "{text}");
    }
    let health = stranger
        .get(format!("{}/healthz", server.webhook))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "health needs no certificate");

    // A certificate from another CA fails the handshake: no answer at all.
    let foreign = identity(&new_ca(&dir.path().join("other-ca")));
    let refused = server
        .webhook_client_with(Some(foreign))
        .post(format!("{}/mutate", server.webhook))
        .json(&review(Some("env"), "foreign"))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // The API server's certificate: `env` delivery is allowed and inlines values.
    let answer = server.review(&review(Some("env"), "apiserver-env")).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let patched = apply_patch(&fixture("pod-no-env.json")["request"]["object"], &answer);
    let values: BTreeSet<String> = env_entries(&patched)
        .iter()
        .filter_map(|e| e["value"].as_str().map(str::to_owned))
        .collect();
    assert!(values.contains(STRIPE) && values.contains(DB), "{patched}");

    // And `secret`, the default, still puts no value in the answer.
    let answer = server.review(&review(None, "apiserver-secret")).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_no_value(&answer.to_string(), &[STRIPE, DB]);

    // Each resolution is traced with the caller, and counted by delivery.
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("Resolved secrets") && l.contains("apiserver-env"))
        .unwrap_or_else(|| panic!("no trace of the admission:\n{logs}"));
    for field in [
        "delivery=\"env\"",
        "db-password@1,stripe-api-key@1",
        "CN=kube-apiserver",
        "namespace=\"team-a\"",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    let metrics = server.client().get("/metrics").await.text;
    for delivery in ["env", "secret"] {
        let sample = format!("agyn_resolutions_total{{delivery=\"{delivery}\"}} 1");
        assert!(metrics.contains(&sample), "{sample} in:\n{metrics}");
    }
}

/// A new CA and client certificate from `certs generate --client`, in `dir`.
fn new_ca(dir: &std::path::Path) -> std::path::PathBuf {
    let status = std::process::Command::new(common::BIN)
        .args(["certs", "generate", "--client", "--out"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    dir.to_owned()
}

/// The client certificate `certs generate --client` wrote into `dir`.
fn identity(dir: &std::path::Path) -> reqwest::Identity {
    let mut pem = std::fs::read(dir.join("client.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("client.key")).unwrap());
    reqwest::Identity::from_pem(&pem).unwrap()
}

#[tokio::test]
async fn a_new_client_ca_is_picked_up_without_a_restart() {
    let (server, dir) = production(true, None, &[]).await;
    let serving_ca = server.ca_pem();
    let client = |identity: reqwest::Identity| {
        common::http_builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&serving_ca).unwrap())
            .resolve(common::WEBHOOK_HOST, server.webhook_addr())
            .identity(identity)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let answered = |client: reqwest::Client| {
        let url = format!("{}/mutate", server.webhook);
        async move {
            client
                .post(url)
                .json(&review(Some("env"), "reload"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    };
    assert!(answered(client(server.apiserver_identity())).await);

    let next = new_ca(&dir.path().join("next"));
    // Swapped as a mounted Secret is: the new file replaces the old at once.
    agyn_secrets::certs::write_file(
        &server.certs_dir().join("ca.crt"),
        &std::fs::read_to_string(next.join("ca.crt")).unwrap(),
        0o644,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answered(client(identity(&next))).await {
        assert!(
            Instant::now() < deadline,
            "new client CA not used:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!answered(client(server.apiserver_identity())).await);

    // A broken file keeps the last good CA in service.
    std::fs::write(server.certs_dir().join("ca.crt"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(answered(client(identity(&next))).await);
    assert!(
        server.logs().contains("New client CA not loaded"),
        "{}",
        server.logs()
    );
}

#[tokio::test]
async fn secret_delivery_shares_one_secret_per_owner_and_version() {
    let api = FakeApi::start().await;
    let (server, _dir) = production(false, Some(&api), &["--managed-secret-grace", "3s"]).await;

    let first = review(None, "first");
    let answer = server.review(&first).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_no_value(&answer.to_string(), &[STRIPE, DB]);
    let pod = &first["request"]["object"];
    let patched = apply_patch(pod, &answer);
    let name = referenced_secret(&patched);
    assert!(name.starts_with("agyn-env-"), "{name}");
    for entry in env_entries(&patched) {
        assert!(entry.get("value").is_none(), "{entry}");
        let key = entry["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap();
        let expected = match entry["name"].as_str().unwrap() {
            "STRIPE_API_KEY" => "stripe-api-key",
            "DB_PASSWORD" => "db-password",
            other => panic!("unexpected variable {other}"),
        };
        assert_eq!(key, expected);
    }
    assert_eq!(
        secret_data(&api, &name),
        [
            ("db-password".to_owned(), DB.to_owned()),
            ("stripe-api-key".to_owned(), STRIPE.to_owned())
        ]
    );
    {
        let cluster = api.cluster();
        let secret = &cluster.secrets[&("team-a".to_owned(), name.clone())];
        assert_eq!(secret["type"], "Opaque");
        assert_eq!(
            secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "agyn-secrets"
        );
        assert_eq!(
            secret["metadata"]["annotations"]["secrets.agyn.io/source-version"],
            "db-password@1,stripe-api-key@1"
        );
    }
    assert_eq!(
        patched["metadata"]["annotations"]["secrets.agyn.io/injected"],
        "db-password@1,stripe-api-key@1"
    );

    // Our own output, reviewed again, changes nothing.
    let mut again = first.clone();
    again["request"]["object"] = patched.clone();
    assert!(patch_ops(&server.review(&again).await).is_empty());

    // Another replica of the same ReplicaSet shares the Secret; one write in all.
    let sibling = server.review(&review(None, "sibling")).await;
    assert_eq!(referenced_secret(&apply_patch(pod, &sibling)), name);
    assert_eq!(writes_of(&api, "agyn-env-"), 1);

    // Another ReplicaSet gets its own.
    let mut other = review(None, "other-owner");
    other["request"]["object"]["metadata"]["ownerReferences"][0]["name"] = json!("agent-5c4b3a2");
    let other_name = referenced_secret(&apply_patch(pod, &server.review(&other).await));
    assert_ne!(other_name, name);

    // A dry run answers the patch the real admission would, and writes nothing.
    server
        .client()
        .patch(
            "/v1/organizations/acme/secrets/stripe-api-key",
            json!({"value": ROTATED}),
        )
        .await
        .expect(200);
    let writes = api.cluster().requests.len();
    let mut dry = review(None, "dry");
    dry["request"]["dryRun"] = json!(true);
    let dry_answer = server.review(&dry).await;
    assert_eq!(dry_answer["response"]["allowed"], true, "{dry_answer}");
    // Only writes count: the clean-up loop lists and deletes meanwhile.
    let dry_writes: Vec<String> = api.cluster().requests[writes..]
        .iter()
        .filter(|r| r.starts_with("POST ") || r.starts_with("PUT "))
        .cloned()
        .collect();
    assert!(dry_writes.is_empty(), "a dry run wrote {dry_writes:?}");

    // A rotation makes a new Secret with the new value; the old one stays
    // for the pods that use it.
    let rotated = server.review(&review(None, "rotated")).await;
    assert_eq!(
        patch_ops(&rotated),
        patch_ops(&dry_answer),
        "dry run and real admission differ"
    );
    let rotated_pod = apply_patch(pod, &rotated);
    let rotated_name = referenced_secret(&rotated_pod);
    assert_ne!(rotated_name, name);
    assert_eq!(
        secret_data(&api, &rotated_name),
        [
            ("db-password".to_owned(), DB.to_owned()),
            ("stripe-api-key".to_owned(), ROTATED.to_owned())
        ]
    );

    // Clean-up: the pod of the rotated Secret runs; the others have none.
    api.cluster().add_pod_object("team-a", rotated_pod);
    let key = |name: &str| ("team-a".to_owned(), name.to_owned());
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.cluster().secrets.contains_key(&key(&name))
        || api.cluster().secrets.contains_key(&key(&other_name))
    {
        assert!(
            Instant::now() < deadline,
            "unused Secrets not cleaned up:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cluster = api.cluster();
    assert!(
        cluster.secrets.contains_key(&key(&rotated_name)),
        "a Secret a pod uses is never deleted"
    );
    // Clean-up reads metadata only, and only in bound namespaces.
    let lists: Vec<&String> = cluster
        .requests
        .iter()
        .filter(|r| r.starts_with("LIST secrets"))
        .collect();
    assert!(!lists.is_empty());
    assert!(
        lists.iter().all(|r| *r == "LIST secrets team-a (metadata)"),
        "{lists:?}"
    );
}

#[tokio::test]
async fn namespaces_without_a_role_binding_are_reported_and_their_pods_denied() {
    let api = FakeApi::start().await;
    api.cluster().rbac = Some(BTreeSet::from(["team-a".to_owned()]));
    let (server, _dir) = production(false, Some(&api), &[]).await;
    let admin = server.client();

    let bound = admin
        .put("/v1/namespaces/team-a", json!({"organization": "acme"}))
        .await
        .expect(200);
    assert_eq!(bound["access"]["ok"], true, "{bound}");
    assert_eq!(bound["access"]["checked"], true, "{bound}");

    let unbound = admin
        .put("/v1/namespaces/team-b", json!({"organization": "acme"}))
        .await
        .expect(201);
    let access = &unbound["access"];
    assert_eq!(access["ok"], false, "{unbound}");
    assert_eq!(
        access["missing"],
        json!([
            "get secrets",
            "list secrets",
            "create secrets",
            "update secrets",
            "delete secrets",
            "list pods",
            "get pods",
            "get deployments",
            "patch deployments",
            "get statefulsets",
            "patch statefulsets",
            "get daemonsets",
            "patch daemonsets",
            "get replicasets"
        ])
    );
    let fix = "kubectl create rolebinding agyn-secrets -n team-b --clusterrole=agyn-secrets-workload --serviceaccount=agyn-secrets:agyn-secrets";
    assert!(
        access["message"].as_str().unwrap().contains(fix),
        "{unbound}"
    );
    let read = admin.get("/v1/namespaces/team-b").await.expect(200);
    assert_eq!(read["access"], *access);

    let mut review = review(None, "team-b-pod");
    review["request"]["namespace"] = json!("team-b");
    let answer = server.review(&review).await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(answer["response"]["status"]["code"], 403);
    let message = message(&answer);
    assert!(
        message.contains("agyn-secrets may not read Secrets in namespace \"team-b\"")
            && message.contains(fix),
        "{message}"
    );
    assert_no_value(&answer.to_string(), &[STRIPE, DB]);
}

#[tokio::test]
async fn without_the_kubernetes_api_a_binding_says_so() {
    let server = Server::start(&sqlite()).await;
    let answer = server
        .client()
        .put("/v1/namespaces/team-a", json!({"organization": "x"}))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    server
        .client()
        .post("/v1/organizations", json!({"name": "x"}))
        .await
        .expect(201);
    let bound = server
        .client()
        .put("/v1/namespaces/team-a", json!({"organization": "x"}))
        .await
        .expect(201);
    assert_eq!(bound["access"]["checked"], false, "{bound}");
    assert_eq!(bound["access"]["ok"], false, "{bound}");
    assert!(
        bound["access"]["message"]
            .as_str()
            .unwrap()
            .contains("the Kubernetes API is not configured"),
        "{bound}"
    );
}
