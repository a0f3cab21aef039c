//! The seam between the resolver and the kinds of secret provider.
//!
//! A kind (Vault, AWS Secrets Manager) is one module that implements
//! [`Kind`]: it validates a provider's settings, checks a remote secret's
//! path and key, and builds a [`Session`] that logs in (and refreshes),
//! reads one path and checks the provider. `resolve::KINDS` is the one place
//! where kinds are registered; the API, the store and the resolver only
//! ever go through it. Adding a kind: a module beside `vault/` and `aws/`, a
//! line in `KINDS`, its docs, and its Terraform and console forms.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use tokio::sync::Semaphore;

pub use super::failure::{Failure, FailureKind, Invalid, count_failure};
use super::net::{self, NetPolicy};
use crate::crypto::SecretValue;
use crate::metrics::{ProviderLabels, ProviderMetrics};
use crate::store::Provider;

/// A provider's settings as its kind accepted them.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The settings to store, normalized (defaults filled in, blanks dropped).
    pub settings: Map<String, Value>,
    /// The local secret holding the credential, and the field that names
    /// it (e.g. `auth.token_secret`), when the auth method uses one.
    pub credential: Option<(String, &'static str)>,
    /// Whether only a platform admin may configure this: the provider logs
    /// in with the product's own identity, which every organization shares.
    pub admin_only: bool,
}

/// One kind of provider.
pub trait Kind: Send + Sync + 'static {
    /// Its `kind` in the API, e.g. `vault`.
    fn name(&self) -> &'static str;

    /// Checks and normalizes a provider's settings: the API body without
    /// `name` and `kind`. Never sees a credential's value, only the name of
    /// the local secret that holds it.
    fn validate(&self, settings: Map<String, Value>, net: &NetPolicy)
    -> Result<Validated, Invalid>;

    /// Checks a remote secret's `remote_path` and `remote_key` for this kind.
    fn check_reference(&self, path: &str, key: Option<&str>) -> Result<(), Invalid>;

    /// A session with `provider`, whose settings this kind validated;
    /// `credential` is the decrypted value of its credential secret, if any.
    fn session(
        &self,
        provider: &Provider,
        credential: Option<SecretValue>,
        env: SessionEnv,
    ) -> Result<Box<dyn Session>, Failure>;
}

/// What every session gets from the server.
pub struct SessionEnv {
    /// `<organization>/<provider>`, the metrics label.
    pub labels: ProviderLabels,
    pub metrics: ProviderMetrics,
    /// Bounds each request, connection included.
    pub timeout: Duration,
    pub net: NetPolicy,
    pub files: TokenFiles,
    /// One permit per request in flight; see [`net::MAX_IN_FLIGHT`].
    pub turns: Semaphore,
}

/// Largest answer read from a provider.
pub const MAX_RESPONSE: usize = 1 << 20;

/// A provider's answer, read in full. Its body is read to tell cases
/// apart, and never quoted: a server can echo what it was sent.
pub struct Reply {
    pub status: u16,
    /// The `Location` of a redirect, which is logged and never followed.
    pub location: Option<String>,
    pub body: Zeroizing<Vec<u8>>,
}

impl SessionEnv {
    /// Records a failure and returns it.
    pub fn fail(&self, kind: FailureKind, message: impl Into<String>) -> Failure {
        count_failure(&self.metrics, &self.labels, kind);
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// Sends one request to the provider at `address` when a turn is free,
    /// and reads its answer, at most [`MAX_RESPONSE`] bytes. `call` names
    /// the request in the log.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        address: &str,
        call: &str,
    ) -> Result<Reply, Failure> {
        let _turn = self
            .turns
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.metrics.requests.get_or_create(&self.labels).inc();
        let started = Instant::now();
        let result = self.exchange(request, address).await;
        let elapsed = started.elapsed();
        self.metrics
            .duration
            .get_or_create(&self.labels)
            .observe(elapsed.as_secs_f64());
        tracing::debug!(
            provider = %self.labels.provider,
            call,
            status = result.as_ref().map_or(0, |r| r.status),
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "Provider request"
        );
        result
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        address: &str,
    ) -> Result<Reply, Failure> {
        let transport = |error: reqwest::Error| {
            let (kind, message) = net::describe(&error, address, self.timeout);
            self.fail(kind, message)
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        if let Some(location) = &location {
            // Logged for the operator; not told to whoever asked.
            tracing::info!(provider = %self.labels.provider, status, location, "Provider redirected a request");
        }
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
            location,
            body,
        })
    }
}

/// The token files a provider may log in with: server flags, never
/// settings from the API, so that no API caller can make the product send
/// a file of its choosing.
#[derive(Debug, Clone)]
pub struct TokenFiles {
    /// The pod's service account token, for Vault's Kubernetes auth.
    pub service_account: PathBuf,
    /// The token for AWS STS `AssumeRoleWithWebIdentity`.
    pub web_identity: PathBuf,
}

impl Default for TokenFiles {
    fn default() -> Self {
        Self {
            service_account: "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
            web_identity: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token".into(),
        }
    }
}

/// Reads a token file afresh (the kubelet rotates it): the token, trimmed,
/// or why it cannot be used, naming the file and the flag that names it.
pub async fn read_token_file(
    path: &Path,
    what: &str,
    flag: &str,
) -> Result<Zeroizing<String>, String> {
    let shown = path.display();
    let text = Zeroizing::new(
        tokio::fs::read_to_string(path)
            .await
            .map_err(|e| format!("cannot read the {what} at {shown} ({flag}): {}", e.kind()))?,
    );
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the {what} at {shown} is empty"));
    }
    Ok(Zeroizing::new(token.to_owned()))
}

/// A logged-in connection to one provider. Sessions are cached per
/// provider and rebuilt when the provider or its credential changes.
pub trait Session: Send + Sync {
    /// The provider's name, for messages.
    fn name(&self) -> &str;

    /// How messages name the provider: `vault provider "vault-prod"`.
    fn label(&self) -> String;

    /// Logs in, or refreshes the login, when it is due; [`Session::read`]
    /// and [`Session::check`] call it themselves.
    fn log_in(&self) -> BoxFuture<'_, Result<(), Failure>>;

    /// Reads `path` and returns the requested `keys` of its value; the key
    /// `""` is the whole value.
    fn read<'a>(
        &'a self,
        path: &'a str,
        keys: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<BTreeMap<String, SecretValue>, Failure>>;

    /// Checks that the provider answers and accepts the credentials,
    /// reading no secret; returns what was checked.
    fn check(&self) -> BoxFuture<'_, Result<String, Failure>>;

    /// The version the provider holds at `path` now, from metadata that
    /// carries no value; `None` where the path keeps no versions (Vault KV
    /// v1) or no longer exists.
    fn current_version<'a>(
        &'a self,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Failure>>;

    /// Records a failure of this session and returns it.
    fn fail(&self, kind: FailureKind, message: String) -> Failure;
}

/// Whether `value` holds `credential`, as it is, JSON-escaped, or in
/// base64: a read must never hand a provider's own credential to a pod.
pub fn holds_credential(value: &str, credential: &str) -> bool {
    use base64::Engine;
    // A short credential (a dev server's "root") is only refused whole:
    // as a part it would match ordinary text.
    if credential.len() < 8 {
        return value == credential;
    }
    let json = serde_json::to_string(credential).expect("a string serializes");
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    value.contains(credential)
        || value.contains(&json[1..json.len() - 1])
        || engines
            .iter()
            .any(|e| value.contains(&e.encode(credential)))
}

/// Most names a message lists.
const MAX_NAMES: usize = 20;
/// Longest name a message shows whole.
const MAX_NAME_LEN: usize = 64;

/// Names a server sent (a secret's keys, a token's policies), as a message
/// may show them: at most 20, each cut at 64 characters, control
/// characters replaced, and none that holds one of `credentials` in any
/// encoding, since a server can put what it was sent into a name.
pub fn server_names(names: &[String], credentials: &[&SecretValue]) -> String {
    let mut shown = Vec::new();
    let mut left = 0;
    for name in names {
        let hides = credentials
            .iter()
            .any(|c| holds_credential(name, c.expose()));
        if hides || shown.len() == MAX_NAMES {
            left += 1;
            continue;
        }
        let mut clean: String = name
            .chars()
            .take(MAX_NAME_LEN)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        if name.chars().count() > MAX_NAME_LEN {
            clean.push('…');
        }
        shown.push(clean);
    }
    let text = shown.join(", ");
    match (left, text.is_empty()) {
        (0, _) => text,
        (_, true) => format!("{left} not shown"),
        (_, false) => format!("{text} and {left} more"),
    }
}

/// Wipes every string in a parsed answer before it is dropped.
pub fn scrub(value: &mut Value) {
    use zeroize::Zeroize;
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => map.values_mut().for_each(scrub),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Checks a provider's `ca_pem`: one or more PEM certificates.
pub fn check_ca_pem(pem: &str) -> Result<(), Invalid> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(()),
        _ => Err(Invalid::new(
            "ca_pem",
            "must hold one or more PEM certificates",
        )),
    }
}

/// Reads a kind's settings into its type, with an error that names the
/// field at fault (`auth.role`) and never repeats a value.
pub fn parse_settings<T: serde::de::DeserializeOwned>(
    settings: Map<String, Value>,
) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(Value::Object(settings)).map_err(|error| {
        let path = error.path().to_string();
        let text = crate::validate::without_value(&error.into_inner().to_string());
        let prefix = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
        // The path of an unknown field ends with its name, except inside a
        // tagged enum (`auth`), whose fields serde reads after the fact.
        if let Some(rest) = text.strip_prefix("unknown field `") {
            let name = rest.split('`').next().unwrap_or_default();
            let field = if path == "." {
                name.to_owned()
            } else if path == name || path.ends_with(&format!(".{name}")) {
                path
            } else {
                format!("{path}.{name}")
            };
            return Invalid::new(field, "unknown field");
        }
        if let Some(rest) = text.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or_default();
            return Invalid::new(format!("{prefix}{field}"), "is required");
        }
        if path == "." {
            Invalid::new("", text)
        } else {
            Invalid::new(path, text)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_hide_credentials_and_stay_short() {
        let token = SecretValue::from("hvs.AbCdEf0123456789");
        let names: Vec<String> = ["password", "hvs.AbCdEf0123456789", "user\u{1b}[31m"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            server_names(&names, &[&token]),
            "password, user?[31m and 1 more"
        );
        let many: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
        let shown = server_names(&many, &[]);
        assert!(
            shown.starts_with("k00, k01") && shown.ends_with("k19 and 5 more"),
            "{shown}"
        );
        let long = vec!["x".repeat(100)];
        assert_eq!(server_names(&long, &[]), format!("{}…", "x".repeat(64)));
        assert_eq!(
            server_names(&[token.expose().to_owned()], &[&token]),
            "1 not shown"
        );
    }

    #[test]
    fn a_credential_is_found_in_any_encoding() {
        let token = "s.0123456789abcdef\"x";
        assert!(holds_credential(&format!("prefix {token} suffix"), token));
        assert!(holds_credential(r#"{"t":"s.0123456789abcdef\"x"}"#, token));
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(token);
        assert!(holds_credential(&format!("token={b64}"), token));
        assert!(!holds_credential("s.0123456789abcdeg", token));
        assert!(holds_credential("root", "root"));
        assert!(!holds_credential("rooted", "root"), "short ones only whole");
        assert!(!holds_credential("", token));
    }
}
