//! The admission webhook: `POST /mutate` over TLS.
//!
//! Reads the pod's annotations, resolves the secrets they name in the
//! organization its namespace is bound to, and answers with a patch. A pod
//! that cannot get everything it asked for is denied with a message that
//! says what to fix, and never with a value.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::budget::{Budget, Held};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Full};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tracing::{Instrument, field};

use crate::admission::{
    self, Delivery, Denial, EnvSource, ExecSetup, Injection, Patch, Plan, Pod, build_patch,
    parse_delivery, parse_env, parse_pull_secrets, plan_env, quote,
};
use crate::app::App;
use crate::cluster::{ClusterError, Credentials, EnvSecret};
use crate::http::{ApiError, healthz, readiness};
use crate::metrics::{DeliveryLabels, HttpLabels, KindLabels, ResultLabels};
use crate::resolve::{ResolveError, Resolved};
use crate::store::{ImagePullSecret, Organization, PodReference, StoreError};
use crate::tls::ClientIdentity;

/// Largest accepted AdmissionReview: the API server's own request limit.
pub const MAX_REVIEW: usize = 3 << 20;

/// The whole answer to a caller without a verified client certificate.
const UNAUTHENTICATED: &str = r#"{"error":{"code":"unauthorized","message":"the webhook answers only callers that present a client certificate from its client CA"}}"#;

/// A pod reference already written within this interval is not written again.
const REFERENCE_REFRESH: Duration = Duration::from_secs(300);
const RECENT_REFERENCES_MAX: usize = 50_000;

pub struct Webhook {
    app: Arc<App>,
    /// Bytes of bodies and answers held at once, across all connections.
    budget: Budget,
    /// Fingerprints of recently recorded sets of references.
    recent: Mutex<foldhash::HashMap<u64, Instant>>,
    /// Seeded once per process, so that fingerprints cannot be aimed at.
    fingerprints: foldhash::quality::RandomState,
    /// The metrics of each result, looked up once rather than per admission.
    results: [Meters; 4],
    answered: Counter,
    /// Admissions that resolved values, by delivery.
    deliveries: [Counter; 3],
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
    let deliveries = [Delivery::Env, Delivery::Secret, Delivery::Exec].map(|delivery| {
        metrics
            .resolutions
            .get_or_create(&DeliveryLabels {
                delivery: delivery.as_str(),
            })
            .clone()
    });
    let budget = Budget::new(app.settings.max_bytes_in_flight);
    let state = Arc::new(Webhook {
        budget,
        app,
        recent: Mutex::default(),
        fingerprints: foldhash::quality::RandomState::default(),
        results,
        answered,
        deliveries,
    });
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn readyz(State(hook): State<Arc<Webhook>>) -> impl IntoResponse {
    readiness(&hook.app).await
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
    let caller = request.extensions().get::<ClientIdentity>().cloned();
    let response = if hook.app.settings.client_auth && caller.is_none() {
        // Refused before the body is read: an unauthenticated caller learns
        // nothing about namespaces, secrets or the pod it sent.
        (
            StatusCode::UNAUTHORIZED,
            [(CONTENT_TYPE, "application/json")],
            UNAUTHENTICATED,
        )
            .into_response()
    } else {
        hook.review(request, caller.as_ref(), started).await
    };
    hook.count_status(response.status());
    response
}

impl Webhook {
    /// Reads, parses and answers one review. One deadline covers the whole
    /// request, body included: a client that stops sending half way holds
    /// nothing past it.
    async fn review(
        &self,
        request: Request,
        caller: Option<&ClientIdentity>,
        started: Instant,
    ) -> Response {
        let deadline = tokio::time::Instant::now() + self.app.settings.admission_timeout;
        let (body, _held) = match tokio::time::timeout_at(deadline, self.read_review(request)).await
        {
            Ok(Ok(read)) => read,
            Ok(Err(response)) => {
                self.count(Ending::BadRequest, started);
                return response;
            }
            Err(_) => {
                self.count(Ending::BadRequest, started);
                return refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body did not arrive in time",
                );
            }
        };
        let request = match admission::parse_review(&body) {
            Ok(request) => request,
            Err(error) => {
                self.count(Ending::BadRequest, started);
                tracing::info!(%error, "Rejected a malformed AdmissionReview");
                return ApiError::BadRequest(error.to_string()).into_response();
            }
        };
        // A debug span: at the default level it costs nothing, and a denial
        // is logged at info with the same fields.
        let span = tracing::debug_span!(
            "admission",
            uid = %request.uid,
            namespace = request.namespace.as_deref().unwrap_or(""),
            pod = %request.object.as_ref().map(Pod::name).unwrap_or_default(),
            operation = %request.operation,
            dry_run = request.dry_run(),
            allowed = field::Empty,
            patch_ops = field::Empty,
        );
        let outcome = tokio::time::timeout_at(deadline, self.admit(&request, caller))
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| self.timed_out());
        let _entered = span.enter();
        let review = self.conclude(&request, &outcome, &span, started);
        self.answer(review)
    }

    /// The denial of an admission that ran out of time.
    fn timed_out(&self) -> Outcome {
        self.app
            .metrics
            .resolution_errors
            .get_or_create(&KindLabels { kind: "timeout" })
            .inc();
        Outcome::Denied(
            Denial::Unavailable,
            format!(
                "admission timed out after {} while resolving secrets; check that the secret providers and the database are reachable, then retry",
                humantime::format_duration(self.app.settings.admission_timeout)
            ),
        )
    }

    /// Counts and logs `outcome`, and writes the AdmissionReview that
    /// carries it.
    fn conclude(
        &self,
        request: &admission::AdmissionRequest<'_>,
        outcome: &Outcome,
        span: &tracing::Span,
        started: Instant,
    ) -> Vec<u8> {
        match outcome {
            Outcome::Allowed(patch) => {
                span.record("allowed", true)
                    .record("patch_ops", patch.len());
                tracing::debug!("Admitted");
                self.count(Ending::Allowed, started);
                admission::allow(&request.uid, patch)
            }
            Outcome::Denied(denial, message) => {
                span.record("allowed", false).record("patch_ops", 0);
                let pod = request.object.as_ref().map(Pod::name).unwrap_or_default();
                let namespace = request.namespace.as_deref().unwrap_or("");
                tracing::info!(uid = %request.uid, namespace, pod = %pod, reason = %message, "Denied");
                let ending = if *denial == Denial::Forbidden {
                    Ending::Denied
                } else {
                    Ending::Unavailable
                };
                self.count(ending, started);
                admission::deny(&request.uid, *denial, message)
            }
        }
    }

    /// Answers are counted by status; a 200 has a counter of its own, taken
    /// without a label lookup.
    fn count_status(&self, status: StatusCode) {
        match status.as_u16() {
            200 => self.answered.inc(),
            status => self
                .app
                .metrics
                .http_requests
                .get_or_create(&http_labels(status))
                .inc(),
        };
    }

    /// Reads a review's body within [`MAX_REVIEW`] (413 beyond, before
    /// reading when the length is declared), holding its buffer's bytes of
    /// the budget (503 when they do not fit).
    async fn read_review(&self, request: Request) -> Result<(bytes::Bytes, Held), Response> {
        let too_large = || {
            refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("an AdmissionReview is at most {MAX_REVIEW} bytes"),
            )
        };
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_REVIEW) {
            return Err(too_large());
        }
        // The buffer's whole capacity is held: the allocator makes a large
        // buffer resident as soon as it is handed out, not as it is filled.
        // A declared length is held and allocated at once; otherwise the
        // buffer doubles as bytes arrive.
        let mut held = Held::default();
        let initial = declared.unwrap_or(16 << 10);
        if !self.budget.hold(&mut held, initial) {
            return Err(self.busy());
        }
        let mut bytes = bytes::BytesMut::with_capacity(initial);
        let mut body = request.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| {
                refusal(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("cannot read request body: {error}"),
                )
            })?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let length = bytes.len() + chunk.len();
            if length > MAX_REVIEW {
                return Err(too_large());
            }
            if length > bytes.capacity() {
                let capacity = length.max(2 * bytes.capacity()).min(MAX_REVIEW);
                if !self.budget.hold(&mut held, capacity) {
                    return Err(self.busy());
                }
                bytes.reserve(capacity - bytes.len());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((bytes.freeze(), held))
    }

    fn busy(&self) -> Response {
        self.app.metrics.busy.inc();
        let mut response = refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the webhook holds as many request and answer bytes as it may; retry shortly",
        );
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from_static("1"),
        );
        response
    }

    /// The answer, holding its bytes of the budget until it is sent.
    fn answer(&self, review: Vec<u8>) -> Response {
        let mut held = Held::default();
        if !self.budget.hold(&mut held, review.len()) {
            return self.busy();
        }
        let body = HeldBody {
            inner: Full::new(bytes::Bytes::from(review)),
            _held: held,
        };
        ([(CONTENT_TYPE, "application/json")], Body::new(body)).into_response()
    }

    fn count(&self, result: Ending, started: Instant) {
        let meters = &self.results[result as usize];
        meters.admissions.inc();
        meters.duration.observe(started.elapsed().as_secs_f64());
    }

    async fn admit(
        &self,
        request: &admission::AdmissionRequest<'_>,
        caller: Option<&ClientIdentity>,
    ) -> Outcome {
        if !request.is_pod_create() {
            return Outcome::Allowed(Patch::default());
        }
        let Some(pod) = &request.object else {
            return Outcome::deny("the review carries no pod object");
        };
        if pod.annotations.env.is_none() && pod.annotations.pull_secrets.is_none() {
            return Outcome::Allowed(Patch::default());
        }
        match self.inject(request, pod, caller).await {
            Ok(ops) => Outcome::Allowed(ops),
            Err(outcome) => outcome,
        }
    }

    async fn inject(
        &self,
        request: &admission::AdmissionRequest<'_>,
        pod: &Pod<'_>,
        caller: Option<&ClientIdentity>,
    ) -> Result<Patch, Outcome> {
        let annotations = &pod.annotations;
        let entries = parse_env(annotations.env.as_deref().unwrap_or("")).map_err(Outcome::deny)?;
        let pulls = parse_pull_secrets(annotations.pull_secrets.as_deref().unwrap_or(""))
            .map_err(Outcome::deny)?;
        let plan = plan_env(pod, &entries).map_err(Outcome::deny)?;
        let delivery = self.delivery(pod, caller, &plan)?;
        let namespace = request
            .namespace
            .as_deref()
            .or_else(|| pod.namespace())
            .ok_or_else(|| Outcome::deny("the review names no namespace"))?;
        check_names(pod, namespace, &plan).map_err(Outcome::deny)?;
        let admission = Admission {
            request,
            pod,
            caller,
            namespace,
            delivery,
        };
        let org = self.organization(namespace).await?;
        let (pull_records, resolved) = self.resolve_all(&org, namespace, &plan, &pulls).await?;
        self.check_size(&plan, &resolved, delivery)
            .map_err(Outcome::deny)?;

        let env_secret = (delivery == Delivery::Secret && !plan.containers.is_empty())
            .then(|| env_secret(&org, namespace, pod, &plan, &resolved));
        if !request.dry_run() {
            self.write_secrets(&admission, &pull_records, &resolved, env_secret.as_ref())
                .await?;
        }
        let secret_name = env_secret.as_ref().map(EnvSecret::name);
        let patch = self.patch(
            pod,
            &plan,
            &pulls,
            &resolved,
            secret_name.as_deref(),
            delivery,
        );
        self.trace(&admission, &resolved, secret_name.as_deref());

        if !request.dry_run() {
            self.record_plan(pod, namespace, &plan, &resolved)
                .await
                .map_err(store_unavailable)?;
        }
        Ok(patch)
    }

    /// Looks up the image pull secrets and resolves every secret the pod
    /// names. Everything that can go wrong is gathered, so that one denial
    /// names every problem of the pod at once.
    async fn resolve_all(
        &self,
        org: &Organization,
        namespace: &str,
        plan: &Plan<'_>,
        pulls: &[&str],
    ) -> Result<(Vec<ImagePullSecret>, Resolved), Outcome> {
        let mut problems = Problems::default();
        let pull_records = self.pull_records(org, pulls, &mut problems).await?;
        let mut names = plan.secret_names();
        if !pull_records.is_empty() {
            names.extend(pull_records.iter().map(|r| r.password_secret.as_str()));
            names.sort_unstable();
            names.dedup();
        }
        let resolved = match self
            .app
            .resolver
            .resolve(org, &names, Some(namespace))
            .await
        {
            Ok(resolved) => resolved,
            Err(error) => {
                self.resolution_failed(&error, &mut problems);
                return Err(problems.into_outcome());
            }
        };
        problems.check()?;
        Ok((pull_records, resolved))
    }

    /// The patch. Each variable comes from the pod's Secret when there is one
    /// (`secret_name`), else inline (`env`); with `exec` no value is placed
    /// and the commands are wrapped instead.
    fn patch(
        &self,
        pod: &Pod<'_>,
        plan: &Plan<'_>,
        pulls: &[&str],
        resolved: &Resolved,
        secret_name: Option<&str>,
        delivery: Delivery,
    ) -> Patch {
        let value = |name: &str| {
            resolved.get(name).map(|s| Injection {
                version: s.secret.version,
                source: match secret_name {
                    Some(secret) => EnvSource::SecretKey {
                        secret,
                        key: &s.secret.name,
                    },
                    None => EnvSource::Value(s.value.expose()),
                },
            })
        };
        let stamp: Vec<(&str, i64)> = resolved
            .iter()
            .map(|s| (s.secret.name.as_str(), s.secret.version))
            .collect();
        let settings = &self.app.settings.exec;
        let exec = settings
            .ca_pem
            .as_deref()
            .filter(|_| delivery == Delivery::Exec)
            .map(|ca_pem| ExecSetup {
                url: &settings.url,
                ca_pem,
                image: &settings.image,
            });
        build_patch(pod, plan, value, pulls, &stamp, exec.as_ref())
    }

    /// Refuses a pod whose values would make an answer (`env`) or a Secret
    /// (`secret`) larger than `--max-injected-bytes`, before either is built:
    /// a small review can ask for one large value in many variables of many
    /// containers.
    fn check_size(
        &self,
        plan: &Plan<'_>,
        resolved: &Resolved,
        delivery: Delivery,
    ) -> Result<(), String> {
        let limit = self.app.settings.max_injected_bytes;
        let (size, whereto) = injected_size(plan, resolved, delivery);
        if size <= limit {
            return Ok(());
        }
        let fix = match delivery {
            Delivery::Exec => "ask for fewer or smaller secrets in that container".to_owned(),
            Delivery::Env => format!(
                "{} variables in {} containers; ask for fewer, or use delivery \"secret\", which holds each value once",
                plan.var_count(),
                plan.containers.len()
            ),
            Delivery::Secret => {
                "Kubernetes keeps at most 1 MiB in a Secret; ask for fewer or smaller secrets"
                    .to_owned()
            }
        };
        Err(format!(
            "the values this pod asks for come to {} {whereto}, over the limit of {} (--max-injected-bytes): {fix}",
            human_size(size),
            human_size(limit)
        ))
    }

    /// The image pull secrets named, as stored; a missing one is a problem.
    async fn pull_records(
        &self,
        org: &Organization,
        names: &[&str],
        problems: &mut Problems,
    ) -> Result<Vec<ImagePullSecret>, Outcome> {
        let mut records = Vec::with_capacity(names.len());
        for name in names {
            match self
                .app
                .store
                .find_image_pull_secret(&org.id, name)
                .await
                .map_err(store_unavailable)?
            {
                Some(record) => records.push(record),
                None => problems.forbidden(format!(
                    "image pull secret {name:?} not found in organization {:?}",
                    org.name
                )),
            }
        }
        Ok(records)
    }

    /// Writes the image pull Secrets and the env Secret through the
    /// Kubernetes API, all at once; every failure is named in one denial.
    async fn write_secrets(
        &self,
        admission: &Admission<'_>,
        pull_records: &[ImagePullSecret],
        resolved: &Resolved,
        env_secret: Option<&EnvSecret<'_>>,
    ) -> Result<(), Outcome> {
        let cluster = &self.app.cluster;
        let pull_writes = pull_records.iter().map(|record| {
            let password = &resolved[record.password_secret.as_str()];
            let credentials = Credentials {
                name: &record.name,
                registry: &record.registry,
                username: &record.username,
                password: &password.value,
                version: format!("{}@{}", password.secret.name, password.secret.version),
            };
            async move {
                cluster
                    .upsert_pull_secret(admission.namespace, &credentials)
                    .await
            }
        });
        let env_write = async {
            match env_secret {
                Some(env) => cluster.upsert_env_secret(env).await.map(drop),
                None => Ok(()),
            }
        };
        let (pull_results, env_result) =
            tokio::join!(futures::future::join_all(pull_writes), env_write);
        let mut problems = Problems::default();
        for error in pull_results
            .into_iter()
            .chain([env_result])
            .filter_map(Result::err)
        {
            problems.cluster(error, admission.delivery);
        }
        problems.check()
    }

    /// The delivery a pod asks for, or the default. `env` puts the values in
    /// the answer, so it needs a caller who proved to be the API server, or
    /// dev mode; it is refused before anything is looked up.
    fn delivery(
        &self,
        pod: &Pod<'_>,
        caller: Option<&ClientIdentity>,
        plan: &Plan<'_>,
    ) -> Result<Delivery, Outcome> {
        let settings = &self.app.settings;
        let delivery = match pod.annotations.delivery.as_deref() {
            Some(text) => parse_delivery(text).map_err(Outcome::deny)?,
            None => settings.default_delivery,
        };
        let trusted = caller.is_some() || settings.env_without_client_auth;
        if delivery == Delivery::Exec && !plan.containers.is_empty() {
            self.check_exec(pod, plan)?;
        }
        if delivery == Delivery::Env && !plan.containers.is_empty() && !trusted {
            return Err(Outcome::deny(
                "delivery \"env\" puts the values in the webhook's answer, so the webhook needs to know its caller: \
                 start it with --webhook-client-ca and have the API server present a client certificate \
                 (agyn-secrets certs generate --client), or use delivery \"secret\" \
                 (annotation secrets.agyn.io/delivery: secret)",
            ));
        }
        Ok(delivery)
    }

    /// Refuses delivery `exec` for a pod it cannot work for, before
    /// anything is looked up: a container without a `command` to wrap, or
    /// a server that has no CA to give the wrapper.
    fn check_exec(&self, pod: &Pod<'_>, plan: &Plan<'_>) -> Result<(), Outcome> {
        let missing = admission::exec::unwrappable(pod.spec.as_ref().ok(), plan);
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|n| quote(n)).collect();
            let (noun, verb) = if names.len() == 1 {
                ("container", "has")
            } else {
                ("containers", "have")
            };
            return Err(Outcome::deny(format!(
                "delivery \"exec\" wraps each container's command, and {noun} {} {verb} no command in the pod spec; \
                 set `command` to the image's entrypoint (docker inspect shows it as Entrypoint), or use delivery \"secret\"",
                names.join(", ")
            )));
        }
        if !self.app.settings.exec.enabled {
            return Err(Outcome::deny(
                "delivery \"exec\" is turned off on this server (--exec-enabled=false); use delivery \"secret\"",
            ));
        }
        if self.app.settings.exec.ca_pem.is_none() {
            return Err(Outcome::deny(
                "delivery \"exec\" is not set up on this server: it has no CA to give pods for its exec listener; \
                 start it with --exec-ca (the CA of its serving certificate), or use delivery \"secret\"",
            ));
        }
        Ok(())
    }

    /// The organization `namespace` is bound to.
    async fn organization(&self, namespace: &str) -> Result<Organization, Outcome> {
        let store = &self.app.store;
        let binding = store
            .find_namespace_binding(namespace)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(|| {
                Outcome::deny(format!(
                    "namespace {namespace:?} is not bound to an organization; a platform admin binds it with PUT /v1/namespaces/{namespace}"
                ))
            })?;
        store
            .find_organization(&binding.organization_id)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(|| {
                Outcome::deny(format!(
                    "namespace {namespace:?} is bound to an organization that no longer exists"
                ))
            })
    }

    fn resolution_failed(&self, error: &ResolveError, problems: &mut Problems) {
        let metrics = &self.app.metrics;
        metrics
            .resolution_errors
            .get_or_create(&KindLabels { kind: error.kind() })
            .inc();
        if let ResolveError::Crypto { .. } = error {
            metrics.decrypt_failures.inc();
            tracing::error!(%error, "Stored secret failed to decrypt");
        }
        match error {
            ResolveError::NotFound { .. }
            | ResolveError::Unsupported { .. }
            | ResolveError::Fenced { .. } => problems.forbidden(error.to_string()),
            _ => problems.unavailable(error.to_string()),
        }
    }

    /// Logs and counts an admission that resolved values: who asked, for
    /// which pod, which secrets at which versions, delivered how. Never a
    /// value.
    fn trace(&self, admission: &Admission<'_>, resolved: &Resolved, env_secret: Option<&str>) {
        let mut secrets = String::with_capacity(resolved.len() * 24);
        for (i, s) in resolved.iter().enumerate() {
            let separator = if i > 0 { "," } else { "" };
            let _ = write!(secrets, "{separator}{}@{}", s.secret.name, s.secret.version);
        }
        let request = admission.request;
        tracing::info!(
            uid = %request.uid,
            namespace = admission.namespace,
            pod = %admission.pod.name(),
            delivery = admission.delivery.as_str(),
            dry_run = request.dry_run(),
            secrets,
            env_secret = env_secret.unwrap_or(""),
            caller = admission.caller.map_or("", |c| &*c.subject),
            "Resolved secrets"
        );
        self.deliveries[admission.delivery as usize].inc();
    }

    /// Records who uses which secret, from the plan's variables.
    async fn record_plan(
        &self,
        pod: &Pod<'_>,
        namespace: &str,
        plan: &Plan<'_>,
        resolved: &Resolved,
    ) -> Result<(), StoreError> {
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
        self.record(&user, &uses).await
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

/// An answer's body that holds its bytes of the budget until it is sent or
/// dropped.
struct HeldBody {
    inner: Full<bytes::Bytes>,
    _held: Held,
}

impl hyper::body::Body for HeldBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A refusal before any review is read, in the API's error shape.
fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// What an env entry adds to the answer besides its name and value: the
/// patch operation's path and the JSON around them.
const ENV_ENTRY_OVERHEAD: usize = 64;

/// `1.5 MiB`, `640 KiB`, `12 bytes`.
fn human_size(bytes: usize) -> String {
    match bytes {
        0..1024 => format!("{bytes} bytes"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// Refuses names that Kubernetes would never send, before anything is
/// recorded or written under them: the pod's name (or generateName), its
/// namespace, its controlling owner and the containers that get variables.
fn check_names(pod: &Pod<'_>, namespace: &str, plan: &Plan<'_>) -> Result<(), String> {
    use crate::validate::{is_dns_label, is_dns_subdomain, is_generate_name, is_kind};
    let quote = crate::admission::quote;
    if !is_dns_label(namespace) {
        return Err(format!(
            "namespace {} is not a valid Kubernetes namespace name",
            quote(namespace)
        ));
    }
    let meta = pod.meta.as_ref().map_err(Clone::clone)?;
    let name = meta.name.as_deref().filter(|n| !n.is_empty());
    let valid = match (name, meta.generate_name.as_deref()) {
        (Some(name), _) => is_dns_subdomain(name),
        (None, Some(prefix)) => is_generate_name(prefix),
        (None, None) => false,
    };
    if !valid {
        return Err(format!(
            "pod name {} is not a valid Kubernetes name (a DNS subdomain, or a generateName prefix)",
            quote(pod.name())
        ));
    }
    if let Some((kind, owner)) = pod.owner()
        && !(is_kind(kind) && is_dns_subdomain(owner))
    {
        return Err(format!(
            "the pod's owner {}/{} is not a valid Kubernetes kind and name",
            quote(kind),
            quote(owner)
        ));
    }
    for container in &plan.containers {
        if !is_dns_label(container.name) {
            return Err(format!(
                "container name {} is not a valid Kubernetes container name",
                quote(container.name)
            ));
        }
    }
    Ok(())
}

/// One admission under way: what it is for, who asked, and how its values
/// travel.
struct Admission<'a> {
    request: &'a admission::AdmissionRequest<'a>,
    pod: &'a Pod<'a>,
    caller: Option<&'a ClientIdentity>,
    namespace: &'a str,
    delivery: Delivery,
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

    /// A failed write through the Kubernetes API: a refusal or a missing
    /// client needs someone to fix the set-up; the rest may pass on retry.
    fn cluster(&mut self, error: ClusterError, delivery: Delivery) {
        match error {
            ClusterError::NoClient(_) => self.forbidden(format!(
                "{error}; Secrets cannot be written, so delivery {:?} and image pull secrets are unavailable (run in the cluster or pass --kubeconfig)",
                delivery.as_str()
            )),
            ClusterError::NotManaged { .. } | ClusterError::Forbidden { .. } => {
                self.forbidden(error.to_string())
            }
            ClusterError::Conflict { .. } | ClusterError::Api { .. } | ClusterError::Call { .. } => {
                self.unavailable(error.to_string())
            }
        }
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

/// The Secret that carries a pod's values under delivery `secret`.
fn env_secret<'a>(
    org: &'a Organization,
    namespace: &'a str,
    pod: &'a Pod<'_>,
    plan: &Plan<'a>,
    resolved: &'a Resolved,
) -> EnvSecret<'a> {
    EnvSecret {
        organization_id: &org.id,
        namespace,
        owner: pod.owner().unwrap_or(("Pod", pod.name())),
        values: plan
            .secret_names()
            .into_iter()
            .map(|name| {
                let s = &resolved[name];
                (name, s.secret.version, &s.value)
            })
            .collect(),
    }
}

/// The bytes a pod's values take where `delivery` puts them, and where
/// that is: one container's answer from the exec listener, the webhook's
/// answer, or the Secret.
fn injected_size(
    plan: &Plan<'_>,
    resolved: &Resolved,
    delivery: Delivery,
) -> (usize, &'static str) {
    let value = |name: &str| resolved.get(name).map_or(0, |s| s.value.expose().len());
    let entry = |(var, secret): &(&str, &str)| var.len() + value(secret) + ENV_ENTRY_OVERHEAD;
    match delivery {
        Delivery::Exec => {
            let largest = plan
                .containers
                .iter()
                .map(|c| c.vars.iter().map(entry).sum::<usize>())
                .max()
                .unwrap_or(0);
            (largest, "for one container")
        }
        Delivery::Env => {
            let total = plan
                .containers
                .iter()
                .flat_map(|c| c.vars.iter())
                .map(entry)
                .sum();
            (total, "in the webhook's answer")
        }
        Delivery::Secret => {
            let total = plan
                .secret_names()
                .iter()
                .map(|name| name.len() + value(name))
                .sum();
            (total, "in its Secret")
        }
    }
}

fn store_unavailable(error: StoreError) -> Outcome {
    tracing::warn!(%error, "Database error during admission");
    Outcome::Denied(
        Denial::Unavailable,
        "the secret store's database is unavailable; retry shortly".into(),
    )
}
