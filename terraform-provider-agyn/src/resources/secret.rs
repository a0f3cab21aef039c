//! `agyn_secret`: a local secret (its value kept encrypted by the API) or a
//! remote one (a reference to a value in a secret provider: Vault or
//! OpenBao, or AWS Secrets Manager).

use agyn_api as api;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::secret_provider::VAULT;
use super::{
    Scoped, changed, check_name, created, import_scoped, organization_moved, read_scoped,
    scoped_path, updated,
};
use crate::client::{Client, Error, Shared, body};
use crate::diagnostics::Report;
use crate::references::{Reference, in_use_detail};
use crate::schema::{
    Computed, Optional, OptionalComputed, Required, block, boolean, number, schema, sensitive,
    string, string_set,
};
use crate::values::{
    DNS_LABEL_RULE, StringSet, given, is_dns_label, known, known_set, nullable, set_items, text,
};

pub const LOCAL: &str = "local";
pub const REMOTE: &str = "remote";

/// The attributes that make a secret remote.
const REMOTE_FIELDS: [&str; 3] = ["provider_id", "remote_path", "remote_key"];

/// The remote attributes every remote secret needs; `remote_key` depends on
/// the provider's kind (required for Vault, optional for AWS Secrets
/// Manager, where leaving it out takes a plain-string secret whole).
const REMOTE_REQUIRED: [&str; 2] = ["provider_id", "remote_path"];

/// A secret's metadata as the API returns it: never a value.
pub use agyn_api::Secret as SecretView;

/// Most entries `allowed_namespaces` may hold, as the API counts them.
const MAX_ALLOWED_NAMESPACES: usize = 64;

/// What is wrong with the entries of `allowed_namespaces`: each must be a
/// namespace name, or a glob of one in which `*` stands for any run of
/// characters, as the API checks them.
pub fn allowed_namespaces_problems(set: &StringSet) -> Vec<String> {
    let Value::Value(entries) = set else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if entries.len() > MAX_ALLOWED_NAMESPACES {
        problems.push(format!(
            "allowed_namespaces holds {} entries, more than {MAX_ALLOWED_NAMESPACES}; a glob such as team-a-* covers many namespaces",
            entries.len()
        ));
    }
    for entry in entries {
        match entry {
            Value::Value(entry) if !is_dns_label(&entry.replace('*', "a")) => problems.push(format!(
                "allowed_namespaces entry {entry:?} is not a namespace name or a glob of one: it {DNS_LABEL_RULE}, where '*' stands for any run of characters (e.g. team-a-prod or team-a-*)"
            )),
            Value::Null => problems.push("allowed_namespaces must not hold null".to_owned()),
            _ => {}
        }
    }
    problems
}

/// `allowed_namespaces` as planned: left out means empty, so that leaving
/// it out and writing `[]` plan the same, and taking it out of the
/// configuration lifts the fence.
fn allowed_namespaces_or_empty(config: &StringSet) -> StringSet {
    match config {
        Value::Null => known_set([]),
        other => other.clone(),
    }
}

/// `local` or `remote`, as the API spells it.
pub fn storage_name(storage: api::Storage) -> String {
    match storage {
        api::Storage::Local => LOCAL,
        api::Storage::Remote => REMOTE,
    }
    .to_owned()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretState {
    pub id: Value<String>,
    pub organization_id: Value<String>,
    pub name: Value<String>,
    pub value: Value<String>,
    pub provider_id: Value<String>,
    pub remote_path: Value<String>,
    pub remote_key: Value<String>,
    pub storage: Value<String>,
    pub version: Value<i64>,
    pub allowed_namespaces: StringSet,
    pub force_delete: Value<bool>,
    pub created_at: Value<String>,
    pub updated_at: Value<String>,
}

impl SecretState {
    fn remote_field(&self, name: &str) -> &Value<String> {
        match name {
            "provider_id" => &self.provider_id,
            "remote_path" => &self.remote_path,
            _ => &self.remote_key,
        }
    }

    /// `local` when the configuration gives `value`, `remote` when it gives
    /// any of the remote attributes; `None` when it gives both or neither.
    pub fn storage_from_config(&self) -> Option<&'static str> {
        let remote = REMOTE_FIELDS.iter().any(|f| given(self.remote_field(f)));
        match (given(&self.value), remote) {
            (true, false) => Some(LOCAL),
            (false, true) => Some(REMOTE),
            _ => None,
        }
    }

    /// What is wrong with a configuration, as (attribute, message) pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let remote_given: Vec<&str> = REMOTE_FIELDS
            .into_iter()
            .filter(|f| given(self.remote_field(f)))
            .collect();
        match (given(&self.value), remote_given.is_empty()) {
            (true, false) => problems.push((
                "value",
                format!(
                    "a secret is either local (value) or remote (provider_id, remote_path, remote_key), not both; this one also sets {}",
                    remote_given.join(", ")
                ),
            )),
            (false, true) => problems.push((
                "value",
                "set value for a local secret, or provider_id and remote_path (and remote_key, where the provider needs one) for a remote one".to_owned(),
            )),
            (false, false) => {
                for field in REMOTE_REQUIRED {
                    if !given(self.remote_field(field)) {
                        problems.push((field, format!("{field} is required for a remote secret")));
                    }
                }
            }
            (true, true) => {}
        }
        if text(&self.value).is_some_and(str::is_empty) {
            problems.push(("value", "value must not be empty".to_owned()));
        }
        for field in REMOTE_FIELDS {
            if text(self.remote_field(field)).is_some_and(str::is_empty) {
                problems.push((field, format!("{field} must not be empty")));
            }
        }
        problems
    }
}

impl Scoped for SecretState {
    type View = SecretView;
    const COLLECTION: &'static str = "secrets";
    const KIND: &'static str = "secret";
    const IMPORT_FORMS: &'static str =
        "<organization id or name>/<secret id or name>, or a bare <secret id>";

    fn id(&self) -> &Value<String> {
        &self.id
    }

    fn name(&self) -> &Value<String> {
        &self.name
    }

    fn organization_id(&self) -> &Value<String> {
        &self.organization_id
    }

    fn set_organization_id(&mut self, organization_id: Value<String>) {
        self.organization_id = organization_id;
    }

    fn view_organization_id(view: &SecretView) -> &str {
        &view.organization_id
    }

    /// The state for what the API answered. The value and `force_delete`
    /// exist only in Terraform, so they come from `self`.
    fn with_view(&self, view: SecretView) -> SecretState {
        SecretState {
            id: known(view.id),
            organization_id: self.organization_id.clone(),
            name: known(view.name),
            value: if view.storage == api::Storage::Local {
                self.value.clone()
            } else {
                Value::Null
            },
            provider_id: nullable(view.provider_id),
            remote_path: nullable(view.remote_path),
            remote_key: nullable(view.remote_key),
            storage: known(storage_name(view.storage)),
            version: Value::Value(view.version),
            allowed_namespaces: known_set(view.allowed_namespaces),
            force_delete: force_delete_or_default(&self.force_delete),
            created_at: known(view.created_at),
            updated_at: known(view.updated_at),
        }
    }
}

/// Whether an update would change nothing in the API.
fn is_empty(request: &api::UpdateSecret) -> bool {
    let api::UpdateSecret {
        value,
        provider_id,
        remote_path,
        remote_key,
        allowed_namespaces,
    } = request;
    value.is_none()
        && provider_id.is_none()
        && remote_path.is_none()
        && remote_key.is_none()
        && allowed_namespaces.is_none()
}

/// `force_delete` is false unless configured.
fn force_delete_or_default(value: &Value<bool>) -> Value<bool> {
    match value {
        Value::Null => Value::Value(false),
        other => *other,
    }
}

pub struct SecretResource(pub Shared);

impl SecretResource {
    /// Pod and runtime references stop a delete without `force_delete`;
    /// Terraform cannot remove them by destroying something first.
    async fn blocking_references(
        client: &Client,
        state: &SecretState,
    ) -> Result<Vec<Reference>, Error> {
        let (Some(org), Some(id)) = (text(&state.organization_id), text(&state.id)) else {
            return Ok(Vec::new());
        };
        let path = format!("{}/references", scoped_path(org, "secrets", Some(id)));
        let Some(references) = client.find_list::<Reference>(&path).await? else {
            return Ok(Vec::new());
        };
        if references.iter().all(Reference::is_configuration) {
            Ok(Vec::new())
        } else {
            Ok(references)
        }
    }

    /// Whether the reference changes, rather than only the spelling of its
    /// provider (its name for its id, or the other way round): the API
    /// counts the version up at every repointing.
    async fn remote_changed(
        &self,
        diags: &mut Diagnostics,
        prior: &SecretState,
        planned: &SecretState,
    ) -> Option<bool> {
        if ["remote_path", "remote_key"]
            .iter()
            .any(|f| changed(prior.remote_field(f), planned.remote_field(f)))
        {
            return Some(true);
        }
        if !changed(&prior.provider_id, &planned.provider_id) {
            return Some(false);
        }
        let client = self.0.client(diags)?;
        Some(
            !same_provider(
                &client,
                &planned.organization_id,
                &prior.provider_id,
                &planned.provider_id,
            )
            .await,
        )
    }

    /// Fails the plan of a remote secret without `remote_key` whose provider
    /// is known to need one, rather than leaving it to the API at apply.
    async fn check_remote_key(&self, diags: &mut Diagnostics, planned: &SecretState) -> Option<()> {
        if planned.storage != known(REMOTE) || !planned.remote_key.is_null() {
            return Some(());
        }
        let (Some(org), Some(provider_id)) =
            (text(&planned.organization_id), text(&planned.provider_id))
        else {
            return Some(());
        };
        let client = self.0.client(diags)?;
        if let Some(provider) = find_provider(&client, org, provider_id).await
            && provider.kind() == VAULT
        {
            diags.fail(
                "remote_key is required for a secret read from a Vault provider",
                format!(
                    "Provider {:?} is a Vault provider: set remote_key to the key of the value map at remote_path, e.g. \"value\". Only AWS Secrets Manager secrets may leave it out.",
                    provider.name
                ),
                AttributePath::new("remote_key"),
            );
        }
        Some(())
    }
}

/// The provider `id_or_name` of an organization; `None` when it cannot be
/// found (yet): the API judges at apply.
async fn find_provider(
    client: &Client,
    organization: &str,
    id_or_name: &str,
) -> Option<api::Provider> {
    client
        .find::<api::Provider>(&scoped_path(organization, "providers", Some(id_or_name)))
        .await
        .ok()
        .flatten()
}

/// Whether two spellings (id or name) name the same provider.
async fn same_provider(
    client: &Client,
    organization: &Value<String>,
    a: &Value<String>,
    b: &Value<String>,
) -> bool {
    let (Some(organization), Some(a), Some(b)) = (text(organization), text(a), text(b)) else {
        return false;
    };
    if a == b {
        return true;
    }
    match (
        find_provider(client, organization, a).await,
        find_provider(client, organization, b).await,
    ) {
        (Some(x), Some(y)) => x.id == y.id,
        _ => false,
    }
}

/// The state for an answer, which names the provider by id, keeping
/// `provider_id` as the configuration spells it when that is the same
/// provider by name: otherwise every plan would show a change.
async fn keep_provider_spelling(
    shared: &Shared,
    diags: &mut Diagnostics,
    configured: &Value<String>,
    mut state: SecretState,
) -> SecretState {
    if configured.is_value()
        && state.provider_id.is_value()
        && *configured != state.provider_id
        && let Some(client) = shared.client(diags)
        && same_provider(
            &client,
            &state.organization_id,
            configured,
            &state.provider_id,
        )
        .await
    {
        state.provider_id = configured.clone();
    }
    state
}

#[async_trait]
impl Resource for SecretResource {
    type State<'a> = SecretState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(block(
            "A secret of an organization. Give `value` for a local secret (encrypted at rest by the API), or `provider_id`, `remote_path` and, where the provider needs it, `remote_key` for a remote one (read from its provider at every workload start). The API never returns a value: a change of `value` is found by comparing the configuration with the state, and applying it rotates the secret (`version` + 1).",
            vec![
                ("id", string(Computed, "The secret's id.")),
                (
                    "organization_id",
                    string(
                        Required,
                        "The organization that owns it (id or name). Changing it creates a new secret.",
                    ),
                ),
                (
                    "name",
                    string(
                        Required,
                        "Name that pods use in `secrets.agyn.io/env`, a DNS label. Changing it creates a new secret.",
                    ),
                ),
                (
                    "value",
                    sensitive(string(
                        Optional,
                        "The value of a local secret. Stored in the Terraform state (sensitive), never read back from the API. Conflicts with the remote attributes.",
                    )),
                ),
                (
                    "provider_id",
                    string(
                        Optional,
                        "Remote secret: the `agyn_secret_provider` to read from, by id (`agyn_secret_provider.x.id`, which also orders the creation) or by name.",
                    ),
                ),
                (
                    "remote_path",
                    string(
                        Optional,
                        "Remote secret: where the value is. Vault: the API path, e.g. `kv/data/prod/stripe-api-key` (KV v2) or `secret/prod/db` (KV v1). AWS Secrets Manager: the secret's name or ARN, e.g. `prod/db`.",
                    ),
                ),
                (
                    "remote_key",
                    string(
                        Optional,
                        "Remote secret: the key to take. Vault (required): the key in the value map at `remote_path`, e.g. `value`. AWS Secrets Manager (optional): a key of the secret's JSON value; leave it out to take a plain-string secret whole.",
                    ),
                ),
                (
                    "storage",
                    string(
                        Computed,
                        "`local` when `value` is set, `remote` when the remote attributes are. Switching creates a new secret.",
                    ),
                ),
                (
                    "version",
                    number(
                        Computed,
                        "Starts at 1 and grows by one at every rotation or repointing.",
                    ),
                ),
                (
                    "allowed_namespaces",
                    string_set(
                        OptionalComputed,
                        "The Kubernetes namespaces whose pods may use the secret: namespace names, or globs in which `*` stands for any run of characters (`team-a-*`); at most 64. Left out or empty: every namespace bound to the organization. Changing it changes no `version`.",
                    ),
                ),
                (
                    "force_delete",
                    boolean(
                        OptionalComputed,
                        "Delete even while pods, runtime consumers, image pull secrets or providers use the secret. Defaults to `false`: destroying a secret in use then fails and lists what uses it.",
                    ),
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

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: SecretState) -> Option<()> {
        check_name(diags, "name", &config.name);
        for (attribute, message) in config.problems() {
            diags.fail(
                "Invalid agyn_secret configuration",
                message,
                AttributePath::new(attribute),
            );
        }
        for problem in allowed_namespaces_problems(&config.allowed_namespaces) {
            diags.fail_short(problem, AttributePath::new("allowed_namespaces"));
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: SecretState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(SecretState, ValueEmpty)> {
        let version = state.version;
        let provider_id = state.provider_id.clone();
        let new = read_scoped(&self.0, diags, state).await?;
        let mut new = keep_provider_spelling(&self.0, diags, &provider_id, new).await;
        let rotated_elsewhere = version.is_value() && new.version != version;
        // The value cannot be read back. When the version moved without
        // Terraform, the stored value is no longer known to be current:
        // forgetting it makes the next plan write the configured one again.
        if rotated_elsewhere && new.storage == known(LOCAL) {
            new.value = Value::Null;
        }
        Some((new, private_state))
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: SecretState,
        config: SecretState,
        _meta: ValueEmpty,
    ) -> Option<(SecretState, ValueEmpty)> {
        let planned = SecretState {
            id: Value::Unknown,
            storage: config.storage_from_config().map_or(Value::Unknown, known),
            version: Value::Unknown,
            allowed_namespaces: allowed_namespaces_or_empty(&config.allowed_namespaces),
            force_delete: force_delete_or_default(&config.force_delete),
            created_at: Value::Unknown,
            updated_at: Value::Unknown,
            ..proposed
        };
        self.check_remote_key(diags, &planned).await?;
        Some((planned, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: SecretState,
        proposed: SecretState,
        config: SecretState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(SecretState, ValueEmpty, Vec<AttributePath>)> {
        let mut planned = SecretState {
            storage: config.storage_from_config().map_or(Value::Unknown, known),
            allowed_namespaces: allowed_namespaces_or_empty(&config.allowed_namespaces),
            force_delete: force_delete_or_default(&config.force_delete),
            ..proposed
        };
        self.check_remote_key(diags, &planned).await?;
        let mut replace = Vec::new();
        if organization_moved(
            &self.0,
            diags,
            &prior.organization_id,
            &planned.organization_id,
        )
        .await?
        {
            replace.push(AttributePath::new("organization_id"));
        }
        if changed(&prior.name, &planned.name) {
            replace.push(AttributePath::new("name"));
        }
        if changed(&prior.storage, &planned.storage) {
            replace.push(AttributePath::new("storage"));
        }
        if !replace.is_empty() {
            planned.id = Value::Unknown;
            planned.version = Value::Unknown;
            planned.created_at = Value::Unknown;
            planned.updated_at = Value::Unknown;
            return Some((planned, private_state, replace));
        }
        let content_changed = changed(&prior.value, &planned.value)
            || self.remote_changed(diags, &prior, &planned).await?;
        if content_changed {
            planned.version = Value::Unknown;
            planned.updated_at = Value::Unknown;
        }
        Some((planned, private_state, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: SecretState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<ValueEmpty> {
        if prior.force_delete == Value::Value(true) {
            return Some(private_state);
        }
        // Fail the plan, before anything is destroyed, when the API is
        // certain to refuse. Providers and image pull secrets that use the
        // secret may go first in the same run, so only the delete itself
        // can judge those.
        let client = self.0.client(diags)?;
        match Self::blocking_references(&client, &prior).await {
            Ok(references) if references.is_empty() => {}
            Ok(references) => diags.fail_root(
                format!("{} is still in use", prior.label()),
                in_use_detail(&references, references.len()),
            ),
            Err(e) => e.report(
                diags,
                &format!("listing the references of {}", prior.label()),
            ),
        }
        Some(private_state)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: SecretState,
        _config: SecretState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(SecretState, ValueEmpty)> {
        let client = self.0.client(diags)?;
        let org = text(&planned.organization_id)?;
        let name = text(&planned.name)?;
        // An empty fence is left out, as the API reads absence.
        let allowed_namespaces =
            Some(set_items(&planned.allowed_namespaces)?).filter(|entries| !entries.is_empty());
        let request = match text(&planned.storage) {
            Some(LOCAL) => api::CreateSecret {
                name: name.to_owned(),
                storage: Some(api::Storage::Local),
                value: Some(api::SecretText::new(text(&planned.value)?)),
                allowed_namespaces,
                ..Default::default()
            },
            _ => api::CreateSecret {
                name: name.to_owned(),
                storage: Some(api::Storage::Remote),
                provider_id: Some(text(&planned.provider_id)?.to_owned()),
                remote_path: Some(text(&planned.remote_path)?.to_owned()),
                remote_key: text(&planned.remote_key).map(str::to_owned),
                allowed_namespaces,
                ..Default::default()
            },
        };
        let body = body(&request);
        let answer = client
            .post(&scoped_path(org, SecretState::COLLECTION, None), &body)
            .await;
        let state = created(&client, diags, &planned, answer).await?;
        let state = keep_provider_spelling(&self.0, diags, &planned.provider_id, state).await;
        Some((state, private_state))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: SecretState,
        planned: SecretState,
        _config: SecretState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(SecretState, ValueEmpty)> {
        let mut request = if text(&planned.storage) == Some(LOCAL) {
            if changed(&prior.value, &planned.value) {
                api::UpdateSecret {
                    value: Some(api::SecretText::new(text(&planned.value)?)),
                    ..Default::default()
                }
            } else {
                api::UpdateSecret::default()
            }
        } else if self.remote_changed(diags, &prior, &planned).await? {
            // A null remote_key clears the key: the whole value is read.
            api::UpdateSecret {
                provider_id: Some(text(&planned.provider_id)?.to_owned()),
                remote_path: Some(text(&planned.remote_path)?.to_owned()),
                remote_key: Some(text(&planned.remote_key).map(str::to_owned)),
                ..Default::default()
            }
        } else {
            api::UpdateSecret::default()
        };
        // The fence travels with a rotation or a repointing, or alone; the
        // list replaces the API's, and [] lifts it.
        let fence = set_items(&planned.allowed_namespaces)?;
        if set_items(&prior.allowed_namespaces).as_ref() != Some(&fence) {
            request.allowed_namespaces = Some(fence);
        }
        // Only force_delete (or the spelling of the organization) changed:
        // nothing to send.
        if is_empty(&request) {
            return Some((planned, private_state));
        }
        let client = self.0.client(diags)?;
        let answer = client.patch(&prior.path()?, &body(&request)).await;
        let state = updated(diags, &planned, answer)?;
        let state = keep_provider_spelling(&self.0, diags, &planned.provider_id, state).await;
        Some((state, private_state))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: SecretState,
        _private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<()> {
        let client = self.0.client(diags)?;
        let mut path = prior.path()?;
        if prior.force_delete == Value::Value(true) {
            path.push_str("?force=true");
        }
        match client.delete(&path).await {
            Ok(()) => Some(()),
            Err(Error::Api {
                references,
                reference_count,
                ..
            }) if !references.is_empty() => {
                let total = reference_count.unwrap_or(references.len());
                diags.fail_root(
                    format!("{} is still in use", prior.label()),
                    in_use_detail(&references, total),
                );
                None
            }
            Err(e) => {
                e.report(diags, &format!("deleting {}", prior.label()));
                None
            }
        }
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(SecretState, ValueEmpty)> {
        import_scoped(&self.0, diags, &id)
            .await
            .map(|state| (state, ValueEmpty::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn config(value: bool, provider: bool, path: bool, key: bool) -> SecretState {
        let pick = |on: bool, text: &str| if on { known(text) } else { Value::Null };
        SecretState {
            name: known("stripe-api-key"),
            value: pick(value, "sk_live"),
            provider_id: pick(provider, "p"),
            remote_path: pick(path, "kv/data/prod/stripe"),
            remote_key: pick(key, "value"),
            ..SecretState::default()
        }
    }

    #[rstest]
    #[case::local(config(true, false, false, false), Some(LOCAL), vec![])]
    #[case::remote(config(false, true, true, true), Some(REMOTE), vec![])]
    #[case::both(config(true, true, true, true), None, vec!["value"])]
    #[case::neither(config(false, false, false, false), None, vec!["value"])]
    #[case::remote_without_key(config(false, true, true, false), Some(REMOTE), vec![])]
    #[case::partial_remote(config(false, true, false, false), Some(REMOTE), vec!["remote_path"])]
    #[case::key_alone(config(false, false, false, true), Some(REMOTE), vec!["provider_id", "remote_path"])]
    fn storage_follows_the_configuration(
        #[case] config: SecretState,
        #[case] storage: Option<&str>,
        #[case] problems: Vec<&str>,
    ) {
        assert_eq!(config.storage_from_config(), storage);
        let found: Vec<&str> = config.problems().into_iter().map(|(a, _)| a).collect();
        assert_eq!(found, problems);
    }

    #[test]
    fn an_unknown_value_still_decides_the_storage() {
        let config = SecretState {
            value: Value::Unknown,
            ..SecretState::default()
        };
        assert_eq!(config.storage_from_config(), Some(LOCAL));
    }

    #[test]
    fn an_empty_value_is_refused() {
        let config = SecretState {
            value: known(""),
            ..SecretState::default()
        };
        assert_eq!(config.problems()[0].1, "value must not be empty");
    }

    fn view(storage: &str) -> SecretView {
        SecretView {
            id: "s1".into(),
            organization_id: "o1".into(),
            name: "stripe-api-key".into(),
            storage: if storage == LOCAL {
                api::Storage::Local
            } else {
                api::Storage::Remote
            },
            provider_id: (storage == REMOTE).then(|| "p1".into()),
            remote_path: (storage == REMOTE).then(|| "kv/data/x".into()),
            remote_key: (storage == REMOTE).then(|| "value".into()),
            version: 3,
            value_set: (storage == LOCAL).then_some(true),
            created_at: "c".into(),
            updated_at: "u".into(),
            allowed_namespaces: vec!["team-a-*".into()],
        }
    }

    #[test]
    fn the_value_comes_from_terraform_never_from_the_api() {
        let planned = SecretState {
            organization_id: known("acme"),
            value: known("sk_live"),
            ..SecretState::default()
        };
        let state = planned.with_view(view(LOCAL));
        assert_eq!(state.value, known("sk_live"));
        assert_eq!(state.organization_id, known("acme"));
        assert_eq!(state.version, Value::Value(3));
        assert_eq!(state.force_delete, Value::Value(false));
        assert_eq!(state.provider_id, Value::Null);
        assert_eq!(state.allowed_namespaces, known_set(["team-a-*".to_owned()]));
        let remote = planned.with_view(view(REMOTE));
        assert_eq!(remote.value, Value::Null);
        assert_eq!(remote.remote_key, known("value"));
    }

    #[test]
    fn a_remote_secret_without_key_reads_back_as_null() {
        let planned = SecretState {
            organization_id: known("acme"),
            provider_id: known("p1"),
            remote_path: known("prod/db"),
            ..SecretState::default()
        };
        let answer = SecretView {
            remote_key: None,
            ..view(REMOTE)
        };
        // Null in the configuration and null in the state: no change to plan.
        assert_eq!(planned.with_view(answer).remote_key, Value::Null);
    }

    fn fence(entries: &[&str]) -> StringSet {
        known_set(entries.iter().map(|e| e.to_string()))
    }

    #[rstest]
    #[case::names(fence(&["team-a-prod", "ops"]), 0)]
    #[case::globs(fence(&["team-a-*", "*-prod", "*"]), 0)]
    #[case::absent(Value::Null, 0)]
    #[case::not_known_yet(Value::Unknown, 0)]
    #[case::upper_case(fence(&["Team-A"]), 1)]
    #[case::leading_dash(fence(&["-*"]), 1)]
    #[case::trailing_dash(fence(&["team-"]), 1)]
    #[case::comma(fence(&["a,b"]), 1)]
    #[case::empty_entry(fence(&[""]), 1)]
    #[case::too_long(fence(&[&"a".repeat(64)]), 1)]
    fn fence_entries_are_names_or_globs(#[case] set: StringSet, #[case] problems: usize) {
        assert_eq!(allowed_namespaces_problems(&set).len(), problems, "{set:?}");
    }

    #[test]
    fn a_fence_holds_at_most_64_entries() {
        let names: Vec<String> = (0..65).map(|i| format!("ns-{i}")).collect();
        let problems = allowed_namespaces_problems(&known_set(names));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("more than 64"), "{problems:?}");
    }

    #[test]
    fn a_fence_left_out_plans_as_empty() {
        assert_eq!(allowed_namespaces_or_empty(&Value::Null), fence(&[]));
        assert_eq!(
            allowed_namespaces_or_empty(&fence(&["team-a-*"])),
            fence(&["team-a-*"])
        );
        assert_eq!(allowed_namespaces_or_empty(&Value::Unknown), Value::Unknown);
    }
}
