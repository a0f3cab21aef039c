//! Secrets, what uses them, and the runtime `resolve` call.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};
use zeroize::Zeroize;

/// Where a secret's value lives. `local`: encrypted in the platform
/// database; `remote`: in a provider (Vault, OpenBao or AWS Secrets
/// Manager), read at every workload start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    Local,
    Remote,
}

/// A secret's metadata. Never contains the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "0b6f7c1e-8a53-4b0e-9a55-2f0a3c1d9e77", "organization_id": "6c1f0d2a-3b9e-4f67-9c1d-8f6a2e4b7c10", "name": "stripe-api-key", "storage": "local", "provider_id": null, "remote_path": null, "remote_key": null, "version": 1, "value_set": true, "created_at": "2025-01-31T09:20:07.318Z", "updated_at": "2025-01-31T09:20:07.318Z", "allowed_namespaces": ["payments-*"]}))]
pub struct Secret {
    /// A server-assigned identifier.
    pub id: String,
    pub organization_id: String,
    /// A DNS label, unique in the organization; pods name the secret by it.
    pub name: String,
    pub storage: Storage,
    /// Remote secrets: the provider's id. `null` for local secrets.
    #[schema(required = true)]
    pub provider_id: Option<String>,
    /// Remote secrets: where the value lives at the provider (a Vault API
    /// path, an AWS secret name or ARN). `null` for local secrets.
    #[schema(required = true)]
    pub remote_path: Option<String>,
    /// Remote secrets: the key in the value map; `null` for local secrets,
    /// and for an AWS secret taken whole.
    #[schema(required = true)]
    pub remote_key: Option<String>,
    /// Starts at 1; every rotation or repointing adds one.
    #[schema(minimum = 1)]
    pub version: i64,
    /// Present, and `true`, for local secrets only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub value_set: Option<bool>,
    /// When the secret was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the secret was last rotated or repointed.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The namespaces whose pods may use the secret: names, or globs in
    /// which `*` stands for any run of characters (`team-a-*`). Empty: every
    /// namespace bound to the organization. The runtime `resolve` call is
    /// not fenced.
    #[serde(default)]
    pub allowed_namespaces: Vec<String>,
}

/// A plaintext secret value on its way in: zeroized when dropped, and
/// `<redacted>` when printed.
#[derive(Clone, Default, PartialEq, Eq, ToSchema)]
#[schema(value_type = String)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plaintext, handed over to whoever keeps it from here.
    pub fn into_string(mut self) -> String {
        std::mem::take(&mut self.0)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// Creates a secret: a local one (`value`; `storage` may be omitted) or a
/// remote one (`provider_id`, `remote_path`, `remote_key`; `storage` may be
/// omitted). Fields of both kinds together are refused with 422.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "stripe-api-key", "storage": "local", "value": "sk_live_..."}))]
pub struct CreateSecret {
    /// A DNS label, unique in the organization.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Local secrets: the plaintext value, 1 byte to 64 KiB. Write-only: no
    /// answer ever contains it (only `resolve`, for runtime tokens, and the
    /// webhook's patch do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, write_only, min_length = 1, max_length = 65536)]
    pub value: Option<SecretText>,
    /// Remote secrets: id or name of a provider of the same organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// Remote secrets: where the value lives, per the provider's kind.
    /// Vault: the API path without the leading `/v1/`, e.g.
    /// `kv/data/prod/stripe-api-key` (KV v2) or `secret/prod/db` (KV v1);
    /// segments separated by `/`, none empty, `.` or `..`, and no `\`, `#`,
    /// `?`, `%` or control characters. AWS Secrets Manager: the secret's
    /// name or ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 2048)]
    pub remote_path: Option<String>,
    /// Remote secrets. Vault (required): the key in the secret's data map,
    /// `data.data[remote_key]` for KV v2 and `data[remote_key]` for KV v1.
    /// AWS Secrets Manager (optional): a key of the JSON `SecretString`;
    /// left out, the `SecretString` is taken whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 256)]
    pub remote_key: Option<String>,
    /// The namespaces whose pods may use the secret: up to 64 namespace
    /// names or globs (`team-a-*`). Left out or empty: every namespace bound
    /// to the organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 64)]
    pub allowed_namespaces: Option<Vec<String>>,
}

/// `null` is kept apart from absence: `Some(None)`.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Rotates a local secret (`value`) or repoints a remote one (any of
/// `provider_id`, `remote_path`, `remote_key`; fields left out keep their
/// current value). Either way `version` goes up by one. `allowed_namespaces`
/// may come alone or with either.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"remote_path": "kv/data/prod/db-v2"}))]
pub struct UpdateSecret {
    /// Local secrets: the new plaintext value, 1 byte to 64 KiB.
    /// Write-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, write_only, min_length = 1, max_length = 65536)]
    pub value: Option<SecretText>,
    /// Remote secrets: id or name of a provider of the same organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// Remote secrets: where the value lives, as on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 2048)]
    pub remote_path: Option<String>,
    /// Remote secrets: the key, as on create; `null` takes an AWS secret
    /// whole.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 256)]
    pub remote_key: Option<Option<String>>,
    /// Replaces the namespace fence (`[]` lifts it). Audited as
    /// `secret.fence`; alone it changes no version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 64)]
    pub allowed_namespaces: Option<Vec<String>>,
}

/// How a rollout stands: `pending` (waiting for the workload's turn under
/// `--restart-min-interval`), `restarted` (its pod template was annotated,
/// and Kubernetes rolls it out), `skipped` (no opted-in pod ran an older
/// version any more) or `failed` (`message` says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RolloutState {
    Pending,
    Restarted,
    Skipped,
    Failed,
}

/// A workload restarted, or to be, because a secret's version changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "8d0c1e2f-3a4b-4c5d-9e6f-7a8b9c0d1e2f", "secret_id": "0b6f7c1e-8a53-4b0e-9a55-2f0a3c1d9e77", "secret_name": "stripe-api-key", "namespace": "payments", "kind": "Deployment", "name": "checkout", "from_version": 3, "to_version": 4, "reason": "rotated by token:owner:9f3c2d1e0a8b4c6d7e5f4a3b2c1d0e9f", "state": "restarted", "message": "", "requested_at": "2025-01-31T10:12:30.482Z", "restarted_at": "2025-01-31T10:12:31.017Z"}))]
pub struct Rollout {
    pub id: String,
    pub secret_id: String,
    pub secret_name: String,
    pub namespace: String,
    /// `Deployment`, `StatefulSet` or `DaemonSet`; `Namespace` (with `name`
    /// the namespace and `state` `failed`) when a namespace could not be
    /// searched, e.g. for a missing RBAC rule.
    pub kind: String,
    /// The workload's name.
    pub name: String,
    /// The oldest version of the secret the workload's opted-in pods ran;
    /// `null` for a namespace that could not be searched.
    #[schema(required = true)]
    pub from_version: Option<i64>,
    /// The version the workload is restarted to get.
    pub to_version: i64,
    /// What changed the version: a rotation or repointing (and by whom), or
    /// a new version at the provider.
    pub reason: String,
    pub state: RolloutState,
    /// Why it waits or failed; empty otherwise.
    pub message: String,
    #[schema(format = DateTime)]
    pub requested_at: String,
    /// When the pod template was annotated; `null` until then.
    #[schema(format = DateTime, required = true)]
    pub restarted_at: Option<String>,
}

/// The query of a secret's delete.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteSecretQuery {
    /// Delete even when something uses the secret (`true` or `false`).
    #[param(value_type = Option<bool>, default = false)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<String>,
}

/// Something that uses a secret. Pods and runtime consumers are recorded
/// when they resolve it; image pull secrets and providers name it in their
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reference {
    /// A pod admitted with the secret (recorded by the webhook; dry runs are
    /// not recorded).
    Pod {
        namespace: String,
        /// The pod's name, or its `generateName` (e.g. `web-7d9f-`) when it
        /// had no name yet.
        pod: String,
        /// The controlling owner's kind, e.g. `ReplicaSet`.
        #[schema(required = true)]
        owner_kind: Option<String>,
        /// The controlling owner's name.
        #[schema(required = true)]
        owner_name: Option<String>,
        container: String,
        env_var: String,
        /// First admission with this secret.
        #[schema(format = DateTime)]
        first_seen_at: String,
        /// Latest recorded admission (refreshed at most every 5 minutes per
        /// replica).
        #[schema(format = DateTime)]
        last_seen_at: String,
    },
    /// A runtime consumer that resolved the secret.
    Runtime {
        /// As sent to `resolve`, e.g. `llm-provider/openai-prod`.
        consumer: String,
        /// First resolution by this consumer.
        #[schema(format = DateTime)]
        first_seen_at: String,
        /// Latest resolution by this consumer.
        #[schema(format = DateTime)]
        last_seen_at: String,
    },
    /// An image pull secret whose `password_secret` names the secret.
    ImagePullSecret { id: String, name: String },
    /// A provider whose credential (`token_secret`, `secret_id_secret` or
    /// `secret_access_key_secret`) is the secret.
    Provider { id: String, name: String },
}

/// Asks for values (runtime tokens only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"names": ["stripe-api-key"], "consumer": "llm-provider/openai-prod"}))]
pub struct ResolveRequest {
    /// 1 to 100 secret names of the organization.
    #[schema(min_items = 1, max_items = 100)]
    pub names: Vec<String>,
    /// Who asks, recorded as a runtime reference of each secret: 1 to 253
    /// characters, e.g. `llm-provider/openai-prod`.
    #[schema(min_length = 1, max_length = 253)]
    pub consumer: String,
}

/// The values, by secret name. The only answer of the API that holds
/// values.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct ResolveResponse {
    pub values: BTreeMap<String, String>,
}

impl fmt::Debug for ResolveResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveResponse")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
