//! A loopback stand-in for the few Kubernetes API calls the product makes:
//! Secrets (get, create, replace, delete, list by label, also as metadata
//! only) and Pods (list, get) in a namespace, the workloads of restart on
//! rotation (get and merge-patch Deployments, StatefulSets and DaemonSets,
//! get ReplicaSets, also as metadata only), SelfSubjectAccessReviews,
//! SelfSubjectReviews and TokenReviews (of tokens it issued itself, bound
//! to a pod, as the kubelet's projected tokens are). It answers with the real API server's status codes
//! and bodies: 201 on create, 200 on read and replace, 403, 404 and 409 as
//! `Status` objects, and a `resourceVersion` on every object. Like RBAC with
//! a RoleBinding per namespace, `rbac` can limit the namespaces where the
//! caller may touch Secrets, pods and workloads; `apps_refused` stands for
//! a workload ClusterRole from before restart on rotation, without the
//! rules in API group `apps`.
// Each test binary uses its own part of the stand-in.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// Who the product is to this API server.
pub const USER: &str = "system:serviceaccount:agyn-secrets:agyn-secrets";

#[derive(Default)]
pub struct Cluster {
    /// (namespace, name) → Secret object.
    pub secrets: BTreeMap<(String, String), Value>,
    /// (namespace, name) → Pod object.
    pub pods: BTreeMap<(String, String), Value>,
    next_version: u64,
    /// Answer every Secret call with this status code (403, 500…).
    pub fail_with: Option<u16>,
    /// Answer this many create/replace calls with 409 first.
    pub conflicts: usize,
    /// Every request, as "METHOD path".
    pub requests: Vec<String>,
    /// The namespaces where Secrets and pods may be used (a RoleBinding in
    /// each); `None`: everywhere.
    pub rbac: Option<BTreeSet<String>>,
    /// Service account tokens this API server issued: token → who.
    pub tokens: BTreeMap<String, IssuedToken>,
    /// (kind, namespace, name) → Deployment, StatefulSet or DaemonSet.
    pub workloads: BTreeMap<(String, String, String), Value>,
    /// (namespace, name) → ReplicaSet object.
    pub replicasets: BTreeMap<(String, String), Value>,
    /// Every patch applied to a workload, in order: (kind, namespace, name,
    /// patch body as sent).
    pub workload_patches: Vec<(String, String, String, Value)>,
    /// Refuse every call in API group `apps`, as the workload ClusterRole
    /// did before restart on rotation needed it (the RoleBinding is there,
    /// the rules are not).
    pub apps_refused: bool,
}

/// A token as the API server would issue it for `kubectl create token
/// <sa> --audience … --bound-object-kind Pod --bound-object-name …`.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub namespace: String,
    pub service_account: String,
    pub audiences: Vec<String>,
    /// The pod the token is bound to, name and uid.
    pub pod: Option<(String, String)>,
}

impl Cluster {
    fn stamp(&mut self, object: &mut Value) {
        self.next_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.next_version.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
            object["metadata"]["creationTimestamp"] = json!("2026-11-28T12:00:00Z");
        }
    }

    /// Adds a pod that references `pull_secrets` in `spec.imagePullSecrets`.
    pub fn add_pod(&mut self, namespace: &str, name: &str, pull_secrets: &[&str]) {
        let refs: Vec<Value> = pull_secrets.iter().map(|n| json!({"name": n})).collect();
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], "imagePullSecrets": refs}
        });
        self.stamp(&mut pod);
        self.pods.insert((namespace.into(), name.into()), pod);
    }

    /// Adds a pod as the API server stores it, e.g. a patched review object.
    pub fn add_pod_object(&mut self, namespace: &str, mut pod: Value) {
        let name = pod["metadata"]["name"]
            .as_str()
            .or(pod["metadata"]["generateName"].as_str())
            .unwrap_or("pod")
            .to_owned();
        pod["metadata"]["name"] = json!(name);
        pod["metadata"]["namespace"] = json!(namespace);
        self.stamp(&mut pod);
        self.pods.insert((namespace.into(), name), pod);
    }

    /// Issues a token for `service_account` in `namespace`, valid for
    /// `audiences` and bound to `pod` (name, uid) when given.
    pub fn issue_token(
        &mut self,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
        pod: Option<(&str, &str)>,
    ) -> String {
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", uuid::Uuid::new_v4().simple());
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                namespace: namespace.into(),
                service_account: service_account.into(),
                audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
                pod: pod.map(|(n, u)| (n.to_owned(), u.to_owned())),
            },
        );
        token
    }

    /// The uid of pod `namespace/name`.
    pub fn pod_uid(&self, namespace: &str, name: &str) -> String {
        self.pods[&(namespace.to_owned(), name.to_owned())]["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Adds a Deployment, StatefulSet or DaemonSet (`kind`) named `name`,
    /// whose pods are labelled `app: <name>`.
    pub fn add_workload(&mut self, namespace: &str, kind: &str, name: &str) {
        let template = json!({
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]}
        });
        let selector = json!({"matchLabels": {"app": name}});
        let spec = match kind {
            "Deployment" => json!({"replicas": 2, "selector": selector, "template": template,
                                   "strategy": {"type": "RollingUpdate",
                                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}}),
            "StatefulSet" => json!({"replicas": 2, "selector": selector, "template": template,
                                    "serviceName": name, "updateStrategy": {"type": "RollingUpdate"}}),
            "DaemonSet" => json!({"selector": selector, "template": template,
                                  "updateStrategy": {"type": "RollingUpdate"}}),
            other => panic!("add_workload: {other} is not a Deployment, StatefulSet or DaemonSet"),
        };
        let workload = json!({
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": spec
        });
        self.add_apps_object(namespace, workload);
    }

    /// Adds ReplicaSet `name`, controlled by Deployment `deployment` (which
    /// need not exist: a deleted one's ReplicaSets linger until collected).
    pub fn add_replicaset(&mut self, namespace: &str, name: &str, deployment: &str) {
        let owner = self.owner_reference(namespace, "Deployment", deployment);
        let replicaset = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": namespace, "generation": 1,
                         "labels": {"app": deployment},
                         "ownerReferences": [owner]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": deployment}},
                     "template": {"metadata": {"labels": {"app": deployment}},
                                  "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}
        });
        self.add_apps_object(namespace, replicaset);
    }

    /// Adds an `apps/v1` object as given (a ReplicaSet without an owner, a
    /// workload of unusual shape), by its `kind` and `metadata.name`.
    pub fn add_apps_object(&mut self, namespace: &str, mut object: Value) {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        object["metadata"]["namespace"] = json!(namespace);
        self.stamp(&mut object);
        if kind == "ReplicaSet" {
            self.replicasets.insert((namespace.into(), name), object);
        } else {
            self.workloads
                .insert((kind, namespace.into(), name), object);
        }
    }

    /// Adds a running pod whose controller is `owner_kind` `owner_name`
    /// (ReplicaSet, StatefulSet, DaemonSet, Job…), with `annotations`, e.g.
    /// the opt-in and the injected stamp.
    pub fn add_owned_pod(
        &mut self,
        namespace: &str,
        name: &str,
        owner_kind: &str,
        owner_name: &str,
        annotations: Value,
    ) {
        let owner = self.owner_reference(namespace, owner_kind, owner_name);
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations,
                         "labels": {"app": owner_name}, "ownerReferences": [owner]},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            "status": {"phase": "Running"}
        });
        self.stamp(&mut pod);
        self.pods.insert((namespace.into(), name.into()), pod);
    }

    /// A controller reference to `kind` `name`, with its uid when it is
    /// here, as the API server would have it.
    fn owner_reference(&self, namespace: &str, kind: &str, name: &str) -> Value {
        let api_version = match kind {
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps/v1",
            "Job" | "CronJob" => "batch/v1",
            _ => "v1",
        };
        let key = (namespace.to_owned(), name.to_owned());
        let existing = match kind {
            "ReplicaSet" => self.replicasets.get(&key),
            _ => self
                .workloads
                .get(&(kind.to_owned(), key.0.clone(), key.1.clone())),
        };
        let uid = existing
            .and_then(|o| o["metadata"]["uid"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
               "controller": true, "blockOwnerDeletion": true})
    }

    /// Workload `kind` `namespace/name` as it is now.
    pub fn workload(&self, namespace: &str, kind: &str, name: &str) -> Option<&Value> {
        self.workloads
            .get(&(kind.to_owned(), namespace.to_owned(), name.to_owned()))
    }

    /// Every patch applied to a workload, in order: (kind, namespace, name,
    /// patch body as sent).
    pub fn patches(&self) -> Vec<(String, String, String, Value)> {
        self.workload_patches.clone()
    }

    /// Adds a Secret as another tool would have made it.
    pub fn add_secret(&mut self, namespace: &str, name: &str, labels: Value) {
        let mut secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "type": "Opaque", "data": {"k": "dg=="}
        });
        self.stamp(&mut secret);
        self.secrets.insert((namespace.into(), name.into()), secret);
    }
}

pub type Shared = Arc<Mutex<Cluster>>;

fn status(code: u16, reason: &str, message: String, name: &str) -> Response {
    status_of(code, reason, message, "secrets", name)
}

/// A `Status` answer about `resource` `name`.
fn status_of(code: u16, reason: &str, message: String, resource: &str, name: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason,
        "details": {"name": name, "kind": resource}, "code": code
    });
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

/// What RBAC answers `verb` on core `resource` in `namespace`, if it refuses.
fn refused(cluster: &Cluster, verb: &str, resource: &str, namespace: &str) -> Option<Response> {
    refused_in(cluster, "", verb, resource, namespace)
}

/// What RBAC answers `verb` on `resource` of API `group` in `namespace`, if
/// it refuses.
fn refused_in(
    cluster: &Cluster,
    group: &str,
    verb: &str,
    resource: &str,
    namespace: &str,
) -> Option<Response> {
    let allowed = cluster
        .rbac
        .as_ref()
        .is_none_or(|namespaces| namespaces.contains(namespace))
        && !(group == "apps" && cluster.apps_refused);
    (!allowed).then(|| {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "Forbidden", "code": 403,
            "message": format!("{resource} is forbidden: User \"{USER}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" in the namespace \"{namespace}\""),
            "details": {"kind": resource}
        });
        (StatusCode::FORBIDDEN, Json(body)).into_response()
    })
}

fn forced(cluster: &Cluster, name: &str) -> Option<Response> {
    cluster.fail_with.map(|code| match code {
        403 => status(
            403,
            "Forbidden",
            format!("secrets \"{name}\" is forbidden: User \"system:serviceaccount:agyn-secrets:agyn-secrets\" cannot get resource \"secrets\""),
            name,
        ),
        other => status(other, "InternalError", "an error on the server has prevented the request from succeeding".into(), name),
    })
}

async fn get_secret(State(s): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    let mut c = s.lock().unwrap();
    c.requests.push(format!("GET {ns}/{name}"));
    if let Some(r) = forced(&c, &name).or_else(|| refused(&c, "get", "secrets", &ns)) {
        return r;
    }
    match c.secrets.get(&(ns, name.clone())) {
        Some(secret) => Json(secret.clone()).into_response(),
        None => status(
            404,
            "NotFound",
            format!("secrets \"{name}\" not found"),
            &name,
        ),
    }
}

async fn create_secret(
    State(s): State<Shared>,
    Path(ns): Path<String>,
    Json(mut body): Json<Value>,
) -> Response {
    let mut c = s.lock().unwrap();
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    c.requests.push(format!("POST {ns}/{name}"));
    if let Some(r) = forced(&c, &name).or_else(|| refused(&c, "create", "secrets", &ns)) {
        return r;
    }
    if c.conflicts > 0 || c.secrets.contains_key(&(ns.clone(), name.clone())) {
        c.conflicts = c.conflicts.saturating_sub(1);
        return status(
            409,
            "AlreadyExists",
            format!("secrets \"{name}\" already exists"),
            &name,
        );
    }
    body["metadata"]["namespace"] = json!(ns);
    c.stamp(&mut body);
    c.secrets.insert((ns, name), body.clone());
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn replace_secret(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Json(mut body): Json<Value>,
) -> Response {
    let mut c = s.lock().unwrap();
    c.requests.push(format!("PUT {ns}/{name}"));
    if let Some(r) = forced(&c, &name).or_else(|| refused(&c, "update", "secrets", &ns)) {
        return r;
    }
    let Some(current) = c.secrets.get(&(ns.clone(), name.clone())).cloned() else {
        return status(
            404,
            "NotFound",
            format!("secrets \"{name}\" not found"),
            &name,
        );
    };
    let conflict = c.conflicts > 0
        || body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"];
    if conflict {
        c.conflicts = c.conflicts.saturating_sub(1);
        return status(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on secrets \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
            &name,
        );
    }
    body["metadata"]["uid"] = current["metadata"]["uid"].clone();
    body["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"].clone();
    c.stamp(&mut body);
    c.secrets.insert((ns, name), body.clone());
    Json(body).into_response()
}

async fn delete_secret(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Response {
    let mut c = s.lock().unwrap();
    c.requests.push(format!("DELETE {ns}/{name}"));
    if let Some(r) = forced(&c, &name).or_else(|| refused(&c, "delete", "secrets", &ns)) {
        return r;
    }
    let Some(current) = c.secrets.get(&(ns.clone(), name.clone())).cloned() else {
        return status(
            404,
            "NotFound",
            format!("secrets \"{name}\" not found"),
            &name,
        );
    };
    if let Some(Json(options)) = body {
        let wanted = &options["preconditions"]["resourceVersion"];
        if !wanted.is_null() && *wanted != current["metadata"]["resourceVersion"] {
            return status(
                409,
                "Conflict",
                format!("Precondition failed for secrets \"{name}\""),
                &name,
            );
        }
    }
    c.secrets.remove(&(ns, name.clone()));
    Json(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "kind": "secrets", "uid": current["metadata"]["uid"]}}),
    )
    .into_response()
}

fn matches(object: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    selector.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => object["metadata"]["labels"][k] == json!(v),
        None => true,
    })
}

async fn list_secrets(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let mut c = s.lock().unwrap();
    c.requests.push("LIST secrets".into());
    if let Some(r) = forced(&c, "") {
        return r;
    }
    if c.rbac.is_some() {
        return refused(&c, "list", "secrets", "").unwrap();
    }
    let items: Vec<Value> = c
        .secrets
        .values()
        .filter(|o| matches(o, q.get("labelSelector")))
        .cloned()
        .collect();
    Json(json!({"kind": "SecretList", "apiVersion": "v1",
                "metadata": {"resourceVersion": c.next_version.to_string()}, "items": items}))
    .into_response()
}

/// Whether the client asked for a list of metadata only, as kube's
/// `list_metadata` does.
fn metadata_only(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("as=PartialObjectMetadataList"))
}

async fn list_namespaced_secrets(
    State(s): State<Shared>,
    Path(ns): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut c = s.lock().unwrap();
    let partial = metadata_only(&headers);
    c.requests.push(format!(
        "LIST secrets {ns}{}",
        if partial { " (metadata)" } else { "" }
    ));
    if let Some(r) = forced(&c, "").or_else(|| refused(&c, "list", "secrets", &ns)) {
        return r;
    }
    let items = c
        .secrets
        .iter()
        .filter(|((n, _), o)| *n == ns && matches(o, q.get("labelSelector")))
        .map(|(_, o)| {
            if partial {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": o["metadata"]})
            } else {
                o.clone()
            }
        })
        .collect::<Vec<_>>();
    let (kind, api_version) = if partial {
        ("PartialObjectMetadataList", "meta.k8s.io/v1")
    } else {
        ("SecretList", "v1")
    };
    Json(json!({"kind": kind, "apiVersion": api_version,
                "metadata": {"resourceVersion": c.next_version.to_string()}, "items": items}))
    .into_response()
}

async fn list_pods(State(s): State<Shared>, Path(ns): Path<String>) -> Response {
    let mut c = s.lock().unwrap();
    c.requests.push(format!("LIST pods {ns}"));
    if let Some(r) = refused(&c, "list", "pods", &ns) {
        return r;
    }
    let items: Vec<Value> = c
        .pods
        .iter()
        .filter(|((n, _), _)| *n == ns)
        .map(|(_, p)| p.clone())
        .collect();
    Json(json!({"kind": "PodList", "apiVersion": "v1",
                "metadata": {"resourceVersion": c.next_version.to_string()}, "items": items}))
    .into_response()
}

async fn get_pod(State(s): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    let mut c = s.lock().unwrap();
    c.requests.push(format!("GET pod {ns}/{name}"));
    if let Some(r) = refused(&c, "get", "pods", &ns) {
        return r;
    }
    match c.pods.get(&(ns.clone(), name.clone())) {
        Some(pod) => Json(pod.clone()).into_response(),
        None => {
            let body = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": format!("pods \"{name}\" not found"),
                "reason": "NotFound", "details": {"name": name, "kind": "pods"}, "code": 404
            });
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
    }
}

/// The kind of an `apps/v1` resource this stand-in serves.
fn apps_kind(resource: &str) -> Option<&'static str> {
    match resource {
        "deployments" => Some("Deployment"),
        "statefulsets" => Some("StatefulSet"),
        "daemonsets" => Some("DaemonSet"),
        "replicasets" => Some("ReplicaSet"),
        _ => None,
    }
}

/// The API server's answer for a resource it does not serve.
fn no_such_resource() -> Response {
    status_of(
        404,
        "NotFound",
        "the server could not find the requested resource".into(),
        "",
        "",
    )
}

/// Whether the client asked for one object's metadata only, as kube's
/// `get_metadata` does.
fn partial_metadata(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("as=PartialObjectMetadata;"))
}

/// The `apps/v1` object `resource` `namespace/name`, if it is here.
fn apps_object<'a>(
    cluster: &'a Cluster,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<&'a Value> {
    if kind == "ReplicaSet" {
        cluster
            .replicasets
            .get(&(namespace.to_owned(), name.to_owned()))
    } else {
        cluster.workload(namespace, kind, name)
    }
}

async fn get_apps(
    State(s): State<Shared>,
    Path((ns, resource, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut c = s.lock().unwrap();
    c.requests.push(format!("GET {resource} {ns}/{name}"));
    let Some(kind) = apps_kind(&resource) else {
        return no_such_resource();
    };
    if let Some(r) = refused_in(&c, "apps", "get", &resource, &ns) {
        return r;
    }
    match apps_object(&c, kind, &ns, &name) {
        Some(object) if partial_metadata(&headers) => Json(json!({
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": object["metadata"]
        }))
        .into_response(),
        Some(object) => Json(object.clone()).into_response(),
        None => status_of(
            404,
            "NotFound",
            format!("{resource}.apps \"{name}\" not found"),
            &resource,
            &name,
        ),
    }
}

/// Applies a JSON merge patch (RFC 7396) to `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().unwrap();
    for (key, value) in fields {
        if value.is_null() {
            object.remove(key);
        } else {
            merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Patches a Deployment, StatefulSet or DaemonSet with a JSON merge patch,
/// or a strategic merge patch taken as one (the same for maps such as
/// annotations). As the API server does, it keeps the object's identity,
/// bumps `resourceVersion`, and `generation` when the spec changed.
async fn patch_apps(
    State(s): State<Shared>,
    Path((ns, resource, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut c = s.lock().unwrap();
    c.requests.push(format!("PATCH {resource} {ns}/{name}"));
    let kind = match apps_kind(&resource) {
        Some("ReplicaSet") => {
            return status_of(
                405,
                "MethodNotAllowed",
                "this stand-in does not patch replicasets".into(),
                &resource,
                &name,
            );
        }
        Some(kind) => kind,
        None => return no_such_resource(),
    };
    if let Some(r) = refused_in(&c, "apps", "patch", &resource, &ns) {
        return r;
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/merge-patch+json")
        && !content_type.starts_with("application/strategic-merge-patch+json")
    {
        return status_of(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
            ),
            &resource,
            &name,
        );
    }
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => {
            return status_of(
                400,
                "BadRequest",
                format!("error decoding patch: {e}"),
                &resource,
                &name,
            );
        }
    };
    let key = (kind.to_owned(), ns.clone(), name.clone());
    let Some(current) = c.workloads.get(&key).cloned() else {
        return status_of(
            404,
            "NotFound",
            format!("{resource}.apps \"{name}\" not found"),
            &resource,
            &name,
        );
    };
    let mut patched = current.clone();
    merge_patch(&mut patched, &patch);
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        patched["metadata"][field] = current["metadata"][field].clone();
    }
    patched["apiVersion"] = current["apiVersion"].clone();
    patched["kind"] = current["kind"].clone();
    if patched["spec"] != current["spec"] {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        patched["metadata"]["generation"] = json!(generation + 1);
    } else {
        patched["metadata"]["generation"] = current["metadata"]["generation"].clone();
    }
    c.stamp(&mut patched);
    c.workloads.insert(key, patched.clone());
    c.workload_patches.push((kind.to_owned(), ns, name, patch));
    Json(patched).into_response()
}

/// `TokenReview`: authenticated for a token this stand-in issued, when the
/// review's audiences meet the token's; the user's extra fields name the
/// pod a bound token belongs to, as the API server's do.
async fn token_review(State(s): State<Shared>, Json(mut review): Json<Value>) -> Response {
    let mut c = s.lock().unwrap();
    c.requests.push("TOKENREVIEW".into());
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let wanted: Vec<String> = review["spec"]["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    review["status"] = match c.tokens.get(token) {
        Some(issued) => {
            let audiences: Vec<&String> = issued
                .audiences
                .iter()
                .filter(|a| wanted.is_empty() || wanted.contains(a))
                .collect();
            if audiences.is_empty() {
                json!({"authenticated": false, "error": "[invalid bearer token, token audiences are invalid for the target audiences]"})
            } else {
                let mut extra =
                    json!({"authentication.kubernetes.io/credential-id": ["JTI=0d6c5d1b"]});
                if let Some((name, uid)) = &issued.pod {
                    extra["authentication.kubernetes.io/pod-name"] = json!([name]);
                    extra["authentication.kubernetes.io/pod-uid"] = json!([uid]);
                }
                json!({
                    "authenticated": true,
                    "user": {
                        "username": format!("system:serviceaccount:{}:{}", issued.namespace, issued.service_account),
                        "uid": "9c1d5b7e-2f3a-4c8d-b6e1-7a0f2d4c9e31",
                        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", issued.namespace), "system:authenticated"],
                        "extra": extra,
                    },
                    "audiences": audiences,
                })
            }
        }
        None => {
            json!({"user": {}, "error": "[invalid bearer token, square/go-jose: error in cryptographic primitive]"})
        }
    };
    (StatusCode::CREATED, Json(review)).into_response()
}

/// `SelfSubjectAccessReview`: allowed for Secrets and pods where `rbac`
/// allows them, and for the workload rules in API group `apps` (get and
/// patch Deployments, StatefulSets and DaemonSets, get ReplicaSets) where
/// `rbac` allows them too, unless `apps_refused`.
async fn access_review(State(s): State<Shared>, Json(mut review): Json<Value>) -> Response {
    let mut c = s.lock().unwrap();
    let attributes = review["spec"]["resourceAttributes"].clone();
    let text = |key: &str| attributes[key].as_str().unwrap_or_default().to_owned();
    let (namespace, verb, resource) = (text("namespace"), text("verb"), text("resource"));
    let group = text("group");
    c.requests
        .push(format!("SSAR {verb} {resource} {namespace}"));
    let granted = match (group.as_str(), resource.as_str(), verb.as_str()) {
        ("apps", "deployments" | "statefulsets" | "daemonsets", "get" | "patch") => true,
        ("apps", "replicasets", "get") => true,
        ("apps", _, _) => false,
        (_, "secrets" | "pods", _) => true,
        _ => false,
    };
    let allowed = granted && refused_in(&c, &group, &verb, &resource, &namespace).is_none();
    review["status"] = json!({"allowed": allowed});
    (StatusCode::CREATED, Json(review)).into_response()
}

/// `SelfSubjectReview`: the product is the service account [`USER`].
async fn self_review(State(s): State<Shared>, Json(mut review): Json<Value>) -> Response {
    s.lock().unwrap().requests.push("SSR".into());
    review["status"] = json!({"userInfo": {"username": USER,
        "groups": ["system:serviceaccounts", "system:authenticated"]}});
    (StatusCode::CREATED, Json(review)).into_response()
}

/// A running stand-in; dropped, it stops answering.
pub struct FakeApi {
    pub state: Shared,
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let state: Shared = Arc::default();
        let router = Router::new()
            .route("/api/v1/secrets", get(list_secrets))
            .route(
                "/api/v1/namespaces/{ns}/secrets",
                post(create_secret).get(list_namespaced_secrets),
            )
            .route(
                "/api/v1/namespaces/{ns}/secrets/{name}",
                get(get_secret).put(replace_secret).delete(delete_secret),
            )
            .route("/api/v1/namespaces/{ns}/pods", get(list_pods))
            .route("/api/v1/namespaces/{ns}/pods/{name}", get(get_pod))
            .route(
                "/apis/apps/v1/namespaces/{ns}/{resource}/{name}",
                get(get_apps).patch(patch_apps),
            )
            .route(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                post(token_review),
            )
            .route(
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                post(access_review),
            )
            .route(
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                post(self_review),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeApi { state, url, task }
    }

    /// A kubeconfig that points at this stand-in.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\nusers:\n- name: test\n  user:\n    token: test-token\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\ncurrent-context: test\n",
                self.url
            ),
        )
        .unwrap();
        path
    }

    pub fn stop(&self) {
        self.task.abort();
    }

    pub fn cluster(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.state.lock().unwrap()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}
