//! Secret providers: where remote secrets live, of every kind.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A provider: the common fields, and its kind's settings beside them.
/// Optional settings that are not set are left out. Credentials are names
/// of local secrets, never values.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
pub struct Provider {
    /// A server-assigned identifier.
    pub id: String,
    pub organization_id: String,
    /// A DNS label, unique in the organization.
    pub name: String,
    /// The kind's settings, with `kind` itself.
    #[serde(flatten)]
    #[schema(value_type = ProviderSettings)]
    pub settings: Map<String, Value>,
    /// When the provider was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the provider was last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl Provider {
    /// The provider's kind, e.g. `vault`.
    pub fn kind(&self) -> &str {
        self.settings
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// One JSON object, keys in order; a setting never hides a common field.
impl Serialize for Provider {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut object = self.settings.clone();
        for (key, value) in [
            ("id", &self.id),
            ("organization_id", &self.organization_id),
            ("name", &self.name),
            ("created_at", &self.created_at),
            ("updated_at", &self.updated_at),
        ] {
            object.insert(key.to_owned(), Value::String(value.clone()));
        }
        object.serialize(serializer)
    }
}

/// A kind and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind")]
pub enum ProviderSettings {
    /// HashiCorp Vault or OpenBao.
    #[serde(rename = "vault")]
    Vault(VaultSettings),
    /// AWS Secrets Manager in one region.
    #[serde(rename = "aws-secrets-manager")]
    AwsSecretsManager(AwsSecretsManagerSettings),
}

/// The settings of a `vault` provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultSettings {
    /// A base URL: `https://` (or `http://` for a development server), a
    /// host and an optional port; no path, query, fragment or user.
    /// Link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10,
    /// fd00:ec2::254, 100.100.100.200, 192.0.0.192, 168.63.129.16,
    /// fd20:ce::254, metadata.google.internal, …) are always refused, and
    /// `--provider-deny-cidrs` / `--provider-allow-cidrs` narrow the rest.
    #[schema(format = "uri", example = "https://vault.example.com:8200")]
    pub address: String,
    /// Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`,
    /// e.g. `admin/team-a`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// PEM certificates to trust for the provider's TLS, instead of the
    /// system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    pub auth: VaultAuth,
}

/// How the product logs in to Vault. Credentials are named local secrets
/// of the same organization, never inline values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum VaultAuth {
    /// Log in with a Vault token kept in a local secret.
    Token {
        /// Name of a local secret of the same organization holding the
        /// Vault token.
        token_secret: String,
    },
    /// Log in with the product's service account token (Vault's
    /// Kubernetes auth method), read from the file that the server's
    /// `--service-account-token-file` names. Only a platform admin may
    /// configure it.
    Kubernetes {
        /// The Vault role.
        role: String,
        /// The auth mount path; `kubernetes` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mount: Option<String>,
    },
    /// Log in with AppRole; the secret id is kept in a local secret.
    Approle {
        role_id: String,
        /// Name of a local secret of the same organization holding the
        /// AppRole secret id.
        secret_id_secret: String,
        /// The auth mount path; `approle` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mount: Option<String>,
    },
}

/// The settings of an `aws-secrets-manager` provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSecretsManagerSettings {
    /// The AWS region, e.g. `eu-west-1`.
    #[schema(pattern = "^[a-z][a-z0-9-]{2,30}[0-9]$", example = "eu-west-1")]
    pub region: String,
    /// The Secrets Manager endpoint, for VPC endpoints and other
    /// partitions; `https://secretsmanager.<region>.amazonaws.com` when
    /// absent. A base URL, under the same address rules as Vault's
    /// `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri")]
    pub endpoint: Option<String>,
    /// The STS endpoint, used by web identity and by the provider check;
    /// `https://sts.<region>.amazonaws.com` when absent. Same rules as
    /// `endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri")]
    pub sts_endpoint: Option<String>,
    /// PEM certificates to trust for both endpoints, instead of the system
    /// roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    pub auth: AwsAuth,
}

/// How the product signs its requests to AWS. Credentials are named local
/// secrets of the same organization, never inline values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AwsAuth {
    /// Sign with an IAM access key; its secret is kept in a local secret.
    Static {
        #[schema(pattern = "^[A-Z0-9]{16,128}$", example = "AKIAIOSFODNN7EXAMPLE")]
        access_key_id: String,
        /// Name of a local secret of the same organization holding the
        /// secret access key.
        secret_access_key_secret: String,
    },
    /// Assume a role with STS `AssumeRoleWithWebIdentity` and the token in
    /// the file that the server's `--web-identity-token-file` names (IRSA).
    /// Only a platform admin may configure it.
    WebIdentity {
        #[schema(example = "arn:aws:iam::123456789012:role/agyn-secrets")]
        role_arn: String,
    },
}

/// Creates a provider of one kind; a field the kind does not know is 422
/// naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "vault-prod", "kind": "vault", "address": "https://vault.example.com:8200", "auth": {"method": "token", "token_secret": "vault-token"}}))]
pub struct CreateProvider {
    /// A DNS label, unique in the organization.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )]
    pub name: String,
    #[serde(flatten)]
    pub settings: ProviderSettings,
}

/// Any of the provider's kind's settings. Fields left out stay as they
/// are; `null` clears an optional one; `auth` is replaced as a whole; the
/// result is checked as a whole. `name` and `kind` cannot change; a field
/// of another kind is 422.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(value_type = Object, example = json!({"address": "https://vault-2.example.com:8200", "namespace": null}))]
pub struct UpdateProvider(pub Map<String, Value>);

/// The outcome of a provider check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"ok": true, "message": "vault provider \"vault-prod\": reachable; logged in with kubernetes auth; the token is valid for 1h and renewable; policies: agyn-read, default"}))]
pub struct ProviderCheck {
    /// Whether the provider could be reached and logged in to.
    pub ok: bool,
    /// What was checked, or what failed, for a person. Anything that does
    /// not answer as the provider's protocol does gets the same "cannot
    /// reach" message, whatever it is.
    pub message: String,
}
