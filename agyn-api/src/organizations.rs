//! Organizations, tokens, the caller's identity and the audit log.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a token may do. `admin`: platform-wide; `owner`: reads and writes
/// one organization; `member`: reads one organization's metadata;
/// `runtime`: calls `resolve` for one organization and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Owner,
    Member,
    Runtime,
}

/// A tenant: its secrets, providers, image pull secrets and tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "6c1f0d2a-3b9e-4f67-9c1d-8f6a2e4b7c10", "name": "acme", "created_at": "2025-01-31T09:12:44.512Z"}))]
pub struct Organization {
    /// A server-assigned identifier.
    pub id: String,
    /// A DNS label, unique on the platform.
    pub name: String,
    /// When the organization was created.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// Creates an organization (admin only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "acme"}))]
pub struct CreateOrganization {
    /// A Kubernetes DNS label (RFC 1123): lower-case letters, digits and
    /// '-', starting and ending with a letter or digit, at most 63
    /// characters.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )]
    pub name: String,
}

/// The caller's own token: its role and organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The id of the presented token.
    pub token_id: String,
    /// The token's name.
    pub name: String,
    pub role: Role,
    /// The token's organization; `null` for admin tokens.
    #[schema(required = true)]
    pub organization: Option<Organization>,
}

/// An API token's metadata. The token itself is never listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// 32 hex digits; also the `<id>` part of the token text.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    /// A DNS label, unique in the organization.
    pub name: String,
    pub role: Role,
    /// The organization the token belongs to; `null` for admin tokens.
    #[schema(required = true)]
    pub organization_id: Option<String>,
    /// When the token was created.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A new token. `token` appears in this answer only: it is stored as a
/// hash and cannot be shown again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub metadata: Token,
    /// The bearer token: `agyn_<32 hex id>_<43 base64url characters>`.
    /// Shown once.
    #[schema(pattern = "^agyn_[0-9a-f]{32}_[A-Za-z0-9_-]+$")]
    pub token: String,
}

/// Creates a token of the organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "llm-proxy", "role": "runtime"}))]
pub struct CreateToken {
    /// A DNS label, unique in the organization.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )]
    pub name: String,
    /// `owner` tokens may only be created by an admin. `admin` is refused
    /// with 422: admin tokens are made with `agyn-secrets token create
    /// --admin`.
    pub role: Role,
}

/// One change or value read. Never contains a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// A server-assigned identifier.
    pub id: String,
    /// When it happened.
    #[schema(format = DateTime)]
    pub at: String,
    /// `token:<token name>:<token id>`.
    pub actor: String,
    /// What happened. Current actions: `organization.create`,
    /// `token.create`, `token.revoke`, `secret.create`, `secret.rotate`,
    /// `secret.repoint`, `secret.delete`, `secret.delete.forced`,
    /// `secret.resolve`, `provider.create`, `provider.update`,
    /// `provider.delete`, `image_pull_secret.create`,
    /// `image_pull_secret.delete`, `namespace.bind`, `namespace.unbind`.
    #[schema(example = "secret.rotate")]
    pub action: String,
    /// `organization`, `token`, `secret`, `provider`, `image_pull_secret` or
    /// `namespace`.
    pub target_kind: String,
    pub target_id: String,
    pub target_name: String,
}
