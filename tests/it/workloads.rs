//! Restart on rotation, the Kubernetes half: which workloads run opted-in
//! pods admitted with an older version of a secret, and the template patch
//! that rolls one out. The API server is a loopback stand-in.

use crate::common::kube::FakeApi;

use std::time::Duration;

use agyn_secrets::cluster::{
    Cluster, ClusterError, RESTARTED_AT_ANNOTATION, Restart, Workload, WorkloadKind,
};
use serde_json::{Value, json};

const AT: &str = "2026-11-28T12:00:00Z";

async fn connect(api: &FakeApi) -> (Cluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let cluster = Cluster::connect(
        Some(&kubeconfig),
        Duration::from_secs(5),
        Duration::from_secs(3600),
        "agyn-secrets-workload",
    )
    .await;
    (cluster, dir)
}

fn opted_in(stamp: &str) -> Value {
    json!({"secrets.agyn.io/restart-on-rotation": "true", "secrets.agyn.io/injected": stamp})
}

fn workload(namespace: &str, kind: WorkloadKind, name: &str) -> Workload {
    Workload {
        namespace: namespace.into(),
        kind,
        name: name.into(),
    }
}

/// One of each: stale pods of a Deployment (two ReplicaSets, several pods),
/// a StatefulSet and a DaemonSet; and pods that must not count.
fn populate(api: &FakeApi) {
    let mut c = api.cluster();
    for (kind, name) in [
        ("Deployment", "web"),
        ("StatefulSet", "db"),
        ("DaemonSet", "agent"),
        ("Deployment", "current"),
    ] {
        c.add_workload("team-a", kind, name);
    }
    c.add_replicaset("team-a", "web-old", "web");
    c.add_replicaset("team-a", "web-new", "web");
    c.add_replicaset("team-a", "current-1", "current");
    c.add_apps_object(
        "team-a",
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "orphan"},
               "spec": {"selector": {"matchLabels": {"app": "orphan"}},
                        "template": {"metadata": {"labels": {"app": "orphan"}}, "spec": {"containers": []}}}}),
    );
    c.add_owned_pod(
        "team-a",
        "web-old-1",
        "ReplicaSet",
        "web-old",
        opted_in("api@4,db-password@1"),
    );
    c.add_owned_pod(
        "team-a",
        "web-old-2",
        "ReplicaSet",
        "web-old",
        opted_in("db-password@1"),
    );
    c.add_owned_pod(
        "team-a",
        "web-new-1",
        "ReplicaSet",
        "web-new",
        opted_in("db-password@2"),
    );
    c.add_owned_pod(
        "team-a",
        "db-0",
        "StatefulSet",
        "db",
        opted_in("db-password@1"),
    );
    c.add_owned_pod(
        "team-a",
        "agent-x",
        "DaemonSet",
        "agent",
        opted_in("db-password@-1"),
    );
    // Up to date.
    c.add_owned_pod(
        "team-a",
        "current-1-a",
        "ReplicaSet",
        "current-1",
        opted_in("db-password@2"),
    );
    // Stale, but not opted in.
    c.add_owned_pod(
        "team-a",
        "quiet",
        "ReplicaSet",
        "current-1",
        json!({"secrets.agyn.io/injected": "db-password@1"}),
    );
    // Stale and opted in, but nothing rolls it out.
    c.add_owned_pod(
        "team-a",
        "migrate-1",
        "Job",
        "migrate",
        opted_in("db-password@1"),
    );
    c.add_owned_pod(
        "team-a",
        "orphan-1",
        "ReplicaSet",
        "orphan",
        opted_in("db-password@1"),
    );
    c.add_owned_pod(
        "team-a",
        "gone-rs-1",
        "ReplicaSet",
        "gone-rs",
        opted_in("db-password@1"),
    );
    c.add_pod_object(
        "team-a",
        json!({"metadata": {"name": "bare", "annotations": opted_in("db-password@1")},
                                       "spec": {"containers": []}, "status": {"phase": "Running"}}),
    );
    // Stale, but finished or terminating.
    c.add_owned_pod(
        "team-a",
        "current-1-done",
        "ReplicaSet",
        "current-1",
        opted_in("db-password@1"),
    );
    c.add_owned_pod(
        "team-a",
        "current-1-bye",
        "ReplicaSet",
        "current-1",
        opted_in("db-password@1"),
    );
    c.pods
        .get_mut(&("team-a".into(), "current-1-done".into()))
        .unwrap()["status"]["phase"] = json!("Succeeded");
    c.pods
        .get_mut(&("team-a".into(), "current-1-bye".into()))
        .unwrap()["metadata"]["deletionTimestamp"] = json!("2026-11-28T12:00:00Z");
    // Another namespace.
    c.add_workload("team-b", "Deployment", "web");
    c.add_replicaset("team-b", "web-1", "web");
    c.add_owned_pod(
        "team-b",
        "web-1-a",
        "ReplicaSet",
        "web-1",
        opted_in("db-password@1"),
    );
}

#[tokio::test]
async fn stale_workloads_follow_owners_and_skip_the_rest() {
    let api = FakeApi::start().await;
    populate(&api);
    let (cluster, _dir) = connect(&api).await;

    let stale = cluster
        .stale_workloads("team-a", "db-password", 2)
        .await
        .unwrap();
    // Each with the oldest version its opted-in pods run.
    assert_eq!(
        stale,
        [
            (workload("team-a", WorkloadKind::Deployment, "web"), 1),
            (workload("team-a", WorkloadKind::StatefulSet, "db"), 1),
            (workload("team-a", WorkloadKind::DaemonSet, "agent"), -1),
        ]
    );
    // One GET per ReplicaSet, however many pods it has; never a write.
    let requests = api.cluster().requests.clone();
    let gets = |rs: &str| {
        requests
            .iter()
            .filter(|r| **r == format!("GET replicasets team-a/{rs}"))
            .count()
    };
    assert_eq!(gets("web-old"), 1);
    assert_eq!(gets("web-new"), 0, "its pods are current");
    assert_eq!(gets("gone-rs"), 1);
    assert!(!requests.iter().any(|r| r.starts_with("PATCH")));

    assert_eq!(
        cluster
            .stale_workloads("team-a", "db-password", 1)
            .await
            .unwrap(),
        [(workload("team-a", WorkloadKind::DaemonSet, "agent"), -1)]
    );
    assert_eq!(
        cluster.stale_workloads("team-a", "api", 5).await.unwrap(),
        [(workload("team-a", WorkloadKind::Deployment, "web"), 4)]
    );
    assert!(
        cluster
            .stale_workloads("team-a", "unknown", 9)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        cluster
            .stale_workloads("empty", "db-password", 9)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_restart_annotates_the_template_and_a_gone_workload_says_so() {
    let api = FakeApi::start().await;
    populate(&api);
    let (cluster, _dir) = connect(&api).await;
    let web = workload("team-a", WorkloadKind::Deployment, "web");
    let before = api
        .cluster()
        .workload("team-a", "Deployment", "web")
        .unwrap()
        .clone();

    assert_eq!(
        cluster.restart_workload(&web, AT).await.unwrap(),
        Restart::Requested
    );
    let after = api
        .cluster()
        .workload("team-a", "Deployment", "web")
        .unwrap()
        .clone();
    assert_eq!(
        after["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION],
        AT
    );
    assert_eq!(
        after["spec"]["template"]["metadata"]["labels"],
        before["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(after["metadata"]["generation"], 2);
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_ne!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );

    for (kind, name) in [
        (WorkloadKind::StatefulSet, "db"),
        (WorkloadKind::DaemonSet, "agent"),
    ] {
        let w = workload("team-a", kind, name);
        assert_eq!(
            cluster.restart_workload(&w, AT).await.unwrap(),
            Restart::Requested
        );
    }
    let patch =
        json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: AT}}}}});
    assert_eq!(
        api.cluster().patches(),
        [
            (
                "Deployment".into(),
                "team-a".into(),
                "web".into(),
                patch.clone()
            ),
            (
                "StatefulSet".into(),
                "team-a".into(),
                "db".into(),
                patch.clone()
            ),
            (
                "DaemonSet".into(),
                "team-a".into(),
                "agent".into(),
                patch.clone()
            ),
        ]
    );

    // The same time again changes nothing in the spec.
    assert_eq!(
        cluster.restart_workload(&web, AT).await.unwrap(),
        Restart::Requested
    );
    assert_eq!(
        api.cluster()
            .workload("team-a", "Deployment", "web")
            .unwrap()["metadata"]["generation"],
        2
    );

    // Gone: a deleted Deployment, a kind mix-up, a namespace with nothing.
    for w in [
        workload("team-a", WorkloadKind::Deployment, "deleted"),
        workload("team-a", WorkloadKind::StatefulSet, "web"),
        workload("nowhere", WorkloadKind::DaemonSet, "agent"),
    ] {
        assert_eq!(
            cluster.restart_workload(&w, AT).await.unwrap(),
            Restart::Gone,
            "{w}"
        );
    }
    assert_eq!(api.cluster().patches().len(), 4);
}

#[tokio::test]
async fn refusals_name_the_rbac_fix() {
    let api = FakeApi::start().await;
    populate(&api);
    let (cluster, _dir) = connect(&api).await;
    api.cluster().apps_refused = true;

    let error = cluster
        .stale_workloads("team-a", "db-password", 2)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ClusterError::Forbidden { .. }), "{text}");
    assert!(
        text.starts_with("agyn-secrets may not get replicasets in namespace \"team-a\": "),
        "{text}"
    );
    assert!(text.contains("ClusterRole agyn-secrets-workload to grant get and patch on deployments, statefulsets and daemonsets and get on replicasets in API group \"apps\""), "{text}");
    assert!(text.contains("kubectl create rolebinding agyn-secrets -n team-a --clusterrole=agyn-secrets-workload --serviceaccount=agyn-secrets:agyn-secrets"), "{text}");

    let error = cluster
        .restart_workload(&workload("team-a", WorkloadKind::StatefulSet, "db"), AT)
        .await
        .unwrap_err();
    assert!(error.to_string().starts_with("agyn-secrets may not patch statefulsets in namespace \"team-a\": restart on rotation needs"), "{error}");
    assert!(api.cluster().patches().is_empty());

    // No RoleBinding in the namespace at all: listing pods is refused first.
    api.cluster().apps_refused = false;
    api.cluster().rbac = Some(["team-b".to_owned()].into());
    let error = cluster
        .stale_workloads("team-a", "db-password", 2)
        .await
        .unwrap_err();
    assert!(error.to_string().starts_with("agyn-secrets may not list pods in namespace \"team-a\": bind ClusterRole agyn-secrets-workload"), "{error}");
    assert_eq!(
        cluster
            .stale_workloads("team-b", "db-password", 2)
            .await
            .unwrap(),
        [(workload("team-b", WorkloadKind::Deployment, "web"), 1)]
    );
}

#[tokio::test]
async fn an_unreachable_api_is_a_call_failure() {
    let api = FakeApi::start().await;
    let (cluster, _dir) = connect(&api).await;
    api.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let error = cluster
        .stale_workloads("team-a", "db-password", 2)
        .await
        .unwrap_err();
    assert!(matches!(error, ClusterError::Call { .. }), "{error}");
    let error = cluster
        .restart_workload(&workload("team-a", WorkloadKind::Deployment, "web"), AT)
        .await
        .unwrap_err();
    assert!(error.to_string().starts_with("the Kubernetes API failed to restart Deployment team-a/web: the Kubernetes API is unreachable"), "{error}");
}

#[tokio::test]
async fn the_stand_in_checks_its_own_contract() {
    let api = FakeApi::start().await;
    populate(&api);
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}/apis/apps/v1/namespaces/team-a/{path}", api.url);
    // JSON patch is not what the product sends; it is refused as the API server refuses an unknown type.
    let answer = client
        .patch(url("deployments/web"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 415);
    let answer = client
        .patch(url("replicasets/web-old"))
        .header("content-type", "application/merge-patch+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 405);
    let answer = client.get(url("jobs/x")).send().await.unwrap();
    assert_eq!(answer.status(), 404);
    // A merge patch removes with null and keeps the identity.
    let answer = client.patch(url("deployments/web")).header("content-type", "application/merge-patch+json")
        .body(r#"{"metadata": {"name": "renamed", "labels": {"x": "1"}}, "spec": {"strategy": null}}"#)
        .send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let web: Value = answer.json().await.unwrap();
    assert_eq!(web["metadata"]["name"], "web");
    assert_eq!(web["metadata"]["labels"], json!({"x": "1"}));
    assert!(web["spec"].get("strategy").is_none());
    assert_eq!(web["metadata"]["generation"], 2);
    let metadata_only: Value = client
        .get(url("replicasets/web-old"))
        .header(
            "accept",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata_only["kind"], "PartialObjectMetadata");
    assert_eq!(
        metadata_only["metadata"]["ownerReferences"][0]["kind"],
        "Deployment"
    );
    assert_eq!(
        metadata_only["metadata"]["ownerReferences"][0]["uid"],
        api.cluster()
            .workload("team-a", "Deployment", "web")
            .unwrap()["metadata"]["uid"]
    );
}
