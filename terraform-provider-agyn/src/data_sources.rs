//! Data sources: `agyn_secret`, a secret's metadata (never its value).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, DataSource, Diagnostics};

use crate::client::Shared;
use crate::diagnostics::Report;
use crate::resources::{SecretView, scoped_path};
use crate::schema::{
    Computed, OptionalComputed, Required, block, boolean, number, schema, string, string_set,
};
use crate::values::{StringSet, given, known, known_set, nullable, text};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretMetadata {
    pub organization_id: Value<String>,
    pub id: Value<String>,
    pub name: Value<String>,
    pub storage: Value<String>,
    pub provider_id: Value<String>,
    pub remote_path: Value<String>,
    pub remote_key: Value<String>,
    pub version: Value<i64>,
    pub allowed_namespaces: StringSet,
    pub value_set: Value<bool>,
    pub created_at: Value<String>,
    pub updated_at: Value<String>,
}

pub struct SecretDataSource(pub Shared);

#[async_trait]
impl DataSource for SecretDataSource {
    type State<'a> = SecretMetadata;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(block(
            "Looks up a secret's metadata by id or by name. The API never returns values, and neither does this data source.",
            vec![
                (
                    "organization_id",
                    string(Required, "The organization (id or name)."),
                ),
                (
                    "id",
                    string(OptionalComputed, "The secret's id; give this or `name`."),
                ),
                (
                    "name",
                    string(OptionalComputed, "The secret's name; give this or `id`."),
                ),
                ("storage", string(Computed, "`local` or `remote`.")),
                (
                    "provider_id",
                    string(Computed, "Remote secrets: the provider's id."),
                ),
                (
                    "remote_path",
                    string(
                        Computed,
                        "Remote secrets: the Vault API path, or the AWS Secrets Manager secret's name or ARN.",
                    ),
                ),
                (
                    "remote_key",
                    string(
                        Computed,
                        "Remote secrets: the key at that path; null for an AWS Secrets Manager secret taken whole.",
                    ),
                ),
                (
                    "version",
                    number(Computed, "Grows by one at every rotation or repointing."),
                ),
                (
                    "allowed_namespaces",
                    string_set(
                        Computed,
                        "The namespaces whose pods may use the secret (names or `*` globs); empty when every namespace bound to the organization may.",
                    ),
                ),
                (
                    "value_set",
                    boolean(Computed, "Local secrets: `true`, a value is stored."),
                ),
                (
                    "created_at",
                    string(Computed, "When it was created (RFC 3339)."),
                ),
                (
                    "updated_at",
                    string(Computed, "When it last changed (RFC 3339)."),
                ),
            ],
        )))
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: SecretMetadata) -> Option<()> {
        match (given(&config.id), given(&config.name)) {
            (true, true) => diags.fail_short(
                "give either id or name, not both",
                AttributePath::new("name"),
            ),
            (false, false) => diags.fail_short(
                "give the secret's id or its name",
                AttributePath::new("name"),
            ),
            _ => {}
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: SecretMetadata,
        _meta: ValueEmpty,
    ) -> Option<SecretMetadata> {
        let client = self.0.client(diags)?;
        let org = text(&config.organization_id)?;
        let wanted = text(&config.id).or(text(&config.name))?;
        match client
            .get::<SecretView>(&scoped_path(org, "secrets", Some(wanted)))
            .await
        {
            Ok(view) => Some(SecretMetadata {
                organization_id: config.organization_id.clone(),
                id: known(view.id),
                name: known(view.name),
                storage: known(crate::resources::storage_name(view.storage)),
                provider_id: nullable(view.provider_id),
                remote_path: nullable(view.remote_path),
                remote_key: nullable(view.remote_key),
                version: Value::Value(view.version),
                allowed_namespaces: known_set(view.allowed_namespaces),
                value_set: view.value_set.map_or(Value::Null, Value::Value),
                created_at: known(view.created_at),
                updated_at: known(view.updated_at),
            }),
            Err(e) => {
                e.report(diags, &format!("looking up secret {wanted:?}"));
                None
            }
        }
    }
}
