//! Namespace bindings: which organization a Kubernetes namespace's pods
//! may draw secrets from.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody};
use super::organizations::{Items, check_name};
use crate::app::App;
use crate::store::{NamespaceBinding, format_time};

#[derive(Debug, Serialize)]
pub struct BindingView {
    namespace: String,
    organization_id: String,
    created_at: String,
}

impl From<NamespaceBinding> for BindingView {
    fn from(b: NamespaceBinding) -> Self {
        Self {
            namespace: b.namespace,
            organization_id: b.organization_id,
            created_at: format_time(b.created_at),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutBinding {
    organization: String,
}

pub async fn put(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<PutBinding>,
) -> ApiResult<(StatusCode, Json<BindingView>)> {
    caller.require_admin()?;
    check_name("namespace", &namespace)?;
    let org = app
        .store
        .find_organization(&body.organization)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "organization",
                format!("no organization {:?}", body.organization),
            )
        })?;
    let (binding, created) = app
        .store
        .bind_namespace(&namespace, &org.id, &caller.actor())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(binding.into())))
}

pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(namespace): Path<String>,
) -> ApiResult<Json<BindingView>> {
    caller.require_admin()?;
    let binding = app
        .store
        .find_namespace_binding(&namespace)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "namespace {namespace:?} is not bound to an organization"
            ))
        })?;
    Ok(Json(binding.into()))
}

pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> ApiResult<Json<Items<BindingView>>> {
    caller.require_admin()?;
    Ok(Items::of(app.store.list_namespace_bindings().await?))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(namespace): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if app
        .store
        .unbind_namespace(&namespace, &caller.actor())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "namespace {namespace:?} is not bound to an organization"
        )))
    }
}
