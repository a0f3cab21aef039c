//! HashiCorp Vault and OpenBao (`kind: "vault"`): KV v1 and v2 reads with
//! token, Kubernetes or AppRole auth.

mod session;
mod wire;

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::net::{self, NetPolicy};
use super::provider::{
    Failure, FailureKind, Invalid, Kind, SessionEnv, Validated, check_ca_pem, parse_settings,
};
use crate::crypto::SecretValue;
use crate::store::Provider;

pub use session::{Credentials, Session};

/// A Vault or OpenBao provider's settings, as stored and as the API shows
/// them. Credentials are named local secrets, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    pub auth: Auth,
}

/// How the product logs in to Vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum Auth {
    Token {
        token_secret: String,
    },
    /// With the pod's service account token, whose path is a server flag
    /// (`--service-account-token-file`).
    Kubernetes {
        role: String,
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
    },
    Approle {
        role_id: String,
        secret_id_secret: String,
        #[serde(default = "default_approle_mount")]
        mount: String,
    },
}

fn default_kubernetes_mount() -> String {
    "kubernetes".into()
}

fn default_approle_mount() -> String {
    "approle".into()
}

pub struct Vault;

impl Kind for Vault {
    fn name(&self) -> &'static str {
        "vault"
    }

    fn validate(
        &self,
        settings: Map<String, Value>,
        net: &NetPolicy,
    ) -> Result<Validated, Invalid> {
        let mut settings: Settings = parse_settings(settings)?;
        settings.address = net::check_url("address", &settings.address, net)?;
        settings.namespace = settings.namespace.filter(|n| !n.is_empty());
        if let Some(namespace) = &settings.namespace {
            check_namespace(namespace)?;
        }
        settings.ca_pem = settings.ca_pem.filter(|p| !p.trim().is_empty());
        if let Some(pem) = &settings.ca_pem {
            check_ca_pem(pem)?;
        }
        let credential = match &settings.auth {
            Auth::Token { token_secret } => Some((token_secret.clone(), "auth.token_secret")),
            Auth::Kubernetes { role, mount } => {
                if role.is_empty() {
                    return Err(Invalid::new("auth.role", "is required"));
                }
                check_mount("auth.mount", mount)?;
                None
            }
            Auth::Approle {
                role_id,
                secret_id_secret,
                mount,
            } => {
                if role_id.is_empty() {
                    return Err(Invalid::new("auth.role_id", "is required"));
                }
                check_mount("auth.mount", mount)?;
                Some((secret_id_secret.clone(), "auth.secret_id_secret"))
            }
        };
        // Kubernetes auth logs in with the product's own service account
        // token, which every organization shares: an owner who could pick
        // the role or the address could read another organization's
        // secrets, or receive that token.
        let admin_only = matches!(settings.auth, Auth::Kubernetes { .. });
        let Value::Object(settings) = serde_json::to_value(&settings).expect("settings serialize")
        else {
            unreachable!("settings serialize to an object")
        };
        Ok(Validated {
            settings,
            credential,
            admin_only,
        })
    }

    fn check_reference(&self, path: &str, key: Option<&str>) -> Result<(), Invalid> {
        check_path(path).map_err(|message| Invalid::new("remote_path", message))?;
        match key {
            Some(key) if !key.is_empty() && key.len() <= 256 => Ok(()),
            _ => Err(Invalid::new(
                "remote_key",
                "is required for a Vault secret: the key of the value map at remote_path",
            )),
        }
    }

    fn session(
        &self,
        provider: &Provider,
        credential: Option<SecretValue>,
        env: SessionEnv,
    ) -> Result<Box<dyn super::provider::Session>, Failure> {
        let settings: Settings = serde_json::from_value(Value::Object(provider.settings.clone()))
            .map_err(|e| {
            env.fail(
                FailureKind::Config,
                format!("its stored settings cannot be read ({e}); update the provider"),
            )
        })?;
        let credentials = match (&settings.auth, credential) {
            (Auth::Token { token_secret }, Some(token)) => Credentials::Token {
                token,
                secret: token_secret.clone(),
            },
            (
                Auth::Approle {
                    role_id,
                    secret_id_secret,
                    mount,
                },
                Some(secret_id),
            ) => Credentials::Approle {
                role_id: role_id.clone(),
                secret_id,
                secret: secret_id_secret.clone(),
                mount: mount.clone(),
            },
            (Auth::Kubernetes { role, mount }, _) => Credentials::Kubernetes {
                role: role.clone(),
                mount: mount.clone(),
                token_file: env.files.service_account.clone(),
            },
            (_, None) => {
                return Err(env.fail(
                    FailureKind::Credential,
                    "its credential secret has no value",
                ));
            }
        };
        Ok(Box::new(Session::new(
            &provider.name,
            &settings,
            credentials,
            env,
        )?))
    }
}

impl super::provider::Session for Session {
    fn name(&self) -> &str {
        self.name()
    }

    fn label(&self) -> String {
        format!("vault provider {:?}", self.name())
    }

    fn log_in(&self) -> BoxFuture<'_, Result<(), Failure>> {
        Box::pin(async move { self.token().await.map(drop) })
    }

    fn read<'a>(
        &'a self,
        path: &'a str,
        keys: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<BTreeMap<String, SecretValue>, Failure>> {
        Box::pin(Session::read(self, path, keys))
    }

    fn check(&self) -> BoxFuture<'_, Result<String, Failure>> {
        Box::pin(Session::check(self))
    }

    fn current_version<'a>(
        &'a self,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Failure>> {
        Box::pin(Session::current_version(self, path))
    }

    fn fail(&self, kind: FailureKind, message: String) -> Failure {
        Session::fail(self, kind, message)
    }
}

/// The KV v2 metadata path of a data path: `kv/data/prod/db` →
/// `kv/metadata/prod/db`. The first `data` segment after the mount is the
/// one KV v2 puts there; a path without one is not KV v2.
pub fn metadata_path(path: &str) -> Option<String> {
    let (mount, rest) = path.split_once("/data/")?;
    (!mount.is_empty() && !rest.is_empty()).then(|| format!("{mount}/metadata/{rest}"))
}

/// Checks a `remote_path`: the API path after `/v1/`, made of plain
/// segments, so that the request cannot leave it: no `.` or `..` segment,
/// no empty one, no `\`, `#`, `?`, `%` or control character.
pub fn check_path(path: &str) -> Result<(), String> {
    let rule = "must be a path such as kv/data/prod/db: segments separated by '/', none empty, '.' or '..', without '\\', '#', '?', '%' or control characters";
    let ok = !path.is_empty()
        && path.len() <= 1024
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
        && !path
            .chars()
            .any(|c| c.is_control() || matches!(c, '\\' | '#' | '?' | '%'));
    if ok { Ok(()) } else { Err(rule.to_owned()) }
}

/// Whether `text` is a path of plain segments: letters, digits, `-`, `_`
/// and `.`, none empty, `.` or `..`.
fn is_plain_path(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'))
}

fn check_namespace(namespace: &str) -> Result<(), Invalid> {
    if is_plain_path(namespace, 255) {
        Ok(())
    } else {
        Err(Invalid::new(
            "namespace",
            "must be a Vault namespace path such as admin/team-a",
        ))
    }
}

fn check_mount(field: &str, mount: &str) -> Result<(), Invalid> {
    if is_plain_path(mount, 128) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            "must be an auth mount path such as kubernetes or approle",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn validate(settings: Value) -> Result<Validated, Invalid> {
        let Value::Object(map) = settings else {
            panic!("an object")
        };
        Vault.validate(map, &NetPolicy::default())
    }

    #[test]
    fn kv2_data_paths_have_metadata_paths() {
        assert_eq!(
            metadata_path("kv/data/prod/db").as_deref(),
            Some("kv/metadata/prod/db")
        );
        assert_eq!(
            metadata_path("team/kv/data/db").as_deref(),
            Some("team/kv/metadata/db")
        );
        assert_eq!(metadata_path("secret/prod/db"), None);
        assert_eq!(metadata_path("kv/data/"), None);
        assert_eq!(metadata_path("data/db"), None);
    }

    #[test]
    fn settings_are_normalized() {
        let validated = validate(json!({
            "address": "https://vault.example.com:8200/",
            "namespace": "",
            "auth": {"method": "approle", "role_id": "r", "secret_id_secret": "vault-sid"}
        }))
        .unwrap();
        assert_eq!(
            Value::Object(validated.settings),
            json!({"address": "https://vault.example.com:8200",
                   "auth": {"method": "approle", "role_id": "r", "secret_id_secret": "vault-sid", "mount": "approle"}})
        );
        assert_eq!(
            validated.credential,
            Some(("vault-sid".to_owned(), "auth.secret_id_secret"))
        );
        assert!(!validated.admin_only);
        let kubernetes = validate(json!({"address": "http://127.0.0.1:8200",
            "auth": {"method": "kubernetes", "role": "agyn"}}))
        .unwrap();
        assert!(kubernetes.admin_only && kubernetes.credential.is_none());
    }

    #[rstest]
    #[case::jwt_path(json!({"address": "http://127.0.0.1:8200", "auth": {"method": "kubernetes", "role": "r", "jwt_path": "/etc/passwd"}}), "auth.jwt_path")]
    #[case::unknown(json!({"address": "http://127.0.0.1:8200", "region": "x", "auth": {"method": "token", "token_secret": "t"}}), "region")]
    #[case::metadata(json!({"address": "http://100.100.100.200", "auth": {"method": "token", "token_secret": "t"}}), "address")]
    #[case::fragment(json!({"address": "http://vault.example.com#frag", "auth": {"method": "token", "token_secret": "t"}}), "address")]
    #[case::no_auth(json!({"address": "http://127.0.0.1:8200"}), "auth")]
    #[case::mount(json!({"address": "http://127.0.0.1:8200", "auth": {"method": "approle", "role_id": "r", "secret_id_secret": "s", "mount": "../x"}}), "auth.mount")]
    fn bad_settings_name_the_field(#[case] settings: Value, #[case] field: &str) {
        let error = validate(settings).unwrap_err();
        assert_eq!(error.field, field, "{error:?}");
    }

    #[rstest]
    #[case::kv2("kv/data/prod/db", true)]
    #[case::spaces("kv/data/prod db", true)]
    #[case::escape("a\\..\\..\\outside", false)]
    #[case::dots("kv/../sys/raw", false)]
    #[case::dot("kv/./x", false)]
    #[case::leading_slash("/kv/x", false)]
    #[case::empty_segment("kv//x", false)]
    #[case::fragment("kv/x#y", false)]
    #[case::query("kv/x?list=true", false)]
    #[case::percent("kv/%2e%2e/x", false)]
    #[case::control("kv/x\ny", false)]
    fn paths_cannot_leave_the_mount(#[case] path: &str, #[case] ok: bool) {
        assert_eq!(check_path(path).is_ok(), ok, "{path}");
    }
}
