//! Restart on rotation, against the loopback Kubernetes API: a version
//! change patches exactly the opted-in workloads whose pods run an older
//! version, once per `--restart-min-interval`, from one replica.

use crate::common;
use crate::common::kube as kube_api;

use std::time::{Duration, Instant};

use common::{Backend, Server, TestDb, needs, review_with_env};
use kube_api::FakeApi;
use rstest::rstest;
use serde_json::{Value, json};

const OPT_IN: &str = "secrets.agyn.io/restart-on-rotation";
const STAMP: &str = "secrets.agyn.io/injected";

/// The loopback cluster: in namespace team-a,
/// - Deployment `web` (opted in, pods at db-password@1): restarted;
/// - DaemonSet `agent` (opted in, at db-password@1): restarted;
/// - Deployment `api` (pods at db-password@1, not opted in): never touched;
/// - StatefulSet `cache` (opted in, pods without db-password): never touched;
/// - a Job's pod (opted in, at db-password@1): Jobs are not restarted.
fn cluster(api: &FakeApi) {
    let mut c = api.cluster();
    let stale = json!({OPT_IN: "true", STAMP: "db-password@1,other@3"});
    c.add_workload("team-a", "Deployment", "web");
    c.add_replicaset("team-a", "web-6d4f", "web");
    c.add_owned_pod(
        "team-a",
        "web-6d4f-a",
        "ReplicaSet",
        "web-6d4f",
        stale.clone(),
    );
    c.add_owned_pod(
        "team-a",
        "web-6d4f-b",
        "ReplicaSet",
        "web-6d4f",
        stale.clone(),
    );
    c.add_workload("team-a", "DaemonSet", "agent");
    c.add_owned_pod("team-a", "agent-x1", "DaemonSet", "agent", stale.clone());
    c.add_workload("team-a", "Deployment", "api");
    c.add_replicaset("team-a", "api-5c8b", "api");
    c.add_owned_pod(
        "team-a",
        "api-5c8b-a",
        "ReplicaSet",
        "api-5c8b",
        json!({STAMP: "db-password@1"}),
    );
    c.add_workload("team-a", "StatefulSet", "cache");
    c.add_owned_pod(
        "team-a",
        "cache-0",
        "StatefulSet",
        "cache",
        json!({OPT_IN: "true", STAMP: "other@3"}),
    );
    c.add_owned_pod("team-a", "migrate-q7", "Job", "migrate", stale);
}

/// A server on `db` that talks to `api`, with a 3 s restart interval.
async fn server(db: &TestDb, api: &FakeApi, dir: &std::path::Path) -> Server {
    server_with_interval(db, api, dir, "3s").await
}

async fn server_with_interval(
    db: &TestDb,
    api: &FakeApi,
    dir: &std::path::Path,
    interval: &str,
) -> Server {
    let kubeconfig = api.kubeconfig(dir);
    Server::start_with(
        db,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--restart-min-interval",
            interval,
        ],
        &[],
    )
    .await
}

/// When `workload` was restarted to `version`, as the rollouts say.
fn restarted_at(items: &[Value], version: i64, workload: &str) -> std::time::SystemTime {
    let rollout = items
        .iter()
        .find(|r| r["to_version"] == version && r["name"] == workload)
        .unwrap_or_else(|| panic!("no rollout of {workload} to {version}: {items:#?}"));
    humantime::parse_rfc3339(rollout["restarted_at"].as_str().unwrap()).unwrap()
}

/// Seeds acme/team-a with db-password and admits one pod with it, so that
/// the secret is known to be used in team-a.
async fn seed(server: &Server) -> String {
    let owner = server
        .seed("acme", "team-a", &[("db-password", "RotatedAway-1")])
        .await;
    let answer = server
        .review(&review_with_env(
            "pod-env-value.json",
            "DB=db-password",
            "seed",
        ))
        .await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    owner
}

async fn rotate(server: &Server, owner: &str, value: &str) {
    server
        .client_as(owner)
        .patch(
            "/v1/organizations/acme/secrets/db-password",
            json!({"value": value}),
        )
        .await
        .expect(200);
}

/// The secret's rollouts, newest first, once `done` says they are as
/// awaited (within 30 s).
async fn rollouts_until(
    server: &Server,
    owner: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let items = server
            .client_as(owner)
            .all_pages("/v1/organizations/acme/secrets/db-password/rollouts", 100)
            .await;
        if done(&items) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "rollouts never got there: {items:#?}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn in_state<'a>(items: &'a [Value], version: i64, state: &str) -> Vec<&'a str> {
    let mut names: Vec<&str> = items
        .iter()
        .filter(|r| r["to_version"] == version && r["state"] == state)
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names
}

/// The workloads patched so far, in order, as `Kind/name`.
fn patched(api: &FakeApi) -> Vec<String> {
    api.cluster()
        .patches()
        .iter()
        .map(|(kind, namespace, name, body)| {
            assert_eq!(namespace, "team-a");
            let at = &body["spec"]["template"]["metadata"]["annotations"]["secrets.agyn.io/restarted-at"];
            assert!(at.is_string(), "{body}");
            format!("{kind}/{name}")
        })
        .collect()
}

#[tokio::test]
async fn a_rotation_restarts_exactly_the_opted_in_workloads_on_the_old_version() {
    let api = FakeApi::start().await;
    cluster(&api);
    let dir = tempfile::tempdir().unwrap();
    let server = server(&common::sqlite(), &api, dir.path()).await;
    let owner = seed(&server).await;

    rotate(&server, &owner, "RotatedAway-2").await;
    let items = rollouts_until(&server, &owner, |items| {
        in_state(items, 2, "restarted") == ["agent", "web"]
    })
    .await;
    assert_eq!(items.len(), 2, "{items:#?}");
    assert!(
        items
            .iter()
            .all(|r| r["from_version"] == 1 && r["namespace"] == "team-a"),
        "{items:#?}"
    );
    assert!(
        items[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("rotated by token:owner:")
    );
    let mut first = patched(&api);
    first.sort();
    assert_eq!(first, ["DaemonSet/agent", "Deployment/web"]);
    let web = api
        .cluster()
        .workload("team-a", "Deployment", "web")
        .cloned()
        .unwrap();
    assert!(
        web["spec"]["template"]["metadata"]["annotations"]["secrets.agyn.io/restarted-at"]
            .is_string(),
        "{web}"
    );

    // A second rotation within the interval waits, then restarts once: no
    // sooner than the interval after the first restart.
    rotate(&server, &owner, "RotatedAway-3").await;
    let items = rollouts_until(&server, &owner, |items| {
        in_state(items, 3, "restarted") == ["agent", "web"]
    })
    .await;
    for workload in ["agent", "web"] {
        let gap = restarted_at(&items, 3, workload)
            .duration_since(restarted_at(&items, 2, workload))
            .unwrap();
        assert!(
            gap >= Duration::from_secs(3),
            "{workload} restarted again after {gap:?}"
        );
    }
    let all = patched(&api);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(
        !all.iter()
            .any(|w| w.ends_with("/api") || w.ends_with("/cache")),
        "a workload that did not opt in, or does not use the secret, was touched: {all:?}"
    );

    let audit = server
        .client_as(&owner)
        .get("/v1/organizations/acme/audit")
        .await
        .expect(200);
    let restarts = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "workload.restart")
        .count();
    assert_eq!(restarts, 4, "{audit}");
    let metrics = server.client().get("/metrics").await;
    assert!(
        metrics
            .text
            .contains(r#"agyn_workload_restarts_total{kind="Deployment",result="restarted"} 2"#),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn a_waiting_rollout_says_until_when_and_patches_nothing() {
    let api = FakeApi::start().await;
    cluster(&api);
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_interval(&common::sqlite(), &api, dir.path(), "1h").await;
    let owner = seed(&server).await;
    rotate(&server, &owner, "RotatedAway-2").await;
    rollouts_until(&server, &owner, |items| {
        in_state(items, 2, "restarted").len() == 2
    })
    .await;
    rotate(&server, &owner, "RotatedAway-3").await;
    let items = rollouts_until(&server, &owner, |items| {
        items
            .iter()
            .any(|r| r["state"] == "pending" && r["message"] != "")
    })
    .await;
    let message = items
        .iter()
        .find(|r| r["state"] == "pending" && r["message"] != "")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("waiting until ") && message.contains("--restart-min-interval is 1h"),
        "{message}"
    );
    assert_eq!(patched(&api).len(), 2, "nothing is patched while it waits");
}

#[rstest]
#[needs(postgres)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn two_replicas_on_one_database_restart_each_workload_once(#[case] backend: Backend) {
    let Some(db) = backend.db().await else {
        return;
    };
    let api = FakeApi::start().await;
    cluster(&api);
    let dir = tempfile::tempdir().unwrap();
    let first = server(&db, &api, dir.path()).await;
    let second = server(&db, &api, dir.path()).await;
    let owner = seed(&first).await;

    rotate(&first, &owner, "RotatedAway-2").await;
    rollouts_until(&second, &owner, |items| {
        in_state(items, 2, "restarted") == ["agent", "web"]
    })
    .await;
    // Both replicas look for work every second; give the other a few turns.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut all = patched(&api);
    all.sort();
    assert_eq!(all, ["DaemonSet/agent", "Deployment/web"]);
    let acting = [&first, &second]
        .iter()
        .filter(|s| s.logs().contains("rollout lock taken"))
        .count();
    assert_eq!(acting, 1, "exactly one replica holds the lock");
}

/// Remote rotation detection: a new KV v2 version written in a real OpenBao
/// is found from its metadata, and the opted-in workloads restart. The
/// provider's token loses `read` on the data path before the write, so a
/// value read would fail and be counted: none may happen.
#[tokio::test]
#[needs(bao)]
async fn a_new_kv2_version_in_openbao_restarts_without_reading_the_value() {
    use crate::common::openbao::OpenBao;
    use crate::common::remote;

    let Some(bao) = OpenBao::start().await else {
        return;
    };
    let policy = |data: bool| {
        let mut text = String::from(r#"path "secret/metadata/*" { capabilities = ["read"] }"#);
        if data {
            text.push_str(r#" path "secret/data/*" { capabilities = ["read"] }"#);
        }
        json!({ "policy": text })
    };
    bao.must("PUT", "sys/policies/acl/watcher", Some(policy(true)))
        .await;
    let token = bao.create_token(&["watcher"], "1h").await;
    bao.put_v2("app", json!({"password": "BaoFirstVersion-81"}))
        .await;

    let api = FakeApi::start().await;
    cluster(&api);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let (server, owner) = remote::start(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--rotation-poll-interval",
        "1s",
    ])
    .await;
    remote::local_secret(&owner, "bao-token", &token).await;
    owner
        .post(
            "/v1/organizations/acme/providers",
            json!({"name": "bao", "kind": "vault", "address": bao.addr,
                   "auth": {"method": "token", "token_secret": "bao-token"}}),
        )
        .await
        .expect(201);
    remote::remote_secret(&owner, "db-password", "bao", "secret/data/app", "password").await;
    let env = remote::admit(&server, "DB=db-password").await.unwrap();
    assert_eq!(env["DB"], "BaoFirstVersion-81");

    // Two passes of detection: the first version seen is on record.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.logs().matches("secret/metadata/app").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "no metadata read:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let untouched = owner
        .get("/v1/organizations/acme/secrets/db-password")
        .await
        .expect(200);
    assert_eq!(
        untouched["version"], 1,
        "the first version seen is no rotation"
    );

    bao.must("PUT", "sys/policies/acl/watcher", Some(policy(false)))
        .await;
    bao.put_v2("app", json!({"password": "BaoSecondVersion-82"}))
        .await;
    let raw = owner.token.clone().unwrap();
    let items = rollouts_until(&server, &raw, |items| {
        in_state(items, 2, "restarted") == ["agent", "web"]
    })
    .await;
    assert!(
        items[0]["reason"]
            .as_str()
            .unwrap()
            .contains("new version at the provider (1 -> 2)"),
        "{items:#?}"
    );
    let secret = owner
        .get("/v1/organizations/acme/secrets/db-password")
        .await
        .expect(200);
    assert_eq!(secret["version"], 2);
    let mut all = patched(&api);
    all.sort();
    assert_eq!(all, ["DaemonSet/agent", "Deployment/web"]);
    let metrics = remote::metrics(&server).await;
    assert!(
        !metrics.contains("kind=\"permission_denied\""),
        "a value read was tried after the policy lost data access:\n{metrics}"
    );
    remote::assert_never_exposed(&server, &["BaoFirstVersion-81", "BaoSecondVersion-82"]).await;
}

/// Remote rotation detection against moto's Secrets Manager: a new value
/// staged `AWSCURRENT` is found with `DescribeSecret`, which answers no
/// value, and the opted-in workloads restart.
#[tokio::test]
#[needs(moto)]
async fn a_new_awscurrent_version_restarts_the_opted_in_workloads() {
    use crate::common::moto::{ACCESS_KEY_ID, Moto, REGION, SECRET_ACCESS_KEY};
    use crate::common::remote;

    let Some(moto) = Moto::start().await else {
        return;
    };
    moto.create_secret("prod/db-password", "AwsFirstValue-91")
        .await;
    let api = FakeApi::start().await;
    cluster(&api);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let (server, owner) = remote::start(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--rotation-poll-interval",
        "1s",
    ])
    .await;
    remote::local_secret(&owner, "aws-secret-key", SECRET_ACCESS_KEY).await;
    owner
        .post(
            "/v1/organizations/acme/providers",
            json!({"name": "aws", "kind": "aws-secrets-manager", "region": REGION,
                   "endpoint": moto.endpoint, "sts_endpoint": moto.endpoint,
                   "auth": {"method": "static", "access_key_id": ACCESS_KEY_ID,
                            "secret_access_key_secret": "aws-secret-key"}}),
        )
        .await
        .expect(201);
    remote::remote_secret(&owner, "db-password", "aws", "prod/db-password", None).await;
    let env = remote::admit(&server, "DB=db-password").await.unwrap();
    assert_eq!(env["DB"], "AwsFirstValue-91");

    let deadline = Instant::now() + Duration::from_secs(30);
    let calls = |call: &str| {
        let needle = format!("call=\"secretsmanager.{call}\"");
        server.logs().matches(needle.as_str()).count()
    };
    while calls("DescribeSecret") < 2 {
        assert!(
            Instant::now() < deadline,
            "no DescribeSecret:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reads_before = calls("GetSecretValue");
    assert_eq!(reads_before, 1, "the admission's read");
    moto.put_value("prod/db-password", "AwsSecondValue-92")
        .await;
    let raw = owner.token.clone().unwrap();
    let items = rollouts_until(&server, &raw, |items| {
        in_state(items, 2, "restarted") == ["agent", "web"]
    })
    .await;
    assert!(
        items[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("new version at the provider ("),
        "{items:#?}"
    );
    assert_eq!(
        calls("GetSecretValue"),
        reads_before,
        "detection read a value"
    );
    remote::assert_never_exposed(&server, &["AwsFirstValue-91", "AwsSecondValue-92"]).await;
}

/// A workload role from before restart on rotation (no rules in group
/// `apps`): the namespace is reported as a failed rollout naming the fix,
/// and nothing is patched.
#[tokio::test]
async fn a_namespace_without_the_apps_rules_is_reported_with_the_fix() {
    let api = FakeApi::start().await;
    cluster(&api);
    api.cluster().apps_refused = true;
    let dir = tempfile::tempdir().unwrap();
    let server = server(&common::sqlite(), &api, dir.path()).await;
    let owner = seed(&server).await;
    rotate(&server, &owner, "RotatedAway-2").await;
    let items = rollouts_until(&server, &owner, |items| !items.is_empty()).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    let failed = &items[0];
    assert_eq!(
        (&failed["kind"], &failed["name"], &failed["state"]),
        (&json!("Namespace"), &json!("team-a"), &json!("failed"))
    );
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("replicasets") && message.contains("kubectl create rolebinding"),
        "{message}"
    );
    assert!(patched(&api).is_empty());
}
