//! Turning secret names into values: local secrets are decrypted, remote
//! ones are read from their provider. One resolver serves every consumer:
//! the webhook, the runtime `resolve` endpoint and image pull secrets.

use std::collections::HashMap;

use crate::crypto::{Aad, CryptoError, KeyRingHandle, SecretValue};
use crate::store::{Organization, Secret, SecretContent, Store, StoreError};

/// A resolved secret: its identity and version, and the value.
#[derive(Debug, Clone)]
pub struct ResolvedSecret {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub value: SecretValue,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{}", not_found(organization, names))]
    NotFound {
        organization: String,
        names: Vec<String>,
    },
    #[error("secret {name:?} is a remote secret, and remote secrets are not supported yet")]
    Unsupported { name: String },
    #[error("vault provider {provider:?}: {message}")]
    Provider {
        provider: String,
        message: String,
        timed_out: bool,
    },
    #[error("secret {name:?} cannot be decrypted: {source}")]
    Crypto { name: String, source: CryptoError },
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
            ResolveError::Store(_) => "database",
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
}

impl Resolver {
    pub fn new(store: Store, keys: KeyRingHandle) -> Self {
        Self { store, keys }
    }

    /// Resolves `names` (distinct) in `organization`, returning the secrets
    /// keyed by name. Every unknown name is reported at once.
    pub async fn resolve(
        &self,
        organization: &Organization,
        names: &[&str],
    ) -> Result<HashMap<String, ResolvedSecret>, ResolveError> {
        let secrets = self
            .store
            .find_secrets_by_name(&organization.id, names)
            .await?;
        let found: HashMap<&str, &Secret> = secrets.iter().map(|s| (s.name.as_str(), s)).collect();
        let missing: Vec<String> = names
            .iter()
            .filter(|n| !found.contains_key(**n))
            .map(|n| (*n).to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(ResolveError::NotFound {
                organization: organization.name.clone(),
                names: missing,
            });
        }
        let keys = self.keys.current();
        let mut resolved = HashMap::with_capacity(secrets.len());
        for secret in &secrets {
            let value = match &secret.content {
                SecretContent::Local(sealed) => keys
                    .open(
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
                    })?,
                SecretContent::Remote(_) => {
                    return Err(ResolveError::Unsupported {
                        name: secret.name.clone(),
                    });
                }
            };
            resolved.insert(
                secret.name.clone(),
                ResolvedSecret {
                    id: secret.id.clone(),
                    name: secret.name.clone(),
                    version: secret.version,
                    value,
                },
            );
        }
        Ok(resolved)
    }
}
