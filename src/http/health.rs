//! Liveness and readiness answers, served alike by the API and the webhook
//! (and liveness by the exec listener).

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use serde_json::json;

use crate::app::App;

/// Alive: the process answers HTTP.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready while the database answers within a second; the key ring's state
/// is reported beside it. 503 once shutdown has begun.
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
