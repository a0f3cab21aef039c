//! Namespace bindings: which organization a Kubernetes namespace's pods may
//! draw secrets from.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A namespace bound to an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamespaceBinding {
    /// The Kubernetes namespace, a DNS label.
    pub namespace: String,
    /// The organization's id.
    pub organization_id: String,
    /// When the namespace was bound (to its current organization).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Present when one binding is written or read; absent from lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub access: Option<NamespaceAccess>,
}

/// What agyn-secrets may do in the namespace, asked of the Kubernetes API
/// with SelfSubjectAccessReviews when one binding is written or read. It
/// needs get, list, create, update and delete on Secrets and list on pods
/// there, granted by a RoleBinding to the ClusterRole
/// `agyn-secrets-workload`; without them pods there that need a Secret
/// written (`secret` delivery, image pull secrets) are denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamespaceAccess {
    /// Whether the Kubernetes API could be asked.
    pub checked: bool,
    /// Whether every rule is allowed.
    pub ok: bool,
    /// The rules that are not allowed, as `<verb> <resource>`, e.g. `create
    /// secrets`.
    pub missing: Vec<String>,
    /// What to do, e.g. the `kubectl create rolebinding` line; present when
    /// something is missing or could not be checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message: Option<String>,
}

/// Binds a namespace to an organization (admin only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"organization": "acme"}))]
pub struct BindNamespace {
    /// The organization's id or name.
    pub organization: String,
}
