//! Restart on rotation, as far as Kubernetes goes: which workloads in a
//! namespace run opted-in pods that were admitted with an older version of
//! a secret, and the pod template annotation that has Kubernetes roll one
//! out.
//!
//! The product never deletes or evicts a pod. It changes the template, as
//! `kubectl rollout restart` does, so that the workload's own strategy
//! (maxUnavailable, partitions, PodDisruptionBudgets…) decides the pace,
//! and the new pods are admitted, and so resolved, afresh.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;

use super::{Cluster, ClusterError, MANAGED_BY};
use crate::admission::INJECTED_ANNOTATION;

/// `"true"` on a pod template: roll the workload out when a secret its pods
/// were admitted with gets a new version.
pub const RESTART_ON_ROTATION_ANNOTATION: &str = "secrets.agyn.io/restart-on-rotation";
/// On a pod template: when the product last asked for a rollout (RFC 3339).
pub const RESTARTED_AT_ANNOTATION: &str = "secrets.agyn.io/restarted-at";

/// Pods asked for per page, so that a large namespace is never held whole.
const PAGE: u32 = 500;

/// A pod template's owner that Kubernetes rolls out when its template changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    pub namespace: String,
    pub kind: WorkloadKind,
    pub name: String,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// The kinds of workload restart on rotation rolls out, all in API group
/// `apps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    /// The kind as Kubernetes spells it, e.g. `"Deployment"`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }

    /// The kind named exactly as [`WorkloadKind::as_str`] spells it.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Deployment" => Some(WorkloadKind::Deployment),
            "StatefulSet" => Some(WorkloadKind::StatefulSet),
            "DaemonSet" => Some(WorkloadKind::DaemonSet),
            _ => None,
        }
    }

    /// The resource, as RBAC rules and error messages name it.
    fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
            WorkloadKind::DaemonSet => "daemonsets",
        }
    }

    fn api_resource(self) -> ApiResource {
        match self {
            WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
            WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        }
    }
}

/// What asking for a rollout came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Restart {
    /// The template carries the new annotation; Kubernetes rolls the
    /// workload out by its own strategy.
    Requested,
    /// The workload (or its namespace) no longer exists: nothing to restart.
    Gone,
}

impl Cluster {
    /// The workloads in `namespace` that have a live pod (not terminating:
    /// no deletionTimestamp, phase not Succeeded/Failed) which opted in
    /// ([`RESTART_ON_ROTATION_ANNOTATION`] is `"true"`) and whose injected
    /// stamp names `secret` at a version below `version`. Owners are
    /// followed by controller ownerReferences: Pod → ReplicaSet → Deployment,
    /// Pod → StatefulSet, Pod → DaemonSet. Pods owned by anything else (a
    /// Job, nothing, a ReplicaSet without a Deployment) are skipped, since
    /// nothing would roll them out. Sorted, without duplicates, each with
    /// the oldest version of `secret` its pods run.
    pub async fn stale_workloads(
        &self,
        namespace: &str,
        secret: &str,
        version: i64,
    ) -> Result<Vec<(Workload, i64)>, ClusterError> {
        let client = self.client()?.clone();
        let owners = self
            .stale_pod_owners(&client, namespace, secret, version)
            .await?;
        let replicasets: Api<ReplicaSet> = Api::namespaced(client, namespace);
        let mut found: BTreeMap<Workload, i64> = BTreeMap::new();
        for (owner, oldest) in owners {
            let (kind, name) = match owner {
                PodOwner::Workload(kind, name) => (kind, name),
                PodOwner::ReplicaSet(replicaset) => {
                    match self
                        .deployment_of(&replicasets, namespace, &replicaset)
                        .await?
                    {
                        Some(deployment) => (WorkloadKind::Deployment, deployment),
                        None => continue,
                    }
                }
            };
            let workload = Workload {
                namespace: namespace.to_owned(),
                kind,
                name,
            };
            let entry = found.entry(workload).or_insert(oldest);
            *entry = (*entry).min(oldest);
        }
        Ok(found.into_iter().collect())
    }

    /// Sets the pod template annotation [`RESTARTED_AT_ANNOTATION`] of
    /// `workload` to `at` (an RFC 3339 time) with a JSON merge patch, so that
    /// Kubernetes rolls the workload out by its own strategy. Setting the
    /// same `at` again changes nothing and rolls nothing out. A StatefulSet
    /// or DaemonSet with the `OnDelete` update strategy only gets its
    /// template changed: its pods are replaced when someone deletes them.
    pub async fn restart_workload(
        &self,
        workload: &Workload,
        at: &str,
    ) -> Result<Restart, ClusterError> {
        let Workload {
            namespace,
            kind,
            name,
        } = workload;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client()?.clone(), namespace, &kind.api_resource());
        let params = PatchParams {
            field_manager: Some(MANAGED_BY.to_owned()),
            ..PatchParams::default()
        };
        match api
            .patch(name, &params, &Patch::Merge(restart_patch(at)))
            .await
        {
            Ok(_) => Ok(Restart::Requested),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(Restart::Gone),
            Err(kube::Error::Api(status)) if status.code == 403 => Err(ClusterError::Forbidden {
                what: format!("patch {}", kind.resource()),
                fix: self.apps_fix(namespace).await,
                namespace: namespace.clone(),
            }),
            Err(error) => Err(call_failed(format!("restart {workload}"), error)),
        }
    }

    /// The controlling owners of the pods in `namespace` that run an old
    /// version of `secret` and opted in to restarts, read page by page.
    async fn stale_pod_owners(
        &self,
        client: &kube::Client,
        namespace: &str,
        secret: &str,
        version: i64,
    ) -> Result<BTreeMap<PodOwner, i64>, ClusterError> {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let mut owners: BTreeMap<PodOwner, i64> = BTreeMap::new();
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let page = match pods.list(&params).await {
                Ok(page) => page,
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    return Err(ClusterError::Forbidden {
                        what: "list pods".to_owned(),
                        fix: self.binding_fix(namespace).await,
                        namespace: namespace.to_owned(),
                    });
                }
                Err(error) => {
                    return Err(call_failed(
                        format!("list pods in namespace {namespace:?}"),
                        error,
                    ));
                }
            };
            for pod in &page.items {
                let Some(stamped) = stale_version(pod, secret, version) else {
                    continue;
                };
                if let Some(owner) = pod_owner(&pod.metadata) {
                    let oldest = owners.entry(owner).or_insert(stamped);
                    *oldest = (*oldest).min(stamped);
                }
            }
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(owners),
            }
        }
    }

    /// The Deployment that controls ReplicaSet `name`, if any; `None` too
    /// when the ReplicaSet is gone (its pods are going with it).
    async fn deployment_of(
        &self,
        replicasets: &Api<ReplicaSet>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, ClusterError> {
        // Metadata only: the owner is all that is needed, not the template.
        match replicasets.get_metadata_opt(name).await {
            Ok(found) => Ok(found.and_then(|rs| replicaset_deployment(&rs.metadata))),
            Err(kube::Error::Api(status)) if status.code == 403 => Err(ClusterError::Forbidden {
                what: "get replicasets".to_owned(),
                fix: self.apps_fix(namespace).await,
                namespace: namespace.to_owned(),
            }),
            Err(error) => Err(call_failed(
                format!("read ReplicaSet {namespace}/{name}"),
                error,
            )),
        }
    }

    /// What grants the product the `apps` rules of restart on rotation in
    /// `namespace`: the workload role may predate them, or not be bound.
    async fn apps_fix(&self, namespace: &str) -> String {
        format!(
            "restart on rotation needs ClusterRole {role} to grant get and patch on deployments, statefulsets and daemonsets and get on replicasets in API group \"apps\" (upgrade it from the chart or manifests/base/rbac.yaml); if it does, {binding}",
            role = self.workload_role,
            binding = self.binding_fix(namespace).await,
        )
    }
}

/// The merge patch that stamps a pod template with the time of a restart.
fn restart_patch(at: &str) -> serde_json::Value {
    json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: at}}}}})
}

fn call_failed(what: String, error: kube::Error) -> ClusterError {
    let message = match error {
        kube::Error::Api(status) => {
            format!("{} {}: {}", status.code, status.reason, status.message)
        }
        other => format!("the Kubernetes API is unreachable: {other}"),
    };
    ClusterError::Call { what, message }
}

/// A stale pod's controller, as far as restart on rotation goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PodOwner {
    /// A workload that owns its pods itself (StatefulSet, DaemonSet).
    Workload(WorkloadKind, String),
    /// A ReplicaSet, which a Deployment may control in turn.
    ReplicaSet(String),
}

/// The version of `secret` that `pod` was admitted with, when the pod is
/// live, opted in to restarts, and that version is below `version`.
fn stale_version(pod: &Pod, secret: &str, version: i64) -> Option<i64> {
    let annotations = pod.metadata.annotations.as_ref();
    let annotation = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
    let live = pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
    let opted_in = annotation(RESTART_ON_ROTATION_ANNOTATION) == Some("true");
    if !live || !opted_in {
        return None;
    }
    annotation(INJECTED_ANNOTATION)
        .and_then(|stamp| parse_stamp(stamp).get(secret).copied())
        .filter(|stamped| *stamped < version)
}

/// The owner that rolls a pod out, from its controller reference; `None`
/// for a pod that nothing in API group `apps` controls.
fn pod_owner(meta: &ObjectMeta) -> Option<PodOwner> {
    let owner = apps_controller(meta)?;
    match owner.kind.as_str() {
        "ReplicaSet" => Some(PodOwner::ReplicaSet(owner.name.clone())),
        "StatefulSet" => Some(PodOwner::Workload(
            WorkloadKind::StatefulSet,
            owner.name.clone(),
        )),
        "DaemonSet" => Some(PodOwner::Workload(
            WorkloadKind::DaemonSet,
            owner.name.clone(),
        )),
        _ => None,
    }
}

/// The Deployment that controls a ReplicaSet, from its metadata.
fn replicaset_deployment(meta: &ObjectMeta) -> Option<String> {
    apps_controller(meta)
        .filter(|owner| owner.kind == "Deployment")
        .map(|owner| owner.name.clone())
}

/// The controller reference of an object, when its controller is in API
/// group `apps`: a kind of the same name elsewhere (an OpenKruise
/// StatefulSet, an Argo Rollout's ReplicaSet owner) rolls out differently.
fn apps_controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true))
        .filter(|owner| owner.api_version.starts_with("apps/"))
}

/// The versions an injected stamp (`name@version,…`) records. Malformed
/// entries are skipped, and so is a name that more than one entry gives,
/// since the webhook writes each name once and which one to believe would
/// be a guess.
fn parse_stamp(text: &str) -> BTreeMap<&str, i64> {
    let mut versions = BTreeMap::new();
    let mut repeated = BTreeSet::new();
    let entries = text.split(',').filter_map(|entry| {
        let (name, version) = entry.trim().rsplit_once('@')?;
        (!name.is_empty()).then_some(())?;
        Some((name, parse_version(version)?))
    });
    for (name, version) in entries {
        if versions.insert(name, version).is_some() {
            repeated.insert(name);
        }
    }
    for name in repeated {
        versions.remove(name);
    }
    versions
}

/// A version as the webhook writes it: decimal digits, a `-` before a
/// negative one.
fn parse_version(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::Value;

    #[rstest]
    #[case::one("db@3", "db", Some(3))]
    #[case::among_others("api@1,db@12,zz@4", "db", Some(12))]
    #[case::absent("api@1,zz@4", "db", None)]
    #[case::empty("", "db", None)]
    #[case::spaces_around_entries(" api@1 , db@2 ", "db", Some(2))]
    #[case::negative("db@-1", "db", Some(-1))]
    #[case::zero("db@0", "db", Some(0))]
    #[case::no_version("db@", "db", None)]
    #[case::no_at("db", "db", None)]
    #[case::no_name("@3,db@4", "db", Some(4))]
    #[case::not_a_number("db@x1", "db", None)]
    #[case::plus_sign("db@+3", "db", None)]
    #[case::only_a_minus("db@-", "db", None)]
    #[case::inner_space("db@ 3", "db", None)]
    #[case::overflow("db@99999999999999999999", "db", None)]
    #[case::malformed_neighbours_ignored("a@@,db@5,,b@1@", "db", Some(5))]
    #[case::repeated_name_trusted_nowhere("db@1,db@9", "db", None)]
    #[case::repeated_name_same_version("db@2,db@2", "db", None)]
    #[case::repeated_other_name_harmless("x@1,db@7,x@2", "db", Some(7))]
    #[case::prefix_is_not_the_name("db-old@1", "db", None)]
    #[case::case_matters("DB@1", "db", None)]
    fn stamp_versions(#[case] stamp: &str, #[case] secret: &str, #[case] expected: Option<i64>) {
        assert_eq!(parse_stamp(stamp).get(secret).copied(), expected);
    }

    #[test]
    fn the_stamp_the_webhook_writes_parses_whole() {
        let versions = parse_stamp("api-key@3,db-password@-2,token@9223372036854775807");
        assert_eq!(
            versions,
            BTreeMap::from([("api-key", 3), ("db-password", -2), ("token", i64::MAX)])
        );
    }

    /// A pod as the API server lists it, with a controller reference to
    /// `owner` (`(apiVersion, kind, name)`) and `annotations`.
    fn pod(owner: Option<(&str, &str, &str)>, annotations: Value, status: Value) -> Pod {
        let owners: Vec<Value> = owner
            .map(|(api_version, kind, name)| {
                json!({"apiVersion": api_version, "kind": kind, "name": name,
                       "uid": "5e0e3a52-0d3c-4b2b-9d55-3d7d8c9f1a10", "controller": true,
                       "blockOwnerDeletion": true})
            })
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-7d9-abcde", "namespace": "team-a",
                         "annotations": annotations, "ownerReferences": owners},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            "status": status
        }))
        .unwrap()
    }

    fn opted_in(stamp: &str) -> Value {
        json!({RESTART_ON_ROTATION_ANNOTATION: "true", INJECTED_ANNOTATION: stamp})
    }

    fn running() -> Value {
        json!({"phase": "Running"})
    }

    #[rstest]
    #[case::behind(opted_in("db@2"), running(), Some(2))]
    #[case::current(opted_in("db@3"), running(), None)]
    #[case::ahead(opted_in("db@4"), running(), None)]
    #[case::other_secret_behind(opted_in("api@1"), running(), None)]
    #[case::not_opted_in(json!({INJECTED_ANNOTATION: "db@1"}), running(), None)]
    #[case::opt_in_not_true(json!({RESTART_ON_ROTATION_ANNOTATION: "yes", INJECTED_ANNOTATION: "db@1"}), running(), None)]
    #[case::no_stamp(json!({RESTART_ON_ROTATION_ANNOTATION: "true"}), running(), None)]
    #[case::no_annotations(json!({}), running(), None)]
    #[case::pending(opted_in("db@2"), json!({"phase": "Pending"}), Some(2))]
    #[case::no_status_yet(opted_in("db@1"), Value::Null, Some(1))]
    #[case::succeeded(opted_in("db@2"), json!({"phase": "Succeeded"}), None)]
    #[case::failed(opted_in("db@2"), json!({"phase": "Failed"}), None)]
    fn which_pods_are_stale(
        #[case] annotations: Value,
        #[case] status: Value,
        #[case] expected: Option<i64>,
    ) {
        let pod = pod(
            Some(("apps/v1", "ReplicaSet", "web-7d9")),
            annotations,
            status,
        );
        assert_eq!(stale_version(&pod, "db", 3), expected);
    }

    #[test]
    fn a_terminating_pod_is_not_stale() {
        let mut pod = pod(
            Some(("apps/v1", "ReplicaSet", "web-7d9")),
            opted_in("db@1"),
            running(),
        );
        assert_eq!(stale_version(&pod, "db", 2), Some(1));
        pod.metadata.deletion_timestamp =
            serde_json::from_value(json!("2026-11-28T12:00:00Z")).unwrap();
        assert_eq!(stale_version(&pod, "db", 2), None);
    }

    #[rstest]
    #[case::replicaset(Some(("apps/v1", "ReplicaSet", "web-7d9")), Some(PodOwner::ReplicaSet("web-7d9".into())))]
    #[case::statefulset(Some(("apps/v1", "StatefulSet", "db")), Some(PodOwner::Workload(WorkloadKind::StatefulSet, "db".into())))]
    #[case::daemonset(Some(("apps/v1", "DaemonSet", "agent")), Some(PodOwner::Workload(WorkloadKind::DaemonSet, "agent".into())))]
    #[case::job(Some(("batch/v1", "Job", "migrate")), None)]
    #[case::bare(None, None)]
    #[case::same_kind_other_group(Some(("apps.kruise.io/v1beta1", "StatefulSet", "db")), None)]
    #[case::node_owned_static_pod(Some(("v1", "Node", "node-1")), None)]
    #[case::deployment_never_owns_pods(Some(("apps/v1", "Deployment", "web")), None)]
    fn pod_owners(#[case] owner: Option<(&str, &str, &str)>, #[case] expected: Option<PodOwner>) {
        let pod = pod(owner, opted_in("db@1"), running());
        assert_eq!(pod_owner(&pod.metadata), expected);
    }

    #[test]
    fn only_the_controller_reference_counts() {
        let meta: ObjectMeta = serde_json::from_value(json!({
            "name": "web-7d9-abcde",
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "not-mine", "uid": "u1"},
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "also-not", "uid": "u2", "controller": false},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9", "uid": "u3", "controller": true}
            ]
        }))
        .unwrap();
        assert_eq!(
            pod_owner(&meta),
            Some(PodOwner::ReplicaSet("web-7d9".into()))
        );
    }

    #[rstest]
    #[case::deployment(json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u", "controller": true}]), Some("web"))]
    #[case::no_owner(json!([]), None)]
    #[case::not_the_controller(json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u"}]), None)]
    #[case::argo_rollout(json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": "u", "controller": true}]), None)]
    #[case::deployment_of_another_group(json!([{"apiVersion": "example.com/v1", "kind": "Deployment", "name": "web", "uid": "u", "controller": true}]), None)]
    fn replicaset_owners(#[case] owners: Value, #[case] expected: Option<&str>) {
        let meta: ObjectMeta =
            serde_json::from_value(json!({"name": "web-7d9", "ownerReferences": owners})).unwrap();
        assert_eq!(replicaset_deployment(&meta).as_deref(), expected);
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [
            WorkloadKind::Deployment,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSet,
        ] {
            assert_eq!(WorkloadKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.api_resource().plural, kind.resource());
            assert_eq!(kind.api_resource().api_version, "apps/v1");
        }
        assert_eq!(WorkloadKind::parse("deployment"), None);
        assert_eq!(WorkloadKind::parse("ReplicaSet"), None);
    }

    #[test]
    fn the_restart_patch_touches_only_the_template_annotation() {
        assert_eq!(
            restart_patch("2026-11-28T12:00:00Z"),
            json!({"spec": {"template": {"metadata": {"annotations": {
                "secrets.agyn.io/restarted-at": "2026-11-28T12:00:00Z"}}}}})
        );
    }

    #[test]
    fn workloads_sort_by_namespace_kind_then_name() {
        let w = |namespace: &str, kind, name: &str| Workload {
            namespace: namespace.into(),
            kind,
            name: name.into(),
        };
        let mut list = [
            w("b", WorkloadKind::Deployment, "a"),
            w("a", WorkloadKind::DaemonSet, "a"),
            w("a", WorkloadKind::Deployment, "z"),
            w("a", WorkloadKind::Deployment, "b"),
        ];
        list.sort();
        assert_eq!(
            list.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "Deployment a/b",
                "Deployment a/z",
                "DaemonSet a/a",
                "Deployment b/a"
            ]
        );
    }

    #[tokio::test]
    async fn without_a_client_it_says_so() {
        let cluster = Cluster::unavailable("no kubeconfig");
        let workload = Workload {
            namespace: "team-a".into(),
            kind: WorkloadKind::Deployment,
            name: "web".into(),
        };
        assert!(matches!(
            cluster.stale_workloads("team-a", "db", 2).await,
            Err(ClusterError::NoClient(_))
        ));
        assert!(matches!(
            cluster
                .restart_workload(&workload, "2026-11-28T12:00:00Z")
                .await,
            Err(ClusterError::NoClient(_))
        ));
    }
}
