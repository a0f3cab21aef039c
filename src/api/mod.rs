//! The companion API: JSON over HTTP under `/v1`, plus health, readiness,
//! metrics and the OpenAPI document.

mod extract;
mod namespaces;
mod organizations;
mod providers;
mod pull_secrets;
mod secrets;
mod system;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};

pub use extract::MAX_BODY;

use crate::app::App;
use crate::metrics::HttpLabels;

/// The API's routes, with `pages` (the web console) served beside them:
/// under the same request counting, and with the API's 404 for any path
/// neither knows.
pub fn router(app: Arc<App>, pages: Router<Arc<App>>) -> Router {
    let v1 = Router::new()
        .route("/whoami", get(organizations::whoami))
        .route(
            "/organizations",
            post(organizations::create).get(organizations::list),
        )
        .route("/organizations/{org}", get(organizations::get))
        .route(
            "/organizations/{org}/tokens",
            post(organizations::create_token).get(organizations::list_tokens),
        )
        .route(
            "/organizations/{org}/tokens/{id}",
            get(organizations::get_token).delete(organizations::delete_token),
        )
        .route(
            "/organizations/{org}/secrets",
            post(secrets::create).get(secrets::list),
        )
        .route(
            "/organizations/{org}/secrets/{id}",
            get(secrets::get)
                .patch(secrets::update)
                .delete(secrets::delete),
        )
        .route(
            "/organizations/{org}/secrets/{id}/references",
            get(secrets::references),
        )
        .route(
            "/organizations/{org}/providers",
            post(providers::create).get(providers::list),
        )
        .route(
            "/organizations/{org}/providers/{id}",
            get(providers::get)
                .patch(providers::update)
                .delete(providers::delete),
        )
        .route(
            "/organizations/{org}/providers/{id}/check",
            post(providers::check),
        )
        .route(
            "/organizations/{org}/image-pull-secrets",
            post(pull_secrets::create).get(pull_secrets::list),
        )
        .route(
            "/organizations/{org}/image-pull-secrets/{id}",
            get(pull_secrets::get).delete(pull_secrets::delete),
        )
        .route("/organizations/{org}/resolve", post(secrets::resolve))
        .route("/organizations/{org}/audit", get(system::audit))
        .route("/namespaces", get(namespaces::list))
        .route(
            "/namespaces/{namespace}",
            put(namespaces::put)
                .get(namespaces::get)
                .delete(namespaces::delete),
        );
    Router::new()
        .nest("/v1", v1)
        .merge(system::routes())
        .merge(pages)
        .route_layer(middleware::from_fn_with_state(app.clone(), track))
        .fallback(system::not_found)
        .with_state(app)
}

/// Counts every request by route and status, and logs it at debug level.
async fn track(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    tracing::debug!(%method, %route, status, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "Request");
    app.metrics
        .http_requests
        .get_or_create(&HttpLabels {
            server: "api",
            method: method.into(),
            route: route.into(),
            status,
        })
        .inc();
    response
}
