//! The companion API: JSON over HTTP under `/v1`, plus health, readiness,
//! metrics and the OpenAPI document. The request and response types are
//! `agyn-api`'s; every route is added with its `#[utoipa::path]`, so the
//! document served at `/openapi.json` lists exactly what the router serves.

mod doc;
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
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use doc::document;
pub use extract::MAX_BODY;

use crate::app::App;
use crate::metrics::HttpLabels;

/// Every route of the API, each with its documentation.
fn routes() -> OpenApiRouter<Arc<App>> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(organizations::whoami))
        .routes(routes!(organizations::create, organizations::list))
        .routes(routes!(organizations::get))
        .routes(routes!(
            organizations::create_token,
            organizations::list_tokens
        ))
        .routes(routes!(
            organizations::get_token,
            organizations::delete_token
        ))
        .routes(routes!(secrets::create, secrets::list))
        .routes(routes!(secrets::get, secrets::update, secrets::delete))
        .routes(routes!(secrets::references))
        .routes(routes!(secrets::rollouts))
        .routes(routes!(providers::create, providers::list))
        .routes(routes!(
            providers::get,
            providers::update,
            providers::delete
        ))
        .routes(routes!(providers::check))
        .routes(routes!(pull_secrets::create, pull_secrets::list))
        .routes(routes!(pull_secrets::get, pull_secrets::delete))
        .routes(routes!(secrets::resolve))
        .routes(routes!(system::audit))
        .routes(routes!(namespaces::list))
        .routes(routes!(
            namespaces::put,
            namespaces::get,
            namespaces::delete
        ));
    OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .nest("/v1", v1)
        .merge(system::routes())
}

/// The API's routes, with `pages` (the web console) served beside them:
/// under the same request counting, and with the API's 404 for any path
/// neither knows.
pub fn router(app: Arc<App>, pages: Router<Arc<App>>) -> Router {
    let api: Router<Arc<App>> = routes().into();
    api.merge(pages)
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
