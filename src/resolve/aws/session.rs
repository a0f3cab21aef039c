//! A session with one AWS Secrets Manager provider: its HTTP client, its
//! credentials (static, or assumed with a web identity token and cached
//! until shortly before they expire) and the three calls it makes:
//! `secretsmanager:GetSecretValue`, `sts:AssumeRoleWithWebIdentity` and
//! `sts:GetCallerIdentity`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::{Auth, Settings};
use crate::crypto::SecretValue;
use crate::resolve::net;
use crate::resolve::provider::{
    Failure, FailureKind, Reply, SessionEnv, holds_credential, read_token_file, scrub, server_names,
};

/// Assumed credentials are replaced this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// How long assumed credentials are kept when STS does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(900);
const STS_VERSION: &str = "2011-06-15";

/// Keys to sign one request with.
pub(super) struct Keys {
    access_key_id: String,
    secret: SecretValue,
    token: Option<SecretValue>,
}

/// Credentials assumed with the web identity token.
struct Assumed {
    keys: Keys,
    refresh_at: Instant,
}

pub struct Session {
    name: String,
    settings: Settings,
    secrets_manager: String,
    sts: String,
    /// The access key's secret, for static keys.
    secret_key: Option<SecretValue>,
    assumed: Mutex<Option<Assumed>>,
    http: reqwest::Client,
    env: SessionEnv,
}

impl Session {
    pub fn new(
        name: &str,
        settings: Settings,
        credential: Option<SecretValue>,
        env: SessionEnv,
    ) -> Result<Self, Failure> {
        let secrets_manager = net::check_url("endpoint", &settings.secrets_manager_url(), &env.net)
            .map_err(|invalid| env.fail(FailureKind::ForbiddenAddress, invalid.message))?;
        let sts = net::check_url("sts_endpoint", &settings.sts_url(), &env.net)
            .map_err(|invalid| env.fail(FailureKind::ForbiddenAddress, invalid.message))?;
        let secret_key = match (&settings.auth, credential) {
            (Auth::Static { .. }, Some(secret)) => Some(secret),
            (Auth::Static { .. }, None) => {
                return Err(env.fail(
                    FailureKind::Credential,
                    "its credential secret has no value",
                ));
            }
            (Auth::WebIdentity { .. }, _) => None,
        };
        let http = net::client(settings.ca_pem.as_deref(), env.timeout, &env.net)
            .map_err(|message| env.fail(FailureKind::Config, message))?;
        Ok(Session {
            name: name.to_owned(),
            settings,
            secrets_manager,
            sts,
            secret_key,
            assumed: Mutex::new(None),
            http,
            env,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fail(&self, kind: FailureKind, message: String) -> Failure {
        self.env.fail(kind, message)
    }

    /// The keys to sign with: the static ones, or assumed ones, assumed
    /// anew when they are about to expire.
    pub(super) async fn credentials(&self) -> Result<Keys, Failure> {
        match &self.settings.auth {
            Auth::Static { access_key_id, .. } => Ok(Keys {
                access_key_id: access_key_id.clone(),
                secret: self.secret_key.clone().expect("static keys have a secret"),
                token: None,
            }),
            Auth::WebIdentity { role_arn } => {
                let mut slot = self.assumed.lock().await;
                if let Some(assumed) = slot.as_ref()
                    && Instant::now() < assumed.refresh_at
                {
                    return Ok(assumed.keys.clone_keys());
                }
                let assumed = self.assume(role_arn).await?;
                let keys = assumed.keys.clone_keys();
                *slot = Some(assumed);
                Ok(keys)
            }
        }
    }

    /// Forgets assumed credentials that the server refused.
    async fn forget(&self) {
        *self.assumed.lock().await = None;
    }

    /// `sts:AssumeRoleWithWebIdentity` with the token file of the server's
    /// `--web-identity-token-file`, read at each call as it is rotated.
    async fn assume(&self, role_arn: &str) -> Result<Assumed, Failure> {
        let token = read_token_file(
            &self.env.files.web_identity,
            "web identity token",
            "--web-identity-token-file",
        )
        .await
        .map_err(|message| self.fail(FailureKind::Credential, message))?;
        let form = assume_role_form(role_arn, &token);
        let request = self
            .http
            .post(&self.sts)
            .header(
                CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(form.as_bytes().to_vec());
        let reply = self
            .send(request, &self.sts, "sts.AssumeRoleWithWebIdentity")
            .await?;
        if reply.status != 200 {
            return Err(self.sts_refused(&reply, &format!("assuming role {role_arn}")));
        }
        let (keys, lifetime) = self.assumed_keys(&reply)?;
        self.env
            .metrics
            .logins
            .get_or_create(&self.env.labels)
            .inc();
        tracing::info!(provider = %self.env.labels.provider, role = role_arn, valid_s = lifetime.as_secs(), "Assumed role with web identity");
        Ok(Assumed {
            keys,
            refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
        })
    }

    /// The keys of STS's answer to `AssumeRoleWithWebIdentity`, and how
    /// long they are valid. An answer without them is not STS's.
    fn assumed_keys(&self, reply: &Reply) -> Result<(Keys, Duration), Failure> {
        let xml = std::str::from_utf8(&reply.body).unwrap_or_default();
        let field = |name: &str| tag(xml, name).map(unescape);
        let (Some(access_key_id), Some(secret), Some(session_token)) = (
            field("AccessKeyId"),
            field("SecretAccessKey"),
            field("SessionToken"),
        ) else {
            return Err(self.fail(FailureKind::Unreachable, net::unreachable(&self.sts)));
        };
        let keys = Keys {
            access_key_id,
            secret: SecretValue::new(secret),
            token: Some(SecretValue::new(session_token)),
        };
        Ok((keys, lifetime(field("Expiration").as_deref())))
    }

    /// Reads secret `path` (a name or an ARN) at `AWSCURRENT` and returns
    /// the requested `keys` of its JSON value; the key `""` is the whole
    /// string.
    pub async fn read(
        &self,
        path: &str,
        keys: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, SecretValue>, Failure> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct GetSecretValue<'a> {
            secret_id: &'a str,
            version_stage: &'a str,
        }
        let body = serde_json::to_vec(&GetSecretValue {
            secret_id: path,
            version_stage: "AWSCURRENT",
        })
        .expect("a request serializes");
        let mut reply = self
            .get_secret_value(&body)
            .await
            .map_err(|f| f.reading(path))?;
        if reply.status != 200 && self.is_expired(&reply) {
            // Assumed credentials can be revoked or expire early: assume
            // the role again, once.
            self.forget().await;
            reply = self
                .get_secret_value(&body)
                .await
                .map_err(|f| f.reading(path))?;
        }
        if reply.status != 200 {
            return Err(self.refused(&reply, path));
        }
        let signing = self.credentials().await?;
        let credentials: Vec<&SecretValue> = std::iter::once(&signing.secret)
            .chain(&signing.token)
            .collect();
        let values = self.values(path, &reply, keys, &credentials)?;
        let leaks = values.values().any(|value| {
            credentials
                .iter()
                .any(|c| holds_credential(value.expose(), c.expose()))
        });
        if leaks {
            return Err(self.fail(
                FailureKind::Config,
                format!("secret {path:?} holds the provider's own credentials, which are never handed out"),
            ));
        }
        tracing::debug!(provider = %self.env.labels.provider, path, "Read remote secret");
        Ok(values)
    }

    /// The id of the version staged `AWSCURRENT`, from `DescribeSecret`,
    /// which answers metadata and never the value. `None` when the secret
    /// is gone or has no current version.
    pub async fn current_version(&self, path: &str) -> Result<Option<String>, Failure> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct DescribeSecret<'a> {
            secret_id: &'a str,
        }
        let body =
            serde_json::to_vec(&DescribeSecret { secret_id: path }).expect("a request serializes");
        let reply = self
            .secrets_manager("secretsmanager.DescribeSecret", &body)
            .await
            .map_err(|f| f.reading(path))?;
        if reply.status != 200 {
            return match error_code(&reply).as_deref() {
                Some("ResourceNotFoundException") => Ok(None),
                Some("AccessDeniedException") => Err(self.fail(
                    FailureKind::PermissionDenied,
                    format!(
                        "access denied describing {path:?}: rotation detection needs secretsmanager:DescribeSecret on it"
                    ),
                )),
                _ => Err(self.refused(&reply, path)),
            };
        }
        Ok(current_version_id(&reply.body))
    }

    async fn get_secret_value(&self, body: &[u8]) -> Result<Reply, Failure> {
        self.secrets_manager("secretsmanager.GetSecretValue", body)
            .await
    }

    /// One signed Secrets Manager call, `target` naming the action.
    async fn secrets_manager(&self, target: &str, body: &[u8]) -> Result<Reply, Failure> {
        let keys = self.credentials().await?;
        self.signed(
            &self.secrets_manager,
            "secretsmanager",
            "application/x-amz-json-1.1",
            Some(target),
            body,
            &keys,
        )
        .await
    }

    fn values(
        &self,
        path: &str,
        reply: &Reply,
        keys: &BTreeSet<String>,
        credentials: &[&SecretValue],
    ) -> Result<BTreeMap<String, SecretValue>, Failure> {
        let text = self.current_text(path, reply)?;
        let mut values = BTreeMap::new();
        let named: Vec<&String> = keys.iter().filter(|k| !k.is_empty()).collect();
        if keys.contains("") {
            values.insert(String::new(), text.clone());
        }
        if named.is_empty() {
            return Ok(values);
        }
        self.json_values(path, &text, named, &mut values, credentials)?;
        Ok(values)
    }

    /// The secret's current value as text, from a `GetSecretValue` answer:
    /// its string, or its binary when that is UTF-8.
    fn current_text(&self, path: &str, reply: &Reply) -> Result<SecretValue, Failure> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            secret_string: Option<SecretValue>,
            secret_binary: Option<SecretValue>,
        }
        let answer: Answer = serde_json::from_slice(&reply.body).map_err(|_| {
            self.fail(
                FailureKind::Unreachable,
                net::unreachable(&self.secrets_manager),
            )
        })?;
        match (answer.secret_string, answer.secret_binary) {
            (Some(text), _) => Ok(text),
            (None, Some(binary)) => {
                use base64::Engine;
                let bytes = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(binary.expose())
                        .unwrap_or_default(),
                );
                match std::str::from_utf8(&bytes) {
                    Ok(text) => Ok(SecretValue::from(text)),
                    Err(_) => Err(self.fail(
                        FailureKind::Config,
                        format!("secret {path:?} is binary and not text, which an environment variable cannot hold"),
                    )),
                }
            }
            (None, None) => Err(self.fail(
                FailureKind::NotFound,
                format!("secret {path:?} has no current value"),
            )),
        }
    }

    /// Adds the `named` keys of the JSON object `text` to `values`; a key
    /// that is missing or null is an error. The parsed text is wiped.
    fn json_values(
        &self,
        path: &str,
        text: &SecretValue,
        named: Vec<&String>,
        values: &mut BTreeMap<String, SecretValue>,
        credentials: &[&SecretValue],
    ) -> Result<(), Failure> {
        let mut parsed = match serde_json::from_str::<Value>(text.expose()) {
            Ok(parsed @ Value::Object(_)) => parsed,
            Ok(mut other) => {
                scrub(&mut other);
                return Err(self.plain(path));
            }
            Err(_) => return Err(self.plain(path)),
        };
        let map = parsed.as_object().expect("checked above");
        let mut missing = Vec::new();
        for key in named {
            match map.get(key) {
                Some(Value::String(text)) => {
                    values.insert(key.clone(), SecretValue::new(text.clone()));
                }
                Some(Value::Null) | None => missing.push(format!("{key:?}")),
                Some(other) => {
                    values.insert(key.clone(), SecretValue::new(other.to_string()));
                }
            }
        }
        let available: Vec<String> = map.keys().cloned().collect();
        scrub(&mut parsed);
        if missing.is_empty() {
            return Ok(());
        }
        Err(self.missing_keys(path, &missing, &available, credentials))
    }

    /// The failure for keys `missing` (quoted) from secret `path`, which
    /// has the keys `available`.
    fn missing_keys(
        &self,
        path: &str,
        missing: &[String],
        available: &[String],
        credentials: &[&SecretValue],
    ) -> Failure {
        let noun = if missing.len() == 1 { "key" } else { "keys" };
        let present = if available.is_empty() {
            "it has no keys".to_owned()
        } else {
            format!("keys: {}", server_names(available, credentials))
        };
        self.fail(
            FailureKind::MissingKey,
            format!(
                "{noun} {} not found in secret {path:?} ({present})",
                missing.join(", ")
            ),
        )
    }

    fn plain(&self, path: &str) -> Failure {
        self.fail(
            FailureKind::MissingKey,
            format!(
                "secret {path:?} holds a plain string, not a JSON object; leave remote_key out to take it whole"
            ),
        )
    }

    /// Checks the endpoint and the credentials with
    /// `sts:GetCallerIdentity`, which needs no permission.
    pub async fn check(&self) -> Result<String, Failure> {
        let keys = self.credentials().await?;
        let body = format!("Action=GetCallerIdentity&Version={STS_VERSION}");
        let reply = self
            .signed(
                &self.sts,
                "sts",
                "application/x-www-form-urlencoded; charset=utf-8",
                None,
                body.as_bytes(),
                &keys,
            )
            .await?;
        if reply.status != 200 {
            return Err(self.sts_refused(&reply, "checking the credentials"));
        }
        // Only STS answers with the caller's ARN; any other 200 is some
        // other server, not told apart from none.
        let xml = std::str::from_utf8(&reply.body).unwrap_or_default();
        if !xml.contains("<GetCallerIdentityResult>") || tag(xml, "Arn").is_none() {
            return Err(self.fail(FailureKind::Unreachable, net::unreachable(&self.sts)));
        }
        match &self.settings.auth {
            Auth::Static { access_key_id, .. } => {
                Ok(format!("reachable; access key {access_key_id} is accepted"))
            }
            Auth::WebIdentity { role_arn } => Ok(format!(
                "reachable; assumed role {role_arn} with the web identity token"
            )),
        }
    }

    /// Whether an answer says the signing credentials expired or are
    /// unknown, for assumed credentials (which can be assumed again).
    fn is_expired(&self, reply: &Reply) -> bool {
        matches!(self.settings.auth, Auth::WebIdentity { .. })
            && matches!(
                error_code(reply).as_deref(),
                Some("ExpiredTokenException" | "UnrecognizedClientException")
            )
    }

    /// A failure for an error answer of Secrets Manager, in the product's
    /// own words: what the error code means, never the server's message.
    fn refused(&self, reply: &Reply, path: &str) -> Failure {
        // An answer without an AWS error code is not told apart from no
        // answer at all: a check must not map what listens where.
        let Some(code) = error_code(reply) else {
            return self
                .fail(
                    FailureKind::Unreachable,
                    net::unreachable(&self.secrets_manager),
                )
                .reading(path);
        };
        let (kind, message) = self.meaning(&code, reply);
        self.fail(kind, format!("reading {path}: {message}"))
    }

    /// What the Secrets Manager error `code` of `reply` means, and what to
    /// do about it.
    fn meaning(&self, code: &str, reply: &Reply) -> (FailureKind, String) {
        let region = &self.settings.region;
        match code {
            "ResourceNotFoundException" => (
                FailureKind::NotFound,
                format!("no such secret in {region}, or it has no current version"),
            ),
            "InvalidRequestException"
                if mentions(reply, "deletion") || mentions(reply, "deleted") =>
            {
                (
                    FailureKind::Deleted,
                    "the secret is marked for deletion; restore it, or repoint the secret"
                        .to_owned(),
                )
            }
            "AccessDeniedException" => (
                FailureKind::PermissionDenied,
                format!(
                    "access denied (check that {} allows secretsmanager:GetSecretValue on it)",
                    self.identity()
                ),
            ),
            "DecryptionFailure" => (
                FailureKind::PermissionDenied,
                format!(
                    "the secret cannot be decrypted (check that {} may use its KMS key)",
                    self.identity()
                ),
            ),
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "ExpiredTokenException"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch" => (
                FailureKind::Login,
                format!(
                    "the credentials were refused ({code}); {}",
                    self.credential_hint()
                ),
            ),
            "ThrottlingException" | "LimitExceededException" => (
                FailureKind::Unavailable,
                "the server is limiting requests; retry shortly".to_owned(),
            ),
            "InternalServiceError" | "InternalFailure" | "ServiceUnavailable" => (
                FailureKind::Server,
                format!("the server failed ({code}); retry shortly"),
            ),
            "InvalidRequestException" | "InvalidParameterException" => (
                FailureKind::Config,
                format!("the request was refused as invalid ({code}); check remote_path"),
            ),
            _ => (
                FailureKind::Server,
                format!("the server answered HTTP {}", reply.status),
            ),
        }
    }

    /// A failure for an error answer of STS.
    fn sts_refused(&self, reply: &Reply, doing: &str) -> Failure {
        let xml = std::str::from_utf8(&reply.body).unwrap_or_default();
        let Some(code) = tag(xml, "Code").map(unescape) else {
            return self.fail(FailureKind::Unreachable, net::unreachable(&self.sts));
        };
        let known = [
            "AccessDenied",
            "InvalidIdentityToken",
            "ExpiredTokenException",
            "IDPRejectedClaim",
            "IDPCommunicationError",
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
            "RegionDisabledException",
            "MalformedPolicyDocument",
        ];
        let code = if known.contains(&code.as_str()) {
            code
        } else {
            format!("HTTP {}", reply.status)
        };
        self.fail(
            FailureKind::Login,
            format!("{doing}: STS refused ({code}); {}", self.credential_hint()),
        )
    }

    fn identity(&self) -> String {
        match &self.settings.auth {
            Auth::Static { access_key_id, .. } => {
                format!("the IAM policy of access key {access_key_id}")
            }
            Auth::WebIdentity { role_arn } => format!("the policy of role {role_arn}"),
        }
    }

    fn credential_hint(&self) -> String {
        match &self.settings.auth {
            Auth::Static {
                access_key_id,
                secret_access_key_secret,
            } => format!(
                "check access key {access_key_id} and the secret key in local secret {secret_access_key_secret:?}"
            ),
            Auth::WebIdentity { role_arn } => format!(
                "check that role {role_arn} trusts the cluster's OIDC provider for this service account"
            ),
        }
    }

    /// One request signed with SigV4 for `service`.
    async fn signed(
        &self,
        url: &str,
        service: &str,
        content_type: &str,
        target: Option<&str>,
        body: &[u8],
        keys: &Keys,
    ) -> Result<Reply, Failure> {
        let mut headers = vec![("content-type", content_type)];
        if let Some(target) = target {
            headers.push(("x-amz-target", target));
        }
        let identity = aws_credential_types::Credentials::new(
            keys.access_key_id.clone(),
            keys.secret.expose().to_owned(),
            keys.token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "agyn-secrets",
        )
        .into();
        let settings = SigningSettings::default();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.settings.region)
            .name(service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| self.fail(FailureKind::Config, format!("cannot sign the request: {e}")))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            format!("{url}/"),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| self.fail(FailureKind::Config, format!("cannot sign the request: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| self.fail(FailureKind::Config, format!("cannot sign the request: {e}")))?
            .into_parts();
        let mut request = self.http.post(format!("{url}/")).body(body.to_vec());
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                self.fail(
                    FailureKind::Credential,
                    "the credentials hold characters that cannot be sent in an HTTP header".into(),
                )
            })?;
            value.set_sensitive(true);
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| self.fail(FailureKind::Config, "cannot sign the request".into()))?;
            request = request.header(name, value);
        }
        let call = target.unwrap_or("sts.GetCallerIdentity");
        self.send(request, url, call).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        call: &str,
    ) -> Result<Reply, Failure> {
        let reply = self.env.send(request, url, call).await?;
        if (300..400).contains(&reply.status) {
            // AWS does not redirect these calls: whatever did is not AWS.
            return Err(self.fail(FailureKind::Unreachable, net::unreachable(url)));
        }
        Ok(reply)
    }
}

impl Keys {
    fn clone_keys(&self) -> Keys {
        Keys {
            access_key_id: self.access_key_id.clone(),
            secret: self.secret.clone(),
            token: self.token.clone(),
        }
    }
}

/// The form of `sts:AssumeRoleWithWebIdentity` for `role_arn` with the web
/// identity `token`, wiped when dropped.
fn assume_role_form(role_arn: &str, token: &str) -> Zeroizing<String> {
    Zeroizing::new(
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", STS_VERSION)
            .append_pair("RoleArn", role_arn)
            .append_pair("RoleSessionName", "agyn-secrets")
            .append_pair("WebIdentityToken", token)
            .finish(),
    )
}

/// How long assumed credentials that expire at `expiration` (RFC 3339)
/// are valid from now; [`DEFAULT_LIFETIME`] when STS does not say.
fn lifetime(expiration: Option<&str>) -> Duration {
    expiration
        .and_then(|at| {
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|at| {
            let left = at - time::OffsetDateTime::now_utc();
            Duration::try_from(left).unwrap_or_default()
        })
        .unwrap_or(DEFAULT_LIFETIME)
}

/// The error code of a JSON error answer (`__type`, without its namespace).
/// The version id staged `AWSCURRENT` in a `DescribeSecret` answer.
fn current_version_id(body: &[u8]) -> Option<String> {
    let parsed: serde_json::Value = serde_json::from_slice(body).ok()?;
    parsed["VersionIdsToStages"]
        .as_object()?
        .iter()
        .find(|(_, stages)| {
            stages
                .as_array()
                .is_some_and(|s| s.iter().any(|stage| stage == "AWSCURRENT"))
        })
        .map(|(id, _)| id.clone())
}

fn error_code(reply: &Reply) -> Option<String> {
    #[derive(Deserialize)]
    struct Error {
        #[serde(rename = "__type")]
        kind: String,
    }
    let error: Error = serde_json::from_slice(&reply.body).ok()?;
    let code = error.kind.rsplit('#').next().unwrap_or_default();
    (!code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric())).then(|| code.to_owned())
}

/// Whether a JSON error answer's message mentions `word`.
fn mentions(reply: &Reply, word: &str) -> bool {
    serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(Value::as_str)
                .map(|m| m.to_ascii_lowercase().contains(word))
        })
        .unwrap_or(false)
}

/// The text of the first `<name>…</name>` element of an XML document.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml[start..end].trim())
}

/// XML's five predefined entities.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_answers_are_read() {
        let xml = r#"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>
            <Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId>
            <SecretAccessKey>wJalr&amp;XUtn</SecretAccessKey><SessionToken>FQoG</SessionToken>
            <Expiration>2026-12-06T12:00:00Z</Expiration></Credentials>
            </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"#;
        assert_eq!(tag(xml, "AccessKeyId"), Some("ASIAEXAMPLE"));
        assert_eq!(
            tag(xml, "SecretAccessKey").map(unescape).as_deref(),
            Some("wJalr&XUtn")
        );
        assert_eq!(tag(xml, "Nope"), None);
    }

    #[test]
    fn the_current_version_is_the_one_staged_awscurrent() {
        let body = br#"{"Name":"db","VersionIdsToStages":{"a1":["AWSPREVIOUS"],"b2":["AWSCURRENT","AWSPENDING"]}}"#;
        assert_eq!(current_version_id(body).as_deref(), Some("b2"));
        assert_eq!(current_version_id(br#"{"Name":"db"}"#), None);
    }

    #[test]
    fn error_codes_are_identifiers_only() {
        let reply = |body: &str| Reply {
            status: 400,
            location: None,
            body: Zeroizing::new(body.as_bytes().to_vec()),
        };
        assert_eq!(
            error_code(&reply(
                r#"{"__type":"com.amazonaws#ResourceNotFoundException","message":"x"}"#
            ))
            .as_deref(),
            Some("ResourceNotFoundException")
        );
        assert_eq!(error_code(&reply(r#"{"__type":"token s.abc"}"#)), None);
        assert!(mentions(
            &reply(r#"{"__type":"InvalidRequestException","message":"marked for deletion"}"#),
            "deletion"
        ));
    }
}
