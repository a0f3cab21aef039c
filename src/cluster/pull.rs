//! Image pull secrets: `kubernetes.io/dockerconfigjson` Secrets named
//! `agyn-pull-<name>` in workload namespaces.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use zeroize::Zeroizing;

use super::{Cluster, ClusterError};
use crate::crypto::SecretValue;

/// Prefix of every image pull Secret the product writes.
pub const PULL_PREFIX: &str = "agyn-pull-";
/// The image pull secret a Secret was made from.
pub const SOURCE_ANNOTATION: &str = "secrets.agyn.io/source";
/// `<secret>@<version>,…` of the values in a managed Secret.
pub const VERSION_ANNOTATION: &str = "secrets.agyn.io/source-version";

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

impl Cluster {
    /// Creates or updates `agyn-pull-<name>` in `namespace`.
    pub async fn upsert_pull_secret(
        &self,
        namespace: &str,
        credentials: &Credentials<'_>,
    ) -> Result<(), ClusterError> {
        let config = docker_config(
            credentials.registry,
            credentials.username,
            credentials.password,
        );
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(format!("{PULL_PREFIX}{}", credentials.name)),
                namespace: Some(namespace.to_owned()),
                annotations: Some(BTreeMap::from([
                    (SOURCE_ANNOTATION.to_owned(), credentials.name.to_owned()),
                    (VERSION_ANNOTATION.to_owned(), credentials.version.clone()),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_owned(),
                ByteString(config.to_vec()),
            )])),
            ..Secret::default()
        };
        self.upsert(secret).await
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
