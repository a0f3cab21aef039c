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
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};
use zeroize::Zeroizing;

use super::net::{self, Transport};
use super::wire::{self, KvRead};
use crate::crypto::SecretValue;
use crate::metrics::{ProviderErrorLabels, ProviderLabels, ProviderMetrics};
use crate::store::Provider;

/// Largest provider answer read.
const MAX_RESPONSE: usize = 1 << 20;

/// A cached login token younger than this that is refused is not replaced
/// by a fresh login: the refusal is about its policy, and logging in again
/// for every admission would flood the server with leases.
const MIN_AGE_FOR_RELOGIN: Duration = Duration::from_secs(10);

/// What went wrong, for metrics (`kind` label) and for the API status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Timeout,
    Refused,
    Connect,
    Tls,
    ForbiddenAddress,
    Redirect,
    Sealed,
    Unavailable,
    PermissionDenied,
    NotFound,
    Deleted,
    Destroyed,
    MissingKey,
    Login,
    Renewal,
    Credential,
    Config,
    Server,
    Response,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Refused => "connection_refused",
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::ForbiddenAddress => "forbidden_address",
            FailureKind::Redirect => "redirect",
            FailureKind::Sealed => "sealed",
            FailureKind::Unavailable => "unavailable",
            FailureKind::PermissionDenied => "permission_denied",
            FailureKind::NotFound => "not_found",
            FailureKind::Deleted => "deleted",
            FailureKind::Destroyed => "destroyed",
            FailureKind::MissingKey => "missing_key",
            FailureKind::Login => "login",
            FailureKind::Renewal => "renewal",
            FailureKind::Credential => "credential",
            FailureKind::Config => "config",
            FailureKind::Server => "server",
            FailureKind::Response => "invalid_response",
        }
    }

    /// The server could not be reached or cannot serve right now, as
    /// opposed to refusing what was asked.
    fn is_outage(self) -> bool {
        matches!(
            self,
            FailureKind::Timeout
                | FailureKind::Refused
                | FailureKind::Connect
                | FailureKind::Tls
                | FailureKind::Sealed
                | FailureKind::Unavailable
        )
    }
}

impl From<Transport> for FailureKind {
    fn from(transport: Transport) -> Self {
        match transport {
            Transport::Timeout => FailureKind::Timeout,
            Transport::Refused => FailureKind::Refused,
            Transport::Tls => FailureKind::Tls,
            Transport::Address => FailureKind::ForbiddenAddress,
            Transport::Connect => FailureKind::Connect,
        }
    }
}

/// A failure with one provider. The message never holds a value or a
/// credential; the resolver prefixes it with the provider's name.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    fn reading(mut self, path: &str) -> Self {
        self.message = format!("reading {path}: {}", self.message);
        self
    }
}

/// Counts a failure of the provider labelled `labels`.
pub fn count_failure(metrics: &ProviderMetrics, labels: &ProviderLabels, kind: FailureKind) {
    metrics
        .errors
        .get_or_create(&ProviderErrorLabels {
            provider: labels.provider.clone(),
            kind: kind.as_str(),
        })
        .inc();
}

/// How a session proves who it is, with the credential already decrypted.
pub enum Credentials {
    /// A fixed token from a local secret.
    Token { token: SecretValue, secret: String },
    /// The pod's service account token, read from `jwt_path` at each login.
    Kubernetes {
        role: String,
        mount: String,
        jwt_path: String,
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

    fn describe(&self) -> String {
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
            format!("{ttl}; policies: {}", self.policies.join(", "))
        }
    }
}

/// An answer, read in full.
struct Reply {
    status: u16,
    body: Zeroizing<Vec<u8>>,
    location: Option<String>,
}

impl Reply {
    /// `": <server's error text>"`, or nothing.
    fn detail(&self, credentials: &[&str]) -> String {
        wire::error_text(&self.body)
            .map(|text| {
                // A server that echoed a credential back must not get it
                // into a message.
                let text = credentials
                    .iter()
                    .filter(|c| !c.is_empty())
                    .fold(text, |t, c| t.replace(c, "<redacted>"));
                format!(": {text}")
            })
            .unwrap_or_default()
    }
}

pub struct Session {
    name: String,
    labels: ProviderLabels,
    address: String,
    namespace: Option<String>,
    credentials: Credentials,
    http: reqwest::Client,
    timeout: Duration,
    metrics: ProviderMetrics,
    lease: Mutex<Option<Lease>>,
    /// One permit per request in flight; see [`net::MAX_IN_FLIGHT`].
    turns: Semaphore,
}

impl Session {
    /// A session for `provider`; `label` is its metrics label
    /// (`<organization>/<provider>`).
    pub fn new(
        label: String,
        provider: &Provider,
        credentials: Credentials,
        timeout: Duration,
        metrics: ProviderMetrics,
    ) -> Result<Self, Failure> {
        let labels = ProviderLabels { provider: label };
        let http = net::client(&provider.address, provider.ca_pem.as_deref(), timeout).map_err(
            |message| {
                count_failure(&metrics, &labels, FailureKind::Config);
                Failure {
                    kind: FailureKind::Config,
                    message,
                }
            },
        )?;
        Ok(Session {
            name: provider.name.clone(),
            labels,
            address: provider.address.trim_end_matches('/').to_owned(),
            namespace: provider.namespace.clone(),
            credentials,
            http,
            timeout,
            metrics,
            lease: Mutex::new(None),
            turns: Semaphore::new(net::MAX_IN_FLIGHT),
        })
    }

    /// The provider's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records a failure and returns it.
    pub fn fail(&self, kind: FailureKind, message: String) -> Failure {
        count_failure(&self.metrics, &self.labels, kind);
        Failure { kind, message }
    }

    /// Reads `path` and returns the requested `keys` of its value map.
    pub async fn read(
        &self,
        path: &str,
        keys: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, SecretValue>, Failure> {
        let mut token = self.token().await.map_err(|f| f.reading(path))?;
        let mut reply = self
            .call(Method::GET, path, Some(&token), None)
            .await
            .map_err(|f| f.reading(path))?;
        if reply.status == 403
            && self.credentials.can_log_in()
            && self.lookup(&token).await.ok() == Some(None)
            && self.forget(&token).await
        {
            // The cached token is no longer valid (revoked, or the server
            // lost its state): log in again, once.
            token = self.token().await.map_err(|f| f.reading(path))?;
            reply = self
                .call(Method::GET, path, Some(&token), None)
                .await
                .map_err(|f| f.reading(path))?;
        }
        match reply.status {
            200 | 404 => {
                let read = wire::read_kv(reply.status, &reply.body, keys).map_err(|e| {
                    self.fail(FailureKind::Response, format!("reading {path}: {e}"))
                })?;
                if let KvRead::Found { version, .. } = &read {
                    tracing::debug!(provider = %self.labels.provider, path, engine = ?version, "Read remote secret");
                }
                let values = self.values(path, read)?;
                // `auth/token/lookup-self` and the like answer with the
                // token itself; a remote secret must not hand the provider's
                // token to a pod.
                if values.values().any(|v| *v == token) {
                    return Err(self.fail(
                        FailureKind::Config,
                        format!(
                            "{path} answers with the provider's own token, which is never handed out; point the secret at a KV path"
                        ),
                    ));
                }
                Ok(values)
            }
            403 => Err(self.fail(
                FailureKind::PermissionDenied,
                format!(
                    "permission denied reading {path} ({})",
                    self.credentials.policy_hint()
                ),
            )),
            _ => Err(self.refused(&reply, &[]).reading(path)),
        }
    }

    fn values(&self, path: &str, read: KvRead) -> Result<BTreeMap<String, SecretValue>, Failure> {
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
                    format!("keys: {}", available.join(", "))
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
            KvRead::Missing { reason } => Err(self.fail(
                FailureKind::NotFound,
                format!(
                    "no value at {path} ({})",
                    reason.as_deref().unwrap_or("the path does not exist")
                ),
            )),
        }
    }

    /// Checks that the provider can be reached and its credentials work:
    /// a fresh login (kept as the session's token), or for a fixed token a
    /// lookup of that token.
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
                        "the token in local secret {secret:?} is valid; {}",
                        lease.describe()
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
                    "logged in with {} auth; {}",
                    self.credentials.method(),
                    lease.describe()
                );
                *self.lease.lock().await = Some(lease);
                Ok(message)
            }
        }
    }

    /// The token to send: the cached one, renewed or replaced when its
    /// refresh time has come. Concurrent callers wait for one login.
    async fn token(&self) -> Result<SecretValue, Failure> {
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
                        tracing::warn!(provider = %self.labels.provider, reason = %failure.message, "Token renewal failed");
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
        #[derive(Serialize)]
        struct KubernetesLogin<'a> {
            role: &'a str,
            jwt: &'a str,
        }
        #[derive(Serialize)]
        struct ApproleLogin<'a> {
            role_id: &'a str,
            secret_id: &'a str,
        }
        match &self.credentials {
            Credentials::Token { token, .. } => {
                // Ask the server how long the token lives and whether it
                // can be renewed. A token that may not look itself up is
                // used as it is, without renewal.
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
            Credentials::Kubernetes {
                role,
                mount,
                jwt_path,
            } => {
                let jwt =
                    Zeroizing::new(tokio::fs::read_to_string(jwt_path).await.map_err(|e| {
                        self.fail(
                            FailureKind::Credential,
                            format!("cannot read the service account token at {jwt_path}: {e}"),
                        )
                    })?);
                let jwt = jwt.trim();
                if jwt.is_empty() {
                    return Err(self.fail(
                        FailureKind::Credential,
                        format!("the service account token at {jwt_path} is empty"),
                    ));
                }
                let body = serde_json::to_vec(&KubernetesLogin { role, jwt })
                    .expect("a login body serializes");
                self.log_in_at(
                    mount,
                    body,
                    &[jwt],
                    &format!(
                        "check that kubernetes auth role {role:?} exists at auth/{mount} and binds this service account"
                    ),
                )
                .await
            }
            Credentials::Approle {
                role_id,
                secret_id,
                secret,
                mount,
            } => {
                let body = serde_json::to_vec(&ApproleLogin {
                    role_id,
                    secret_id: secret_id.expose(),
                })
                .expect("a login body serializes");
                self.log_in_at(
                    mount,
                    body,
                    &[secret_id.expose()],
                    &format!(
                        "check role_id, and the secret id in local secret {secret:?} (it may have expired or used up its uses)"
                    ),
                )
                .await
            }
        }
    }

    async fn log_in_at(
        &self,
        mount: &str,
        body: Vec<u8>,
        credentials: &[&str],
        hint: &str,
    ) -> Result<Lease, Failure> {
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
            .map_err(|f| Failure {
                message: format!("logging in with {method} auth: {}", f.message),
                ..f
            })?;
        match reply.status {
            200 => {
                let auth = wire::read_auth(&reply.body).map_err(|e| {
                    self.fail(
                        FailureKind::Response,
                        format!("logging in with {method} auth: {e}"),
                    )
                })?;
                self.metrics.logins.get_or_create(&self.labels).inc();
                let refresh = if auth.renewable {
                    Refresh::Renew
                } else {
                    Refresh::LogIn
                };
                tracing::info!(
                    provider = %self.labels.provider,
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
            400..=403 => Err(self.fail(
                FailureKind::Login,
                format!(
                    "{method} login at auth/{mount} was refused (HTTP {}{}); {hint}",
                    reply.status,
                    reply.detail(credentials)
                ),
            )),
            _ => {
                let failure = self.refused(&reply, credentials);
                Err(Failure {
                    message: format!("logging in with {method} auth: {}", failure.message),
                    ..failure
                })
            }
        }
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
                    format!(
                        "renewing the token was refused (HTTP {}{})",
                        reply.status,
                        reply.detail(&[])
                    ),
                )
            } else {
                self.refused(&reply, &[])
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
        self.metrics.renewals.get_or_create(&self.labels).inc();
        // Shorter than first granted: the max TTL caps it, and renewing
        // again would buy ever less. Log in afresh at the next refresh
        // instead (a fixed token is then used until it expires).
        let capped = ttl < lease.granted;
        let refresh = match (capped || !auth.renewable, self.credentials.can_log_in()) {
            (false, _) => Refresh::Renew,
            (true, true) => Refresh::LogIn,
            (true, false) => Refresh::Never,
        };
        tracing::debug!(provider = %self.labels.provider, ttl_s = auth.lease_duration, capped, "Renewed provider token");
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
        match reply.status {
            200 => wire::read_token_info(&reply.body).map(Some).map_err(|e| {
                self.fail(FailureKind::Response, format!("looking up the token: {e}"))
            }),
            403 => Ok(None),
            _ => {
                let failure = self.refused(&reply, &[]);
                Err(Failure {
                    message: format!("looking up the token: {}", failure.message),
                    ..failure
                })
            }
        }
    }

    /// A failure for an answer with an error status.
    fn refused(&self, reply: &Reply, credentials: &[&str]) -> Failure {
        let status = reply.status;
        let detail = reply.detail(credentials);
        match status {
            300..=399 => self.fail(
                FailureKind::Redirect,
                format!(
                    "the server redirected the request (HTTP {status}{}); set the provider's address to the server that answers, as redirects are not followed",
                    reply
                        .location
                        .as_deref()
                        .map(|l| format!(" to {l}"))
                        .unwrap_or_default()
                ),
            ),
            // 403 texts differ between versions; the status says enough.
            403 => self.fail(
                FailureKind::PermissionDenied,
                "permission denied (HTTP 403)".to_owned(),
            ),
            404 => self.fail(
                FailureKind::NotFound,
                format!("not found (HTTP 404{detail})"),
            ),
            429 => self.fail(
                FailureKind::Unavailable,
                format!("the server is limiting requests (HTTP 429{detail}); retry shortly"),
            ),
            503 if detail.to_ascii_lowercase().contains("sealed") => self.fail(
                FailureKind::Sealed,
                "server is sealed; unseal it, then retry".to_owned(),
            ),
            503 => self.fail(
                FailureKind::Unavailable,
                format!("server is unavailable (HTTP 503{detail})"),
            ),
            _ => self.fail(
                FailureKind::Server,
                format!("the server answered HTTP {status}{detail}"),
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
        let _turn = self
            .turns
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.metrics.requests.get_or_create(&self.labels).inc();
        let started = Instant::now();
        let result = self.exchange(request).await;
        let elapsed = started.elapsed();
        self.metrics
            .duration
            .get_or_create(&self.labels)
            .observe(elapsed.as_secs_f64());
        tracing::debug!(
            provider = %self.labels.provider,
            %method,
            path,
            status = result.as_ref().map_or(0, |r| r.status),
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "Provider request"
        );
        result
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Reply, Failure> {
        let transport = |error: reqwest::Error| {
            let (kind, message) = net::describe(&error, &self.address, self.timeout);
            self.fail(kind.into(), message)
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let expected = response
            .content_length()
            .unwrap_or(0)
            .min(MAX_RESPONSE as u64);
        let mut body = Zeroizing::new(Vec::with_capacity(expected as usize));
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(self.fail(
                    FailureKind::Response,
                    format!("the answer is larger than {} KiB", MAX_RESPONSE / 1024),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            body,
            location,
        })
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
        assert!(lease.describe().contains("renewable; policies: reader"));
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
        assert_eq!(lease.describe(), "the token does not expire");
    }

    #[test]
    fn server_texts_never_carry_a_credential() {
        let reply = Reply {
            status: 400,
            body: Zeroizing::new(br#"{"errors":["invalid secret id 35db0db2-4b63"]}"#.to_vec()),
            location: None,
        };
        assert_eq!(
            reply.detail(&["35db0db2-4b63"]),
            ": invalid secret id <redacted>"
        );
        assert_eq!(reply.detail(&[""]), ": invalid secret id 35db0db2-4b63");
    }
}
