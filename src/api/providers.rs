//! Secret providers of an organization, of every kind. The API knows
//! nothing of any kind: it hands the settings to the kind (see
//! `resolve::Kind`), which checks them, and checks that the credential they
//! name is a local secret of the organization.

use std::sync::Arc;

use agyn_api as api;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::doc::{Authenticated, Body, Conflict, Forbidden, NotFound, Paged};
use super::extract::{Access, Caller, JsonBody, organization_for};
use super::organizations::{Page, check_name, page_of};
use crate::app::App;
use crate::http::{ApiError, ApiResult};
use crate::resolve::{Invalid, Kind, ResolveError, Validated, kind, kind_names};
use crate::store::{NewProvider, Provider, ProviderChanges, Role, SecretContent, format_time};

impl From<Provider> for api::Provider {
    fn from(p: Provider) -> Self {
        let mut settings = p.settings;
        settings.insert("kind".into(), p.kind.into());
        Self {
            id: p.id,
            organization_id: p.organization_id,
            name: p.name,
            settings,
            created_at: format_time(p.created_at),
            updated_at: format_time(p.updated_at),
        }
    }
}

fn invalid(error: Invalid) -> ApiError {
    if error.field.is_empty() {
        ApiError::Validation {
            field: None,
            message: error.message,
        }
    } else {
        ApiError::invalid(&error.field, error.message)
    }
}

fn kind_of(name: &str) -> ApiResult<&'static dyn Kind> {
    kind(name).ok_or_else(|| ApiError::invalid("kind", format!("must be {}", kind_names())))
}

/// Checks that the credential the settings name is a local secret of the
/// organization, and that the caller may configure what was validated.
async fn check_validated(
    app: &App,
    caller: &Caller,
    organization_id: &str,
    validated: &Validated,
) -> ApiResult<()> {
    if validated.admin_only && caller.0.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "this auth method logs in with the product's own identity, shared by every organization; only a platform admin may configure it".into(),
        ));
    }
    let Some((name, field)) = &validated.credential else {
        return Ok(());
    };
    match app.store.find_secret(organization_id, name).await? {
        Some(secret)
            if matches!(secret.content, SecretContent::Local(_)) && secret.name == *name =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::invalid(
            field,
            format!("secret {name:?} is remote; a provider credential must be a local secret"),
        )),
        None => Err(ApiError::invalid(
            field,
            format!("no local secret {name:?} in this organization"),
        )),
    }
}

/// Takes a string field out of a request body.
fn take_string(body: &mut Map<String, Value>, field: &str) -> ApiResult<Option<String>> {
    match body.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    }
}

#[utoipa::path(post, path = "/organizations/{org}/providers", operation_id = "createProvider", tag = "providers",
    summary = "Create a provider", description = "Owner or admin; auth methods that log in with the product's own identity (`kubernetes`, `web-identity`) need an admin.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme")),
    request_body = api::CreateProvider,
    responses((status = 201, description = "Created.", body = api::Provider), Authenticated, Forbidden, NotFound, Body, Conflict))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    JsonBody(mut body): JsonBody<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<api::Provider>)> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    let name =
        take_string(&mut body, "name")?.ok_or_else(|| ApiError::invalid("name", "is required"))?;
    check_name("name", &name)?;
    let kind_name = take_string(&mut body, "kind")?
        .ok_or_else(|| ApiError::invalid("kind", format!("is required: {}", kind_names())))?;
    let kind = kind_of(&kind_name)?;
    let validated = kind.validate(body, app.resolver.net()).map_err(invalid)?;
    check_validated(&app, &caller, &org.id, &validated).await?;
    let new = NewProvider {
        name,
        kind: kind.name().to_owned(),
        credential_secret: validated.credential.map(|(name, _)| name),
        settings: validated.settings,
    };
    let provider = app
        .store
        .create_provider(&org.id, new, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(provider.into())))
}

#[utoipa::path(get, path = "/organizations/{org}/providers", operation_id = "listProviders", tag = "providers",
    summary = "List providers", description = "Member+.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), api::PageQuery),
    responses((status = 200, description = "One page.", body = api::Page<api::Provider>), Authenticated, Forbidden, NotFound, Paged))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    page: Page,
) -> ApiResult<Json<api::Page<api::Provider>>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    Ok(page_of(
        app.store
            .list_providers(&org.id, page.cursor(), page.limit)
            .await?,
    ))
}

#[utoipa::path(get, path = "/organizations/{org}/providers/{id}", operation_id = "getProvider", tag = "providers",
    summary = "Get a provider", description = "Member+.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The provider's id or name.", example = "vault-prod")),
    responses((status = 200, description = "The provider.", body = api::Provider), Authenticated, Forbidden, NotFound))]
pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<api::Provider>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    let provider = app
        .store
        .find_provider(&org.id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("provider {id:?} not found")))?;
    Ok(Json(provider.into()))
}

/// Changes some of a provider's settings: a field given replaces the one
/// stored (`auth` as a whole), `null` removes an optional one, and the
/// result is checked as a whole by the provider's kind. `name` and `kind`
/// cannot change.
#[utoipa::path(patch, path = "/organizations/{org}/providers/{id}", operation_id = "updateProvider", tag = "providers",
    summary = "Change a provider", description = "Owner or admin.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The provider's id or name.", example = "vault-prod")),
    request_body = api::UpdateProvider,
    responses((status = 200, description = "The provider as it is now.", body = api::Provider), Authenticated, Forbidden, NotFound, Body))]
pub async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> ApiResult<Json<api::Provider>> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    for fixed in [
        "name",
        "kind",
        "id",
        "organization_id",
        "created_at",
        "updated_at",
    ] {
        if body.contains_key(fixed) {
            return Err(ApiError::invalid(
                fixed,
                "cannot be changed; create another provider instead",
            ));
        }
    }
    let current = app
        .store
        .find_provider(&org.id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("provider {id:?} not found")))?;
    let kind = kind_of(&current.kind)?;
    // Repointing a provider that logs in with the product's own identity
    // sends that identity's token to the new address: the same rule
    // applies to the provider as it is.
    if let Ok(before) = kind.validate(current.settings.clone(), app.resolver.net())
        && before.admin_only
        && caller.0.role != Role::Admin
    {
        return Err(ApiError::Forbidden(
            "this provider logs in with the product's own identity, shared by every organization; only a platform admin may change it".into(),
        ));
    }
    // A `null` stays in for the kind to read as "not set": that clears an
    // optional setting, and is refused for a required or unknown one.
    let mut settings = current.settings;
    settings.extend(body);
    let validated = kind
        .validate(settings, app.resolver.net())
        .map_err(invalid)?;
    check_validated(&app, &caller, &org.id, &validated).await?;
    let changes = ProviderChanges {
        credential_secret: validated.credential.map(|(name, _)| name),
        settings: validated.settings,
    };
    let provider = app
        .store
        .update_provider(&org.id, &id, changes, &caller.actor())
        .await?;
    Ok(Json(provider.into()))
}

#[utoipa::path(delete, path = "/organizations/{org}/providers/{id}", operation_id = "deleteProvider", tag = "providers",
    summary = "Delete a provider", description = "Owner or admin. Refused while a secret points at it.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The provider's id or name.", example = "vault-prod")),
    responses((status = 204, description = "Deleted."), Authenticated, Forbidden, NotFound, Conflict))]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    app.store
        .delete_provider(&org.id, &id, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Tries the provider's login (a token lookup for token auth) and reports
/// the outcome. A provider that cannot be reached or refuses the login is
/// still a 200, with `ok: false`; no credential is ever in the answer.
#[utoipa::path(post, path = "/organizations/{org}/providers/{id}/check", operation_id = "checkProvider", tag = "providers",
    summary = "Check a provider's connection", description = "Owner or admin. A provider that cannot be reached or refuses the login is still a 200, with `ok: false`.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The provider's id or name.", example = "vault-prod")),
    responses((status = 200, description = "The outcome.", body = api::ProviderCheck), Authenticated, Forbidden, NotFound))]
pub async fn check(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<api::ProviderCheck>> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    let provider = app
        .store
        .find_provider(&org.id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("provider {id:?} not found")))?;
    let (ok, message) = match app.resolver.check(&org, &provider).await {
        Ok(message) => (true, message),
        Err(ResolveError::Store(error)) => return Err(error.into()),
        Err(error) => (false, error.to_string()),
    };
    tracing::info!(organization = %org.name, provider = %provider.name, ok, "Checked provider");
    Ok(Json(api::ProviderCheck { ok, message }))
}
