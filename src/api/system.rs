//! Health, readiness, metrics, the OpenAPI document and the audit log.

use std::sync::Arc;

use agyn_api as api;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Uri, header};
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::doc::{Authenticated, Forbidden, NotFound, Paged, StrictQuery};
use super::extract::{Access, Caller, organization_for};
use super::organizations::{Page, page_of};
use crate::app::App;
use crate::http::{ApiError, ApiResult, readiness};
use crate::store::{AuditEvent, AuditTarget};

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "system",
    summary = "Liveness",
    responses((status = 200, description = "The process answers HTTP: `{\"status\":\"ok\"}`.", content_type = "application/json")))]
async fn healthz() -> impl IntoResponse {
    crate::http::healthz().await
}

/// Ready while the database answers within a second and a key ring is loaded.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "system",
    summary = "Readiness",
    responses(
        (status = 200, description = "Ready: `{\"status\":\"ready\",\"checks\":{\"database\":{\"ok\":true},\"keyring\":{\"ok\":true,\"primary\":\"k1\"}}}`; a key ring that does not reload adds `warning`.", content_type = "application/json"),
        (status = 503, description = "Not ready (the database does not answer within a second; `error` says why), or shutting down.", content_type = "application/json"),
    ))]
pub async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    readiness(&app).await
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "system",
    summary = "Prometheus metrics",
    responses((status = 200, description = "OpenMetrics text.", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    // Set at scrape time too: a scraper that never calls /readyz must still
    // see a broken key ring.
    app.metrics
        .keyring_healthy
        .set(i64::from(app.keys.reload_error().is_none()));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
}

#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "system",
    summary = "This OpenAPI document", description = "Also checked in as `docs/openapi.json`.",
    responses((status = 200, description = "The document.", content_type = "application/json")))]
async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::document(),
    )
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

impl From<AuditEvent> for api::AuditEvent {
    fn from(event: AuditEvent) -> Self {
        Self {
            id: event.id,
            at: event.at,
            actor: event.actor,
            action: event.action,
            target_kind: event.target_kind,
            target_id: event.target_id,
            target_name: event.target_name,
        }
    }
}

/// Newest first. The query takes the page parameters of every list and
/// `secret`, and nothing else (an unknown parameter is a 400).
#[utoipa::path(get, path = "/organizations/{org}/audit", operation_id = "listAuditEvents", tag = "audit",
    summary = "Read the audit log", description = "Owner or admin.",
    params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), api::AuditQuery),
    responses((status = 200, description = "One page, newest first.", body = api::Page<api::AuditEvent>), Authenticated, Forbidden, NotFound, StrictQuery, Paged))]
pub async fn audit(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    query: Result<Query<api::AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<api::Page<api::AuditEvent>>> {
    let Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))?;
    let page = Page::new(query.limit.as_deref(), query.cursor)?;
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    let target = match query.secret.as_deref() {
        None | Some("") => None,
        Some(secret) => Some(match app.store.find_secret(&org.id, secret).await? {
            Some(found) => AuditTarget::Id(found.id),
            None => AuditTarget::SecretName(secret.to_owned()),
        }),
    };
    Ok(page_of(
        app.store
            .list_audit(&org.id, target.as_ref(), page.cursor(), page.limit)
            .await?,
    ))
}
