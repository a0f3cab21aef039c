//! The Secrets of `secret` delivery: one Opaque Secret per group of pods
//! and set of secret versions, holding the values under the secrets' names,
//! which the pods' env refers to with `secretKeyRef`.
//!
//! The name is derived from the organization, the namespace, the pods'
//! controlling owner (their ReplicaSet, Job, StatefulSet…; the pod itself
//! when it has none) and every secret's name and version. So the pods of
//! one ReplicaSet that resolve to the same versions share one Secret, a
//! rotation makes a new one, and an admission and its dry run name the same
//! Secret without writing anything to find out. No value goes into the
//! name.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

use super::{Cluster, ClusterError, VERSION_ANNOTATION};
use crate::crypto::SecretValue;

/// Prefix of every env Secret the product writes.
pub const ENV_PREFIX: &str = "agyn-env-";
/// `<kind>/<name>` of the pods a Secret was written for.
pub const OWNER_ANNOTATION: &str = "secrets.agyn.io/owner";

/// One env Secret to write.
pub struct EnvSecret<'a> {
    pub organization_id: &'a str,
    pub namespace: &'a str,
    /// The pods' controlling owner as `(kind, name)`, or `("Pod", name)`.
    pub owner: (&'a str, &'a str),
    /// `(secret name, version, value)`, sorted by name, names distinct.
    pub values: Vec<(&'a str, i64, &'a SecretValue)>,
}

impl EnvSecret<'_> {
    /// The Secret's name: `agyn-env-` and 16 hex digits.
    pub fn name(&self) -> String {
        env_secret_name(
            self.organization_id,
            self.namespace,
            self.owner,
            self.values
                .iter()
                .map(|(name, version, _)| (*name, *version)),
        )
    }
}

/// The name of the env Secret for pods of `owner` in `namespace` that
/// resolve `versions` (`(name, version)`, sorted by name).
pub fn env_secret_name<'a>(
    organization_id: &str,
    namespace: &str,
    owner: (&str, &str),
    versions: impl IntoIterator<Item = (&'a str, i64)>,
) -> String {
    let mut hash = Sha256::new();
    // Each field is length-prefixed, so that no two inputs run together.
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field(b"agyn-secrets/env/v1");
    field(organization_id.as_bytes());
    field(namespace.as_bytes());
    field(owner.0.as_bytes());
    field(owner.1.as_bytes());
    for (name, version) in versions {
        field(name.as_bytes());
        field(&version.to_le_bytes());
    }
    let digest = hash.finalize();
    let mut name = String::with_capacity(ENV_PREFIX.len() + 16);
    name.push_str(ENV_PREFIX);
    for byte in &digest[..8] {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

impl Cluster {
    /// Creates or refreshes the env Secret, and returns its name.
    pub async fn upsert_env_secret(&self, env: &EnvSecret<'_>) -> Result<String, ClusterError> {
        let name = env.name();
        let versions: Vec<String> = env
            .values
            .iter()
            .map(|(secret, version, _)| format!("{secret}@{version}"))
            .collect();
        let owner: String = format!("{}/{}", env.owner.0, env.owner.1)
            .chars()
            .take(253)
            .collect();
        let data = env
            .values
            .iter()
            .map(|(secret, _, value)| {
                (
                    (*secret).to_owned(),
                    ByteString(value.expose().as_bytes().to_vec()),
                )
            })
            .collect();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(env.namespace.to_owned()),
                annotations: Some(BTreeMap::from([
                    (VERSION_ANNOTATION.to_owned(), versions.join(",")),
                    (OWNER_ANNOTATION.to_owned(), owner),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(data),
            ..Secret::default()
        };
        self.upsert(secret).await?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_owner_and_versions_only() {
        let name = |org, ns, owner, versions: &[(&'static str, i64)]| {
            env_secret_name(org, ns, owner, versions.iter().copied())
        };
        let base = name(
            "o",
            "team-a",
            ("ReplicaSet", "web-1"),
            &[("a", 1), ("b", 2)],
        );
        assert!(base.starts_with(ENV_PREFIX) && base.len() == ENV_PREFIX.len() + 16);
        assert!(crate::validate::is_dns_label(&base));
        assert_eq!(
            base,
            name(
                "o",
                "team-a",
                ("ReplicaSet", "web-1"),
                &[("a", 1), ("b", 2)]
            )
        );
        for other in [
            name(
                "p",
                "team-a",
                ("ReplicaSet", "web-1"),
                &[("a", 1), ("b", 2)],
            ),
            name(
                "o",
                "team-b",
                ("ReplicaSet", "web-1"),
                &[("a", 1), ("b", 2)],
            ),
            name(
                "o",
                "team-a",
                ("ReplicaSet", "web-2"),
                &[("a", 1), ("b", 2)],
            ),
            name("o", "team-a", ("Job", "web-1"), &[("a", 1), ("b", 2)]),
            name(
                "o",
                "team-a",
                ("ReplicaSet", "web-1"),
                &[("a", 2), ("b", 2)],
            ),
            name("o", "team-a", ("ReplicaSet", "web-1"), &[("a", 1)]),
            // Fields never run together.
            name(
                "o",
                "team-a",
                ("ReplicaSet", "web-1a"),
                &[("", 1), ("b", 2)],
            ),
        ] {
            assert_ne!(base, other);
        }
    }
}
