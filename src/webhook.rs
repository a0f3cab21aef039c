//! The admission webhook: `POST /mutate` over TLS.
//!
//! Reads the pod's annotations, resolves the secrets they name in the
//! organization its namespace is bound to, and answers with a patch. A pod
//! that cannot get everything it asked for is denied with a message that
//! says what to fix, and never with a value.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tracing::{Instrument, field};

use crate::admission::{
    self, Denial, Injection, Patch, Pod, build_patch, parse_env, parse_pull_secrets, plan_env,
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
    /// Fingerprints of recently recorded sets of references.
    recent: Mutex<foldhash::HashMap<u64, Instant>>,
    /// Seeded once per process, so that fingerprints cannot be aimed at.
    fingerprints: foldhash::quality::RandomState,
    /// The metrics of each result, looked up once rather than per admission.
    results: [Meters; 4],
    answered: Counter,
}

/// How an admission ended, as counted in metrics.
#[derive(Clone, Copy)]
enum Ending {
    Allowed,
    Denied,
    Unavailable,
    BadRequest,
}

impl Ending {
    const ALL: [Ending; 4] = [
        Ending::Allowed,
        Ending::Denied,
        Ending::Unavailable,
        Ending::BadRequest,
    ];

    fn label(self) -> &'static str {
        match self {
            Ending::Allowed => "allowed",
            Ending::Denied => "denied",
            Ending::Unavailable => "unavailable",
            Ending::BadRequest => "bad_request",
        }
    }
}

struct Meters {
    admissions: Counter,
    duration: Histogram,
}

fn http_labels(status: u16) -> HttpLabels {
    HttpLabels {
        server: "webhook",
        method: Cow::Borrowed("POST"),
        route: Cow::Borrowed("/mutate"),
        status,
    }
}

pub fn router(app: Arc<App>) -> Router {
    let metrics = &app.metrics;
    let results = Ending::ALL.map(|result| {
        let labels = ResultLabels {
            result: result.label(),
        };
        Meters {
            admissions: metrics.admissions.get_or_create(&labels).clone(),
            duration: metrics.admission_duration.get_or_create(&labels).clone(),
        }
    });
    let answered = metrics
        .http_requests
        .get_or_create(&http_labels(200))
        .clone();
    let state = Arc::new(Webhook {
        app,
        recent: Mutex::default(),
        fingerprints: foldhash::quality::RandomState::default(),
        results,
        answered,
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
    Allowed(Patch),
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
            hook.count(Ending::BadRequest, started);
            error.into_response()
        }
        Ok(body) => match admission::parse_review(&body) {
            Err(error) => {
                hook.count(Ending::BadRequest, started);
                tracing::info!(%error, "Rejected a malformed AdmissionReview");
                ApiError::BadRequest(error.to_string()).into_response()
            }
            Ok(request) => {
                let pod = request.object.as_ref().map(Pod::name).unwrap_or_default();
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
                    Outcome::Allowed(patch) => {
                        span.record("allowed", true)
                            .record("patch_ops", patch.len());
                        tracing::debug!("Admitted");
                        hook.count(Ending::Allowed, started);
                        admission::allow(&request.uid, patch)
                    }
                    Outcome::Denied(denial, message) => {
                        span.record("allowed", false).record("patch_ops", 0);
                        tracing::info!(uid = %request.uid, namespace, pod = %pod, reason = %message, "Denied");
                        hook.count(
                            if *denial == Denial::Forbidden {
                                Ending::Denied
                            } else {
                                Ending::Unavailable
                            },
                            started,
                        );
                        admission::deny(&request.uid, *denial, message)
                    }
                };
                ([(CONTENT_TYPE, "application/json")], Body::from(review)).into_response()
            }
        },
    };
    match response.status().as_u16() {
        200 => hook.answered.inc(),
        status => app
            .metrics
            .http_requests
            .get_or_create(&http_labels(status))
            .inc(),
    };
    response
}

impl Webhook {
    fn count(&self, result: Ending, started: Instant) {
        let meters = &self.results[result as usize];
        meters.admissions.inc();
        meters.duration.observe(started.elapsed().as_secs_f64());
    }

    async fn admit(&self, request: &admission::AdmissionRequest<'_>) -> Outcome {
        if !request.is_pod_create() {
            return Outcome::Allowed(Patch::default());
        }
        let Some(pod) = &request.object else {
            return Outcome::deny("the review carries no pod object");
        };
        let (env_text, pull_text) = (
            pod.annotations.env.as_deref(),
            pod.annotations.pull_secrets.as_deref(),
        );
        if env_text.is_none() && pull_text.is_none() {
            return Outcome::Allowed(Patch::default());
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
        request: &admission::AdmissionRequest<'_>,
        pod: &Pod<'_>,
        env_text: &str,
        pull_text: &str,
    ) -> Result<Patch, Outcome> {
        let app = &self.app;
        let entries = parse_env(env_text).map_err(Outcome::deny)?;
        let pulls = parse_pull_secrets(pull_text).map_err(Outcome::deny)?;
        let plan = plan_env(pod, &entries).map_err(Outcome::deny)?;
        let namespace = request
            .namespace
            .as_deref()
            .or_else(|| pod.namespace())
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
        if !pull_records.is_empty() {
            names.extend(pull_records.iter().map(|r| r.password_secret.as_str()));
            names.sort_unstable();
            names.dedup();
        }
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
                let password = &resolved[record.password_secret.as_str()];
                let credentials = Credentials {
                    name: &record.name,
                    registry: &record.registry,
                    username: &record.username,
                    password: &password.value,
                    version: format!("{}@{}", password.secret.name, password.secret.version),
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

        let value = |name: &str| {
            resolved.get(name).map(|s| Injection {
                version: s.secret.version,
                value: s.value.expose(),
            })
        };
        let stamp: Vec<(&str, i64)> = resolved
            .iter()
            .map(|s| (s.secret.name.as_str(), s.secret.version))
            .collect();
        let patch = build_patch(pod, &plan, value, &pulls, &stamp);

        if !request.dry_run() {
            let (owner_kind, owner_name) = pod.owner().unwrap_or_default();
            let user = PodUser {
                namespace,
                pod: pod.name(),
                owner_kind,
                owner_name,
            };
            let mut uses = Vec::with_capacity(plan.var_count());
            for c in &plan.containers {
                for (var, secret) in &c.vars {
                    uses.push(SecretUse {
                        secret_id: &resolved[*secret].secret.id,
                        container: c.name,
                        env_var: var,
                    });
                }
            }
            self.record(&user, &uses).await.map_err(store_unavailable)?;
        }
        Ok(patch)
    }

    /// Records references, unless the same set was written recently: pods
    /// of one ReplicaSet share a generateName and would otherwise cost a
    /// write each. Only a hash of each recent set is kept, so that checking
    /// costs no allocation.
    async fn record(&self, user: &PodUser<'_>, uses: &[SecretUse<'_>]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let key = std::hash::BuildHasher::hash_one(&self.fingerprints, (user, uses));
        let now = Instant::now();
        let recent = self
            .recent
            .lock()
            .expect("lock poisoned")
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) <= REFERENCE_REFRESH);
        if recent {
            return Ok(());
        }
        let rows: Vec<PodReference> = uses
            .iter()
            .map(|u| PodReference {
                secret_id: u.secret_id.to_owned(),
                namespace: user.namespace.to_owned(),
                pod: user.pod.to_owned(),
                owner_kind: user.owner_kind.to_owned(),
                owner_name: user.owner_name.to_owned(),
                container: u.container.to_owned(),
                env_var: u.env_var.to_owned(),
            })
            .collect();
        // Out of line: most admissions find their set recent and never
        // write, and the write's state would enlarge every admission's future.
        Box::pin(self.app.store.record_pod_references(&rows)).await?;
        let mut recent = self.recent.lock().expect("lock poisoned");
        if recent.len() >= RECENT_REFERENCES_MAX {
            recent.clear();
        }
        recent.insert(key, now);
        Ok(())
    }
}

/// The pod an admission is for, borrowed from it.
#[derive(Hash)]
struct PodUser<'a> {
    namespace: &'a str,
    pod: &'a str,
    owner_kind: &'a str,
    owner_name: &'a str,
}

/// One variable of the pod and the secret it comes from.
#[derive(Hash)]
struct SecretUse<'a> {
    secret_id: &'a str,
    container: &'a str,
    env_var: &'a str,
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
