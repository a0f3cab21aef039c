//! The admission webhook: `POST /mutate` over TLS.
//!
//! Reads the pod's annotations, resolves the secrets they name in the
//! organization its namespace is bound to, and answers with a patch. A pod
//! that cannot get everything it asked for is denied with a message that
//! says what to fix, and never with a value.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tracing::{Instrument, field};

use crate::admission::{
    self, Denial, ENV_ANNOTATION, Injection, PULL_SECRETS_ANNOTATION, build_patch, parse_env,
    parse_pull_secrets, plan_env, pod_name, pod_owner,
};
use crate::api::ApiError;
use crate::app::App;
use crate::metrics::{HttpLabels, KindLabels, ResultLabels};
use crate::pull::{Credentials, PullError};
use crate::resolve::ResolveError;
use crate::store::{PodReference, StoreError};

/// Largest accepted AdmissionReview (the API server's own request limit is 3 MiB).
pub const MAX_REVIEW: usize = 8 << 20;

/// A pod reference already written within this interval is not written again.
const REFERENCE_REFRESH: Duration = Duration::from_secs(300);
const RECENT_REFERENCES_MAX: usize = 50_000;

pub struct Webhook {
    app: Arc<App>,
    /// Fingerprints of recently recorded references.
    recent: Mutex<HashMap<u64, Instant>>,
}

pub fn router(app: Arc<App>) -> Router {
    let state = Arc::new(Webhook {
        app,
        recent: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(crate::api::healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn readyz(State(hook): State<Arc<Webhook>>) -> impl IntoResponse {
    crate::api::readiness(&hook.app).await
}

/// What an admission decided.
enum Outcome {
    Allowed(Vec<Value>),
    Denied(Denial, String),
}

impl Outcome {
    fn deny(message: impl ToString) -> Self {
        Outcome::Denied(Denial::Forbidden, message.to_string())
    }
}

async fn mutate(State(hook): State<Arc<Webhook>>, request: Request) -> Response {
    let started = Instant::now();
    let app = &hook.app;
    let response = match crate::api::read_limited(request, MAX_REVIEW).await {
        Err(error) => {
            count(app, "bad_request", started);
            error.into_response()
        }
        Ok(body) => match admission::parse_review(&body) {
            Err(error) => {
                count(app, "bad_request", started);
                tracing::info!(%error, "Rejected a malformed AdmissionReview");
                ApiError::BadRequest(error.to_string()).into_response()
            }
            Ok(request) => {
                let pod = request.object.as_ref().map(pod_name).unwrap_or_default();
                let namespace = request.namespace.as_deref().unwrap_or("");
                // A debug span: at the default level it costs nothing, and a
                // denial is logged at info with the same fields below.
                let span = tracing::debug_span!(
                    "admission",
                    uid = %request.uid,
                    namespace,
                    pod = %pod,
                    operation = %request.operation,
                    dry_run = request.dry_run(),
                    allowed = field::Empty,
                    patch_ops = field::Empty,
                );
                let timeout = app.settings.admission_timeout;
                let outcome = tokio::time::timeout(timeout, hook.admit(&request))
                    .instrument(span.clone())
                    .await
                    .unwrap_or_else(|_| {
                        app.metrics.resolution_errors.get_or_create(&KindLabels { kind: "timeout" }).inc();
                        Outcome::Denied(
                            Denial::Unavailable,
                            format!(
                                "admission timed out after {} while resolving secrets; check that the secret providers and the database are reachable, then retry",
                                humantime::format_duration(timeout)
                            ),
                        )
                    });
                let _entered = span.enter();
                let review = match &outcome {
                    Outcome::Allowed(ops) => {
                        span.record("allowed", true).record("patch_ops", ops.len());
                        tracing::debug!("Admitted");
                        count(app, "allowed", started);
                        admission::allow(&request.uid, ops)
                    }
                    Outcome::Denied(denial, message) => {
                        span.record("allowed", false).record("patch_ops", 0);
                        tracing::info!(uid = %request.uid, namespace, pod = %pod, reason = %message, "Denied");
                        count(
                            app,
                            if *denial == Denial::Forbidden {
                                "denied"
                            } else {
                                "unavailable"
                            },
                            started,
                        );
                        admission::deny(&request.uid, *denial, message)
                    }
                };
                Json(review).into_response()
            }
        },
    };
    app.metrics
        .http_requests
        .get_or_create(&HttpLabels {
            server: "webhook",
            method: "POST".into(),
            route: "/mutate".into(),
            status: response.status().as_u16(),
        })
        .inc();
    response
}

fn count(app: &App, result: &'static str, started: Instant) {
    let labels = ResultLabels { result };
    app.metrics.admissions.get_or_create(&labels).inc();
    app.metrics
        .admission_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
}

impl Webhook {
    async fn admit(&self, request: &admission::AdmissionRequest) -> Outcome {
        if !request.is_pod_create() {
            return Outcome::Allowed(Vec::new());
        }
        let Some(pod) = &request.object else {
            return Outcome::deny("the review carries no pod object");
        };
        let annotations = pod.pointer("/metadata/annotations");
        let text = |key: &str| annotations.and_then(|a| a.get(key)).and_then(Value::as_str);
        let (env_text, pull_text) = (text(ENV_ANNOTATION), text(PULL_SECRETS_ANNOTATION));
        if env_text.is_none() && pull_text.is_none() {
            return Outcome::Allowed(Vec::new());
        }
        match self
            .inject(
                request,
                pod,
                env_text.unwrap_or(""),
                pull_text.unwrap_or(""),
            )
            .await
        {
            Ok(ops) => Outcome::Allowed(ops),
            Err(outcome) => outcome,
        }
    }

    async fn inject(
        &self,
        request: &admission::AdmissionRequest,
        pod: &Value,
        env_text: &str,
        pull_text: &str,
    ) -> Result<Vec<Value>, Outcome> {
        let app = &self.app;
        let entries = parse_env(env_text).map_err(Outcome::deny)?;
        let pulls = parse_pull_secrets(pull_text).map_err(Outcome::deny)?;
        let plan = plan_env(pod, &entries).map_err(Outcome::deny)?;
        let namespace = request
            .namespace
            .as_deref()
            .or_else(|| pod.pointer("/metadata/namespace").and_then(Value::as_str))
            .ok_or_else(|| Outcome::deny("the review names no namespace"))?;
        let binding = app
            .store
            .find_namespace_binding(namespace)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(|| {
                Outcome::deny(format!(
                    "namespace {namespace:?} is not bound to an organization; a platform admin binds it with PUT /v1/namespaces/{namespace}"
                ))
            })?;
        let org = app
            .store
            .find_organization(&binding.organization_id)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(|| {
                Outcome::deny(format!(
                    "namespace {namespace:?} is bound to an organization that no longer exists"
                ))
            })?;

        // Everything that can go wrong is gathered, so that one denial names
        // every problem of the pod at once.
        let mut problems = Problems::default();
        let mut pull_records = Vec::new();
        for name in &pulls {
            match app
                .store
                .find_image_pull_secret(&org.id, name)
                .await
                .map_err(store_unavailable)?
            {
                Some(record) => pull_records.push(record),
                None => problems.forbidden(format!(
                    "image pull secret {name:?} not found in organization {:?}",
                    org.name
                )),
            }
        }
        let mut names = plan.secret_names();
        names.extend(pull_records.iter().map(|r| r.password_secret.as_str()));
        names.sort_unstable();
        names.dedup();
        let resolved = match app.resolver.resolve(&org, &names).await {
            Ok(resolved) => resolved,
            Err(error) => {
                app.metrics
                    .resolution_errors
                    .get_or_create(&KindLabels { kind: error.kind() })
                    .inc();
                if let ResolveError::Crypto { .. } = &error {
                    app.metrics.decrypt_failures.inc();
                    tracing::error!(%error, "Stored secret failed to decrypt");
                }
                match &error {
                    ResolveError::NotFound { .. } | ResolveError::Unsupported { .. } => {
                        problems.forbidden(error.to_string())
                    }
                    _ => problems.unavailable(error.to_string()),
                }
                return Err(problems.into_outcome());
            }
        };
        problems.check()?;

        if !request.dry_run() && !pull_records.is_empty() {
            let writes = pull_records.iter().map(|record| {
                let password = &resolved[&record.password_secret];
                let credentials = Credentials {
                    name: &record.name,
                    registry: &record.registry,
                    username: &record.username,
                    password: &password.value,
                    version: format!("{}@{}", password.name, password.version),
                };
                async move { app.pull.upsert(namespace, &credentials).await }
            });
            for result in futures::future::join_all(writes).await {
                match result {
                    Ok(()) => {}
                    Err(error @ PullError::NotManaged { .. }) => {
                        problems.forbidden(error.to_string())
                    }
                    Err(error) => problems.unavailable(error.to_string()),
                }
            }
            problems.check()?;
        }

        let values: HashMap<&str, Injection<'_>> = resolved
            .values()
            .map(|s| {
                (
                    s.name.as_str(),
                    Injection {
                        version: s.version,
                        value: s.value.expose(),
                    },
                )
            })
            .collect();
        let stamp: BTreeMap<String, i64> = resolved
            .values()
            .map(|s| (s.name.clone(), s.version))
            .collect();
        let ops = build_patch(pod, &plan, &values, &pulls, &stamp);

        if !request.dry_run() {
            let (owner_kind, owner_name) = pod_owner(pod).unwrap_or_default();
            let pod = pod_name(pod);
            let mut references = Vec::new();
            for c in &plan.containers {
                for (var, secret) in &c.vars {
                    references.push(ReferenceKey {
                        secret_id: &resolved[secret].id,
                        namespace,
                        pod: &pod,
                        owner_kind: &owner_kind,
                        owner_name: &owner_name,
                        container: &c.name,
                        env_var: var,
                    });
                }
            }
            self.record(references).await.map_err(store_unavailable)?;
        }
        Ok(ops)
    }

    /// Records references, skipping those written recently: pods of one
    /// ReplicaSet share a generateName and would otherwise cost a write each.
    /// Only a hash of each recent reference is kept, so that checking costs
    /// no allocation.
    async fn record<'a>(&self, references: Vec<ReferenceKey<'a>>) -> Result<(), StoreError> {
        let now = Instant::now();
        let fresh: Vec<(u64, ReferenceKey<'a>)> = {
            let recent = self.recent.lock().expect("lock poisoned");
            references
                .into_iter()
                .map(|r| (r.fingerprint(), r))
                .filter(|(key, _)| {
                    recent
                        .get(key)
                        .is_none_or(|at| now.duration_since(*at) > REFERENCE_REFRESH)
                })
                .collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        let rows: Vec<PodReference> = fresh.iter().map(|(_, r)| r.to_owned()).collect();
        self.app.store.record_pod_references(&rows).await?;
        let mut recent = self.recent.lock().expect("lock poisoned");
        if recent.len() + fresh.len() > RECENT_REFERENCES_MAX {
            recent.clear();
        }
        for (key, _) in fresh {
            recent.insert(key, now);
        }
        Ok(())
    }
}

/// A pod's use of one secret, borrowed from the admission.
#[derive(Hash)]
struct ReferenceKey<'a> {
    secret_id: &'a str,
    namespace: &'a str,
    pod: &'a str,
    owner_kind: &'a str,
    owner_name: &'a str,
    container: &'a str,
    env_var: &'a str,
}

impl ReferenceKey<'_> {
    fn fingerprint(&self) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        BuildHasherDefault::<DefaultHasher>::default().hash_one(self)
    }

    fn to_owned(&self) -> PodReference {
        PodReference {
            secret_id: self.secret_id.to_owned(),
            namespace: self.namespace.to_owned(),
            pod: self.pod.to_owned(),
            owner_kind: self.owner_kind.to_owned(),
            owner_name: self.owner_name.to_owned(),
            container: self.container.to_owned(),
            env_var: self.env_var.to_owned(),
        }
    }
}

/// The problems found in one admission.
#[derive(Default)]
struct Problems {
    messages: Vec<String>,
    unavailable: bool,
}

impl Problems {
    fn forbidden(&mut self, message: String) {
        self.messages.push(message);
    }

    fn unavailable(&mut self, message: String) {
        self.unavailable = true;
        self.messages.push(message);
    }

    fn check(&mut self) -> Result<(), Outcome> {
        if self.messages.is_empty() {
            Ok(())
        } else {
            Err(std::mem::take(self).into_outcome())
        }
    }

    fn into_outcome(self) -> Outcome {
        let denial = if self.unavailable {
            Denial::Unavailable
        } else {
            Denial::Forbidden
        };
        Outcome::Denied(denial, self.messages.join("; "))
    }
}

fn store_unavailable(error: StoreError) -> Outcome {
    tracing::warn!(%error, "Database error during admission");
    Outcome::Denied(
        Denial::Unavailable,
        "the secret store's database is unavailable; retry shortly".into(),
    )
}
