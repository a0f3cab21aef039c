//! Namespace bindings: which organization a Kubernetes namespace's pods
//! may draw secrets from.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::{Caller, JsonBody};
use super::organizations::{Items, Page, check_name};
use crate::app::App;
use crate::cluster::Access;
use crate::http::{ApiError, ApiResult};
use crate::store::{NamespaceBinding, format_time};

#[derive(Debug, Serialize)]
pub struct BindingView {
    namespace: String,
    organization_id: String,
    created_at: String,
    /// What the product may do in the namespace, on `PUT` and `GET` of one
    /// binding: Secrets and pods, granted by a RoleBinding there.
    #[serde(skip_serializing_if = "Option::is_none")]
    access: Option<Access>,
}

impl From<NamespaceBinding> for BindingView {
    fn from(b: NamespaceBinding) -> Self {
        Self {
            namespace: b.namespace,
            organization_id: b.organization_id,
            created_at: format_time(b.created_at),
            access: None,
        }
    }
}

impl BindingView {
    /// The binding with the product's access to its namespace.
    async fn with_access(binding: NamespaceBinding, app: &App) -> Self {
        let access = app.cluster.access(&binding.namespace).await;
        if !access.ok {
            tracing::info!(namespace = %binding.namespace, reason = access.message.as_deref().unwrap_or(""), "Bound namespace lacks Kubernetes access");
        }
        Self {
            access: Some(access),
            ..binding.into()
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
    Ok((status, Json(BindingView::with_access(binding, &app).await)))
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
    Ok(Json(BindingView::with_access(binding, &app).await))
}

pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    page: Page,
) -> ApiResult<Json<Items<BindingView>>> {
    caller.require_admin()?;
    Ok(Items::of(
        app.store
            .page_namespace_bindings(page.cursor(), page.limit)
            .await?,
    ))
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
