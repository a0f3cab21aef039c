//! A loopback stand-in for the few Kubernetes API calls the product makes:
//! Secrets (get, create, replace, delete, list by label, also as metadata
//! only) and Pods (list, get) in a namespace, SelfSubjectAccessReviews,
//! SelfSubjectReviews and TokenReviews (of tokens it issued itself, bound
//! to a pod, as the kubelet's projected tokens are). It answers with the real API server's status codes
//! and bodies: 201 on create, 200 on read and replace, 403, 404 and 409 as
//! `Status` objects, and a `resourceVersion` on every object. Like RBAC with
//! a RoleBinding per namespace, `rbac` can limit the namespaces where the
//! caller may touch Secrets and pods.
// Each test binary uses its own part of the stand-in.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
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
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason,
        "details": {"name": name, "kind": "secrets"}, "code": code
    });
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

/// What RBAC answers `verb` on `resource` in `namespace`, if it refuses.
fn refused(cluster: &Cluster, verb: &str, resource: &str, namespace: &str) -> Option<Response> {
    let allowed = cluster
        .rbac
        .as_ref()
        .is_none_or(|namespaces| namespaces.contains(namespace));
    (!allowed).then(|| {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "Forbidden", "code": 403,
            "message": format!("{resource} is forbidden: User \"{USER}\" cannot {verb} resource \"{resource}\" in API group \"\" in the namespace \"{namespace}\""),
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
/// allows them.
async fn access_review(State(s): State<Shared>, Json(mut review): Json<Value>) -> Response {
    let mut c = s.lock().unwrap();
    let attributes = review["spec"]["resourceAttributes"].clone();
    let text = |key: &str| attributes[key].as_str().unwrap_or_default().to_owned();
    let (namespace, verb, resource) = (text("namespace"), text("verb"), text("resource"));
    c.requests
        .push(format!("SSAR {verb} {resource} {namespace}"));
    let allowed = matches!(resource.as_str(), "secrets" | "pods")
        && refused(&c, &verb, &resource, &namespace).is_none();
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
