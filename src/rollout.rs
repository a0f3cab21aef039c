//! Restart on rotation. When a secret's version changes, the workloads
//! whose opted-in pods (`secrets.agyn.io/restart-on-rotation: "true"`) were
//! admitted with an older version get their pod template annotated with
//! `secrets.agyn.io/restarted-at`, and Kubernetes rolls them out by their
//! own strategy.
//!
//! Rotations are queued in the transaction that changes the version (see
//! `store::rollouts`), so any replica may make them; one replica at a time
//! acts on them: on PostgreSQL the one that holds an advisory lock, on
//! SQLite the only process there is. A workload is restarted at most once
//! per `--restart-min-interval`; a rotation within it waits, and one restart
//! then serves every secret that was waiting for it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sqlx::Any;
use sqlx::pool::PoolConnection;

use crate::app::App;
use crate::cluster::{ClusterError, Restart, Workload, WorkloadKind};
use crate::metrics::RestartLabels;
use crate::store::{
    Backend, Organization, Rollout, RolloutState, Rotation, Scope, Secret, Store, StoreError,
    format_time, now_ms,
};

/// The advisory lock key of the rollout leader ("agynroll" in ASCII).
const LOCK_KEY: i64 = 0x6167_796e_726f_6c6c;
/// How often the leader looks for work.
const TICK: Duration = Duration::from_secs(1);
/// Most rotations and rollouts one tick takes on.
const BATCH: usize = 50;

/// Starts the rollout loop, unless there is no Kubernetes API to act on.
pub fn spawn(app: Arc<App>) -> Option<tokio::task::JoinHandle<()>> {
    if !app.cluster.is_configured() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut leader = Leader::new(app.store.clone());
        let mut detection = Detection::default();
        let mut retries = Retries::default();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !leader.hold().await {
                continue;
            }
            if let Err(error) = step(&app, &mut retries).await {
                tracing::warn!(%error, "Restart on rotation failed; retrying");
            }
            if let Some(every) = app.settings.rotation_poll_interval
                && detection.due(every)
                && let Err(error) = detection.pass(&app).await
            {
                tracing::warn!(%error, "Rotation detection failed; retrying");
            }
        }
    }))
}

/// Remote rotation detection (`--rotation-poll-interval`): each pass asks
/// the provider of every remote secret for its current version, from
/// metadata only, and a new one makes a new version of the secret, which
/// restarts the workloads that opted in. The version seen is kept in the
/// database; values are never read here.
#[derive(Default)]
struct Detection {
    last_pass: Option<tokio::time::Instant>,
    /// Secrets whose version could not be read in the last pass: a lasting
    /// problem is logged at warn once, then at debug. Made anew each pass,
    /// so a secret deleted meanwhile does not stay in it.
    failing: HashSet<String>,
    /// The same, for the pass under way.
    failing_now: HashSet<String>,
}

/// Remote secrets taken per database query during a pass.
const DETECTION_PAGE: usize = 100;

impl Detection {
    fn due(&mut self, every: Duration) -> bool {
        let now = tokio::time::Instant::now();
        if self.last_pass.is_some_and(|last| now < last + every) {
            return false;
        }
        self.last_pass = Some(now);
        true
    }

    async fn pass(&mut self, app: &App) -> Result<(), StoreError> {
        self.failing_now.clear();
        let mut organizations: HashMap<String, Option<Organization>> = HashMap::new();
        let mut after = String::new();
        loop {
            let page = app.store.remote_secrets(&after, DETECTION_PAGE).await?;
            let Some((last, _)) = page.last() else {
                self.failing = std::mem::take(&mut self.failing_now);
                return Ok(());
            };
            after = last.id.clone();
            for (secret, last_seen) in &page {
                if !organizations.contains_key(&secret.organization_id) {
                    let found = app.store.find_organization(&secret.organization_id).await?;
                    organizations.insert(secret.organization_id.clone(), found);
                }
                let Some(organization) = &organizations[&secret.organization_id] else {
                    continue;
                };
                self.check(app, organization, secret, last_seen.as_deref())
                    .await?;
            }
        }
    }

    async fn check(
        &mut self,
        app: &App,
        organization: &Organization,
        secret: &Secret,
        last_seen: Option<&str>,
    ) -> Result<(), StoreError> {
        let seen = match app.resolver.remote_version(organization, secret).await {
            Ok(Some(seen)) => seen,
            Ok(None) => return Ok(()),
            Err(error) => {
                self.failing_now.insert(secret.id.clone());
                if !self.failing.contains(&secret.id) {
                    tracing::warn!(secret = %secret.name, organization = %organization.name, %error, "Could not read a remote secret's version");
                } else {
                    tracing::debug!(secret = %secret.name, %error, "Could not read a remote secret's version again");
                }
                return Ok(());
            }
        };
        let reason = format!(
            "new version at the provider ({} -> {seen})",
            last_seen.unwrap_or("none")
        );
        if let Some(version) = app
            .store
            .record_remote_version(secret, last_seen, &seen, &reason)
            .await?
        {
            tracing::info!(
                secret = %secret.name,
                organization = %organization.name,
                version,
                %reason,
                "A remote secret changed at its provider"
            );
        }
        Ok(())
    }
}

/// Leadership among the replicas that share a database.
struct Leader {
    store: Store,
    /// The PostgreSQL session that holds the advisory lock.
    session: Option<PoolConnection<Any>>,
}

impl Leader {
    fn new(store: Store) -> Self {
        Self {
            store,
            session: None,
        }
    }

    /// Whether this process may act now. The lock lives as long as its
    /// session: a replica that dies or loses the database gives it up, and
    /// another takes it at its next tick.
    async fn hold(&mut self) -> bool {
        if self.store.backend() == Backend::Sqlite {
            return true;
        }
        if let Some(session) = self.session.as_mut() {
            if sqlx::query("SELECT 1")
                .execute(&mut **session)
                .await
                .is_ok()
            {
                return true;
            }
            tracing::warn!("Lost the rollout lock's database session");
            // Closed, not handed back to the pool: a session that still
            // holds the lock would keep it from every replica, this one too.
            if let Some(session) = self.session.take() {
                let _ = session.close().await;
            }
        }
        let Ok(mut session) = self.store.pool().acquire().await else {
            return false;
        };
        let taken: Result<bool, sqlx::Error> =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(LOCK_KEY)
                .fetch_one(&mut *session)
                .await;
        match taken {
            Ok(true) => {
                tracing::info!("This replica acts on rotations (rollout lock taken)");
                self.session = Some(session);
                true
            }
            _ => false,
        }
    }
}

/// How long a rotation or rollout is retried after transient Kubernetes
/// API failures before it is given up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);
/// The pause between two attempts after a transient failure.
const RETRY_EVERY: Duration = Duration::from_secs(10);

/// Rotations and rollouts that met a transient failure, and when each may
/// be tried again. In memory: a replica that takes over tries at once.
#[derive(Default)]
struct Retries {
    next: HashMap<String, tokio::time::Instant>,
}

impl Retries {
    fn waiting(&self, id: &str) -> bool {
        self.next
            .get(id)
            .is_some_and(|at| tokio::time::Instant::now() < *at)
    }

    fn later(&mut self, id: &str) {
        self.next
            .insert(id.to_owned(), tokio::time::Instant::now() + RETRY_EVERY);
    }

    fn done(&mut self, id: &str) {
        self.next.remove(id);
    }
}

/// Whether a failure may pass by itself (the API server busy, a timeout),
/// as opposed to one that needs a person (RBAC, no client).
fn transient(error: &ClusterError) -> bool {
    matches!(error, ClusterError::Call { .. })
}

/// Whether something requested at `since` (Unix ms) is past retrying.
fn given_up(since: i64) -> bool {
    now_ms().saturating_sub(since) > GIVE_UP_AFTER.as_millis() as i64
}

/// The stale workloads found during one pass, by (namespace, secret,
/// version): planning a rotation and restarting the workloads it reaches
/// read a namespace's pods once, not once per workload.
#[derive(Default)]
struct Scans {
    found: HashMap<(String, String, i64), Vec<(Workload, i64)>>,
}

impl Scans {
    async fn stale(
        &mut self,
        app: &App,
        namespace: &str,
        secret: &str,
        version: i64,
    ) -> Result<&[(Workload, i64)], ClusterError> {
        let key = (namespace.to_owned(), secret.to_owned(), version);
        if !self.found.contains_key(&key) {
            let found = app
                .cluster
                .stale_workloads(namespace, secret, version)
                .await?;
            self.found.insert(key.clone(), found);
        }
        Ok(&self.found[&key])
    }
}

/// One pass: new rotations become rollouts, then due rollouts restart.
async fn step(app: &App, retries: &mut Retries) -> Result<(), StoreError> {
    let now = tokio::time::Instant::now();
    retries.next.retain(|_, at| *at + RETRY_EVERY > now);
    let mut scans = Scans::default();
    for rotation in app.store.pending_rotations(BATCH).await? {
        if !retries.waiting(&rotation.id) {
            plan(app, &rotation, retries, &mut scans).await?;
        }
    }
    for rollout in app.store.pending_rollouts(BATCH).await? {
        if !retries.waiting(&rollout.id) {
            act(app, &rollout, retries, &mut scans).await?;
        }
    }
    Ok(())
}

/// Finds the workloads a rotation reaches. A namespace the product may not
/// search is recorded as a failed rollout of kind `Namespace` that says
/// why, since retrying would not let it in; a transient failure leaves the
/// rotation queued, to be tried again.
async fn plan(
    app: &App,
    rotation: &Rotation,
    retries: &mut Retries,
    scans: &mut Scans,
) -> Result<(), StoreError> {
    let mut workloads: Vec<(Workload, i64)> = Vec::new();
    let mut refused: Vec<(String, String)> = Vec::new();
    for namespace in app.store.pod_namespaces(&rotation.secret_id).await? {
        match scans
            .stale(app, &namespace, &rotation.secret_name, rotation.version)
            .await
        {
            Ok(found) => workloads.extend_from_slice(found),
            Err(error) if transient(&error) && !given_up(rotation.created_at) => {
                tracing::warn!(%namespace, secret = %rotation.secret_name, %error, "Could not look for workloads to restart; retrying");
                retries.later(&rotation.id);
                return Ok(());
            }
            Err(error) => {
                tracing::warn!(
                    %namespace,
                    secret = %rotation.secret_name,
                    %error,
                    "Could not look for workloads to restart"
                );
                refused.push((namespace, error.to_string()));
            }
        }
    }
    retries.done(&rotation.id);
    let refs: Vec<(&str, &str, &str, i64)> = workloads
        .iter()
        .map(|(w, from)| {
            (
                w.namespace.as_str(),
                w.kind.as_str(),
                w.name.as_str(),
                *from,
            )
        })
        .collect();
    tracing::info!(
        secret = %rotation.secret_name,
        version = rotation.version,
        workloads = refs.len(),
        reason = %rotation.reason,
        "Rotation planned"
    );
    app.store.plan_rollouts(rotation, &refs, &refused).await
}

/// Restarts a pending rollout's workload if its turn has come and a pod
/// still runs an older version.
async fn act(
    app: &App,
    rollout: &Rollout,
    retries: &mut Retries,
    scans: &mut Scans,
) -> Result<(), StoreError> {
    let Some(kind) = WorkloadKind::parse(&rollout.kind) else {
        let message = "unknown workload kind";
        return finish(app, rollout, Scope::Rollout, RolloutState::Failed, message).await;
    };
    let interval = app.settings.restart_min_interval;
    if let Some(last) = app
        .store
        .last_restart(&rollout.namespace, &rollout.kind, &rollout.workload)
        .await?
    {
        let due = last.saturating_add(interval.as_millis() as i64);
        if now_ms() < due {
            if !rollout.message.starts_with("waiting until ") {
                let message = format!(
                    "waiting until {}: restarted at {}, and --restart-min-interval is {}",
                    format_time(due),
                    format_time(last),
                    humantime::format_duration(interval)
                );
                app.store.note_rollout(rollout, &message).await?;
            }
            return Ok(());
        }
    }
    let workload = Workload {
        namespace: rollout.namespace.clone(),
        kind,
        name: rollout.workload.clone(),
    };
    let stale = scans
        .stale(
            app,
            &rollout.namespace,
            &rollout.secret_name,
            rollout.version,
        )
        .await;
    match stale {
        Ok(found) if !found.iter().any(|(stale, _)| *stale == workload) => {
            let message = "no opted-in pod runs an older version any more";
            return finish(app, rollout, Scope::Rollout, RolloutState::Skipped, message).await;
        }
        Ok(_) => {}
        Err(error) => return fail(app, rollout, &error, retries).await,
    }
    let at = format_time(now_ms());
    match app.cluster.restart_workload(&workload, &at).await {
        Ok(Restart::Gone) => {
            let message = "the workload no longer exists";
            finish(
                app,
                rollout,
                Scope::Workload,
                RolloutState::Skipped,
                message,
            )
            .await
        }
        Ok(Restart::Requested) => {
            tracing::info!(
                namespace = %rollout.namespace,
                kind = %rollout.kind,
                workload = %rollout.workload,
                secret = %rollout.secret_name,
                version = rollout.version,
                "Restarted a workload after a rotation"
            );
            finish(app, rollout, Scope::Workload, RolloutState::Restarted, "").await
        }
        Err(error) => fail(app, rollout, &error, retries).await,
    }
}

/// A transient failure is noted on the rollout and tried again; any other,
/// or one that lasted too long, ends it as failed.
async fn fail(
    app: &App,
    rollout: &Rollout,
    error: &ClusterError,
    retries: &mut Retries,
) -> Result<(), StoreError> {
    tracing::warn!(
        namespace = %rollout.namespace,
        kind = %rollout.kind,
        workload = %rollout.workload,
        %error,
        "Could not restart a workload after a rotation"
    );
    if transient(error) && !given_up(rollout.requested_at) {
        retries.later(&rollout.id);
        let message = format!("retrying: {error}");
        return app.store.note_rollout(rollout, &message).await;
    }
    retries.done(&rollout.id);
    let message = error.to_string();
    finish(
        app,
        rollout,
        Scope::Workload,
        RolloutState::Failed,
        &message,
    )
    .await
}

async fn finish(
    app: &App,
    rollout: &Rollout,
    scope: Scope,
    state: RolloutState,
    message: &str,
) -> Result<(), StoreError> {
    let ended = app
        .store
        .finish_rollouts(rollout, scope, state, message)
        .await?;
    app.metrics
        .workload_restarts
        .get_or_create(&RestartLabels {
            kind: WorkloadKind::parse(&rollout.kind).map_or("unknown", WorkloadKind::as_str),
            result: state.as_str(),
        })
        .inc_by(ended as u64);
    Ok(())
}
