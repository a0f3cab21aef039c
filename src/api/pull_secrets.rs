//! Image pull secrets: registry credentials whose password is a secret.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::{Access, Caller, JsonBody, organization_for};
use super::organizations::{Items, Page, check_name};
use crate::app::App;
use crate::http::{ApiError, ApiResult};
use crate::store::{ImagePullSecret, NewImagePullSecret, format_time};

#[derive(Debug, Serialize)]
pub struct ImagePullSecretView {
    id: String,
    organization_id: String,
    name: String,
    registry: String,
    username: String,
    password_secret: String,
    created_at: String,
    updated_at: String,
}

impl From<ImagePullSecret> for ImagePullSecretView {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateImagePullSecret {
    name: String,
    registry: String,
    username: String,
    password_secret: String,
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

pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<CreateImagePullSecret>,
) -> ApiResult<(StatusCode, Json<ImagePullSecretView>)> {
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

pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    page: Page,
) -> ApiResult<Json<Items<ImagePullSecretView>>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    Ok(Items::of(
        app.store
            .list_image_pull_secrets(&org.id, page.cursor(), page.limit)
            .await?,
    ))
}

pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<ImagePullSecretView>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    let record = app
        .store
        .find_image_pull_secret(&org.id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("image pull secret {id:?} not found")))?;
    Ok(Json(record.into()))
}

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
