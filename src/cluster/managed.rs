//! The Secrets the product manages in workload namespaces: written at
//! admission, refreshed when asked for again, and deleted once no pod uses
//! them and no admission asked for them within the grace period.
//!
//! Clean-up is safe with several replicas and needs no Lease: every step is
//! idempotent, and a delete carries the resourceVersion and uid it decided
//! on, so a Secret refreshed by another replica in the meantime is left
//! alone.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodSpec, Secret};
use kube::api::{Api, DeleteParams, ListParams, PartialObjectMeta, PostParams, Preconditions};
use zeroize::Zeroize;

use super::{Cluster, ClusterError, ENV_PREFIX, PULL_PREFIX};
use crate::store::Store;

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "agyn-secrets";
/// When an admission last asked for the Secret (RFC 3339).
pub const LAST_USED_ANNOTATION: &str = "secrets.agyn.io/last-used";

/// Name prefixes of the Secrets clean-up may delete.
const PREFIXES: [&str; 2] = [PULL_PREFIX, ENV_PREFIX];

/// A Secret whose data is wiped when it is dropped.
struct Wiped(Secret);

impl Drop for Wiped {
    fn drop(&mut self) {
        for value in self.0.data.iter_mut().flat_map(|d| d.values_mut()) {
            value.0.zeroize();
        }
    }
}

/// What one clean-up pass did.
#[derive(Debug, Default)]
pub struct CleanUp {
    /// `namespace/name` of each deleted Secret.
    pub deleted: Vec<String>,
    /// Namespaces that could not be cleaned, and why.
    pub failed: Vec<(String, ClusterError)>,
}

impl Cluster {
    /// Creates or updates the managed Secret `desired` (its metadata names it
    /// and its namespace), stamped with the current time as last used. A
    /// same-named Secret that the product does not manage is never
    /// overwritten.
    pub(super) async fn upsert(&self, desired: Secret) -> Result<(), ClusterError> {
        let now = time::OffsetDateTime::now_utc();
        let mut desired = Wiped(desired);
        let meta = &mut desired.0.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        meta.labels
            .get_or_insert_default()
            .insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
        meta.annotations.get_or_insert_default().insert(
            LAST_USED_ANNOTATION.to_owned(),
            crate::store::format_time(unix_ms(now)),
        );
        let api: Api<Secret> = Api::namespaced(self.client()?.clone(), &namespace);
        for _ in 0..3 {
            let existing = match api.get_opt(&name).await {
                Ok(existing) => existing.map(Wiped),
                Err(error) => return Err(self.error("read", &namespace, &name, error).await),
            };
            let result = match existing {
                None => api.create(&PostParams::default(), &desired.0).await,
                Some(current) => {
                    if !is_managed(&current.0) {
                        return Err(ClusterError::NotManaged { namespace, name });
                    }
                    if up_to_date(&current.0, &desired.0, now, self.grace) {
                        return Ok(());
                    }
                    desired.0.metadata.resource_version =
                        current.0.metadata.resource_version.clone();
                    api.replace(&name, &PostParams::default(), &desired.0).await
                }
            };
            match result {
                // The API server echoes the data back: wipe it too.
                Ok(written) => {
                    drop(Wiped(written));
                    return Ok(());
                }
                // Someone else wrote it between our read and our write: read again.
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => return Err(self.error("write", &namespace, &name, error).await),
            }
        }
        Err(ClusterError::Conflict { namespace, name })
    }

    /// One clean-up pass over `namespaces`: deletes the managed Secrets that
    /// no pod there refers to and that no admission asked for within the
    /// grace period. A namespace that fails does not stop the others.
    pub async fn clean_up(&self, namespaces: &[String]) -> Result<CleanUp, ClusterError> {
        let client = self.client()?.clone();
        let mut pass = CleanUp::default();
        for namespace in namespaces {
            match self.clean_namespace(&client, namespace).await {
                Ok(deleted) => pass.deleted.extend(deleted),
                Err(error) => pass.failed.push((namespace.clone(), error)),
            }
        }
        Ok(pass)
    }

    async fn clean_namespace(
        &self,
        client: &kube::Client,
        namespace: &str,
    ) -> Result<Vec<String>, ClusterError> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let candidates = self.stale_managed(&secrets, namespace).await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let pods = match pods.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(error) => return Err(self.error("list pods in", namespace, "", error).await),
        };
        let used: HashSet<&str> = pods
            .iter()
            .filter_map(|p| p.spec.as_ref())
            .flat_map(referenced_secrets)
            .collect();
        let mut deleted = Vec::new();
        for secret in &candidates {
            let name = secret.metadata.name.as_deref().unwrap_or_default();
            if used.contains(name) {
                continue;
            }
            if self
                .delete_unchanged(&secrets, namespace, name, secret)
                .await?
            {
                tracing::info!(%namespace, secret = %name, "Deleted an unused managed Secret");
                deleted.push(format!("{namespace}/{name}"));
            }
        }
        Ok(deleted)
    }

    /// The Secrets of `namespace` that clean-up may delete (managed, with
    /// one of its name prefixes) and that no admission asked for within
    /// the grace period.
    async fn stale_managed(
        &self,
        secrets: &Api<Secret>,
        namespace: &str,
    ) -> Result<Vec<PartialObjectMeta<Secret>>, ClusterError> {
        // Metadata only: the values never need to come back for this.
        let managed = match secrets
            .list_metadata(
                &ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
            )
            .await
        {
            Ok(list) => list.items,
            Err(error) => return Err(self.error("list", namespace, "", error).await),
        };
        let now = time::OffsetDateTime::now_utc();
        Ok(managed
            .into_iter()
            .filter(|secret| {
                let meta = &secret.metadata;
                let ours = meta
                    .name
                    .as_deref()
                    .is_some_and(|n| PREFIXES.iter().any(|p| n.starts_with(p)));
                let stale =
                    last_used(meta.annotations.as_ref()).is_none_or(|at| now - at > self.grace);
                ours && stale
            })
            .collect())
    }

    /// Deletes the Secret `name` as `listed`, unless it has changed since;
    /// returns whether this deleted it.
    async fn delete_unchanged(
        &self,
        secrets: &Api<Secret>,
        namespace: &str,
        name: &str,
        listed: &PartialObjectMeta<Secret>,
    ) -> Result<bool, ClusterError> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: listed.metadata.resource_version.clone(),
                uid: listed.metadata.uid.clone(),
            }),
            ..DeleteParams::default()
        };
        match secrets.delete(name, &params).await {
            Ok(_) => Ok(true),
            // Gone already, or refreshed since we listed it: both fine.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(false),
            Err(error) => Err(self.error("delete", namespace, name, error).await),
        }
    }

    /// Runs [`Cluster::clean_up`] over the namespaces bound in `store`
    /// every quarter of the grace period (between 1 s and 5 min), until the
    /// task is dropped.
    pub fn spawn_clean_up(self: &Arc<Self>, store: Store) -> Option<tokio::task::JoinHandle<()>> {
        self.client.as_ref().ok()?;
        let this = self.clone();
        let every = (self.grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(300));
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Namespaces that failed last time, so that a lasting problem is
            // reported at warn once and then quietly.
            let mut failing: HashSet<String> = HashSet::new();
            loop {
                tick.tick().await;
                let namespaces = match store.list_namespace_bindings().await {
                    Ok(bindings) => bindings
                        .into_iter()
                        .map(|b| b.namespace)
                        .collect::<Vec<_>>(),
                    Err(error) => {
                        tracing::warn!(%error, "Managed Secret clean-up could not list bound namespaces; retrying later");
                        continue;
                    }
                };
                let Ok(pass) = this.clean_up(&namespaces).await else {
                    continue;
                };
                let mut now_failing = HashSet::new();
                for (namespace, error) in pass.failed {
                    if failing.contains(&namespace) {
                        tracing::debug!(%namespace, %error, "Managed Secret clean-up failed again");
                    } else {
                        tracing::warn!(%namespace, %error, "Managed Secret clean-up failed; retrying later");
                    }
                    now_failing.insert(namespace);
                }
                failing = now_failing;
            }
        }))
    }
}

fn is_managed(secret: &Secret) -> bool {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .map(String::as_str)
        == Some(MANAGED_BY)
}

/// Whether `current` already holds what `desired` would write, and was asked
/// for recently enough that refreshing its last-used time can wait.
fn up_to_date(
    current: &Secret,
    desired: &Secret,
    now: time::OffsetDateTime,
    grace: Duration,
) -> bool {
    let without_last_used = |s: &Secret| {
        let mut annotations = s.metadata.annotations.clone().unwrap_or_default();
        annotations.remove(LAST_USED_ANNOTATION);
        annotations
    };
    current.type_ == desired.type_
        && current.data == desired.data
        && without_last_used(current) == without_last_used(desired)
        && last_used(current.metadata.annotations.as_ref()).is_some_and(|at| now - at < grace / 4)
}

fn last_used(annotations: Option<&BTreeMap<String, String>>) -> Option<time::OffsetDateTime> {
    let text = annotations?.get(LAST_USED_ANNOTATION)?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// The names of every Secret a pod spec refers to: image pull secrets, env
/// and envFrom of every kind of container, and volumes.
fn referenced_secrets(spec: &PodSpec) -> impl Iterator<Item = &str> {
    let pulls = spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.as_str());
    // Every kind of container's env and envFrom lists.
    let lists = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| (&c.env, &c.env_from))
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| (&c.env, &c.env_from)),
        );
    let env = lists
        .clone()
        .flat_map(|(env, _)| env.iter().flatten())
        .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|r| r.name.as_str());
    let env_from = lists
        .flat_map(|(_, env_from)| env_from.iter().flatten())
        .filter_map(|e| e.secret_ref.as_ref())
        .map(|r| r.name.as_str());
    let volumes = spec.volumes.iter().flatten().flat_map(|v| {
        let direct = v.secret.as_ref().and_then(|s| s.secret_name.as_deref());
        let projected = v
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
            .filter_map(|s| s.secret.as_ref())
            .map(|s| s.name.as_str());
        direct.into_iter().chain(projected)
    });
    pulls.chain(env).chain(env_from).chain(volumes)
}

fn unix_ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_way_a_pod_refers_to_a_secret_counts() {
        let spec: PodSpec = serde_json::from_value(json!({
            "imagePullSecrets": [{"name": "pull"}],
            "initContainers": [{"name": "i", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "init-env", "key": "k"}}}]}],
            "containers": [{"name": "c",
                "env": [{"name": "B", "valueFrom": {"secretKeyRef": {"name": "env", "key": "k"}}},
                        {"name": "C", "value": "not-a-secret"}],
                "envFrom": [{"secretRef": {"name": "env-from"}}, {"configMapRef": {"name": "config"}}]}],
            "ephemeralContainers": [{"name": "e", "envFrom": [{"secretRef": {"name": "debug"}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "volume"}},
                        {"name": "p", "projected": {"sources": [{"secret": {"name": "projected"}}]}}]
        }))
        .unwrap();
        let mut names: Vec<&str> = referenced_secrets(&spec).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "debug",
                "env",
                "env-from",
                "init-env",
                "projected",
                "pull",
                "volume"
            ]
        );
    }
}
