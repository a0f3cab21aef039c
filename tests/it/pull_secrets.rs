//! Image pull secrets written through the Kubernetes API at admission, and
//! cleaned up once unused. The API server is a loopback stand-in.

use crate::common;
use crate::common::kube as kube_api;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Server, TestDb, apply_patch, fixture, patch_ops};
use kube_api::FakeApi;
use serde_json::{Value, json};

const PASSWORD: &str = "ghp_RegistryPasswordNeverLogged_77";
const ROTATED: &str = "ghp_RotatedRegistryPassword_78";

async fn setup(extra: &[&str]) -> (Server, FakeApi, tempfile::TempDir) {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let mut args = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = Server::start_with(&TestDb::sqlite(), &args, &[]).await;
    let owner = server
        .seed(
            "acme",
            "team-a",
            &[("registry-password", PASSWORD), ("stripe-api-key", "sk_x")],
        )
        .await;
    server
        .client_as(&owner)
        .post(
            "/v1/organizations/acme/image-pull-secrets",
            json!({"name": "ghcr", "registry": "ghcr.io", "username": "acme-bot", "password_secret": "registry-password"}),
        )
        .await
        .expect(201);
    (server, api, dir)
}

fn pull_review(pulls: &str, env: Option<&str>) -> Value {
    let mut review = fixture("pod-envfrom-only.json");
    let annotations = &mut review["request"]["object"]["metadata"]["annotations"];
    annotations["secrets.agyn.io/image-pull-secrets"] = json!(pulls);
    match env {
        Some(env) => annotations["secrets.agyn.io/env"] = json!(env),
        None => {
            annotations
                .as_object_mut()
                .unwrap()
                .remove("secrets.agyn.io/env");
        }
    }
    review
}

fn docker_config(secret: &Value) -> Value {
    let data = secret["data"][".dockerconfigjson"].as_str().unwrap();
    serde_json::from_slice(&STANDARD.decode(data).unwrap()).unwrap()
}

#[tokio::test]
async fn writes_the_secret_and_patches_the_pod_once() {
    let (server, api, _dir) = setup(&[]).await;
    let review = pull_review("ghcr", Some("STRIPE=stripe-api-key"));
    let answer = server.review(&review).await;
    assert_eq!(
        answer["response"]["allowed"],
        true,
        "{answer}\n{}",
        server.logs()
    );
    let patched = apply_patch(&review["request"]["object"], &answer);
    assert_eq!(
        patched["spec"]["imagePullSecrets"],
        json!([{"name": "agyn-pull-ghcr"}])
    );
    assert_eq!(patched["spec"]["containers"][0]["env"][0]["value"], "sk_x");

    let secret = api.cluster().secrets[&("team-a".to_owned(), "agyn-pull-ghcr".to_owned())].clone();
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "agyn-secrets"
    );
    assert_eq!(
        secret["metadata"]["annotations"]["secrets.agyn.io/source"],
        "ghcr"
    );
    assert_eq!(
        secret["metadata"]["annotations"]["secrets.agyn.io/source-version"],
        "registry-password@1"
    );
    assert!(secret["metadata"]["resourceVersion"].is_string());
    let auth = &docker_config(&secret)["auths"]["ghcr.io"];
    assert_eq!(auth["username"], "acme-bot");
    assert_eq!(auth["password"], PASSWORD);
    assert_eq!(
        auth["auth"],
        STANDARD.encode(format!("acme-bot:{PASSWORD}"))
    );

    // The pod after our patch: nothing more to do, and no second write.
    let writes = |api: &FakeApi| {
        api.cluster()
            .requests
            .iter()
            .filter(|r| r.starts_with("POST") || r.starts_with("PUT"))
            .count()
    };
    assert_eq!(writes(&api), 1);
    let mut again = review.clone();
    again["request"]["object"] = patched;
    let second = server.review(&again).await;
    assert!(patch_ops(&second).is_empty(), "{second}");
    assert_eq!(writes(&api), 1, "an up-to-date Secret is not written again");

    // A rotated password reaches the Secret at the next admission.
    server
        .client()
        .patch(
            "/v1/organizations/acme/secrets/registry-password",
            json!({"value": ROTATED}),
        )
        .await
        .expect(200);
    server.review(&review).await;
    let secret = api.cluster().secrets[&("team-a".to_owned(), "agyn-pull-ghcr".to_owned())].clone();
    assert_eq!(
        docker_config(&secret)["auths"]["ghcr.io"]["password"],
        ROTATED
    );
    assert_eq!(
        secret["metadata"]["annotations"]["secrets.agyn.io/source-version"],
        "registry-password@2"
    );

    for value in [PASSWORD, ROTATED] {
        assert!(
            !server.logs().contains(value),
            "the log leaked a registry password"
        );
    }
}

#[tokio::test]
async fn dry_run_patches_but_writes_nothing() {
    let (server, api, _dir) = setup(&[]).await;
    let mut review = pull_review("ghcr", None);
    review["request"]["dryRun"] = json!(true);
    let answer = server.review(&review).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let patched = apply_patch(&review["request"]["object"], &answer);
    assert_eq!(
        patched["spec"]["imagePullSecrets"],
        json!([{"name": "agyn-pull-ghcr"}])
    );
    assert!(api.cluster().secrets.is_empty());
    assert!(
        api.cluster()
            .requests
            .iter()
            .all(|r| !r.starts_with("POST") && !r.starts_with("PUT"))
    );
}

#[tokio::test]
async fn a_secret_we_do_not_manage_is_never_overwritten() {
    let (server, api, _dir) = setup(&[]).await;
    api.cluster()
        .add_secret("team-a", "agyn-pull-ghcr", json!({"team": "a"}));
    let before = api.cluster().secrets.clone();
    let answer = server.review(&pull_review("ghcr", None)).await;
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "Secret team-a/agyn-pull-ghcr already exists and is not managed by agyn-secrets"
        ),
        "{message}"
    );
    assert_eq!(api.cluster().secrets, before);
}

#[tokio::test]
async fn conflicts_are_retried_then_reported() {
    let (server, api, _dir) = setup(&[]).await;
    api.cluster().conflicts = 2;
    let answer = server.review(&pull_review("ghcr", None)).await;
    assert_eq!(
        answer["response"]["allowed"], true,
        "two conflicts are retried: {answer}"
    );

    server
        .client()
        .patch(
            "/v1/organizations/acme/secrets/registry-password",
            json!({"value": ROTATED}),
        )
        .await
        .expect(200);
    api.cluster().conflicts = 10;
    let answer = server.review(&pull_review("ghcr", None)).await;
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("kept changing while it was written; retry"),
        "{message}"
    );
}

#[tokio::test]
async fn an_api_that_refuses_or_is_down_denies_with_every_problem_named() {
    let (server, api, _dir) = setup(&[]).await;
    api.cluster().fail_with = Some(403);
    let answer = server
        .review(&pull_review("ghcr,quay", Some("STRIPE=stripe-api-key")))
        .await;
    let message = answer["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        message.contains("image pull secret \"quay\" not found in organization \"acme\""),
        "{message}"
    );

    let answer = server
        .review(&pull_review("ghcr", Some("STRIPE=stripe-api-key")))
        .await;
    let message = answer["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    // A refusal is a set-up to fix, not an outage: 403, with the fix.
    assert!(
        message.contains("agyn-secrets may not read Secrets in namespace \"team-a\""),
        "{message}"
    );
    assert!(
        message.contains(
            "kubectl create rolebinding agyn-secrets -n team-a --clusterrole=agyn-secrets-workload --serviceaccount=agyn-secrets:agyn-secrets"
        ),
        "{message}"
    );
    assert_eq!(answer["response"]["status"]["code"], 403);

    api.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = server.review(&pull_review("ghcr", None)).await;
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        message.contains("the Kubernetes API is unreachable"),
        "{message}"
    );
    assert!(!message.contains(PASSWORD));
}

#[tokio::test]
async fn unused_secrets_are_cleaned_up_after_the_grace_period() {
    let (server, api, _dir) = setup(&["--managed-secret-grace", "2s"]).await;
    let owner = server.client();
    owner
        .post(
            "/v1/organizations/acme/image-pull-secrets",
            json!({"name": "quay", "registry": "quay.io", "username": "bot", "password_secret": "registry-password"}),
        )
        .await
        .expect(201);
    server.review(&pull_review("ghcr,quay", None)).await;
    api.cluster()
        .add_pod("team-a", "web-1", &["agyn-pull-ghcr"]);
    api.cluster().add_secret(
        "team-a",
        "other",
        json!({"app.kubernetes.io/managed-by": "someone-else"}),
    );
    let key = |name: &str| ("team-a".to_owned(), name.to_owned());
    assert!(api.cluster().secrets.contains_key(&key("agyn-pull-quay")));

    let deadline = Instant::now() + Duration::from_secs(20);
    while api.cluster().secrets.contains_key(&key("agyn-pull-quay")) {
        assert!(
            Instant::now() < deadline,
            "unused Secret not cleaned up:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cluster = api.cluster();
    assert!(
        cluster.secrets.contains_key(&key("agyn-pull-ghcr")),
        "a Secret a pod uses stays"
    );
    assert!(
        cluster.secrets.contains_key(&key("other")),
        "Secrets we do not manage stay"
    );
}
