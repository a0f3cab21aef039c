//! Health, readiness, metrics, the OpenAPI document and the audit log.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::extract::{Access, Caller, organization_for};
use super::organizations::{Items, Page};
use crate::app::App;
use crate::store::AuditEvent;

const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready while the database answers within a second and a key ring is loaded.
pub async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    readiness(&app).await
}

/// The readiness answer, shared by the API and the webhook.
pub async fn readiness(app: &App) -> (StatusCode, Json<serde_json::Value>) {
    if app.draining.load(std::sync::atomic::Ordering::SeqCst) {
        // Shutting down: Kubernetes stops sending traffic, in-flight
        // requests finish.
        let body = json!({ "status": "shutting down", "checks": {} });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    let database = match tokio::time::timeout(Duration::from_secs(1), app.store.ping()).await {
        Ok(Ok(())) => json!({ "ok": true }),
        Ok(Err(error)) => json!({ "ok": false, "error": error.to_string() }),
        Err(_) => json!({ "ok": false, "error": "database did not answer within 1s" }),
    };
    let ring = app.keys.current();
    let mut keyring = json!({ "ok": true, "primary": ring.primary_id() });
    if let Some(error) = app.keys.reload_error() {
        // The last good ring still serves; say why the directory is not reloading.
        keyring["warning"] = json!(error);
    }
    app.metrics
        .keyring_healthy
        .set(i64::from(app.keys.reload_error().is_none()));
    let ready = database["ok"] == json!(true);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not ready" },
            "checks": { "database": database, "keyring": keyring },
        })),
    )
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
