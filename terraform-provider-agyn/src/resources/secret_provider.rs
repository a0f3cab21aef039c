//! `agyn_secret_provider`: a system that remote secrets are read from, of
//! one kind: HashiCorp Vault or OpenBao (`vault`), or AWS Secrets Manager
//! (`aws-secrets-manager`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::{
    Scoped, changed, check_name, created, delete_scoped, import_scoped, organization_moved,
    read_scoped, scoped_path, updated,
};
use crate::client::{Shared, attribute_path};
use crate::diagnostics::Report;
use crate::schema::{
    Computed, Optional, OptionalComputed, Required, block, deprecated, schema, string,
    with_single_block,
};
use crate::values::{given, keep_if_same, known, nullable, text};

pub const VAULT: &str = "vault";
pub const AWS_SECRETS_MANAGER: &str = "aws-secrets-manager";
/// The kind of a provider whose configuration names none, as in
/// configurations written when Vault was the only kind.
pub const DEFAULT_KIND: &str = VAULT;
pub const DEFAULT_KUBERNETES_MOUNT: &str = "kubernetes";
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";
/// Where Vault's Kubernetes auth read the service account token while
/// `jwt_path` was a provider setting, and where the server still reads it
/// by default.
pub const OLD_DEFAULT_JWT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The server flag that names the service account token file now.
const TOKEN_FILE_FLAG: &str = "--service-account-token-file";

/// A kind of provider: the settings beside `auth` that it requires and
/// allows, and its auth methods.
struct KindRules {
    name: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
    methods: &'static [MethodRules],
}

/// An auth method: the `auth` fields it requires and allows.
struct MethodRules {
    name: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
}

/// What the API accepts, per kind and method. The API checks again; these
/// rules turn its refusals into errors at plan time.
static KINDS: [KindRules; 2] = [
    KindRules {
        name: VAULT,
        required: &["address"],
        optional: &["namespace", "ca_pem"],
        methods: &[
            MethodRules {
                name: "token",
                required: &["token_secret"],
                optional: &[],
            },
            MethodRules {
                name: "kubernetes",
                required: &["role"],
                optional: &["mount", "jwt_path"],
            },
            MethodRules {
                name: "approle",
                required: &["role_id", "secret_id_secret"],
                optional: &["mount"],
            },
        ],
    },
    KindRules {
        name: AWS_SECRETS_MANAGER,
        required: &["region"],
        optional: &["endpoint", "sts_endpoint", "ca_pem"],
        methods: &[
            MethodRules {
                name: "static",
                required: &["access_key_id", "secret_access_key_secret"],
                optional: &[],
            },
            MethodRules {
                name: "web-identity",
                required: &["role_arn"],
                optional: &[],
            },
        ],
    },
];

/// The settings beside `auth`, of every kind.
const SETTINGS: [&str; 6] = [
    "address",
    "namespace",
    "ca_pem",
    "region",
    "endpoint",
    "sts_endpoint",
];

/// The `auth` fields besides `method`, of every method.
const AUTH_FIELDS: [&str; 9] = [
    "token_secret",
    "role",
    "mount",
    "jwt_path",
    "role_id",
    "secret_id_secret",
    "access_key_id",
    "secret_access_key_secret",
    "role_arn",
];

fn kind_rules(name: &str) -> Option<&'static KindRules> {
    KINDS.iter().find(|k| k.name == name)
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
fn one_of<'a>(names: impl IntoIterator<Item = &'a str>, quote: bool) -> String {
    let names: Vec<String> = names
        .into_iter()
        .map(|n| {
            if quote {
                format!("{n:?}")
            } else {
                n.to_owned()
            }
        })
        .collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

impl KindRules {
    fn method(&self, name: &str) -> Option<&'static MethodRules> {
        self.methods.iter().find(|m| m.name == name)
    }

    fn allows(&self, setting: &str) -> bool {
        self.required.contains(&setting) || self.optional.contains(&setting)
    }

    /// The settings the API takes for this kind, in a stable order.
    fn settings(&self) -> impl Iterator<Item = &'static str> {
        self.required.iter().chain(self.optional).copied()
    }

    fn method_names(&self) -> String {
        one_of(self.methods.iter().map(|m| m.name), false)
    }
}

impl MethodRules {
    fn allows(&self, field: &str) -> bool {
        self.required.contains(&field) || self.optional.contains(&field)
    }
}

/// The `auth` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Auth {
    pub method: Value<String>,
    pub token_secret: Value<String>,
    pub role: Value<String>,
    pub mount: Value<String>,
    /// Deprecated: never sent. Kept so that configurations and states
    /// written before the server flag named the token file still load.
    pub jwt_path: Value<String>,
    pub role_id: Value<String>,
    pub secret_id_secret: Value<String>,
    pub access_key_id: Value<String>,
    pub secret_access_key_secret: Value<String>,
    pub role_arn: Value<String>,
}

impl Auth {
    fn field(&self, name: &str) -> &Value<String> {
        match name {
            "token_secret" => &self.token_secret,
            "role" => &self.role,
            "mount" => &self.mount,
            "jwt_path" => &self.jwt_path,
            "role_id" => &self.role_id,
            "secret_id_secret" => &self.secret_id_secret,
            "access_key_id" => &self.access_key_id,
            "secret_access_key_secret" => &self.secret_access_key_secret,
            _ => &self.role_arn,
        }
    }

    /// The block as it will be stored: the configuration, with the API's
    /// default mount for Kubernetes and AppRole auth.
    fn planned(&self) -> Auth {
        let mut auth = self.clone();
        if auth.mount.is_null() {
            auth.mount = match text(&self.method) {
                Some("kubernetes") => known(DEFAULT_KUBERNETES_MOUNT),
                Some("approle") => known(DEFAULT_APPROLE_MOUNT),
                Some(_) => Value::Null,
                // The method is not known yet, nor therefore the default.
                None => Value::Unknown,
            };
        }
        auth
    }

    /// The API's `auth` object: the method and the fields it takes, never
    /// `jwt_path`.
    fn to_json(&self, kind: &KindRules) -> Option<Json> {
        let method = kind.method(text(&self.method)?)?;
        let mut object = Map::new();
        object.insert("method".into(), json!(method.name));
        for field in AUTH_FIELDS {
            if field != "jwt_path"
                && method.allows(field)
                && let Some(value) = text(self.field(field))
            {
                object.insert(field.into(), json!(value));
            }
        }
        Some(Json::Object(object))
    }

    /// The block without what is never sent, to tell whether the API's
    /// settings change.
    fn sent(&self) -> Auth {
        Auth {
            jwt_path: Value::Null,
            ..self.clone()
        }
    }
}

/// The `auth` setting of either kind, every method's fields optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct AuthView {
    method: String,
    token_secret: Option<String>,
    role: Option<String>,
    mount: Option<String>,
    role_id: Option<String>,
    secret_id_secret: Option<String>,
    access_key_id: Option<String>,
    secret_access_key_secret: Option<String>,
    role_arn: Option<String>,
}

impl AuthView {
    /// The block for this answer; `jwt_path` is Terraform's alone.
    fn into_auth(self, jwt_path: Value<String>) -> Auth {
        Auth {
            method: known(self.method),
            token_secret: nullable(self.token_secret),
            role: nullable(self.role),
            mount: nullable(self.mount),
            jwt_path,
            role_id: nullable(self.role_id),
            secret_id_secret: nullable(self.secret_id_secret),
            access_key_id: nullable(self.access_key_id),
            secret_access_key_secret: nullable(self.secret_access_key_secret),
            role_arn: nullable(self.role_arn),
        }
    }
}

/// A provider as the API shows it: the common fields and its kind's
/// settings beside them.
pub use agyn_api::Provider as ProviderView;

/// A string setting of the provider's kind, when set.
fn setting(view: &ProviderView, name: &str) -> Option<String> {
    view.settings
        .get(name)
        .and_then(Json::as_str)
        .map(str::to_owned)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderState {
    pub id: Value<String>,
    pub organization_id: Value<String>,
    pub name: Value<String>,
    pub kind: Value<String>,
    pub address: Value<String>,
    pub namespace: Value<String>,
    pub ca_pem: Value<String>,
    pub region: Value<String>,
    pub endpoint: Value<String>,
    pub sts_endpoint: Value<String>,
    pub auth: Value<Auth>,
    pub created_at: Value<String>,
    pub updated_at: Value<String>,
}

/// The API drops a trailing `/` from URLs.
fn same_url(configured: &str, answered: &str) -> bool {
    configured.trim_end_matches('/') == answered
}

/// An answered URL, in the configured spelling when it is the same URL.
fn url_in_state(current: &Value<String>, answered: Option<String>) -> Value<String> {
    answered.map_or(Value::Null, |url| keep_if_same(current, url, same_url))
}

/// What is wrong with a configuration: errors and warnings, each with the
/// attribute it is about (`region`, `auth.role`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    pub errors: Vec<(String, String)>,
    pub warnings: Vec<(String, String)>,
}

impl Findings {
    fn error(&mut self, attribute: impl Into<String>, message: impl Into<String>) {
        self.errors.push((attribute.into(), message.into()));
    }

    /// The attributes of the errors, for tests.
    #[cfg(test)]
    fn error_attributes(&self) -> Vec<&str> {
        self.errors.iter().map(|(a, _)| a.as_str()).collect()
    }
}

/// What every `jwt_path` warning explains.
fn jwt_path_note() -> String {
    format!(
        "agyn-secrets no longer takes a token file per provider: Vault's Kubernetes auth reads the service account token from the file that the server's {TOKEN_FILE_FLAG} flag (AGYN_SERVICE_ACCOUNT_TOKEN_FILE) names, by default {OLD_DEFAULT_JWT_PATH}, and this provider never sends jwt_path to the API."
    )
}

impl ProviderState {
    fn setting(&self, name: &str) -> &Value<String> {
        match name {
            "address" => &self.address,
            "namespace" => &self.namespace,
            "ca_pem" => &self.ca_pem,
            "region" => &self.region,
            "endpoint" => &self.endpoint,
            _ => &self.sts_endpoint,
        }
    }

    /// The kind, with the default for a configuration that names none;
    /// `None` while it is not known.
    fn kind_name(&self) -> Option<&str> {
        match &self.kind {
            Value::Null => Some(DEFAULT_KIND),
            other => text(other),
        }
    }

    /// Checks a configuration against the rules of its kind and method.
    /// What is not known yet is not judged.
    pub fn findings(&self) -> Findings {
        let mut found = Findings::default();
        let kind = match self.kind_name() {
            Some(name) => match kind_rules(name) {
                Some(kind) => Some(kind),
                None => {
                    found.error(
                        "kind",
                        format!(
                            "kind {name:?} is not supported: use {}",
                            one_of(KINDS.iter().map(|k| k.name), true)
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        for setting in SETTINGS {
            let value = self.setting(setting);
            if let Some(kind) = kind {
                if kind.required.contains(&setting) && !given(value) {
                    found.error(
                        setting,
                        format!("{setting} is required for kind {:?}", kind.name),
                    );
                    continue;
                }
                if !kind.allows(setting) && given(value) {
                    let owners = KINDS.iter().filter(|k| k.allows(setting)).map(|k| k.name);
                    found.error(
                        setting,
                        format!(
                            "{setting} does not apply to kind {:?}; it is a setting of kind {}",
                            kind.name,
                            one_of(owners, true)
                        ),
                    );
                    continue;
                }
            }
            if let Some(value) = text(value)
                && let Some(problem) = setting_problem(setting, value)
            {
                found.error(setting, problem);
            }
        }
        if let Some(auth) = self.auth.as_ref_option() {
            auth_findings(auth, kind, &mut found);
        }
        found
    }

    /// The settings that PATCH can change.
    fn settings_changed(&self, other: &ProviderState) -> bool {
        SETTINGS
            .iter()
            .any(|s| changed(self.setting(s), other.setting(s)))
            || changed(
                &self.auth.as_ref().map(Auth::sent),
                &other.auth.as_ref().map(Auth::sent),
            )
    }

    /// The API body for this state's settings. A PATCH (`clear`) sends
    /// `null` for an optional setting that is not set, which removes it.
    fn body(&self, clear: bool) -> Option<Map<String, Json>> {
        let kind = kind_rules(self.kind_name()?)?;
        let mut body = Map::new();
        for setting in kind.settings() {
            match text(self.setting(setting)) {
                Some(value) => {
                    body.insert(setting.into(), json!(value));
                }
                None if clear => {
                    body.insert(setting.into(), Json::Null);
                }
                None => {}
            }
        }
        body.insert("auth".into(), self.auth.as_ref_option()?.to_json(kind)?);
        Some(body)
    }

    fn planned_from(proposed: ProviderState, config: &ProviderState) -> ProviderState {
        ProviderState {
            kind: match &config.kind {
                Value::Null => known(DEFAULT_KIND),
                other => other.clone(),
            },
            auth: config.auth.as_ref().map(Auth::planned),
            ..proposed
        }
    }
}

/// What is wrong with a known setting's value, checked as the API does.
fn setting_problem(setting: &str, value: &str) -> Option<String> {
    if value.trim().is_empty() {
        return Some(format!("{setting} must not be empty; leave it out instead"));
    }
    match setting {
        "address" | "endpoint" | "sts_endpoint"
            if !(value.starts_with("https://") || value.starts_with("http://")) =>
        {
            Some(format!(
                "{setting} must be an https:// (or, for a development server, http://) URL"
            ))
        }
        "region" if !is_region(value) => Some(format!(
            "region {value:?} is not an AWS region such as eu-west-1"
        )),
        _ => None,
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`.
fn is_region(region: &str) -> bool {
    (4..=32).contains(&region.len())
        && region.starts_with(|c: char| c.is_ascii_lowercase())
        && region.ends_with(|c: char| c.is_ascii_digit())
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// What is wrong with a known `auth` field's value, checked as the API does.
fn auth_field_problem(field: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return Some(format!("{field} must not be empty"));
    }
    match field {
        "access_key_id"
            if !((16..=128).contains(&value.len())
                && value
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())) =>
        {
            Some(
                "access_key_id must be an AWS access key id: upper-case letters and digits, such as AKIAIOSFODNN7EXAMPLE"
                    .to_owned(),
            )
        }
        "role_arn"
            if !(value.starts_with("arn:")
                && value.contains(":role/")
                && !value.chars().any(char::is_whitespace)) =>
        {
            Some(
                "role_arn must be an IAM role ARN such as arn:aws:iam::123456789012:role/agyn-secrets"
                    .to_owned(),
            )
        }
        _ => None,
    }
}

fn auth_findings(auth: &Auth, kind: Option<&KindRules>, found: &mut Findings) {
    let method_name = text(&auth.method);
    let method = match (kind, method_name) {
        (Some(kind), Some(name)) => match kind.method(name) {
            Some(method) => Some(method),
            None => {
                found.error(
                    "auth.method",
                    format!(
                        "method {name:?} does not apply to kind {:?}, whose methods are {}",
                        kind.name,
                        kind.method_names()
                    ),
                );
                None
            }
        },
        _ => None,
    };
    for field in AUTH_FIELDS {
        let value = auth.field(field);
        let attribute = format!("auth.{field}");
        if field == "jwt_path" {
            jwt_path_findings(value, method_name, method, found);
            continue;
        }
        if let Some(method) = method {
            if method.required.contains(&field) && !given(value) {
                found.error(
                    attribute,
                    format!("{field} is required for method {:?}", method.name),
                );
                continue;
            }
            if !method.allows(field) && given(value) {
                found.error(
                    attribute,
                    format!("{field} does not apply to method {:?}", method.name),
                );
                continue;
            }
        }
        if let Some(value) = text(value)
            && let Some(problem) = auth_field_problem(field, value)
        {
            found.error(attribute, problem);
        }
    }
}

/// `jwt_path` is never sent: the old default is a warning, since the
/// server still reads that file by default; any other path is an error,
/// since the provider would silently log in with another token.
fn jwt_path_findings(
    value: &Value<String>,
    method_name: Option<&str>,
    method: Option<&MethodRules>,
    found: &mut Findings,
) {
    let Some(path) = text(value) else {
        return;
    };
    let other_method = match (method, method_name) {
        (Some(method), _) => (!method.allows("jwt_path")).then_some(method.name),
        (None, Some(name)) => (name != "kubernetes").then_some(name),
        (None, None) => None,
    };
    if let Some(name) = other_method {
        found.error(
            "auth.jwt_path",
            format!("jwt_path does not apply to method {name:?}"),
        );
    } else if path == OLD_DEFAULT_JWT_PATH {
        found.warnings.push((
            "auth.jwt_path".into(),
            format!("{} Remove jwt_path from the auth block.", jwt_path_note()),
        ));
    } else {
        found.error(
            "auth.jwt_path",
            format!(
                "jwt_path can no longer be set to {path:?}: start the agyn-secrets server with {TOKEN_FILE_FLAG} {path:?} instead"
            ),
        );
    }
}

impl Scoped for ProviderState {
    type View = ProviderView;
    const COLLECTION: &'static str = "providers";
    const KIND: &'static str = "secret provider";
    const IMPORT_FORMS: &'static str =
        "<organization id or name>/<provider id or name>, or a bare <provider id>";

    fn id(&self) -> &Value<String> {
        &self.id
    }

    fn name(&self) -> &Value<String> {
        &self.name
    }

    fn organization_id(&self) -> &Value<String> {
        &self.organization_id
    }

    fn set_organization_id(&mut self, organization_id: Value<String>) {
        self.organization_id = organization_id;
    }

    fn view_organization_id(view: &ProviderView) -> &str {
        &view.organization_id
    }

    fn with_view(&self, view: ProviderView) -> ProviderState {
        let jwt_path = self
            .auth
            .as_ref_option()
            .map_or(Value::Null, |auth| auth.jwt_path.clone());
        let auth: AuthView = view
            .settings
            .get("auth")
            .and_then(|auth| serde_json::from_value(auth.clone()).ok())
            .unwrap_or_default();
        ProviderState {
            kind: known(view.kind().to_owned()),
            address: url_in_state(&self.address, setting(&view, "address")),
            namespace: nullable(setting(&view, "namespace")),
            ca_pem: nullable(setting(&view, "ca_pem")),
            region: nullable(setting(&view, "region")),
            endpoint: url_in_state(&self.endpoint, setting(&view, "endpoint")),
            sts_endpoint: url_in_state(&self.sts_endpoint, setting(&view, "sts_endpoint")),
            id: known(view.id),
            organization_id: self.organization_id.clone(),
            name: known(view.name),
            auth: Value::Value(auth.into_auth(jwt_path)),
            created_at: known(view.created_at),
            updated_at: known(view.updated_at),
        }
    }
}

pub struct SecretProviderResource(pub Shared);

#[async_trait]
impl Resource for SecretProviderResource {
    type State<'a> = ProviderState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        let auth = block(
            "How agyn-secrets logs in to the provider. Credentials are local secrets of the same organization, named here, never inline values. Which fields apply depends on `method`.",
            vec![
                (
                    "method",
                    string(
                        Required,
                        "`vault`: `token`, `kubernetes` or `approle`. `aws-secrets-manager`: `static` or `web-identity`.",
                    ),
                ),
                (
                    "token_secret",
                    string(
                        Optional,
                        "`token`: name of the local secret that holds the Vault token.",
                    ),
                ),
                (
                    "role",
                    string(Optional, "`kubernetes`: the Vault role to log in as."),
                ),
                (
                    "mount",
                    string(
                        OptionalComputed,
                        "`kubernetes` and `approle`: the auth mount path. Defaults to `kubernetes` or `approle`.",
                    ),
                ),
                (
                    "jwt_path",
                    deprecated(string(
                        Optional,
                        "Deprecated and never sent: the agyn-secrets server's `--service-account-token-file` flag names the service account token file now. The old default is accepted with a warning; any other path is an error.",
                    )),
                ),
                ("role_id", string(Optional, "`approle`: the role id.")),
                (
                    "secret_id_secret",
                    string(
                        Optional,
                        "`approle`: name of the local secret that holds the secret id.",
                    ),
                ),
                (
                    "access_key_id",
                    string(
                        Optional,
                        "`static`: the AWS access key id, e.g. `AKIAIOSFODNN7EXAMPLE`.",
                    ),
                ),
                (
                    "secret_access_key_secret",
                    string(
                        Optional,
                        "`static`: name of the local secret that holds the AWS secret access key.",
                    ),
                ),
                (
                    "role_arn",
                    string(
                        Optional,
                        "`web-identity`: the IAM role to assume with the server's web identity token, e.g. `arn:aws:iam::123456789012:role/agyn-secrets`. Only a platform admin token may configure it.",
                    ),
                ),
            ],
        );
        let provider = block(
            "A secret provider of an organization, which remote secrets are read from at every workload start: HashiCorp Vault or OpenBao (`kind = \"vault\"`, the default) or AWS Secrets Manager (`kind = \"aws-secrets-manager\"`).",
            vec![
                (
                    "id",
                    string(
                        Computed,
                        "The provider's id; remote secrets name it in `provider_id`.",
                    ),
                ),
                (
                    "organization_id",
                    string(
                        Required,
                        "The organization that owns it (id or name). Changing it creates a new provider.",
                    ),
                ),
                (
                    "name",
                    string(
                        Required,
                        "Unique name in the organization, a DNS label. Changing it creates a new provider.",
                    ),
                ),
                (
                    "kind",
                    string(
                        OptionalComputed,
                        "`vault` (HashiCorp Vault or OpenBao, the default) or `aws-secrets-manager`. Changing it creates a new provider.",
                    ),
                ),
                (
                    "address",
                    string(
                        Optional,
                        "`vault`, required: base URL, e.g. `https://vault.example.com:8200`; link-local and cloud metadata addresses are refused.",
                    ),
                ),
                (
                    "namespace",
                    string(
                        Optional,
                        "`vault`: Vault namespace (`X-Vault-Namespace`), e.g. `admin/team-a`.",
                    ),
                ),
                (
                    "region",
                    string(
                        Optional,
                        "`aws-secrets-manager`, required: the AWS region, e.g. `eu-west-1`.",
                    ),
                ),
                (
                    "endpoint",
                    string(
                        Optional,
                        "`aws-secrets-manager`: the Secrets Manager endpoint URL, for VPC endpoints or other partitions. Defaults to the region's public endpoint.",
                    ),
                ),
                (
                    "sts_endpoint",
                    string(
                        Optional,
                        "`aws-secrets-manager`: the STS endpoint URL, used by `web-identity` auth and the connection check. Defaults to the region's.",
                    ),
                ),
                (
                    "ca_pem",
                    string(
                        Optional,
                        "PEM certificate authorities to trust for the provider's TLS certificate (both kinds).",
                    ),
                ),
                (
                    "created_at",
                    string(Computed, "When it was created (RFC 3339)."),
                ),
                (
                    "updated_at",
                    string(Computed, "When it last changed (RFC 3339)."),
                ),
            ],
        );
        Some(schema(with_single_block(provider, "auth", auth)))
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ProviderState) -> Option<()> {
        check_name(diags, "name", &config.name);
        let found = config.findings();
        for (attribute, message) in found.errors {
            diags.fail_short(message, attribute_path(&attribute));
        }
        for (attribute, detail) in found.warnings {
            diags.warn(
                "jwt_path is deprecated and ignored",
                detail,
                attribute_path(&attribute),
            );
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: ProviderState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ProviderState, ValueEmpty)> {
        read_scoped(&self.0, diags, state)
            .await
            .map(|state| (state, private_state))
    }

    async fn plan_create<'a>(
        &self,
        _diags: &mut Diagnostics,
        proposed: ProviderState,
        config: ProviderState,
        _meta: ValueEmpty,
    ) -> Option<(ProviderState, ValueEmpty)> {
        let planned = ProviderState {
            id: Value::Unknown,
            created_at: Value::Unknown,
            updated_at: Value::Unknown,
            ..ProviderState::planned_from(proposed, &config)
        };
        Some((planned, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ProviderState,
        proposed: ProviderState,
        config: ProviderState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ProviderState, ValueEmpty, Vec<AttributePath>)> {
        let mut planned = ProviderState::planned_from(proposed, &config);
        // A state written while jwt_path was a setting holds it (the old
        // provider filled in the default); the configuration no longer
        // does, and the plan drops it from the state, sending nothing.
        let prior_jwt_path = prior
            .auth
            .as_ref_option()
            .and_then(|auth| text(&auth.jwt_path));
        let planned_jwt_path = planned
            .auth
            .as_ref_option()
            .map_or(&Value::Null, |auth| &auth.jwt_path);
        if let Some(path) = prior_jwt_path
            && planned_jwt_path.is_null()
        {
            let mut detail = format!(
                "The state holds jwt_path = {path:?} from an earlier version of this provider; the next apply removes it from the state and changes nothing in the API. {}",
                jwt_path_note()
            );
            if path != OLD_DEFAULT_JWT_PATH {
                detail.push_str(&format!(
                    " To keep logging in with the token at {path:?}, start the server with {TOKEN_FILE_FLAG} {path:?}."
                ));
            }
            diags.warn_root("jwt_path is no longer a provider setting", detail);
        }
        let mut replace = Vec::new();
        if organization_moved(
            &self.0,
            diags,
            &prior.organization_id,
            &planned.organization_id,
        )
        .await?
        {
            replace.push(AttributePath::new("organization_id"));
        }
        for (attribute, before, after) in [
            ("name", &prior.name, &planned.name),
            ("kind", &prior.kind, &planned.kind),
        ] {
            if changed(before, after) {
                replace.push(AttributePath::new(attribute));
            }
        }
        if !replace.is_empty() {
            planned.id = Value::Unknown;
            planned.created_at = Value::Unknown;
            planned.updated_at = Value::Unknown;
        } else if prior.settings_changed(&planned) {
            planned.updated_at = Value::Unknown;
        }
        Some((planned, private_state, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: ProviderState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(private_state)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: ProviderState,
        _config: ProviderState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ProviderState, ValueEmpty)> {
        let client = self.0.client(diags)?;
        let Some(mut body) = planned.body(false) else {
            diags.fail_root(
                format!("Cannot create {}", planned.label()),
                "Its kind or auth method is not one this provider knows; `terraform validate` says why.",
            );
            return None;
        };
        body.insert("name".into(), json!(text(&planned.name)?));
        body.insert("kind".into(), json!(planned.kind_name()?));
        let path = scoped_path(
            text(&planned.organization_id)?,
            ProviderState::COLLECTION,
            None,
        );
        let answer = client.post(&path, &Json::Object(body)).await;
        created(&client, diags, &planned, answer)
            .await
            .map(|state| (state, private_state))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ProviderState,
        planned: ProviderState,
        _config: ProviderState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ProviderState, ValueEmpty)> {
        if !prior.settings_changed(&planned) {
            return Some((planned, private_state));
        }
        let client = self.0.client(diags)?;
        // Every setting of the kind is sent, null for those left out, so
        // that the API ends up exactly as planned.
        let Some(body) = planned.body(true) else {
            diags.fail_root(
                format!("Cannot update {}", planned.label()),
                "Its kind or auth method is not one this provider knows; `terraform validate` says why.",
            );
            return None;
        };
        let answer = client.patch(&prior.path()?, &Json::Object(body)).await;
        updated(diags, &planned, answer).map(|state| (state, private_state))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ProviderState,
        _private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<()> {
        delete_scoped(&self.0, diags, &prior).await
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(ProviderState, ValueEmpty)> {
        import_scoped(&self.0, diags, &id)
            .await
            .map(|state| (state, ValueEmpty::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn auth(method: &str, fields: &[(&str, &str)]) -> Auth {
        let mut auth = Auth {
            method: known(method),
            ..Auth::default()
        };
        for (name, value) in fields {
            let slot = match *name {
                "token_secret" => &mut auth.token_secret,
                "role" => &mut auth.role,
                "mount" => &mut auth.mount,
                "jwt_path" => &mut auth.jwt_path,
                "role_id" => &mut auth.role_id,
                "secret_id_secret" => &mut auth.secret_id_secret,
                "access_key_id" => &mut auth.access_key_id,
                "secret_access_key_secret" => &mut auth.secret_access_key_secret,
                "role_arn" => &mut auth.role_arn,
                other => panic!("no auth field {other}"),
            };
            *slot = known(*value);
        }
        auth
    }

    /// A configuration: `kind` (`None` leaves it out), settings and auth.
    fn config(kind: Option<&str>, settings: &[(&str, &str)], auth: Auth) -> ProviderState {
        let mut state = ProviderState {
            name: known("p"),
            kind: kind.map_or(Value::Null, known),
            auth: Value::Value(auth),
            ..ProviderState::default()
        };
        for (name, value) in settings {
            let slot = match *name {
                "address" => &mut state.address,
                "namespace" => &mut state.namespace,
                "ca_pem" => &mut state.ca_pem,
                "region" => &mut state.region,
                "endpoint" => &mut state.endpoint,
                "sts_endpoint" => &mut state.sts_endpoint,
                other => panic!("no setting {other}"),
            };
            *slot = known(*value);
        }
        state
    }

    const ADDRESS: (&str, &str) = ("address", "https://vault.example.com");
    const REGION: (&str, &str) = ("region", "eu-west-1");
    const KEY_ID: (&str, &str) = ("access_key_id", "AKIAIOSFODNN7EXAMPLE");
    const KEY_SECRET: (&str, &str) = ("secret_access_key_secret", "aws-key");
    const ROLE_ARN: (&str, &str) = ("role_arn", "arn:aws:iam::123456789012:role/agyn");

    #[rstest]
    #[case::vault_by_default(config(None, &[ADDRESS], auth("token", &[("token_secret", "t")])), vec![])]
    #[case::token_missing(config(None, &[ADDRESS], auth("token", &[])), vec!["auth.token_secret"])]
    #[case::token_with_role(config(None, &[ADDRESS], auth("token", &[("token_secret", "t"), ("role", "r")])), vec!["auth.role"])]
    #[case::kubernetes(config(Some(VAULT), &[ADDRESS], auth("kubernetes", &[("role", "web"), ("mount", "k8s")])), vec![])]
    #[case::kubernetes_missing(config(Some(VAULT), &[ADDRESS], auth("kubernetes", &[("mount", "k8s")])), vec!["auth.role"])]
    #[case::approle(config(Some(VAULT), &[ADDRESS], auth("approle", &[("role_id", "r"), ("secret_id_secret", "s")])), vec![])]
    #[case::approle_jwt(config(Some(VAULT), &[ADDRESS], auth("approle", &[("role_id", "r"), ("secret_id_secret", "s"), ("jwt_path", OLD_DEFAULT_JWT_PATH)])), vec!["auth.jwt_path"])]
    #[case::unknown_method(config(Some(VAULT), &[ADDRESS], auth("ldap", &[])), vec!["auth.method"])]
    #[case::empty(config(Some(VAULT), &[ADDRESS], auth("token", &[("token_secret", "")])), vec!["auth.token_secret"])]
    #[case::vault_without_address(config(None, &[], auth("token", &[("token_secret", "t")])), vec!["address"])]
    #[case::vault_with_region(config(None, &[ADDRESS, REGION], auth("token", &[("token_secret", "t")])), vec!["region"])]
    #[case::aws_static(config(Some(AWS_SECRETS_MANAGER), &[REGION, ("endpoint", "https://vpce.example.com"), ("ca_pem", "PEM")], auth("static", &[KEY_ID, KEY_SECRET])), vec![])]
    #[case::aws_web_identity(config(Some(AWS_SECRETS_MANAGER), &[REGION, ("sts_endpoint", "https://sts.example.com")], auth("web-identity", &[ROLE_ARN])), vec![])]
    #[case::aws_without_region(config(Some(AWS_SECRETS_MANAGER), &[], auth("web-identity", &[ROLE_ARN])), vec!["region"])]
    #[case::aws_with_vault_settings(config(Some(AWS_SECRETS_MANAGER), &[REGION, ADDRESS, ("namespace", "n")], auth("web-identity", &[ROLE_ARN])), vec!["address", "namespace"])]
    #[case::aws_with_vault_method(config(Some(AWS_SECRETS_MANAGER), &[REGION], auth("token", &[("token_secret", "t")])), vec!["auth.method"])]
    #[case::vault_with_aws_method(config(None, &[ADDRESS], auth("static", &[KEY_ID, KEY_SECRET])), vec!["auth.method"])]
    #[case::static_missing_secret(config(Some(AWS_SECRETS_MANAGER), &[REGION], auth("static", &[KEY_ID])), vec!["auth.secret_access_key_secret"])]
    #[case::static_with_role_arn(config(Some(AWS_SECRETS_MANAGER), &[REGION], auth("static", &[KEY_ID, KEY_SECRET, ROLE_ARN])), vec!["auth.role_arn"])]
    #[case::web_identity_with_key(config(Some(AWS_SECRETS_MANAGER), &[REGION], auth("web-identity", &[ROLE_ARN, KEY_ID])), vec!["auth.access_key_id"])]
    #[case::bad_region(config(Some(AWS_SECRETS_MANAGER), &[("region", "EU West")], auth("web-identity", &[ROLE_ARN])), vec!["region"])]
    #[case::bad_endpoint(config(Some(AWS_SECRETS_MANAGER), &[REGION, ("endpoint", "vpce.example.com")], auth("web-identity", &[ROLE_ARN])), vec!["endpoint"])]
    #[case::bad_key_id(config(Some(AWS_SECRETS_MANAGER), &[REGION], auth("static", &[("access_key_id", "akia"), KEY_SECRET])), vec!["auth.access_key_id"])]
    #[case::bad_role_arn(config(Some(AWS_SECRETS_MANAGER), &[REGION], auth("web-identity", &[("role_arn", "role/agyn")])), vec!["auth.role_arn"])]
    #[case::unknown_kind(config(Some("gcp"), &[], auth("token", &[("token_secret", "t")])), vec!["kind"])]
    fn configurations(#[case] config: ProviderState, #[case] errors: Vec<&str>) {
        assert_eq!(config.findings().error_attributes(), errors);
    }

    #[test]
    fn messages_name_the_kind_and_method() {
        let found = config(
            Some(AWS_SECRETS_MANAGER),
            &[REGION, ADDRESS],
            auth("token", &[("token_secret", "t")]),
        )
        .findings();
        assert_eq!(
            found.errors,
            vec![
                (
                    "address".to_owned(),
                    "address does not apply to kind \"aws-secrets-manager\"; it is a setting of kind \"vault\"".to_owned()
                ),
                (
                    "auth.method".to_owned(),
                    "method \"token\" does not apply to kind \"aws-secrets-manager\", whose methods are static or web-identity".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn an_unknown_kind_judges_only_what_every_kind_shares() {
        let mut state = config(None, &[REGION], auth("static", &[KEY_ID]));
        state.kind = Value::Unknown;
        assert_eq!(state.findings(), Findings::default());
    }

    #[test]
    fn the_old_jwt_path_default_is_a_warning_and_others_an_error() {
        let old = config(
            None,
            &[ADDRESS],
            auth(
                "kubernetes",
                &[("role", "web"), ("jwt_path", OLD_DEFAULT_JWT_PATH)],
            ),
        )
        .findings();
        assert!(old.errors.is_empty(), "{old:?}");
        assert_eq!(old.warnings.len(), 1);
        assert!(old.warnings[0].1.contains(TOKEN_FILE_FLAG));
        let other = config(
            None,
            &[ADDRESS],
            auth("kubernetes", &[("role", "web"), ("jwt_path", "/token")]),
        )
        .findings();
        assert_eq!(other.error_attributes(), ["auth.jwt_path"]);
        assert!(other.errors[0].1.contains(TOKEN_FILE_FLAG));
        assert!(other.warnings.is_empty());
    }

    #[test]
    fn defaults_follow_the_method() {
        let planned = auth("kubernetes", &[("role", "web")]).planned();
        assert_eq!(planned.mount, known(DEFAULT_KUBERNETES_MOUNT));
        assert_eq!(planned.jwt_path, Value::Null);
        let planned = auth("approle", &[("role_id", "r"), ("secret_id_secret", "s")]).planned();
        assert_eq!(planned.mount, known(DEFAULT_APPROLE_MOUNT));
        let planned = auth("token", &[("token_secret", "t")]).planned();
        assert_eq!(planned.mount, Value::Null);
        let planned = auth("static", &[KEY_ID, KEY_SECRET]).planned();
        assert_eq!(planned.mount, Value::Null);
        let unknown = Auth {
            method: Value::Unknown,
            ..Auth::default()
        };
        assert_eq!(unknown.planned().mount, Value::Unknown);
    }

    #[test]
    fn the_api_gets_the_fields_of_the_kind_and_method_only() {
        let vault = kind_rules(VAULT).unwrap();
        let body = auth(
            "kubernetes",
            &[("role", "web"), ("jwt_path", OLD_DEFAULT_JWT_PATH)],
        )
        .planned()
        .to_json(vault)
        .unwrap();
        assert_eq!(
            body,
            json!({"method": "kubernetes", "role": "web", "mount": "kubernetes"})
        );
        let state = config(
            Some(AWS_SECRETS_MANAGER),
            &[REGION, ("ca_pem", "PEM")],
            auth("static", &[KEY_ID, KEY_SECRET]),
        );
        assert_eq!(
            Json::Object(state.body(false).unwrap()),
            json!({"region": "eu-west-1", "ca_pem": "PEM", "auth": {
                "method": "static",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key_secret": "aws-key",
            }})
        );
        // A PATCH clears the optional settings of the kind that are not set.
        assert_eq!(
            Json::Object(state.body(true).unwrap()),
            json!({"region": "eu-west-1", "endpoint": null, "sts_endpoint": null, "ca_pem": "PEM", "auth": {
                "method": "static",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key_secret": "aws-key",
            }})
        );
    }

    #[test]
    fn jwt_path_alone_changes_nothing_in_the_api() {
        let before = config(
            None,
            &[ADDRESS],
            auth(
                "kubernetes",
                &[("role", "web"), ("jwt_path", OLD_DEFAULT_JWT_PATH)],
            ),
        );
        let after = config(None, &[ADDRESS], auth("kubernetes", &[("role", "web")]));
        assert!(!before.settings_changed(&after));
        let moved = config(
            None,
            &[("address", "https://other.example.com")],
            auth("kubernetes", &[("role", "web")]),
        );
        assert!(before.settings_changed(&moved));
    }

    fn view(answer: Json) -> ProviderView {
        serde_json::from_value(answer).unwrap()
    }

    #[test]
    fn an_answer_keeps_the_configured_spelling_and_jwt_path() {
        let planned = config(
            Some(AWS_SECRETS_MANAGER),
            &[REGION, ("endpoint", "https://vpce.example.com/")],
            auth("static", &[KEY_ID, KEY_SECRET]),
        );
        let state = planned.with_view(view(json!({
            "id": "p1", "organization_id": "o1", "name": "aws", "kind": AWS_SECRETS_MANAGER,
            "region": "eu-west-1", "endpoint": "https://vpce.example.com",
            "auth": {"method": "static", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key_secret": "aws-key"},
            "created_at": "c", "updated_at": "u",
        })));
        assert_eq!(state.endpoint, known("https://vpce.example.com/"));
        assert_eq!(state.address, Value::Null);
        assert_eq!(state.sts_endpoint, Value::Null);
        assert_eq!(state.auth.as_ref_option().unwrap().role_arn, Value::Null);

        let prior = config(
            None,
            &[ADDRESS],
            auth(
                "kubernetes",
                &[("role", "web"), ("jwt_path", OLD_DEFAULT_JWT_PATH)],
            ),
        );
        let state = prior.with_view(view(json!({
            "id": "p2", "organization_id": "o1", "name": "v", "kind": VAULT,
            "address": "https://vault.example.com",
            "auth": {"method": "kubernetes", "role": "web", "mount": "kubernetes"},
            "created_at": "c", "updated_at": "u",
        })));
        assert_eq!(
            state.auth.as_ref_option().unwrap().jwt_path,
            known(OLD_DEFAULT_JWT_PATH)
        );
    }

    #[test]
    fn a_trailing_slash_is_the_same_url() {
        assert!(same_url(
            "https://vault.example.com/",
            "https://vault.example.com"
        ));
        assert!(!same_url(
            "https://vault.example.com:8200",
            "https://vault.example.com"
        ));
    }

    #[rstest]
    #[case(&[], "")]
    #[case(&["a"], "a")]
    #[case(&["a", "b"], "a or b")]
    #[case(&["a", "b", "c"], "a, b or c")]
    fn lists_read_as_prose(#[case] names: &[&str], #[case] text: &str) {
        assert_eq!(one_of(names.iter().copied(), false), text);
    }
}
