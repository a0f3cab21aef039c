//! Image pull secrets: registry credentials whose password is a secret.

use std::sync::Arc;

use agyn_api as api;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::doc::{Authenticated, Body, Conflict, Forbidden, NotFound, Paged};
use super::extract::{Access, Caller, JsonBody, organization_for};
use super::organizations::{Page, check_name, page_of};
use crate::app::App;
use crate::http::{ApiError, ApiResult};
use crate::store::{ImagePullSecret, NewImagePullSecret, format_time};

impl From<ImagePullSecret> for api::ImagePullSecret {
    fn from(r: ImagePullSecret) -> Self {
        Self {
            id: r.id,
            organization_id: r.organization_id,
            name: r.name,
            registry: r.registry,
            username: r.username,
            password_secret: r.password_secret,
            created_at: format_time(r.created_at),
            updated_at: format_time(r.updated_at),
        }
    }
}

fn check_text(field: &str, text: &str, max: usize) -> ApiResult<()> {
    if text.is_empty()
        || text.len() > max
        || text.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        Err(ApiError::invalid(
            field,
            format!("must be 1 to {max} characters without spaces"),
        ))
    } else {
        Ok(())
    }
}

#[utoipa::path(post, path = "/organizations/{org}/image-pull-secrets", operation_id = "createImagePullSecret", tag = "image-pull-secrets",
    summary = "Create an image pull secret", description = "Owner or admin.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme")),
    request_body = api::CreateImagePullSecret,
    responses((status = 201, description = "Created.", body = api::ImagePullSecret), Authenticated, Forbidden, NotFound, Body, Conflict))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<api::CreateImagePullSecret>,
) -> ApiResult<(StatusCode, Json<api::ImagePullSecret>)> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    check_name("name", &body.name)?;
    // `agyn-pull-<name>` must itself be a valid Secret name.
    if body.name.len() > 253 - "agyn-pull-".len() {
        return Err(ApiError::invalid("name", "is too long"));
    }
    check_text("registry", &body.registry, 253)?;
    check_text("username", &body.username, 256)?;
    if body.username.contains(':') {
        return Err(ApiError::invalid("username", "must not contain ':'"));
    }
    check_name("password_secret", &body.password_secret)?;
    let new = NewImagePullSecret {
        name: body.name,
        registry: body.registry,
        username: body.username,
        password_secret: body.password_secret,
    };
    let record = app
        .store
        .create_image_pull_secret(&org.id, new, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

#[utoipa::path(get, path = "/organizations/{org}/image-pull-secrets", operation_id = "listImagePullSecrets", tag = "image-pull-secrets",
    summary = "List image pull secrets", description = "Member+.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), api::PageQuery),
    responses((status = 200, description = "One page.", body = api::Page<api::ImagePullSecret>), Authenticated, Forbidden, NotFound, Paged))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    page: Page,
) -> ApiResult<Json<api::Page<api::ImagePullSecret>>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    Ok(page_of(
        app.store
            .list_image_pull_secrets(&org.id, page.cursor(), page.limit)
            .await?,
    ))
}

#[utoipa::path(get, path = "/organizations/{org}/image-pull-secrets/{id}", operation_id = "getImagePullSecret", tag = "image-pull-secrets",
    summary = "Get an image pull secret", description = "Member+.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The image pull secret's id or name.", example = "ghcr")),
    responses((status = 200, description = "The image pull secret.", body = api::ImagePullSecret), Authenticated, Forbidden, NotFound))]
pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<api::ImagePullSecret>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    let record = app
        .store
        .find_image_pull_secret(&org.id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("image pull secret {id:?} not found")))?;
    Ok(Json(record.into()))
}

#[utoipa::path(delete, path = "/organizations/{org}/image-pull-secrets/{id}", operation_id = "deleteImagePullSecret", tag = "image-pull-secrets",
    summary = "Delete an image pull secret", description = "Owner or admin.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The image pull secret's id or name.", example = "ghcr")),
    responses((status = 204, description = "Deleted."), Authenticated, Forbidden, NotFound))]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    app.store
        .delete_image_pull_secret(&org.id, &id, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
