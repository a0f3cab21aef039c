//! Namespace bindings: which organization a Kubernetes namespace's pods
//! may draw secrets from.

use std::sync::Arc;

use agyn_api as api;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::doc::{Authenticated, Body, Forbidden, NotFound, Paged};
use super::extract::{Caller, JsonBody};
use super::organizations::{Page, check_name, page_of};
use crate::app::App;
use crate::http::{ApiError, ApiResult};
use crate::store::{NamespaceBinding, format_time};

impl From<NamespaceBinding> for api::NamespaceBinding {
    fn from(b: NamespaceBinding) -> Self {
        Self {
            namespace: b.namespace,
            organization_id: b.organization_id,
            created_at: format_time(b.created_at),
            access: None,
        }
    }
}

/// The binding with the product's access to its namespace.
async fn with_access(binding: NamespaceBinding, app: &App) -> api::NamespaceBinding {
    let access = app.cluster.access(&binding.namespace).await;
    if !access.ok {
        tracing::info!(namespace = %binding.namespace, reason = access.message.as_deref().unwrap_or(""), "Bound namespace lacks Kubernetes access");
    }
    api::NamespaceBinding {
        access: Some(api::NamespaceAccess {
            checked: access.checked,
            ok: access.ok,
            missing: access.missing,
            message: access.message,
        }),
        ..binding.into()
    }
}

#[utoipa::path(put, path = "/namespaces/{namespace}", operation_id = "bindNamespace", tag = "namespaces",
    summary = "Bind a namespace to an organization", description = "Admin only. Binding a bound namespace again moves it.", params(("namespace" = String, Path, description = "The Kubernetes namespace.", example = "team-a")),
    request_body = api::BindNamespace,
    responses((status = 201, description = "Bound.", body = api::NamespaceBinding), (status = 200, description = "Already bound; now to this organization.", body = api::NamespaceBinding), Authenticated, Forbidden, Body))]
pub async fn put(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(namespace): Path<String>,
    JsonBody(body): JsonBody<api::BindNamespace>,
) -> ApiResult<(StatusCode, Json<api::NamespaceBinding>)> {
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
    Ok((status, Json(with_access(binding, &app).await)))
}

#[utoipa::path(get, path = "/namespaces/{namespace}", operation_id = "getNamespaceBinding", tag = "namespaces",
    summary = "Get a namespace binding", description = "Admin only.", params(("namespace" = String, Path, description = "The Kubernetes namespace.", example = "team-a")),
    responses((status = 200, description = "The binding, with the product's access there.", body = api::NamespaceBinding), Authenticated, Forbidden, NotFound))]
pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(namespace): Path<String>,
) -> ApiResult<Json<api::NamespaceBinding>> {
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
    Ok(Json(with_access(binding, &app).await))
}

#[utoipa::path(get, path = "/namespaces", operation_id = "listNamespaceBindings", tag = "namespaces",
    summary = "List namespace bindings", description = "Admin only.", params(api::PageQuery),
    responses((status = 200, description = "One page.", body = api::Page<api::NamespaceBinding>), Authenticated, Forbidden, Paged))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    page: Page,
) -> ApiResult<Json<api::Page<api::NamespaceBinding>>> {
    caller.require_admin()?;
    Ok(page_of(
        app.store
            .page_namespace_bindings(page.cursor(), page.limit)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/namespaces/{namespace}", operation_id = "unbindNamespace", tag = "namespaces",
    summary = "Unbind a namespace", description = "Admin only.", params(("namespace" = String, Path, description = "The Kubernetes namespace.", example = "team-a")),
    responses((status = 204, description = "Unbound."), Authenticated, Forbidden, NotFound))]
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
