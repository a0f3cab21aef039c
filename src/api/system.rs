//! Health, readiness, metrics, the OpenAPI document and the audit log.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::extract::{Access, Caller, organization_for};
use super::organizations::{Items, Page};
use crate::app::App;
use crate::http::{ApiError, ApiResult, healthz, readiness};
use crate::store::AuditEvent;

const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// Ready while the database answers within a second and a key ring is loaded.
pub async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    readiness(&app).await
}

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

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

/// The audit log's query: the page parameters of every list, and nothing
/// else (an unknown parameter is a 400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AuditView(AuditEvent);

impl From<AuditEvent> for AuditView {
    fn from(event: AuditEvent) -> Self {
        Self(event)
    }
}

pub async fn audit(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Items<AuditView>>> {
    let Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))?;
    let page = Page::new(query.limit.as_deref(), query.cursor)?;
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    Ok(Items::of(
        app.store
            .list_audit(&org.id, page.cursor(), page.limit)
            .await?,
    ))
}
