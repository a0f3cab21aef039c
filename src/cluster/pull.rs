//! Image pull secrets: `kubernetes.io/dockerconfigjson` Secrets named
//! `agyn-pull-<name>` in workload namespaces, written at admission and
//! removed by a clean-up loop once no pod has used them for a grace period.
//!
//! The clean-up is safe with several replicas without a Lease: every step is
//! idempotent, and a delete carries the resourceVersion it decided on, so a
//! Secret refreshed by another replica in the meantime is left alone.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use zeroize::Zeroizing;

use crate::crypto::SecretValue;

/// Prefix of every Secret the product writes.
pub const SECRET_PREFIX: &str = "agyn-pull-";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "agyn-secrets";
/// The image pull secret a Secret was made from.
pub const SOURCE_ANNOTATION: &str = "secrets.agyn.io/source";
/// `<password secret>@<version>` of the credentials in the Secret.
pub const VERSION_ANNOTATION: &str = "secrets.agyn.io/source-version";
/// When an admission last asked for the Secret (RFC 3339).
pub const LAST_USED_ANNOTATION: &str = "secrets.agyn.io/last-used";

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("image pull secrets need the Kubernetes API, which is not configured: {0}")]
    NoClient(String),
    #[error(
        "Secret {namespace}/{name} already exists and is not managed by agyn-secrets; rename the image pull secret or remove that Secret"
    )]
    NotManaged { namespace: String, name: String },
    #[error(
        "the Kubernetes API refused to {verb} Secret {namespace}/{name}: {message} (check the service account's RBAC)"
    )]
    Forbidden {
        verb: &'static str,
        namespace: String,
        name: String,
        message: String,
    },
    #[error("Secret {namespace}/{name} kept changing while it was written; retry")]
    Conflict { namespace: String, name: String },
    #[error("the Kubernetes API failed to {verb} Secret {namespace}/{name}: {message}")]
    Api {
        verb: &'static str,
        namespace: String,
        name: String,
        message: String,
    },
}

/// The credentials of one image pull secret, resolved.
pub struct Credentials<'a> {
    /// The image pull secret's name (the Secret is `agyn-pull-<name>`).
    pub name: &'a str,
    pub registry: &'a str,
    pub username: &'a str,
    pub password: &'a SecretValue,
    /// `<password secret>@<version>`.
    pub version: String,
}

/// The `.dockerconfigjson` document for one registry.
pub fn docker_config(registry: &str, username: &str, password: &SecretValue) -> Zeroizing<Vec<u8>> {
    let auth = Zeroizing::new(STANDARD.encode(format!("{username}:{}", password.expose())));
    let doc = json!({
        "auths": {
            registry: {
                "username": username,
                "password": password.expose(),
                "auth": auth.as_str(),
            }
        }
    });
    Zeroizing::new(serde_json::to_vec(&doc).expect("a JSON value serializes"))
}

/// Writes and cleans up image pull Secrets through the Kubernetes API.
#[derive(Clone)]
pub struct PullSecrets {
    client: Result<kube::Client, String>,
    grace: Duration,
}

impl PullSecrets {
    /// Connects with `kubeconfig`, else `KUBECONFIG` or the in-cluster
    /// configuration. A missing configuration is not fatal: only pods that
    /// ask for image pull secrets are then denied, with the reason.
    pub async fn connect(kubeconfig: Option<&Path>, timeout: Duration, grace: Duration) -> Self {
        let config = match kubeconfig {
            Some(path) => match Kubeconfig::read_from(path) {
                Ok(file) => {
                    kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                        .await
                        .map_err(|e| format!("kubeconfig {}: {e}", path.display()))
                }
                Err(e) => Err(format!("kubeconfig {}: {e}", path.display())),
            },
            None => kube::Config::infer().await.map_err(|e| e.to_string()),
        };
        let client = config.and_then(|mut config| {
            config.connect_timeout = Some(timeout);
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
            kube::Client::try_from(config).map_err(|e| e.to_string())
        });
        match &client {
            Ok(_) => tracing::info!("Kubernetes API client ready for image pull secrets"),
            Err(error) => {
                tracing::warn!(%error, "No Kubernetes API client; pods asking for image pull secrets will be denied")
            }
        }
        Self { client, grace }
    }

    /// No Kubernetes API: every pod that asks for image pull secrets is
    /// denied with `reason`.
    pub fn unavailable(reason: &str) -> Self {
        Self {
            client: Err(reason.to_owned()),
            grace: Duration::from_secs(3600),
        }
    }

    fn client(&self) -> Result<&kube::Client, PullError> {
        self.client
            .as_ref()
            .map_err(|e| PullError::NoClient(e.clone()))
    }

    /// Creates or updates `agyn-pull-<name>` in `namespace`. A same-named
    /// Secret that the product does not manage is never overwritten.
    pub async fn upsert(
        &self,
        namespace: &str,
        credentials: &Credentials<'_>,
    ) -> Result<(), PullError> {
        let api: Api<Secret> = Api::namespaced(self.client()?.clone(), namespace);
        let name = format!("{SECRET_PREFIX}{}", credentials.name);
        let config = docker_config(
            credentials.registry,
            credentials.username,
            credentials.password,
        );
        let now = time::OffsetDateTime::now_utc();
        for _ in 0..3 {
            let existing = api
                .get_opt(&name)
                .await
                .map_err(|e| api_error("read", namespace, &name, e))?;
            let mut desired = desired_secret(&name, namespace, credentials, &config, now);
            let result = match existing {
                None => api.create(&PostParams::default(), &desired).await.map(drop),
                Some(current) => {
                    if current
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(MANAGED_BY_LABEL))
                        .map(String::as_str)
                        != Some(MANAGED_BY)
                    {
                        return Err(PullError::NotManaged {
                            namespace: namespace.to_owned(),
                            name,
                        });
                    }
                    if up_to_date(&current, &desired, now, self.grace) {
                        return Ok(());
                    }
                    desired.metadata.resource_version = current.metadata.resource_version.clone();
                    api.replace(&name, &PostParams::default(), &desired)
                        .await
                        .map(drop)
                }
            };
            match result {
                Ok(()) => return Ok(()),
                // Someone else wrote it between our read and our write: read again.
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(e) => return Err(api_error("write", namespace, &name, e)),
            }
        }
        Err(PullError::Conflict {
            namespace: namespace.to_owned(),
            name,
        })
    }

    /// One clean-up pass: deletes managed Secrets that no pod in their
    /// namespace references and that no admission asked for within the grace
    /// period. Returns the `namespace/name` of each deleted Secret.
    pub async fn clean_up(&self) -> Result<Vec<String>, PullError> {
        let client = self.client()?.clone();
        let secrets: Api<Secret> = Api::all(client.clone());
        let managed = secrets
            .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")))
            .await
            .map_err(|e| api_error("list", "", "", e))?;
        let now = time::OffsetDateTime::now_utc();
        let mut by_namespace: BTreeMap<String, Vec<Secret>> = BTreeMap::new();
        for secret in managed.items {
            let stale = last_used(&secret).is_none_or(|at| now - at > self.grace);
            let ours = secret
                .metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(SECRET_PREFIX));
            if stale && ours {
                let ns = secret.metadata.namespace.clone().unwrap_or_default();
                by_namespace.entry(ns).or_default().push(secret);
            }
        }
        let mut deleted = Vec::new();
        for (namespace, candidates) in by_namespace {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            let pods = pods
                .list(&ListParams::default())
                .await
                .map_err(|e| api_error("list pods in", &namespace, "", e))?;
            let used: HashSet<String> = pods
                .items
                .iter()
                .filter_map(|p| p.spec.as_ref())
                .flat_map(|s| s.image_pull_secrets.iter().flatten())
                .map(|r| r.name.clone())
                .collect();
            let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
            for secret in candidates {
                let name = secret.metadata.name.clone().unwrap_or_default();
                if used.contains(&name) {
                    continue;
                }
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        resource_version: secret.metadata.resource_version.clone(),
                        uid: secret.metadata.uid.clone(),
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => {
                        tracing::info!(%namespace, secret = %name, "Deleted an unused image pull Secret");
                        deleted.push(format!("{namespace}/{name}"));
                    }
                    // Gone already, or refreshed since we listed it: both fine.
                    Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                    Err(e) => return Err(api_error("delete", &namespace, &name, e)),
                }
            }
        }
        Ok(deleted)
    }

    /// Runs [`PullSecrets::clean_up`] every quarter of the grace period
    /// (between 1 s and 5 min), until the task is dropped.
    pub fn spawn_clean_up(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.client.as_ref().ok()?;
        let this = self.clone();
        let every = (self.grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(300));
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = this.clean_up().await {
                    tracing::warn!(%error, "Image pull Secret clean-up failed; retrying later");
                }
            }
        }))
    }
}

fn desired_secret(
    name: &str,
    namespace: &str,
    credentials: &Credentials<'_>,
    config: &[u8],
    now: time::OffsetDateTime,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY.to_owned(),
            )])),
            annotations: Some(BTreeMap::from([
                (SOURCE_ANNOTATION.to_owned(), credentials.name.to_owned()),
                (VERSION_ANNOTATION.to_owned(), credentials.version.clone()),
                (
                    LAST_USED_ANNOTATION.to_owned(),
                    crate::store::format_time(unix_ms(now)),
                ),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(config.to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Whether `current` already holds what `desired` would write, and was asked
/// for recently enough that refreshing its last-used time can wait.
fn up_to_date(
    current: &Secret,
    desired: &Secret,
    now: time::OffsetDateTime,
    grace: Duration,
) -> bool {
    let annotation = |s: &Secret, key: &str| {
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    };
    current.type_ == desired.type_
        && current.data == desired.data
        && annotation(current, SOURCE_ANNOTATION) == annotation(desired, SOURCE_ANNOTATION)
        && annotation(current, VERSION_ANNOTATION) == annotation(desired, VERSION_ANNOTATION)
        && last_used(current).is_some_and(|at| now - at < grace / 4)
}

fn last_used(secret: &Secret) -> Option<time::OffsetDateTime> {
    let text = secret
        .metadata
        .annotations
        .as_ref()?
        .get(LAST_USED_ANNOTATION)?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

fn unix_ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn api_error(verb: &'static str, namespace: &str, name: &str, error: kube::Error) -> PullError {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    match error {
        kube::Error::Api(status) if status.code == 403 => PullError::Forbidden {
            verb,
            namespace,
            name,
            message: status.message.clone(),
        },
        kube::Error::Api(status) => PullError::Api {
            verb,
            namespace,
            name,
            message: format!("{} {}: {}", status.code, status.reason, status.message),
        },
        other => PullError::Api {
            verb,
            namespace,
            name,
            message: format!("the Kubernetes API is unreachable: {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_has_every_field() {
        let doc = docker_config("ghcr.io", "bot", &SecretValue::from("p@ss"));
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        let entry = &doc["auths"]["ghcr.io"];
        assert_eq!(entry["username"], "bot");
        assert_eq!(entry["password"], "p@ss");
        assert_eq!(entry["auth"], STANDARD.encode("bot:p@ss"));
    }
}
