//! Secrets: metadata, rotation, references, the delete guard, and the
//! runtime `resolve` endpoint, the one route that returns values.

use std::sync::Arc;

use agyn_api as api;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::doc::{
    Authenticated, Body, Conflict, Forbidden, InvalidQuery, NotFound, Paged, Referenced,
    StrictQuery, Upstream,
};
use super::extract::{Access, Caller, JsonBody, organization_for};
use super::organizations::{Page, check_name, page_of};
use crate::app::App;
use crate::crypto::SecretValue;
use crate::http::{ApiError, ApiResult};
use crate::resolve::{Kind, kind};
use crate::store::{
    NewSecret, Provider, Reference, RemoteChanges, RemoteRef, Rollout, RolloutState, Secret,
    SecretContent, Storage, format_time,
};

/// Largest accepted secret value.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

impl From<Secret> for api::Secret {
    fn from(secret: Secret) -> Self {
        let storage = secret.storage().into();
        let (remote, value_set) = match secret.content {
            SecretContent::Local(_) => (None, Some(true)),
            SecretContent::Remote(remote) => (Some(remote), None),
        };
        Self {
            id: secret.id,
            organization_id: secret.organization_id,
            name: secret.name,
            storage,
            provider_id: remote.as_ref().map(|r| r.provider_id.clone()),
            remote_path: remote.as_ref().map(|r| r.remote_path.clone()),
            remote_key: remote.and_then(|r| r.remote_key),
            version: secret.version,
            value_set,
            created_at: format_time(secret.created_at),
            updated_at: format_time(secret.updated_at),
            allowed_namespaces: secret.allowed_namespaces,
        }
    }
}

impl From<Storage> for api::Storage {
    fn from(storage: Storage) -> Self {
        match storage {
            Storage::Local => api::Storage::Local,
            Storage::Remote => api::Storage::Remote,
        }
    }
}

impl From<api::Storage> for Storage {
    fn from(storage: api::Storage) -> Self {
        match storage {
            api::Storage::Local => Storage::Local,
            api::Storage::Remote => Storage::Remote,
        }
    }
}

/// The value of a request, from here on zeroized and redacted by type.
fn secret_value(text: api::SecretText) -> SecretValue {
    SecretValue::new(text.into_string())
}

fn check_value(value: &SecretValue) -> ApiResult<()> {
    if value.is_empty() {
        return Err(ApiError::invalid("value", "must not be empty"));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::invalid(
            "value",
            format!("is longer than {MAX_VALUE_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The provider `id_or_name` of the organization, and its kind; a 422 on
/// `provider_id` when there is no such provider.
async fn provider_of(
    app: &App,
    organization_id: &str,
    id_or_name: &str,
) -> ApiResult<(Provider, &'static dyn Kind)> {
    let provider = app
        .store
        .find_provider(organization_id, id_or_name)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "provider_id",
                format!("no provider {id_or_name:?} in this organization"),
            )
        })?;
    let kind = kind(&provider.kind).ok_or_else(|| {
        ApiError::invalid(
            "provider_id",
            format!(
                "provider {:?} is of a kind this version cannot read",
                provider.name
            ),
        )
    })?;
    Ok((provider, kind))
}

/// A remote reference, checked by its provider's kind; the provider is
/// stored by id whether it was given by id or by name.
async fn remote_ref(
    app: &App,
    organization_id: &str,
    provider: &str,
    path: String,
    key: Option<String>,
) -> ApiResult<RemoteRef> {
    let (provider, kind) = provider_of(app, organization_id, provider).await?;
    // Whatever the kind, a reference is text a person can read and a
    // message can quote.
    for (field, text) in [("remote_path", Some(&path)), ("remote_key", key.as_ref())] {
        if text.is_some_and(|t| t.chars().any(char::is_control)) {
            return Err(ApiError::invalid(field, "must not hold control characters"));
        }
    }
    kind.check_reference(&path, key.as_deref())
        .map_err(|e| ApiError::invalid(&e.field, e.message))?;
    Ok(RemoteRef {
        provider_id: provider.id,
        remote_path: path,
        remote_key: key,
    })
}

#[utoipa::path(post, path = "/organizations/{org}/secrets", operation_id = "createSecret", tag = "secrets",
    summary = "Create a secret", description = "Owner or admin. A local secret (`value`) or a remote one (`provider_id`, `remote_path`, `remote_key`).", params(("org" = String, Path, description = "The organization's id or name.", example = "acme")),
    request_body = api::CreateSecret,
    responses((status = 201, description = "Created; the answer never holds the value.", body = api::Secret), Authenticated, Forbidden, NotFound, Body, Conflict))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    JsonBody(mut body): JsonBody<api::CreateSecret>,
) -> ApiResult<(StatusCode, Json<api::Secret>)> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    check_name("name", &body.name)?;
    let name = body.name.clone();
    let fence = fence_of(body.allowed_namespaces.take())?.unwrap_or_default();
    let new = new_secret(&app, &org.id, body).await?;
    let keys = app.keys.current();
    let secret = app
        .store
        .create_secret(&org.id, &name, new, fence, &keys, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(secret.into())))
}

/// A fence as asked for, checked and tidied; a 422 on `allowed_namespaces`
/// says what is wrong with it.
fn fence_of(asked: Option<Vec<String>>) -> ApiResult<Option<Vec<String>>> {
    asked
        .map(crate::fence::normalize)
        .transpose()
        .map_err(|message| ApiError::invalid("allowed_namespaces", message))
}

/// The storage a create asks for: given, or told by the fields present.
fn storage_of(body: &api::CreateSecret, remote_given: bool) -> ApiResult<Storage> {
    match (body.storage.map(Storage::from), &body.value, remote_given) {
        (Some(storage), _, _) => Ok(storage),
        (None, Some(_), false) => Ok(Storage::Local),
        (None, None, true) => Ok(Storage::Remote),
        (None, Some(_), true) => Err(ApiError::invalid(
            "value",
            "give either value or provider_id, remote_path and remote_key, not both",
        )),
        (None, None, false) => Err(ApiError::invalid(
            "storage",
            "is required: \"local\" or \"remote\"",
        )),
    }
}

/// What a create asks for: a local value, or a reference to a provider,
/// with `storage` given or told by the fields present.
async fn new_secret(
    app: &App,
    organization_id: &str,
    body: api::CreateSecret,
) -> ApiResult<NewSecret> {
    let remote_given =
        body.provider_id.is_some() || body.remote_path.is_some() || body.remote_key.is_some();
    match storage_of(&body, remote_given)? {
        Storage::Local => {
            if remote_given {
                return Err(ApiError::invalid(
                    "provider_id",
                    "a local secret has no provider_id, remote_path or remote_key",
                ));
            }
            let value = body
                .value
                .map(secret_value)
                .ok_or_else(|| ApiError::invalid("value", "is required for a local secret"))?;
            check_value(&value)?;
            Ok(NewSecret::Local(value))
        }
        Storage::Remote => {
            if body.value.is_some() {
                return Err(ApiError::invalid(
                    "value",
                    "a remote secret has no value here; it lives in its provider",
                ));
            }
            let provider_id = body.provider_id.ok_or_else(|| {
                ApiError::invalid("provider_id", "is required for a remote secret")
            })?;
            let remote_path = body.remote_path.ok_or_else(|| {
                ApiError::invalid("remote_path", "is required for a remote secret")
            })?;
            Ok(NewSecret::Remote(
                remote_ref(
                    app,
                    organization_id,
                    &provider_id,
                    remote_path,
                    body.remote_key,
                )
                .await?,
            ))
        }
    }
}

#[utoipa::path(get, path = "/organizations/{org}/secrets", operation_id = "listSecrets", tag = "secrets",
    summary = "List secrets", description = "Member+.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), api::PageQuery),
    responses((status = 200, description = "One page.", body = api::Page<api::Secret>), Authenticated, Forbidden, NotFound, Paged))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    page: Page,
) -> ApiResult<Json<api::Page<api::Secret>>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    Ok(page_of(
        app.store
            .list_secrets(&org.id, page.cursor(), page.limit)
            .await?,
    ))
}

async fn find(app: &App, organization_id: &str, id: &str) -> ApiResult<Secret> {
    app.store
        .find_secret(organization_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("secret {id:?} not found")))
}

#[utoipa::path(get, path = "/organizations/{org}/secrets/{id}", operation_id = "getSecret", tag = "secrets",
    summary = "Get a secret's metadata", description = "Member+.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The secret's id or name.", example = "stripe-api-key")),
    responses((status = 200, description = "The secret's metadata.", body = api::Secret), Authenticated, Forbidden, NotFound))]
pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<api::Secret>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    Ok(Json(find(&app, &org.id, &id).await?.into()))
}

/// Rotates a local value, or repoints a remote secret.
#[utoipa::path(patch, path = "/organizations/{org}/secrets/{id}", operation_id = "updateSecret", tag = "secrets",
    summary = "Rotate, repoint or fence a secret", description = "Owner or admin.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The secret's id or name.", example = "stripe-api-key")),
    request_body = api::UpdateSecret,
    responses((status = 200, description = "The secret as it is now.", body = api::Secret), Authenticated, Forbidden, NotFound, Body, Conflict))]
pub async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<api::UpdateSecret>,
) -> ApiResult<Json<api::Secret>> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    let api::UpdateSecret {
        value,
        provider_id,
        remote_path,
        remote_key,
        allowed_namespaces,
    } = body;
    let fence = fence_of(allowed_namespaces)?;
    let asked = RemoteChanges {
        provider_id,
        remote_path,
        remote_key,
    };
    let repointing =
        asked.provider_id.is_some() || asked.remote_path.is_some() || asked.remote_key.is_some();
    let secret = match (value.map(secret_value), repointing) {
        (Some(_), true) => {
            return Err(ApiError::invalid(
                "value",
                "give either value or provider_id, remote_path and remote_key, not both",
            ));
        }
        (Some(value), false) => {
            check_value(&value)?;
            let keys = app.keys.current();
            app.store
                .rotate_secret(&org.id, &id, &value, fence, &keys, &caller.actor())
                .await?
        }
        (None, true) => repoint(&app, &org.id, &id, asked, fence, &caller).await?,
        (None, false) => match fence {
            Some(fence) => {
                app.store
                    .fence_secret(&org.id, &id, fence, &caller.actor())
                    .await?
            }
            None => {
                return Err(ApiError::Validation {
                    field: None,
                    message: "nothing to change: send value (local), provider_id, remote_path, remote_key (remote) or allowed_namespaces".into(),
                });
            }
        },
    };
    Ok(Json(secret.into()))
}

/// Points a remote secret at what `asked` changes. The reference as it
/// will be is checked as a whole by the kind of the provider it will point
/// at; when nothing changes, nothing is written and no version is made.
async fn repoint(
    app: &App,
    organization_id: &str,
    id: &str,
    asked: RemoteChanges,
    fence: Option<Vec<String>>,
    caller: &Caller,
) -> ApiResult<Secret> {
    let current = find(app, organization_id, id).await?;
    let Some(before) = current.remote().cloned() else {
        return Err(ApiError::invalid(
            "provider_id",
            "a local secret cannot be repointed; send {\"value\": …} to rotate it",
        ));
    };
    let remote = remote_ref(
        app,
        organization_id,
        asked.provider_id.as_deref().unwrap_or(&before.provider_id),
        asked
            .remote_path
            .unwrap_or_else(|| before.remote_path.clone()),
        asked
            .remote_key
            .unwrap_or_else(|| before.remote_key.clone()),
    )
    .await?;
    if remote == before {
        return match fence {
            Some(fence) => Ok(app
                .store
                .fence_secret(organization_id, id, fence, &caller.actor())
                .await?),
            None => Ok(current),
        };
    }
    let changes = RemoteChanges {
        provider_id: Some(remote.provider_id),
        remote_path: Some(remote.remote_path),
        remote_key: Some(remote.remote_key),
    };
    Ok(app
        .store
        .repoint_secret(organization_id, id, changes, fence, &caller.actor())
        .await?)
}

#[utoipa::path(get, path = "/organizations/{org}/secrets/{id}/references", operation_id = "listSecretReferences", tag = "secrets",
    summary = "List what uses a secret", description = "Member+.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The secret's id or name.", example = "stripe-api-key"), api::PageQuery),
    responses((status = 200, description = "One page.", body = api::Page<api::Reference>), Authenticated, Forbidden, NotFound, Paged))]
pub async fn references(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    page: Page,
) -> ApiResult<Json<api::Page<api::Reference>>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    let secret = find(&app, &org.id, &id).await?;
    Ok(page_of(
        app.store
            .list_references(&secret, page.cursor(), page.limit)
            .await?,
    ))
}

/// `force` is `true` or `false`; anything else is a 422 naming it.
fn force(query: &api::DeleteSecretQuery) -> ApiResult<bool> {
    match query.force.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid("force", "must be true or false")),
    }
}

#[utoipa::path(delete, path = "/organizations/{org}/secrets/{id}", operation_id = "deleteSecret", tag = "secrets",
    summary = "Delete a secret", description = "Owner or admin. Refused while something uses the secret, unless `force=true`.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The secret's id or name.", example = "stripe-api-key"), api::DeleteSecretQuery),
    responses((status = 204, description = "Deleted."), Authenticated, Forbidden, NotFound, StrictQuery, InvalidQuery, Referenced))]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    query: Result<Query<api::DeleteSecretQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))?;
    let force = force(&query)?;
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    match app
        .store
        .delete_secret(&org.id, &id, force, &caller.actor())
        .await?
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(in_use) => referenced(in_use.references, in_use.total),
    }
}

/// The delete guard's refusal: the `referenced` error, listing the first
/// references (at most 50) and how many there are in all.
fn referenced(references: Vec<Reference>, total: u64) -> ApiResult<Response> {
    let listed = references.len();
    let message = if u64::try_from(listed).is_ok_and(|n| n < total) {
        format!(
            "secret is referenced by {total} object(s), the first {listed} listed; remove the references or delete with ?force=true"
        )
    } else {
        format!(
            "secret is referenced by {total} object(s); remove the references or delete with ?force=true"
        )
    };
    Err(ApiError::Referenced {
        message,
        references,
        total,
    })
}

impl From<Rollout> for api::Rollout {
    fn from(rollout: Rollout) -> Self {
        Self {
            id: rollout.id,
            secret_id: rollout.secret_id,
            secret_name: rollout.secret_name,
            namespace: rollout.namespace,
            kind: rollout.kind,
            name: rollout.workload,
            from_version: rollout.from_version,
            to_version: rollout.version,
            reason: rollout.reason,
            state: match rollout.state {
                RolloutState::Pending => api::RolloutState::Pending,
                RolloutState::Restarted => api::RolloutState::Restarted,
                RolloutState::Skipped => api::RolloutState::Skipped,
                RolloutState::Failed => api::RolloutState::Failed,
            },
            message: rollout.message,
            requested_at: format_time(rollout.requested_at),
            restarted_at: rollout.restarted_at.map(format_time),
        }
    }
}

#[utoipa::path(get, path = "/organizations/{org}/secrets/{id}/rollouts", operation_id = "listSecretRollouts", tag = "secrets",
    summary = "List the workloads restarted after the secret's rotations", description = "Member+. Newest first.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The secret's id or name.", example = "stripe-api-key"), api::PageQuery),
    responses((status = 200, description = "One page, newest first.", body = api::Page<api::Rollout>), Authenticated, Forbidden, NotFound, Paged))]
pub async fn rollouts(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    page: Page,
) -> ApiResult<Json<api::Page<api::Rollout>>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    let secret = find(&app, &org.id, &id).await?;
    Ok(page_of(
        app.store
            .list_rollouts(&secret.id, page.cursor(), page.limit)
            .await?,
    ))
}

/// Largest number of names one `resolve` call may ask for.
const MAX_RESOLVE_NAMES: usize = 100;

#[utoipa::path(post, path = "/organizations/{org}/resolve", operation_id = "resolveSecrets", tag = "runtime",
    summary = "Resolve values (runtime)", description = "Runtime tokens only. The one route that answers values; every call is audited and records the consumer as a reference of each secret.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme")),
    request_body = api::ResolveRequest,
    responses((status = 200, description = "The values, by name.", body = api::ResolveResponse), Authenticated, Forbidden, NotFound, Body, Upstream))]
pub async fn resolve(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<api::ResolveRequest>,
) -> ApiResult<Json<api::ResolveResponse>> {
    let org = organization_for(&app, &caller, &org, Access::Resolve).await?;
    if body.names.is_empty() || body.names.len() > MAX_RESOLVE_NAMES {
        return Err(ApiError::invalid(
            "names",
            format!("give 1 to {MAX_RESOLVE_NAMES} secret names"),
        ));
    }
    for name in &body.names {
        check_name("names", name)?;
    }
    let consumer = body.consumer.trim();
    if consumer.is_empty() || consumer.len() > 253 || consumer.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "consumer",
            "must name the consumer, 1 to 253 characters, e.g. llm-provider/openai-prod",
        ));
    }
    let mut names: Vec<&str> = body.names.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let resolved = app.resolver.resolve(&org, &names, None).await?;
    let ids: Vec<&str> = resolved.iter().map(|s| s.secret.id.as_str()).collect();
    app.store.record_runtime_references(&ids, consumer).await?;
    app.store
        .audit_resolve(
            &org.id,
            &caller.actor(),
            resolved
                .iter()
                .map(|s| (s.secret.id.as_str(), s.secret.name.as_str())),
        )
        .await?;
    tracing::info!(organization = %org.name, consumer, count = resolved.len(), "Resolved for runtime");
    let values = resolved
        .into_iter()
        .map(|s| (s.secret.name.clone(), s.value.expose().to_owned()))
        .collect();
    Ok(Json(api::ResolveResponse { values }))
}
