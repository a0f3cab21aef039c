//! `agyn_secret_provider`: a Vault (or OpenBao) server that remote secrets
//! are read from.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::{
    Scoped, answered, changed, check_name, delete_scoped, import_scoped, organization_moved,
    read_scoped, scoped_path,
};
use crate::client::Shared;
use crate::diagnostics::Report;
use crate::schema::{
    Computed, Optional, OptionalComputed, Required, block, schema, string, with_single_block,
};
use crate::values::{given, keep_if_same, known, nullable, text};

pub const DEFAULT_KIND: &str = "vault";
pub const DEFAULT_KUBERNETES_MOUNT: &str = "kubernetes";
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";
pub const DEFAULT_JWT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

const AUTH_FIELDS: [&str; 6] = [
    "token_secret",
    "role",
    "mount",
    "jwt_path",
    "role_id",
    "secret_id_secret",
];

/// Which `auth` fields a method requires and which it allows.
fn method_fields(method: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    match method {
        "token" => Some((&["token_secret"], &[])),
        "kubernetes" => Some((&["role"], &["mount", "jwt_path"])),
        "approle" => Some((&["role_id", "secret_id_secret"], &["mount"])),
        _ => None,
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
    pub jwt_path: Value<String>,
    pub role_id: Value<String>,
    pub secret_id_secret: Value<String>,
}

impl Auth {
    fn field(&self, name: &str) -> &Value<String> {
        match name {
            "token_secret" => &self.token_secret,
            "role" => &self.role,
            "mount" => &self.mount,
            "jwt_path" => &self.jwt_path,
            "role_id" => &self.role_id,
            _ => &self.secret_id_secret,
        }
    }

    /// What is wrong with the block, as (field, message) pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let Some(method) = text(&self.method) else {
            return Vec::new();
        };
        let Some((required, allowed)) = method_fields(method) else {
            return vec![(
                "method",
                format!("method {method:?} is not one of token, kubernetes, approle"),
            )];
        };
        let mut problems = Vec::new();
        for field in AUTH_FIELDS {
            let set = given(self.field(field));
            if required.contains(&field) && !set {
                problems.push((field, format!("{field} is required for method {method:?}")));
            } else if !required.contains(&field) && !allowed.contains(&field) && set {
                problems.push((
                    field,
                    format!("{field} does not apply to method {method:?}"),
                ));
            } else if text(self.field(field)).is_some_and(str::is_empty) {
                problems.push((field, format!("{field} must not be empty")));
            }
        }
        problems
    }

    /// The block as it will be stored: the configuration, with the API's
    /// defaults for the mount and the service-account token path.
    fn planned(&self) -> Auth {
        let mut auth = self.clone();
        let defaults: &[(&str, &str)] = match text(&self.method) {
            Some("kubernetes") => &[
                ("mount", DEFAULT_KUBERNETES_MOUNT),
                ("jwt_path", DEFAULT_JWT_PATH),
            ],
            Some("approle") => &[("mount", DEFAULT_APPROLE_MOUNT)],
            Some(_) => &[],
            None => {
                // The method is not known yet, nor therefore the defaults.
                for field in [&mut auth.mount, &mut auth.jwt_path] {
                    if field.is_null() {
                        *field = Value::Unknown;
                    }
                }
                return auth;
            }
        };
        for (name, default) in defaults {
            let field = match *name {
                "mount" => &mut auth.mount,
                _ => &mut auth.jwt_path,
            };
            if field.is_null() {
                *field = known(*default);
            }
        }
        auth
    }

    /// The API's `auth` object.
    fn to_json(&self) -> Option<Json> {
        let mut object = Map::new();
        object.insert("method".into(), json!(text(&self.method)?));
        for field in AUTH_FIELDS {
            if let Some(value) = text(self.field(field)) {
                object.insert(field.into(), json!(value));
            }
        }
        Some(Json::Object(object))
    }
}

#[derive(Debug, Clone, Deserialize)]
struct AuthView {
    method: String,
    token_secret: Option<String>,
    role: Option<String>,
    mount: Option<String>,
    jwt_path: Option<String>,
    role_id: Option<String>,
    secret_id_secret: Option<String>,
}

impl From<AuthView> for Auth {
    fn from(view: AuthView) -> Self {
        Auth {
            method: known(view.method),
            token_secret: nullable(view.token_secret),
            role: nullable(view.role),
            mount: nullable(view.mount),
            jwt_path: nullable(view.jwt_path),
            role_id: nullable(view.role_id),
            secret_id_secret: nullable(view.secret_id_secret),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProviderView {
    id: String,
    organization_id: String,
    name: String,
    kind: String,
    address: String,
    namespace: Option<String>,
    ca_pem: Option<String>,
    auth: AuthView,
    created_at: String,
    updated_at: String,
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
    pub auth: Value<Auth>,
    pub created_at: Value<String>,
    pub updated_at: Value<String>,
}

/// The API drops a trailing `/` from addresses.
fn same_address(configured: &str, answered: &str) -> bool {
    configured.trim_end_matches('/') == answered
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
        ProviderState {
            id: known(view.id),
            organization_id: self.organization_id.clone(),
            name: known(view.name),
            kind: known(view.kind),
            address: keep_if_same(&self.address, view.address, same_address),
            namespace: nullable(view.namespace),
            ca_pem: nullable(view.ca_pem),
            auth: Value::Value(view.auth.into()),
            created_at: known(view.created_at),
            updated_at: known(view.updated_at),
        }
    }
}

impl ProviderState {
    /// The settings that PATCH can change.
    fn settings_changed(&self, other: &ProviderState) -> bool {
        changed(&self.address, &other.address)
            || changed(&self.namespace, &other.namespace)
            || changed(&self.ca_pem, &other.ca_pem)
            || changed(&self.auth, &other.auth)
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

pub struct SecretProviderResource(pub Shared);

#[async_trait]
impl Resource for SecretProviderResource {
    type State<'a> = ProviderState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        let auth = block(
            "How agyn-secrets logs in to the provider. Credentials are local secrets of the same organization, named here, never inline values.",
            vec![
                (
                    "method",
                    string(Required, "`token`, `kubernetes` or `approle`."),
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
                    string(
                        OptionalComputed,
                        "`kubernetes`: the service-account token file. Defaults to `/var/run/secrets/kubernetes.io/serviceaccount/token`.",
                    ),
                ),
                ("role_id", string(Optional, "`approle`: the role id.")),
                (
                    "secret_id_secret",
                    string(
                        Optional,
                        "`approle`: name of the local secret that holds the secret id.",
                    ),
                ),
            ],
        );
        let provider = block(
            "A HashiCorp Vault or OpenBao server of an organization, which remote secrets are read from at every workload start.",
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
                        "Only `vault` (HashiCorp Vault or OpenBao). Changing it creates a new provider.",
                    ),
                ),
                (
                    "address",
                    string(
                        Required,
                        "Base URL, e.g. `https://vault.example.com:8200`; link-local and cloud metadata addresses are refused.",
                    ),
                ),
                (
                    "namespace",
                    string(
                        Optional,
                        "Vault namespace (`X-Vault-Namespace`), e.g. `admin/team-a`.",
                    ),
                ),
                (
                    "ca_pem",
                    string(
                        Optional,
                        "PEM certificate authorities to trust for the provider's TLS certificate.",
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
        if let Some(kind) = text(&config.kind)
            && kind != DEFAULT_KIND
        {
            diags.fail_short(
                format!("kind {kind:?} is not supported; the only kind is \"vault\" (HashiCorp Vault or OpenBao)"),
                AttributePath::new("kind"),
            );
        }
        if let Some(address) = text(&config.address)
            && !(address.starts_with("https://") || address.starts_with("http://"))
        {
            diags.fail_short(
                "address must be an https:// (or, for a development server, http://) URL",
                AttributePath::new("address"),
            );
        }
        for (attribute, value) in [("namespace", &config.namespace), ("ca_pem", &config.ca_pem)] {
            if text(value).is_some_and(|v| v.trim().is_empty()) {
                diags.fail_short(
                    format!("{attribute} must not be empty; leave it out instead"),
                    AttributePath::new(attribute),
                );
            }
        }
        if let Value::Value(auth) = &config.auth {
            for (field, message) in auth.problems() {
                diags.fail(
                    "Invalid auth block",
                    message,
                    AttributePath::new("auth").attribute(field),
                );
            }
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
        let mut body = json!({
            "name": text(&planned.name)?,
            "kind": text(&planned.kind)?,
            "address": text(&planned.address)?,
            "auth": planned.auth.as_ref_option()?.to_json()?,
        });
        for (attribute, value) in [
            ("namespace", &planned.namespace),
            ("ca_pem", &planned.ca_pem),
        ] {
            if let Some(value) = text(value) {
                body[attribute] = json!(value);
            }
        }
        let path = scoped_path(
            text(&planned.organization_id)?,
            ProviderState::COLLECTION,
            None,
        );
        let answer = client.post(&path, &body).await;
        answered(diags, &planned, answer, "creating").map(|state| (state, private_state))
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
        // null clears namespace and ca_pem; every setting is sent so that
        // the API ends up exactly as planned.
        let body = json!({
            "address": text(&planned.address)?,
            "namespace": text(&planned.namespace),
            "ca_pem": text(&planned.ca_pem),
            "auth": planned.auth.as_ref_option()?.to_json()?,
        });
        let answer = client.patch(&prior.path()?, &body).await;
        answered(diags, &planned, answer, "updating").map(|state| (state, private_state))
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
                _ => &mut auth.secret_id_secret,
            };
            *slot = known(*value);
        }
        auth
    }

    #[rstest]
    #[case::token(auth("token", &[("token_secret", "vault-token")]), vec![])]
    #[case::token_missing(auth("token", &[]), vec!["token_secret"])]
    #[case::token_with_role(auth("token", &[("token_secret", "t"), ("role", "r")]), vec!["role"])]
    #[case::kubernetes(auth("kubernetes", &[("role", "web"), ("mount", "k8s")]), vec![])]
    #[case::kubernetes_missing(auth("kubernetes", &[("mount", "k8s")]), vec!["role"])]
    #[case::approle(auth("approle", &[("role_id", "r"), ("secret_id_secret", "s")]), vec![])]
    #[case::approle_jwt(auth("approle", &[("role_id", "r"), ("secret_id_secret", "s"), ("jwt_path", "/x")]), vec!["jwt_path"])]
    #[case::unknown_method(auth("ldap", &[]), vec!["method"])]
    #[case::empty(auth("token", &[("token_secret", "")]), vec!["token_secret"])]
    fn auth_blocks(#[case] auth: Auth, #[case] problems: Vec<&str>) {
        let found: Vec<&str> = auth.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(found, problems);
    }

    #[test]
    fn defaults_follow_the_method() {
        let planned = auth("kubernetes", &[("role", "web")]).planned();
        assert_eq!(planned.mount, known(DEFAULT_KUBERNETES_MOUNT));
        assert_eq!(planned.jwt_path, known(DEFAULT_JWT_PATH));
        let planned = auth("approle", &[("role_id", "r"), ("secret_id_secret", "s")]).planned();
        assert_eq!(planned.mount, known(DEFAULT_APPROLE_MOUNT));
        assert_eq!(planned.jwt_path, Value::Null);
        let planned = auth("token", &[("token_secret", "t")]).planned();
        assert_eq!(planned.mount, Value::Null);
        let unknown = Auth {
            method: Value::Unknown,
            ..Auth::default()
        };
        assert_eq!(unknown.planned().mount, Value::Unknown);
    }

    #[test]
    fn the_api_gets_only_the_fields_that_are_set() {
        let body = auth("token", &[("token_secret", "vault-token")])
            .to_json()
            .unwrap();
        assert_eq!(
            body,
            json!({"method": "token", "token_secret": "vault-token"})
        );
    }

    #[test]
    fn a_trailing_slash_is_the_same_address() {
        assert!(same_address(
            "https://vault.example.com/",
            "https://vault.example.com"
        ));
        assert!(!same_address(
            "https://vault.example.com:8200",
            "https://vault.example.com"
        ));
    }
}
