//! Turning secret names into values: local secrets are decrypted, remote
//! ones are read from their provider. One resolver serves every consumer:
//! the webhook, the runtime `resolve` endpoint and image pull secrets.
//!
//! Remote values are read fresh every time; nothing caches them. What is
//! cached is one session per provider (see [`provider::Session`]): its
//! HTTP client and its login, refreshed before it expires. A session is
//! keyed by the provider's id, its `updated_at` and the id and version of
//! its credential secret, so that editing the provider or rotating its
//! credential takes effect at the next resolution, without a restart.
//!
//! Each kind of provider is a module of its own (`vault/`, `aws/`) behind
//! the trait of `provider.rs`; nothing here knows one kind from another.

mod aws;
mod failure;
pub mod net;
pub mod provider;
mod vault;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use net::{Cidr, NetPolicy, is_forbidden_ip};
pub use provider::{Invalid, Kind, TokenFiles, Validated};

use crate::crypto::{Aad, CryptoError, KeyRing, KeyRingHandle, Sealed, SecretValue};
use crate::metrics::{ProviderLabels, ProviderMetrics};
use crate::store::{Organization, Provider, Secret, SecretContent, Store, StoreError};
use provider::{Failure, FailureKind, Session, SessionEnv, count_failure};

/// Every kind of provider this version reads.
pub static KINDS: &[&dyn Kind] = &[&vault::Vault, &aws::SecretsManager];

/// The kind named `name`.
pub fn kind(name: &str) -> Option<&'static dyn Kind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// The names of every kind, for messages: `"vault" or "aws-secrets-manager"`.
pub fn kind_names() -> String {
    let names: Vec<String> = KINDS.iter().map(|k| format!("{:?}", k.name())).collect();
    names.join(" or ")
}

/// A resolved secret: the secret as stored, and its value.
#[derive(Debug, Clone)]
pub struct ResolvedSecret {
    pub secret: Arc<Secret>,
    pub value: SecretValue,
}

/// The secrets of one resolution, sorted by name, with an index by the hash
/// of the name: a pod's patch looks each secret up once per variable.
#[derive(Debug, Default)]
pub struct Resolved {
    secrets: Vec<ResolvedSecret>,
    by_hash: foldhash::HashMap<u64, u32>,
    hasher: foldhash::fast::RandomState,
}

impl Resolved {
    fn new(secrets: Vec<ResolvedSecret>) -> Self {
        let hasher = foldhash::fast::RandomState::default();
        let mut by_hash = foldhash::HashMap::default();
        by_hash.reserve(secrets.len());
        for (i, s) in secrets.iter().enumerate() {
            by_hash
                .entry(hasher.hash_one(s.secret.name.as_str()))
                .or_insert(i as u32);
        }
        Resolved {
            secrets,
            by_hash,
            hasher,
        }
    }

    pub fn get(&self, name: &str) -> Option<&ResolvedSecret> {
        let hashed = self
            .by_hash
            .get(&self.hasher.hash_one(name))
            .map(|i| &self.secrets[*i as usize]);
        match hashed {
            Some(s) if s.secret.name == name => Some(s),
            // Absent, or two names with one hash: the sorted list decides.
            _ => self
                .secrets
                .binary_search_by(|s| s.secret.name.as_str().cmp(name))
                .ok()
                .map(|i| &self.secrets[i]),
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ResolvedSecret> {
        self.secrets.iter()
    }

    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

impl IntoIterator for Resolved {
    type Item = ResolvedSecret;
    type IntoIter = std::vec::IntoIter<ResolvedSecret>;

    fn into_iter(self) -> Self::IntoIter {
        self.secrets.into_iter()
    }
}

impl std::ops::Index<&str> for Resolved {
    type Output = ResolvedSecret;

    /// The secret `name`, which must be one of the names resolved.
    fn index(&self, name: &str) -> &ResolvedSecret {
        self.get(name)
            .unwrap_or_else(|| panic!("{name:?} was not resolved"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{}", not_found(organization, names))]
    NotFound {
        organization: String,
        names: Vec<String>,
    },
    /// A provider of a kind this version cannot read.
    #[error("{name:?} uses a provider of kind {kind:?}, which this version cannot read")]
    Unsupported { name: String, kind: String },
    /// A provider failed, or had no value where the secret points. The
    /// message names the path and what to fix, never a value; `provider`
    /// says which, e.g. `vault provider "vault-prod"`.
    #[error("{provider}: {message}")]
    Provider {
        provider: String,
        message: String,
        timed_out: bool,
    },
    #[error("secret {name:?} cannot be decrypted: {source}")]
    Crypto { name: String, source: CryptoError },
    /// Secrets whose namespace fence leaves the asking namespace out: one
    /// message each, as `crate::fence::refusal` words it.
    #[error("{}", .refusals.join("; "))]
    Fenced { refusals: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ResolveError {
    /// A short kind for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ResolveError::NotFound { .. } => "not_found",
            ResolveError::Unsupported { .. } => "unsupported",
            ResolveError::Provider {
                timed_out: true, ..
            } => "provider_timeout",
            ResolveError::Provider { .. } => "provider",
            ResolveError::Crypto { .. } => "decrypt",
            ResolveError::Fenced { .. } => "fenced",
            ResolveError::Store(_) => "database",
        }
    }

    fn provider(session: &dyn Session, failure: Failure) -> Self {
        ResolveError::Provider {
            provider: session.label(),
            timed_out: failure.kind == FailureKind::Timeout,
            message: failure.message,
        }
    }

    /// A failure before there is a session, for the provider `provider`.
    fn unusable(provider: &Provider, message: String) -> Self {
        ResolveError::Provider {
            provider: format!("{} provider {:?}", provider.kind, provider.name),
            message,
            timed_out: false,
        }
    }
}

fn not_found(organization: &str, names: &[String]) -> String {
    match names {
        [name] => format!("secret {name:?} not found in organization {organization:?}"),
        _ => format!(
            "secrets {} not found in organization {organization:?}",
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[derive(Clone)]
pub struct Resolver {
    store: Store,
    keys: KeyRingHandle,
    providers: Arc<Providers>,
}

/// Each provider's session by provider id, with what it was built from.
type Sessions = HashMap<String, (Fingerprint, Arc<dyn Session>)>;

/// The provider sessions of the process, and what every session shares.
struct Providers {
    timeout: Duration,
    metrics: ProviderMetrics,
    net: NetPolicy,
    files: TokenFiles,
    sessions: Mutex<Sessions>,
}

/// The session of each provider one resolution reads from, by provider id.
type ReadSessions<'s> = BTreeMap<&'s str, Arc<dyn Session>>;

/// The keys one resolution reads at each (provider id, path); the key `""`
/// is the whole value.
type Reads<'s> = BTreeMap<(&'s str, &'s str), BTreeSet<String>>;

/// What a session was built from: a change to any of it means a new
/// session (new client, new login).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    updated_at: i64,
    credential: Option<(String, i64)>,
}

impl Resolver {
    /// `provider_timeout` bounds each remote read (login or renewal
    /// included) and each provider check.
    /// `net` says which addresses providers may be reached at, `files`
    /// where the tokens of Kubernetes and web identity logins are.
    pub fn new(
        store: Store,
        keys: KeyRingHandle,
        provider_timeout: Duration,
        metrics: ProviderMetrics,
        net: NetPolicy,
        files: TokenFiles,
    ) -> Self {
        Self {
            store,
            keys,
            providers: Arc::new(Providers {
                timeout: provider_timeout,
                metrics,
                net,
                files,
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The operator's address policy for providers.
    pub fn net(&self) -> &NetPolicy {
        &self.providers.net
    }

    /// Resolves `names` in `organization`. Every unknown name is reported
    /// at once, and so, for a pod's `namespace`, is every secret fenced out
    /// of it. Each distinct (provider, path) is read once, and different
    /// ones in parallel.
    pub async fn resolve(
        &self,
        organization: &Organization,
        names: &[&str],
        namespace: Option<&str>,
    ) -> Result<Resolved, ResolveError> {
        let mut secrets = self
            .store
            .find_secrets_by_name(&organization.id, names)
            .await?;
        secrets.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        secrets.dedup_by(|a, b| a.name == b.name);
        check_found(organization, names, &secrets)?;
        if let Some(namespace) = namespace {
            check_fences(namespace, &secrets)?;
        }
        let (values, remote) = self.open_local(&secrets)?;
        let mut remote_values = if remote.is_empty() {
            HashMap::new()
        } else {
            // Out of line: the provider clients' state would otherwise
            // enlarge every admission's future, local ones included.
            Box::pin(self.read_remote(organization, &remote)).await?
        };
        let resolved = secrets
            .iter()
            .zip(values)
            .filter_map(|(secret, value)| {
                let value = value.or_else(|| remote_values.remove(secret.id.as_str()))?;
                Some(ResolvedSecret {
                    secret: secret.clone(),
                    value,
                })
            })
            .collect();
        Ok(Resolved::new(resolved))
    }

    /// Decrypts the local ones of `secrets`: the value of each secret, in
    /// order (`None` for a remote one), and the remote ones, to be read.
    fn open_local<'s>(
        &self,
        secrets: &'s [Arc<Secret>],
    ) -> Result<(Vec<Option<SecretValue>>, Vec<&'s Secret>), ResolveError> {
        let mut values: Vec<Option<SecretValue>> = Vec::with_capacity(secrets.len());
        let mut remote = Vec::new();
        let keys = self.keys.borrow();
        for secret in secrets {
            match &secret.content {
                SecretContent::Local(sealed) => values.push(Some(open(&keys, secret, sealed)?)),
                SecretContent::Remote(_) => {
                    values.push(None);
                    remote.push(&**secret);
                }
            }
        }
        Ok((values, remote))
    }

    /// Reads remote secrets, returning their values by secret id.
    async fn read_remote<'s>(
        &self,
        organization: &Organization,
        secrets: &[&'s Secret],
    ) -> Result<HashMap<&'s str, SecretValue>, ResolveError> {
        let (sessions, reads) = self.plan_reads(organization, secrets).await?;
        let read = self.read_paths(&sessions, &reads).await?;
        let mut values = HashMap::with_capacity(secrets.len());
        for secret in secrets {
            let Some(remote) = secret.remote() else {
                continue;
            };
            let value = read
                .get(&(remote.provider_id.as_str(), remote.remote_path.as_str()))
                .and_then(|map| map.get(remote.remote_key.as_deref().unwrap_or_default()))
                .cloned();
            if let Some(value) = value {
                values.insert(secret.id.as_str(), value);
            }
        }
        Ok(values)
    }

    /// The session of each provider that `secrets` point at, and the keys
    /// to read at each distinct (provider, path).
    async fn plan_reads<'s>(
        &self,
        organization: &Organization,
        secrets: &[&'s Secret],
    ) -> Result<(ReadSessions<'s>, Reads<'s>), ResolveError> {
        let mut sessions = ReadSessions::new();
        let mut reads = Reads::new();
        for secret in secrets {
            let Some(remote) = secret.remote() else {
                continue;
            };
            if !sessions.contains_key(remote.provider_id.as_str()) {
                let session = self
                    .session_of(organization, &remote.provider_id, &secret.name)
                    .await?;
                sessions.insert(&remote.provider_id, session);
            }
            // The key "" asks for the whole value.
            reads
                .entry((&remote.provider_id, &remote.remote_path))
                .or_default()
                .insert(remote.remote_key.clone().unwrap_or_default());
        }
        Ok((sessions, reads))
    }

    /// Reads every (provider, path) of `reads` in parallel, each within the
    /// provider timeout, and returns the value map of each.
    async fn read_paths<'s>(
        &self,
        sessions: &ReadSessions<'s>,
        reads: &Reads<'s>,
    ) -> Result<HashMap<(&'s str, &'s str), BTreeMap<String, SecretValue>>, ResolveError> {
        let timeout = self.providers.timeout;
        let results = futures::future::join_all(reads.iter().map(|((provider, path), keys)| {
            read_within(&*sessions[provider], path, keys, timeout)
        }))
        .await;
        // The first failure in (provider, path) order is the one reported,
        // so that the same problem gives the same message every time.
        let mut read = HashMap::new();
        for (((provider, path), _), result) in reads.iter().zip(results) {
            let session = &sessions[provider];
            let map = result.map_err(|failure| ResolveError::provider(&**session, failure))?;
            read.insert((*provider, *path), map);
        }
        Ok(read)
    }

    /// The session of the provider a remote secret points at.
    async fn session_of(
        &self,
        organization: &Organization,
        provider_id: &str,
        secret: &str,
    ) -> Result<Arc<dyn Session>, ResolveError> {
        let provider = self
            .store
            .find_provider(&organization.id, provider_id)
            .await?
            .ok_or_else(|| ResolveError::Provider {
                provider: format!("provider {provider_id:?}"),
                message: format!(
                    "no such provider in organization {:?}; repoint secret {secret:?} at an existing provider",
                    organization.name
                ),
                timed_out: false,
            })?;
        if kind(&provider.kind).is_none() {
            return Err(ResolveError::Unsupported {
                name: secret.to_owned(),
                kind: provider.kind,
            });
        }
        self.session(organization, &provider).await
    }

    /// The cached session of `provider`, or a new one when there is none
    /// or the provider or its credential changed since it was built.
    async fn session(
        &self,
        organization: &Organization,
        provider: &Provider,
    ) -> Result<Arc<dyn Session>, ResolveError> {
        let Some(kind) = kind(&provider.kind) else {
            return Err(ResolveError::Unsupported {
                name: provider.name.clone(),
                kind: provider.kind.clone(),
            });
        };
        let labels = ProviderLabels {
            provider: format!("{}/{}", organization.name, provider.name),
        };
        let credential = match provider.credential_secret.as_deref() {
            None => None,
            Some(name) => Some(
                self.credential(organization, provider, name, &labels)
                    .await?,
            ),
        };
        let fingerprint = Fingerprint {
            updated_at: provider.updated_at,
            credential: credential.as_ref().map(|s| (s.id.clone(), s.version)),
        };
        if let Some(session) = self.providers.cached(&provider.id, &fingerprint) {
            return Ok(session);
        }
        let value = self.open_credential(credential.as_deref())?;
        let env = self.providers.session_env(labels);
        let session: Arc<dyn Session> = kind
            .session(provider, value, env)
            .map_err(|failure| ResolveError::unusable(provider, failure.message))?
            .into();
        tracing::debug!(provider = %provider.name, kind = %provider.kind, organization = %organization.name, "New provider session");
        Ok(self.providers.insert(&provider.id, fingerprint, session))
    }

    /// The decrypted value of a provider's credential secret, if it has one.
    fn open_credential(
        &self,
        credential: Option<&Secret>,
    ) -> Result<Option<SecretValue>, ResolveError> {
        let keys = self.keys.current();
        Ok(match credential {
            Some(secret) => match &secret.content {
                SecretContent::Local(sealed) => Some(open(&keys, secret, sealed)?),
                SecretContent::Remote(_) => None,
            },
            None => None,
        })
    }

    /// The local secret holding a provider's credential, through the read
    /// cache: a remote admission pays no database round trip for it either.
    async fn credential(
        &self,
        organization: &Organization,
        provider: &Provider,
        name: &str,
        labels: &ProviderLabels,
    ) -> Result<Arc<Secret>, ResolveError> {
        let found = self
            .store
            .find_secrets_by_name(&organization.id, &[name])
            .await?
            .into_iter()
            .find(|secret| secret.name == name);
        let problem = match found {
            Some(secret) => match secret.content {
                SecretContent::Local(_) => return Ok(secret),
                SecretContent::Remote(_) => format!(
                    "its credential {name:?} is a remote secret; a provider credential must be a local secret"
                ),
            },
            _ => format!(
                "its credential secret {name:?} does not exist; create it as a local secret or update the provider"
            ),
        };
        count_failure(&self.providers.metrics, labels, FailureKind::Credential);
        Err(ResolveError::unusable(provider, problem))
    }

    /// The version a remote secret has at its provider now, from metadata
    /// that carries no value (`None` for a local secret, or where the
    /// provider keeps no versions). Nothing is cached here: the caller keeps
    /// the version it saw.
    pub async fn remote_version(
        &self,
        organization: &Organization,
        secret: &Secret,
    ) -> Result<Option<String>, ResolveError> {
        let Some(remote) = secret.remote() else {
            return Ok(None);
        };
        let session = self
            .session_of(organization, &remote.provider_id, &secret.name)
            .await?;
        let timeout = self.providers.timeout;
        let path = remote.remote_path.as_str();
        match tokio::time::timeout(timeout, session.current_version(path)).await {
            Ok(result) => result.map_err(|failure| ResolveError::provider(&*session, failure)),
            Err(_) => Err(ResolveError::provider(
                &*session,
                session.fail(
                    FailureKind::Timeout,
                    format!(
                        "reading the version of {path}: timed out after {}",
                        humantime::format_duration(timeout)
                    ),
                ),
            )),
        }
    }

    /// Checks that `provider` can be reached and its credentials work,
    /// without reading any secret. Returns what was checked.
    pub async fn check(
        &self,
        organization: &Organization,
        provider: &Provider,
    ) -> Result<String, ResolveError> {
        let session = self.session(organization, provider).await?;
        let timeout = self.providers.timeout;
        match tokio::time::timeout(timeout, session.check()).await {
            Ok(result) => result
                .map(|message| format!("{}: {message}", session.label()))
                .map_err(|failure| ResolveError::provider(&*session, failure)),
            Err(_) => Err(ResolveError::provider(
                &*session,
                session.fail(
                    FailureKind::Timeout,
                    format!("timed out after {}", humantime::format_duration(timeout)),
                ),
            )),
        }
    }
}

impl Providers {
    /// What a new session of the provider labelled `labels` gets.
    fn session_env(&self, labels: ProviderLabels) -> SessionEnv {
        SessionEnv {
            labels,
            metrics: self.metrics.clone(),
            timeout: self.timeout,
            net: self.net.clone(),
            files: self.files.clone(),
            turns: tokio::sync::Semaphore::new(net::MAX_IN_FLIGHT),
        }
    }

    fn cached(&self, provider_id: &str, fingerprint: &Fingerprint) -> Option<Arc<dyn Session>> {
        let sessions = self.sessions.lock().expect("lock poisoned");
        sessions
            .get(provider_id)
            .filter(|(f, _)| f == fingerprint)
            .map(|(_, s)| s.clone())
    }

    /// Keeps `session` for the provider, unless a session with the same
    /// fingerprint was stored meanwhile (then that one is returned, so
    /// that concurrent first uses share one login).
    fn insert(
        &self,
        provider_id: &str,
        fingerprint: Fingerprint,
        session: Arc<dyn Session>,
    ) -> Arc<dyn Session> {
        let mut sessions = self.sessions.lock().expect("lock poisoned");
        if let Some((existing, current)) = sessions.get(provider_id)
            && *existing == fingerprint
        {
            return current.clone();
        }
        sessions.insert(provider_id.to_owned(), (fingerprint, session.clone()));
        session
    }
}

/// Fails with every one of `names` that is not among `secrets` (sorted by
/// name, one per name).
/// Refuses every secret whose fence leaves `namespace` out, before any
/// value is decrypted or fetched.
fn check_fences(namespace: &str, secrets: &[Arc<Secret>]) -> Result<(), ResolveError> {
    let refusals: Vec<String> = secrets
        .iter()
        .filter(|s| !crate::fence::allows(&s.allowed_namespaces, namespace))
        .map(|s| crate::fence::refusal(&s.name, namespace, &s.allowed_namespaces))
        .collect();
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(ResolveError::Fenced { refusals })
    }
}

fn check_found(
    organization: &Organization,
    names: &[&str],
    secrets: &[Arc<Secret>],
) -> Result<(), ResolveError> {
    // Distinct names, one secret each: nothing is missing. The webhook
    // asks that way; anything else is checked name by name.
    let distinct = names.windows(2).all(|w| w[0] < w[1]);
    if distinct && secrets.len() == names.len() {
        return Ok(());
    }
    let mut missing: Vec<String> = names
        .iter()
        .filter(|n| {
            secrets
                .binary_search_by(|s| s.name.as_str().cmp(n))
                .is_err()
        })
        .map(|n| (*n).to_owned())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort_unstable();
    missing.dedup();
    Err(ResolveError::NotFound {
        organization: organization.name.clone(),
        names: missing,
    })
}

/// Reads `keys` at `path` through `session`; past `timeout`, a timeout
/// failure.
async fn read_within(
    session: &dyn Session,
    path: &str,
    keys: &BTreeSet<String>,
    timeout: Duration,
) -> Result<BTreeMap<String, SecretValue>, Failure> {
    match tokio::time::timeout(timeout, session.read(path, keys)).await {
        Ok(result) => result,
        Err(_) => Err(session.fail(
            FailureKind::Timeout,
            format!(
                "reading {path}: timed out after {}",
                humantime::format_duration(timeout)
            ),
        )),
    }
}

/// Decrypts a local secret's value.
fn open(keys: &KeyRing, secret: &Secret, sealed: &Sealed) -> Result<SecretValue, ResolveError> {
    keys.open(
        sealed,
        Aad {
            organization_id: &secret.organization_id,
            secret_id: &secret.id,
            version: secret.version,
        },
    )
    .map_err(|source| ResolveError::Crypto {
        name: secret.name.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_registered_once() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names, ["aws-secrets-manager", "vault"]);
        assert!(kind("vault").is_some() && kind("nope").is_none());
    }

    fn resolved(names: &[&str]) -> Resolved {
        let mut secrets: Vec<ResolvedSecret> = names
            .iter()
            .enumerate()
            .map(|(i, name)| ResolvedSecret {
                secret: Arc::new(Secret {
                    id: format!("id-{i}"),
                    organization_id: "org".into(),
                    name: (*name).to_owned(),
                    version: i as i64 + 1,
                    created_at: 0,
                    updated_at: 0,
                    content: SecretContent::Local(Sealed::new("k".into(), vec![], vec![])),
                    allowed_namespaces: Vec::new(),
                }),
                value: SecretValue::new(format!("value of {name}")),
            })
            .collect();
        secrets.sort_unstable_by(|a, b| a.secret.name.cmp(&b.secret.name));
        Resolved::new(secrets)
    }

    #[test]
    fn secrets_are_found_by_name_and_only_by_name() {
        let names = ["stripe", "db-password", "a", "openai-key", "b"];
        let all = resolved(&names);
        for name in names {
            assert_eq!(all[name].value.expose(), format!("value of {name}"));
        }
        assert!(all.get("missing").is_none());
        assert!(all.get("").is_none());
        let sorted: Vec<&str> = all.iter().map(|s| s.secret.name.as_str()).collect();
        assert_eq!(sorted, ["a", "b", "db-password", "openai-key", "stripe"]);
    }
}
