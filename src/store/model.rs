//! The records the store keeps. None holds a plaintext value.

use serde::{Deserialize, Serialize};

use crate::crypto::Sealed;

#[derive(Debug, Clone, Serialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Platform-wide administration.
    Admin,
    /// Reads and writes one organization.
    Owner,
    /// Reads one organization's metadata.
    Member,
    /// Calls `resolve` for one organization, and nothing else.
    Runtime,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::Member => "member",
            Role::Runtime => "runtime",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            "member" => Role::Member,
            "runtime" => Role::Runtime,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub id: String,
    pub organization_id: Option<String>,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    Local,
    Remote,
}

impl Storage {
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Local => "local",
            Storage::Remote => "remote",
        }
    }
}

/// Where a remote secret's value lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    pub provider_id: String,
    pub remote_path: String,
    /// A key of the value at the path; `None` takes the whole value (for
    /// kinds whose values can be plain strings).
    pub remote_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Secret {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub content: SecretContent,
    /// The namespaces (names and globs) whose pods may use it; empty for
    /// every namespace bound to the organization. See `crate::fence`.
    pub allowed_namespaces: Vec<String>,
}

/// A local secret's sealed value, or a remote secret's reference.
#[derive(Debug, Clone)]
pub enum SecretContent {
    Local(Sealed),
    Remote(RemoteRef),
}

impl Secret {
    pub fn storage(&self) -> Storage {
        match self.content {
            SecretContent::Local(_) => Storage::Local,
            SecretContent::Remote(_) => Storage::Remote,
        }
    }

    pub fn remote(&self) -> Option<&RemoteRef> {
        match &self.content {
            SecretContent::Remote(remote) => Some(remote),
            SecretContent::Local(_) => None,
        }
    }
}

/// A secret provider of an organization. What a provider needs is its
/// kind's business (`resolve::Kind`): its settings are that kind's JSON
/// object, validated by the kind when written.
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub kind: String,
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// The local secret holding the provider's credential, when its auth
    /// method uses one.
    pub credential_secret: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct ImagePullSecret {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub registry: String,
    pub username: String,
    pub password_secret: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NamespaceBinding {
    pub namespace: String,
    pub organization_id: String,
    pub created_at: i64,
}

/// Something that uses a secret. Pods and runtime consumers are recorded when
/// they resolve it; image pull secrets and providers name it in their
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reference {
    Pod {
        namespace: String,
        pod: String,
        owner_kind: Option<String>,
        owner_name: Option<String>,
        container: String,
        env_var: String,
        first_seen_at: String,
        last_seen_at: String,
    },
    Runtime {
        consumer: String,
        first_seen_at: String,
        last_seen_at: String,
    },
    ImagePullSecret {
        id: String,
        name: String,
    },
    Provider {
        id: String,
        name: String,
    },
}

/// A pod's use of one secret, recorded at admission.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodReference {
    pub secret_id: String,
    pub namespace: String,
    /// The pod's name, or its generateName when the name is not set yet.
    pub pod: String,
    pub owner_kind: String,
    pub owner_name: String,
    pub container: String,
    pub env_var: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub id: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub target_name: String,
}
