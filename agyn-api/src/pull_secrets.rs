//! Image pull secrets: registry credentials whose password is a secret.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Registry credentials whose password is a secret of the organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImagePullSecret {
    /// A server-assigned identifier.
    pub id: String,
    pub organization_id: String,
    /// Pods name it in `secrets.agyn.io/image-pull-secrets`; the Kubernetes
    /// Secret is `agyn-pull-<name>`.
    pub name: String,
    /// Registry host, e.g. `ghcr.io`.
    pub registry: String,
    pub username: String,
    /// Name of the secret holding the registry password or token.
    pub password_secret: String,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it was last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// Creates an image pull secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "ghcr", "registry": "ghcr.io", "username": "acme-bot", "password_secret": "ghcr-token"}))]
pub struct CreateImagePullSecret {
    /// A DNS label; pods name it in `secrets.agyn.io/image-pull-secrets`,
    /// and the Kubernetes Secret is `agyn-pull-<name>`.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )]
    pub name: String,
    /// Registry host, e.g. `ghcr.io`; no whitespace.
    #[schema(min_length = 1, max_length = 253, pattern = "^\\S+$")]
    pub registry: String,
    /// No whitespace, no ':'.
    #[schema(min_length = 1, max_length = 256, pattern = "^[^\\s:]+$")]
    pub username: String,
    /// Name of an existing secret of the same organization.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )]
    pub password_secret: String,
}
