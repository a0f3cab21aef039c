//! A session with one Vault or OpenBao provider: its HTTP client, its
//! login token (cached, renewed, replaced) and the requests the resolver
//! makes (KV reads, logins, renewals, token lookups).
//!
//! This speaks the `/v1` HTTP API directly (on reqwest) rather than through
//! `vaultrs`, because the resolver depends on details that vaultrs hides or
//! gets wrong for OpenBao:
//! - a KV v2 read of a deleted or destroyed version answers 404 *with* the
//!   full envelope (`data.data: null`, `data.metadata.deletion_time` /
//!   `destroyed`), while a missing path answers 404 `{"errors":[]}`; vaultrs
//!   turns these into two unrelated error variants and drops the metadata
//!   that says which version was deleted or destroyed;
//! - the KV engine version is decided from the answer's shape (see
//!   [`super::wire::read_kv`]), which needs the raw envelope; vaultrs makes
//!   the caller pick `kv1` or `kv2` up front;
//! - vaultrs's health type requires `performance_standby`, which OpenBao
//!   2.6 and later omit;
//! - each provider needs its own trust store from PEM held in the database
//!   (vaultrs reads CA files from disk), a DNS resolver that refuses
//!   link-local and metadata addresses at connection time, no redirects
//!   (a redirect would carry the token to another host) and a timeout per
//!   request;
//! - renewal and re-login must be under our control so that one login
//!   serves every admission (peers that logged in per request flooded
//!   Vault with token leases).
//!
//! The surface used is small: `GET /v1/<path>`, `POST auth/<mount>/login`,
//! `POST auth/token/renew-self` and `GET auth/token/lookup-self`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::Settings;
use super::wire::{self, KvRead};
use crate::crypto::SecretValue;
use crate::resolve::net;
use crate::resolve::provider::{
    Failure, FailureKind, Reply, SessionEnv, holds_credential, read_token_file, server_names,
};

/// A cached login token younger than this that is refused is not replaced
/// by a fresh login: the refusal is about its policy, and logging in again
/// for every admission would flood the server with leases.
const MIN_AGE_FOR_RELOGIN: Duration = Duration::from_secs(10);

/// How a session proves who it is, with the credential already decrypted.
pub enum Credentials {
    /// A fixed token from a local secret.
    Token { token: SecretValue, secret: String },
    /// The pod's service account token, read from `token_file` (a server
    /// flag) at each login.
    Kubernetes {
        role: String,
        mount: String,
        token_file: PathBuf,
    },
    /// An AppRole role id and a secret id from a local secret.
    Approle {
        role_id: String,
        secret_id: SecretValue,
        secret: String,
        mount: String,
    },
}

impl Credentials {
    /// Whether a new token can be obtained by logging in.
    fn can_log_in(&self) -> bool {
        !matches!(self, Credentials::Token { .. })
    }

    /// The credential this method logs in with, if it is a value.
    fn secret(&self) -> Option<&SecretValue> {
        match self {
            Credentials::Token { token, .. } => Some(token),
            Credentials::Approle { secret_id, .. } => Some(secret_id),
            Credentials::Kubernetes { .. } => None,
        }
    }

    fn method(&self) -> &'static str {
        match self {
            Credentials::Token { .. } => "token",
            Credentials::Kubernetes { .. } => "kubernetes",
            Credentials::Approle { .. } => "approle",
        }
    }

    /// What to check when the server refuses a read.
    fn policy_hint(&self) -> String {
        match self {
            Credentials::Token { secret, .. } => format!(
                "check the policy of the token in local secret {secret:?}, and that the token is still valid"
            ),
            Credentials::Kubernetes { role, .. } => {
                format!("check the policies that kubernetes auth role {role:?} grants")
            }
            Credentials::Approle { .. } => {
                "check the policies that the AppRole role grants".to_owned()
            }
        }
    }
}

/// What to do when a token's refresh time comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    Renew,
    LogIn,
    Never,
}

/// The token in use and when to refresh it.
struct Lease {
    token: SecretValue,
    obtained: Instant,
    /// Refresh at two thirds of the lease, well before it runs out.
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    refresh: Refresh,
    /// The first lease granted; a renewal shorter than it was capped by
    /// the token's max TTL.
    granted: Duration,
    policies: Vec<String>,
}

impl Lease {
    fn new(token: SecretValue, ttl: Duration, refresh: Refresh, policies: Vec<String>) -> Self {
        let now = Instant::now();
        let refresh = if ttl.is_zero() {
            Refresh::Never
        } else {
            refresh
        };
        Lease {
            token,
            obtained: now,
            refresh_at: (refresh != Refresh::Never).then(|| now + ttl * 2 / 3),
            expires_at: (!ttl.is_zero()).then(|| now + ttl),
            refresh,
            granted: ttl,
            policies,
        }
    }

    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    fn due(&self, now: Instant) -> bool {
        self.refresh_at.is_some_and(|at| now >= at)
    }

    /// What a check reports of the token; `secret` is what it logged in
    /// with, kept out of the policy names a server sent.
    fn describe(&self, secret: Option<&SecretValue>) -> String {
        let ttl = match self.expires_at {
            None => "the token does not expire".to_owned(),
            Some(at) => format!(
                "the token is valid for {}{}",
                humantime::format_duration(Duration::from_secs(
                    at.saturating_duration_since(Instant::now()).as_secs()
                )),
                match self.refresh {
                    Refresh::Renew => " and renewable",
                    _ => "",
                }
            ),
        };
        if self.policies.is_empty() {
            ttl
        } else {
            let credentials: Vec<&SecretValue> =
                std::iter::once(&self.token).chain(secret).collect();
            format!(
                "{ttl}; policies: {}",
                server_names(&self.policies, &credentials)
            )
        }
    }
}

/// What tells Vault's answers from any other server's.
trait VaultReply {
    fn speaks_vault(&self) -> bool;
    fn redirects_to_vault(&self) -> bool;
}

impl VaultReply for Reply {
    /// Whether the answer is Vault's: a JSON object with the `request_id`
    /// of every Vault answer or the `errors` of every Vault error. Any
    /// other answer is told apart from no answer at all by nothing, so
    /// that a provider check cannot map what listens where.
    fn speaks_vault(&self) -> bool {
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[serde(default)]
            request_id: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            errors: Option<Vec<serde::de::IgnoredAny>>,
        }
        serde_json::from_slice::<Envelope>(&self.body)
            .is_ok_and(|e| e.request_id.is_some() || e.errors.is_some())
    }

    /// Whether a redirect goes to another server's `/v1/` path, as a
    /// standby Vault node answers; any other redirect is not Vault's.
    fn redirects_to_vault(&self) -> bool {
        self.location
            .as_deref()
            .and_then(|l| reqwest::Url::parse(l).ok())
            .is_some_and(|url| url.path().starts_with("/v1/"))
    }
}

/// The same failure, said to have happened logging in with `method` auth.
fn logging_in(method: &str, failure: Failure) -> Failure {
    Failure {
        message: format!("logging in with {method} auth: {}", failure.message),
        ..failure
    }
}

pub struct Session {
    name: String,
    address: String,
    namespace: Option<String>,
    credentials: Credentials,
    http: reqwest::Client,
    env: SessionEnv,
    lease: Mutex<Option<Lease>>,
}

impl Session {
    /// A session with the provider `name` of `settings`.
    pub fn new(
        name: &str,
        settings: &Settings,
        credentials: Credentials,
        env: SessionEnv,
    ) -> Result<Self, Failure> {
        // Checked again here: the operator's address lists may have changed
        // since the provider was written.
        let address = net::check_url("address", &settings.address, &env.net)
            .map_err(|invalid| env.fail(FailureKind::ForbiddenAddress, invalid.message))?;
        let http = net::client(settings.ca_pem.as_deref(), env.timeout, &env.net)
            .map_err(|message| env.fail(FailureKind::Config, message))?;
        Ok(Session {
            name: name.to_owned(),
            address,
            namespace: settings.namespace.clone(),
            credentials,
            http,
            env,
            lease: Mutex::new(None),
        })
    }

    /// The provider's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records a failure and returns it.
    pub fn fail(&self, kind: FailureKind, message: String) -> Failure {
        self.env.fail(kind, message)
    }

    /// The failure of an answer that is not Vault's JSON: whatever answered
    /// is not told apart from nothing answering.
    fn not_vault(&self) -> Failure {
        self.fail(FailureKind::Unreachable, net::unreachable(&self.address))
    }

    /// Reads `path` and returns the requested `keys` of its value map.
    pub async fn read(
        &self,
        path: &str,
        keys: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, SecretValue>, Failure> {
        // Checked when the secret was written; checked again, as the
        // request must not leave the path whatever the database holds.
        super::check_path(path)
            .map_err(|rule| self.fail(FailureKind::Config, format!("remote_path {rule}")))?;
        let (token, reply) = self.get_path(path).await.map_err(|f| f.reading(path))?;
        match reply.status {
            200 | 404 => self.kv_values(path, &reply, keys, &token),
            403 => Err(self.fail(
                FailureKind::PermissionDenied,
                format!(
                    "permission denied reading {path} ({})",
                    self.credentials.policy_hint()
                ),
            )),
            _ => Err(self.refused(&reply).reading(path)),
        }
    }

    /// The KV v2 `current_version` of `path` (`<mount>/data/<name>`), read
    /// from `<mount>/metadata/<name>`, which holds versions and times but no
    /// value. `None` for a path that is not KV v2, or that is gone.
    pub async fn current_version(&self, path: &str) -> Result<Option<String>, Failure> {
        super::check_path(path)
            .map_err(|rule| self.fail(FailureKind::Config, format!("remote_path {rule}")))?;
        let Some(metadata) = super::metadata_path(path) else {
            return Ok(None);
        };
        let (_, reply) = self
            .get_path(&metadata)
            .await
            .map_err(|f| f.reading(&metadata))?;
        match reply.status {
            200 => wire::current_version(&reply.body)
                .map(|version| Some(version.to_string()))
                .ok_or_else(|| {
                    self.fail(
                        FailureKind::Server,
                        format!("the metadata at {metadata} holds no current_version"),
                    )
                }),
            404 => Ok(None),
            403 => Err(self.fail(
                FailureKind::PermissionDenied,
                format!(
                    "permission denied reading {metadata}: rotation detection needs `read` on it ({})",
                    self.credentials.policy_hint()
                ),
            )),
            _ => Err(self.refused(&reply).reading(&metadata)),
        }
    }

    /// `GET <path>` with the session's token, and the token it was sent
    /// with. A refusal of a cached token that is no longer valid (revoked,
    /// or the server lost its state) logs in again and asks once more.
    async fn get_path(&self, path: &str) -> Result<(SecretValue, Reply), Failure> {
        let token = self.token().await?;
        let reply = self.call(Method::GET, path, Some(&token), None).await?;
        if reply.status == 403
            && self.credentials.can_log_in()
            && self.lookup(&token).await.ok() == Some(None)
            && self.forget(&token).await
        {
            let token = self.token().await?;
            let reply = self.call(Method::GET, path, Some(&token), None).await?;
            return Ok((token, reply));
        }
        Ok((token, reply))
    }

    /// The requested `keys` of a KV answer (HTTP 200 or 404) that the
    /// session read at `path` with `token`.
    fn kv_values(
        &self,
        path: &str,
        reply: &Reply,
        keys: &BTreeSet<String>,
        token: &SecretValue,
    ) -> Result<BTreeMap<String, SecretValue>, Failure> {
        if !reply.speaks_vault() {
            return Err(self.not_vault().reading(path));
        }
        let read = wire::read_kv(reply.status, &reply.body, keys)
            .map_err(|e| self.fail(FailureKind::Response, format!("reading {path}: {e}")))?;
        if let KvRead::Found { version, .. } = &read {
            tracing::debug!(provider = %self.env.labels.provider, path, engine = ?version, "Read remote secret");
        }
        let values = self.values(path, read, token)?;
        self.refuse_credentials(path, &values, token)?;
        Ok(values)
    }

    /// Fails when a value holds the session's `token` or what it logs in
    /// with: `auth/token/lookup-self` and the like answer with the token
    /// itself, and a remote secret must not hand either to a pod, in any
    /// encoding.
    fn refuse_credentials(
        &self,
        path: &str,
        values: &BTreeMap<String, SecretValue>,
        token: &SecretValue,
    ) -> Result<(), Failure> {
        let credentials = [Some(token), self.credentials.secret()];
        let leaks = values.values().any(|value| {
            credentials
                .iter()
                .flatten()
                .any(|c| holds_credential(value.expose(), c.expose()))
        });
        if leaks {
            return Err(self.fail(
                FailureKind::Config,
                format!(
                    "{path} answers with the provider's own token, which is never handed out; point the secret at a KV path"
                ),
            ));
        }
        Ok(())
    }

    fn values(
        &self,
        path: &str,
        read: KvRead,
        token: &SecretValue,
    ) -> Result<BTreeMap<String, SecretValue>, Failure> {
        let version = |v: Option<u64>| v.map(|v| format!(" ({v})")).unwrap_or_default();
        match read {
            KvRead::Found {
                values, missing, ..
            } if missing.is_empty() => Ok(values),
            KvRead::Found {
                missing, available, ..
            } => {
                let quoted = |keys: &[String]| {
                    keys.iter()
                        .map(|k| format!("{k:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let noun = if missing.len() == 1 { "key" } else { "keys" };
                let present = if available.is_empty() {
                    "it has no keys".to_owned()
                } else {
                    let credentials: Vec<&SecretValue> =
                        std::iter::once(token).chain(self.credentials.secret()).collect();
                    format!("keys: {}", server_names(&available, &credentials))
                };
                Err(self.fail(
                    FailureKind::MissingKey,
                    format!("{noun} {} not found at {path} ({present})", quoted(&missing)),
                ))
            }
            KvRead::Deleted { version: v } => Err(self.fail(
                FailureKind::Deleted,
                format!(
                    "no value at {path}: the latest version{} was deleted; undelete it or write a new version",
                    version(v)
                ),
            )),
            KvRead::Destroyed { version: v } => Err(self.fail(
                FailureKind::Destroyed,
                format!(
                    "no value at {path}: the latest version{} was destroyed; write a new version",
                    version(v)
                ),
            )),
            KvRead::Missing { why } => Err(self.fail(
                FailureKind::NotFound,
                format!("no value at {path} ({})", why.describe()),
            )),
        }
    }

    /// Checks that the provider can be reached and its credentials work:
    /// a fresh login (kept as the session's token), or for a fixed token a
    /// lookup of that token. Either way only a Vault server gets that far.
    pub async fn check(&self) -> Result<String, Failure> {
        match &self.credentials {
            Credentials::Token { token, secret } => match self.lookup(token).await? {
                Some(info) => {
                    let lease = Lease::new(
                        token.clone(),
                        Duration::from_secs(info.ttl),
                        if info.renewable {
                            Refresh::Renew
                        } else {
                            Refresh::Never
                        },
                        info.policies,
                    );
                    Ok(format!(
                        "reachable; the token in local secret {secret:?} is valid; {}",
                        lease.describe(None)
                    ))
                }
                None => Err(self.fail(
                    FailureKind::PermissionDenied,
                    format!(
                        "the token in local secret {secret:?} was refused (HTTP 403): it is invalid, expired or revoked, or its policy does not allow auth/token/lookup-self"
                    ),
                )),
            },
            _ => {
                let lease = self.log_in().await?;
                let message = format!(
                    "reachable; logged in with {} auth; {}",
                    self.credentials.method(),
                    lease.describe(self.credentials.secret())
                );
                *self.lease.lock().await = Some(lease);
                Ok(message)
            }
        }
    }

    /// The token to send: the cached one, renewed or replaced when its
    /// refresh time has come. Concurrent callers wait for one login.
    pub(super) async fn token(&self) -> Result<SecretValue, Failure> {
        let mut slot = self.lease.lock().await;
        let now = Instant::now();
        if let Some(lease) = slot.as_mut() {
            let expired = lease.expired(now);
            if !expired && !lease.due(now) {
                return Ok(lease.token.clone());
            }
            if !expired && lease.refresh == Refresh::Renew {
                match self.renew(lease).await {
                    Ok(()) => return Ok(lease.token.clone()),
                    // The server is away; the token still is valid and the
                    // request will say what is wrong. Renewal is retried at
                    // the next use.
                    Err(failure) if failure.kind.is_outage() => {
                        return Ok(lease.token.clone());
                    }
                    Err(failure) => {
                        tracing::warn!(provider = %self.env.labels.provider, reason = %failure.message, "Token renewal failed");
                        if !self.credentials.can_log_in() {
                            lease.refresh = Refresh::Never;
                            lease.refresh_at = None;
                            return Ok(lease.token.clone());
                        }
                    }
                }
            } else if !self.credentials.can_log_in() {
                // A fixed token cannot be replaced; the server will judge it.
                return Ok(lease.token.clone());
            }
        }
        match self.log_in().await {
            Ok(lease) => {
                let token = lease.token.clone();
                *slot = Some(lease);
                Ok(token)
            }
            // A refresh that could not reach the server keeps the token
            // that is still valid.
            Err(failure) if failure.kind.is_outage() => match slot.as_ref() {
                Some(lease) if !lease.expired(Instant::now()) => Ok(lease.token.clone()),
                _ => Err(failure),
            },
            Err(failure) => Err(failure),
        }
    }

    /// Drops the cached token if it is `token` and old enough to have gone
    /// stale; returns whether it did.
    async fn forget(&self, token: &SecretValue) -> bool {
        let mut slot = self.lease.lock().await;
        let stale = slot
            .as_ref()
            .is_some_and(|l| l.token == *token && l.obtained.elapsed() >= MIN_AGE_FOR_RELOGIN);
        if stale {
            *slot = None;
        }
        stale
    }

    /// Obtains a token: a login, or for a fixed token a lookup of it.
    async fn log_in(&self) -> Result<Lease, Failure> {
        match &self.credentials {
            Credentials::Token { token, .. } => self.fixed_lease(token).await,
            Credentials::Kubernetes {
                role,
                mount,
                token_file,
            } => self.log_in_kubernetes(role, mount, token_file).await,
            Credentials::Approle {
                role_id,
                secret_id,
                secret,
                mount,
            } => self.log_in_approle(role_id, secret_id, secret, mount).await,
        }
    }

    /// The lease of a fixed token: the server says how long it lives and
    /// whether it can be renewed. A token that may not look itself up is
    /// used as it is, without renewal.
    async fn fixed_lease(&self, token: &SecretValue) -> Result<Lease, Failure> {
        let info = self.lookup(token).await?;
        let (ttl, refresh, policies) = match info {
            Some(info) if info.renewable => (info.ttl, Refresh::Renew, info.policies),
            Some(info) => (info.ttl, Refresh::Never, info.policies),
            None => (0, Refresh::Never, Vec::new()),
        };
        Ok(Lease::new(
            token.clone(),
            Duration::from_secs(ttl),
            refresh,
            policies,
        ))
    }

    /// Logs in as kubernetes auth role `role` at `auth/<mount>`, with the
    /// service account token read from `token_file`.
    async fn log_in_kubernetes(
        &self,
        role: &str,
        mount: &str,
        token_file: &Path,
    ) -> Result<Lease, Failure> {
        #[derive(Serialize)]
        struct KubernetesLogin<'a> {
            role: &'a str,
            jwt: &'a str,
        }
        let jwt = read_token_file(
            token_file,
            "service account token",
            "--service-account-token-file",
        )
        .await
        .map_err(|message| self.fail(FailureKind::Credential, message))?;
        let body = serde_json::to_vec(&KubernetesLogin { role, jwt: &jwt })
            .expect("a login body serializes");
        self.log_in_at(
            mount,
            body,
            &format!(
                "check that kubernetes auth role {role:?} exists at auth/{mount} and binds this service account"
            ),
        )
        .await
    }

    /// Logs in with AppRole at `auth/<mount>`; `secret` names the local
    /// secret that holds `secret_id`.
    async fn log_in_approle(
        &self,
        role_id: &str,
        secret_id: &SecretValue,
        secret: &str,
        mount: &str,
    ) -> Result<Lease, Failure> {
        #[derive(Serialize)]
        struct ApproleLogin<'a> {
            role_id: &'a str,
            secret_id: &'a str,
        }
        let body = serde_json::to_vec(&ApproleLogin {
            role_id,
            secret_id: secret_id.expose(),
        })
        .expect("a login body serializes");
        self.log_in_at(
            mount,
            body,
            &format!(
                "check role_id, and the secret id in local secret {secret:?} (it may have expired or used up its uses)"
            ),
        )
        .await
    }

    /// Logs in at `auth/<mount>/login` with `body`; `hint` says what to
    /// check when the server refuses the login.
    async fn log_in_at(&self, mount: &str, body: Vec<u8>, hint: &str) -> Result<Lease, Failure> {
        let body = Zeroizing::new(body);
        let method = self.credentials.method();
        let reply = self
            .call(
                Method::POST,
                &format!("auth/{mount}/login"),
                None,
                Some(body.to_vec()),
            )
            .await
            .map_err(|f| logging_in(method, f))?;
        if !reply.speaks_vault() {
            return Err(self.not_vault());
        }
        match reply.status {
            200 => self.logged_in(&reply),
            400..=403 => Err(self.fail(
                FailureKind::Login,
                format!(
                    "{method} login at auth/{mount} was refused (HTTP {}); {hint}",
                    reply.status
                ),
            )),
            _ => Err(logging_in(method, self.refused(&reply))),
        }
    }

    /// The lease of a login the server accepted (HTTP 200), counted and
    /// logged.
    fn logged_in(&self, reply: &Reply) -> Result<Lease, Failure> {
        let method = self.credentials.method();
        let auth = wire::read_auth(&reply.body).map_err(|e| {
            self.fail(
                FailureKind::Response,
                format!("logging in with {method} auth: {e}"),
            )
        })?;
        self.env
            .metrics
            .logins
            .get_or_create(&self.env.labels)
            .inc();
        let refresh = if auth.renewable {
            Refresh::Renew
        } else {
            Refresh::LogIn
        };
        tracing::info!(
            provider = %self.env.labels.provider,
            method,
            ttl_s = auth.lease_duration,
            renewable = auth.renewable,
            "Logged in to secret provider"
        );
        Ok(Lease::new(
            auth.client_token,
            Duration::from_secs(auth.lease_duration),
            refresh,
            auth.policies,
        ))
    }

    /// Renews the lease's token in place.
    async fn renew(&self, lease: &mut Lease) -> Result<(), Failure> {
        let reply = self
            .call(
                Method::POST,
                "auth/token/renew-self",
                Some(&lease.token),
                Some(b"{}".to_vec()),
            )
            .await?;
        if reply.status != 200 {
            return Err(if (400..500).contains(&reply.status) {
                self.fail(
                    FailureKind::Renewal,
                    format!("renewing the token was refused (HTTP {})", reply.status),
                )
            } else {
                self.refused(&reply)
            });
        }
        let auth = wire::read_auth(&reply.body)
            .map_err(|e| self.fail(FailureKind::Response, format!("renewing the token: {e}")))?;
        let ttl = Duration::from_secs(auth.lease_duration);
        if ttl.is_zero() && !lease.granted.is_zero() {
            // At its max TTL the server renews for no time at all.
            return Err(self.fail(
                FailureKind::Renewal,
                "the token reached its max TTL and cannot be renewed further".to_owned(),
            ));
        }
        self.env
            .metrics
            .renewals
            .get_or_create(&self.env.labels)
            .inc();
        // Shorter than first granted: the max TTL caps it, and renewing
        // again would buy ever less. Log in afresh at the next refresh
        // instead (a fixed token is then used until it expires).
        let capped = ttl < lease.granted;
        let refresh = match (capped || !auth.renewable, self.credentials.can_log_in()) {
            (false, _) => Refresh::Renew,
            (true, true) => Refresh::LogIn,
            (true, false) => Refresh::Never,
        };
        tracing::debug!(provider = %self.env.labels.provider, ttl_s = auth.lease_duration, capped, "Renewed provider token");
        let granted = lease.granted;
        let policies = std::mem::take(&mut lease.policies);
        let obtained = lease.obtained;
        *lease = Lease {
            granted,
            obtained,
            ..Lease::new(lease.token.clone(), ttl, refresh, policies)
        };
        Ok(())
    }

    /// Looks up `token`: `None` when the server refuses it (HTTP 403).
    async fn lookup(&self, token: &SecretValue) -> Result<Option<wire::TokenInfo>, Failure> {
        let reply = self
            .call(Method::GET, "auth/token/lookup-self", Some(token), None)
            .await?;
        if !reply.speaks_vault() {
            return Err(self.not_vault());
        }
        match reply.status {
            200 => wire::read_token_info(&reply.body).map(Some).map_err(|e| {
                self.fail(FailureKind::Response, format!("looking up the token: {e}"))
            }),
            403 => Ok(None),
            _ => {
                let failure = self.refused(&reply);
                Err(Failure {
                    message: format!("looking up the token: {}", failure.message),
                    ..failure
                })
            }
        }
    }

    /// A failure for an answer with an error status, in the product's own
    /// words: the status and what it means, never the server's text.
    fn refused(&self, reply: &Reply) -> Failure {
        let status = reply.status;
        let redirect = (300..400).contains(&status);
        if (redirect && !reply.redirects_to_vault()) || (!redirect && !reply.speaks_vault()) {
            return self.not_vault();
        }
        match status {
            300..=399 => self.fail(
                FailureKind::Redirect,
                format!(
                    "the server redirected the request (HTTP {status}); set the provider's address to the server that answers, as redirects are not followed"
                ),
            ),
            // 403 texts differ between versions; the status says enough.
            403 => self.fail(
                FailureKind::PermissionDenied,
                "permission denied (HTTP 403)".to_owned(),
            ),
            404 => self.fail(FailureKind::NotFound, "not found (HTTP 404)".to_owned()),
            429 => self.fail(
                FailureKind::Unavailable,
                "the server is limiting requests (HTTP 429); retry shortly".to_owned(),
            ),
            503 if wire::says(&reply.body, "sealed") => self.fail(
                FailureKind::Sealed,
                "server is sealed; unseal it, then retry".to_owned(),
            ),
            503 => self.fail(
                FailureKind::Unavailable,
                "server is unavailable (HTTP 503)".to_owned(),
            ),
            _ => self.fail(
                FailureKind::Server,
                format!("the server answered HTTP {status}"),
            ),
        }
    }

    /// One request, with the namespace header and the token when given.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretValue>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, Failure> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/v1/{path}", self.address));
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace.as_str());
        }
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
                self.fail(
                    FailureKind::Credential,
                    "the token holds characters that cannot be sent in an HTTP header".into(),
                )
            })?;
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        self.env
            .send(request, &self.address, &format!("{method} {path}"))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_refresh_at_two_thirds_of_their_ttl() {
        let lease = Lease::new(
            SecretValue::from("s.token"),
            Duration::from_secs(30),
            Refresh::Renew,
            vec!["reader".into()],
        );
        let refresh_in = lease.refresh_at.unwrap() - lease.obtained;
        let expires_in = lease.expires_at.unwrap() - lease.obtained;
        assert_eq!(refresh_in, Duration::from_secs(20));
        assert_eq!(expires_in, Duration::from_secs(30));
        assert!(!lease.due(lease.obtained + Duration::from_secs(19)));
        assert!(lease.due(lease.obtained + Duration::from_secs(20)));
        assert!(lease.expired(lease.obtained + Duration::from_secs(30)));
        assert!(lease.describe(None).contains("renewable; policies: reader"));
    }

    #[test]
    fn tokens_without_a_ttl_are_never_refreshed() {
        // A root token: lease_duration 0, not renewable.
        let lease = Lease::new(
            SecretValue::from("root"),
            Duration::ZERO,
            Refresh::Renew,
            Vec::new(),
        );
        assert_eq!(lease.refresh, Refresh::Never);
        assert!(lease.refresh_at.is_none() && lease.expires_at.is_none());
        let later = Instant::now() + Duration::from_secs(86_400 * 365);
        assert!(!lease.due(later) && !lease.expired(later));
        assert_eq!(lease.describe(None), "the token does not expire");
    }
}
