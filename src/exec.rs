//! The exec listener: `POST /v1/exec/env`, where the wrapper of delivery
//! `exec` fetches one container's values when it starts.
//!
//! The caller is a pod, and proves it with its own bound service account
//! token (audience [`AUDIENCE`]), which the API server checks in a
//! TokenReview. The token names the pod; the pod, read from the API server,
//! must still be that pod (same uid) and must ask for delivery `exec` for
//! the container named. The answer holds exactly what that container's
//! annotation names, resolved now. Nothing the request says is trusted
//! beyond the container's name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::admission::exec::AUDIENCE;
use crate::admission::{Delivery, Pod, parse_delivery, parse_env, plan_env};
use crate::app::App;
use crate::cluster::{BoundPod, ClusterError};
use crate::http::{ApiError, ApiResult, healthz, parse_json, read_limited};
use crate::resolve::Resolved;
use crate::store::Organization;

/// Largest request body: a container's name.
const MAX_BODY: usize = 4 << 10;
/// Longest bearer token read; a Kubernetes token is about 1 KiB.
const MAX_TOKEN: usize = 16 << 10;
/// Calls per pod and minute. A wrapper makes one call per container start,
/// and retries only while the server cannot answer.
const CALLS_PER_MINUTE: u32 = 30;
/// Pods the per-pod limit keeps track of at once.
const MAX_PODS: usize = 65_536;
const WINDOW: Duration = Duration::from_secs(60);

pub fn router(app: Arc<App>) -> Router {
    let state = Arc::new(ExecState {
        app,
        calls: Mutex::default(),
    });
    Router::new()
        .route("/v1/exec/env", post(env))
        .route("/healthz", get(healthz))
        .fallback(|| async { ApiError::NotFound("no such route on the exec listener".into()) })
        .with_state(state)
}

struct ExecState {
    app: Arc<App>,
    /// Calls per pod uid in the current window.
    calls: Mutex<std::collections::HashMap<String, (u32, Instant)>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvRequest {
    container: String,
}

async fn env(
    State(state): State<Arc<ExecState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response {
    match serve(&state, peer, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve(state: &ExecState, peer: SocketAddr, request: Request<Body>) -> ApiResult<Response> {
    let app = &state.app;
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Zeroizing::new(t.trim().to_owned()))
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN);
    let body = read_limited(request, MAX_BODY).await?;
    let Some(token) = token else {
        return Err(refuse(
            app,
            peer,
            "send the pod's token as Authorization: Bearer",
        ));
    };
    let asked: EnvRequest = parse_json(&body)?;
    // Every check of a token is a TokenReview: a source that has sent too
    // many bad ones waits out its window before the next is sent on.
    if let Some(retry_after) = app.auth_limiter.over_limit(peer.ip()) {
        return Err(ApiError::RateLimited { retry_after });
    }

    let pod = match app.cluster.review_token(&token, AUDIENCE).await {
        Ok(Ok(pod)) => pod,
        Ok(Err(refused)) => return Err(refuse(app, peer, &refused.to_string())),
        Err(error) => return Err(cluster_unavailable(error)),
    };
    drop(token);
    if let Some(retry_after) = state.over_limit(&pod.uid) {
        return Err(ApiError::TooManyCalls { retry_after });
    }
    let actor = format!("pod:{}/{}", pod.namespace, pod.name);
    let json = values_for(app, &pod, &asked.container, &actor).await?;
    Ok((
        [(CONTENT_TYPE, "application/json")],
        Body::from(json.to_vec()),
    )
        .into_response())
}

/// A refusal of the caller: counted against its source like a failed API
/// authentication, so that nobody floods the API server with TokenReviews.
fn refuse(app: &App, peer: SocketAddr, why: &str) -> ApiError {
    app.metrics.auth_failures.inc();
    tracing::info!(%peer, reason = why, "Exec listener refused a caller");
    match app.auth_limiter.failed(peer.ip()) {
        Some(retry_after) => ApiError::RateLimited { retry_after },
        None => ApiError::Unauthenticated(why.to_owned()),
    }
}

fn cluster_unavailable(error: ClusterError) -> ApiError {
    ApiError::Unavailable(error.to_string())
}

/// The answer for `container` of `bound`'s pod: `{"env":{…}}` with the
/// values its annotation names now. Audited as the pod.
async fn values_for(
    app: &App,
    bound: &BoundPod,
    container: &str,
    actor: &str,
) -> ApiResult<Zeroizing<Vec<u8>>> {
    let (namespace, name) = (bound.namespace.as_str(), bound.name.as_str());
    let text = stored_pod(app, bound).await?;
    let pod = Pod::parse(&text).map_err(|e| ApiError::Internal(e.into()))?;
    check_pod(app, &pod, bound)?;
    let entries = parse_env(pod.annotations.env.as_deref().unwrap_or(""))
        .map_err(|e| forbidden(e.to_string()))?;
    let plan = plan_env(&pod, &entries).map_err(|e| forbidden(e.to_string()))?;
    let Some(wanted) = plan.containers.iter().find(|c| c.name == container) else {
        return Err(forbidden(format!(
            "pod {namespace}/{name} asks for no secrets in a container named {container:?}"
        )));
    };
    let org = bound_organization(app, namespace).await?;
    let mut names: Vec<&str> = wanted.vars.iter().map(|(_, s)| *s).collect();
    names.sort_unstable();
    names.dedup();
    let resolved = app.resolver.resolve(&org, &names, Some(namespace)).await?;
    app.store
        .audit_resolve(
            &org.id,
            actor,
            resolved
                .iter()
                .map(|s| (s.secret.id.as_str(), s.secret.name.as_str())),
        )
        .await?;
    let json = answer(&wanted.vars, &resolved);
    let secrets: Vec<String> = resolved
        .iter()
        .map(|s| format!("{}@{}", s.secret.name, s.secret.version))
        .collect();
    tracing::info!(
        namespace,
        pod = name,
        container,
        secrets = secrets.join(","),
        "Served a container's values to its wrapper"
    );
    Ok(json)
}

/// The pod the token was issued for, as the API server has it now.
async fn stored_pod(app: &App, bound: &BoundPod) -> ApiResult<String> {
    let (namespace, name) = (bound.namespace.as_str(), bound.name.as_str());
    app.cluster
        .pod_json(namespace, name)
        .await
        .map_err(cluster_unavailable)?
        .ok_or_else(|| {
            ApiError::Unauthenticated(format!(
                "pod {namespace}/{name}, which this token was issued for, no longer exists"
            ))
        })
}

/// Refuses unless `pod` is the very pod the token names (same uid: a pod
/// deleted and created again under its name is another pod) and asks for
/// delivery `exec`.
fn check_pod(app: &App, pod: &Pod<'_>, bound: &BoundPod) -> ApiResult<()> {
    let (namespace, name) = (bound.namespace.as_str(), bound.name.as_str());
    let uid = pod.meta.as_ref().ok().and_then(|m| m.uid.as_deref());
    if uid != Some(bound.uid.as_str()) {
        return Err(ApiError::Unauthenticated(format!(
            "pod {namespace}/{name}, which this token was issued for, no longer exists (a pod of that name has another uid)"
        )));
    }
    let delivery = match pod.annotations.delivery.as_deref() {
        Some(text) => parse_delivery(text).map_err(|e| forbidden(e.to_string()))?,
        None => app.settings.default_delivery,
    };
    if delivery != Delivery::Exec {
        return Err(forbidden(format!(
            "pod {namespace}/{name} asks for delivery {:?}, not \"exec\"",
            delivery.as_str()
        )));
    }
    Ok(())
}

/// The organization `namespace` is bound to.
async fn bound_organization(app: &App, namespace: &str) -> ApiResult<Organization> {
    let binding = app
        .store
        .find_namespace_binding(namespace)
        .await?
        .ok_or_else(|| {
            forbidden(format!(
                "namespace {namespace:?} is not bound to an organization"
            ))
        })?;
    app.store
        .find_organization(&binding.organization_id)
        .await?
        .ok_or_else(|| {
            forbidden(format!(
                "namespace {namespace:?} is bound to an organization that no longer exists"
            ))
        })
}

/// `{"env":{VAR: value, …}}`, written into a buffer that is wiped when
/// dropped.
fn answer(vars: &[(&str, &str)], resolved: &Resolved) -> Zeroizing<Vec<u8>> {
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        env: BTreeMap<&'a str, &'a str>,
    }
    let env: BTreeMap<&str, &str> = vars
        .iter()
        .map(|(var, secret)| (*var, resolved[*secret].value.expose()))
        .collect();
    let mut json = Zeroizing::new(Vec::with_capacity(64 + env.len() * 64));
    serde_json::to_writer(&mut *json, &Answer { env }).expect("writing to a Vec cannot fail");
    json
}

fn forbidden(message: String) -> ApiError {
    ApiError::Forbidden(message)
}

impl ExecState {
    /// Counts a call of pod `uid`; the seconds to wait when it is over the
    /// limit. The table is bounded: when full, windows that have ended are
    /// dropped, and if none has, every window starts afresh.
    fn over_limit(&self, uid: &str) -> Option<u64> {
        let now = Instant::now();
        let mut calls = self.calls.lock().expect("lock poisoned");
        if calls.len() >= MAX_PODS && !calls.contains_key(uid) {
            calls.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
            if calls.len() >= MAX_PODS {
                calls.clear();
            }
        }
        let entry = calls.entry(uid.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        (entry.0 > CALLS_PER_MINUTE)
            .then(|| (WINDOW - now.duration_since(entry.1)).as_secs().max(1))
    }
}
