//! Request extractors: the caller's token, and JSON bodies with the
//! project's error shape.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::http::{ApiError, ApiResult, parse_json, read_limited};
use crate::store::{Organization, Role, Token};

/// Largest accepted API request body.
pub const MAX_BODY: usize = 1 << 20;

/// A request body must have arrived by then: a client that stops half way
/// holds its connection and buffer no longer.
const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Token);

impl Caller {
    /// How the caller appears in the audit log.
    pub fn actor(&self) -> String {
        format!("token:{}:{}", self.0.name, self.0.id)
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        match self.0.role {
            Role::Admin => Ok(()),
            _ => Err(ApiError::Forbidden(
                "this needs a platform admin token".into(),
            )),
        }
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> ApiResult<Self> {
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let token = match presented {
            Some(presented) => app.store.authenticate(presented).await?,
            None => None,
        };
        // A valid token is always let through, even from a source that is
        // limited: failures of others behind the same proxy or NAT must not
        // lock it out. Only failures are limited.
        match token {
            Some(token) => Ok(Caller(token)),
            None => {
                app.metrics.auth_failures.inc();
                let limited = source.and_then(|ip| app.auth_limiter.failed(ip));
                match limited {
                    Some(retry_after) => Err(ApiError::RateLimited { retry_after }),
                    None => Err(ApiError::Unauthorized),
                }
            }
        }
    }
}

/// What a route needs of the caller within one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Metadata reads: member, owner or admin.
    Read,
    /// Changes: owner or admin.
    Write,
    /// Values: runtime tokens only.
    Resolve,
}

/// Finds the organization `id_or_name` and checks that the caller may act on
/// it. Another organization's objects are reported exactly as missing ones.
pub async fn organization_for(
    app: &App,
    caller: &Caller,
    id_or_name: &str,
    access: Access,
) -> ApiResult<Organization> {
    let not_found = || ApiError::NotFound(format!("organization {id_or_name:?} not found"));
    let org = app
        .store
        .find_organization(id_or_name)
        .await?
        .ok_or_else(not_found)?;
    let token = &caller.0;
    if token.role != Role::Admin && token.organization_id.as_deref() != Some(org.id.as_str()) {
        return Err(not_found());
    }
    match (access, token.role) {
        (Access::Resolve, Role::Runtime) => Ok(org),
        (Access::Resolve, _) => Err(ApiError::Forbidden(
            "only runtime tokens may resolve values".into(),
        )),
        (_, Role::Runtime) => Err(ApiError::Forbidden(
            "a runtime token may only call resolve".into(),
        )),
        (Access::Read, _) | (Access::Write, Role::Admin | Role::Owner) => Ok(org),
        (Access::Write, Role::Member) => {
            Err(ApiError::Forbidden("this needs an owner token".into()))
        }
    }
}

/// A JSON request body: at most [`MAX_BODY`] bytes (413 beyond), unknown
/// fields refused with 422 naming the field, malformed JSON 400.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, _state: &S) -> ApiResult<Self> {
        let bytes = tokio::time::timeout(BODY_DEADLINE, read_limited(request, MAX_BODY))
            .await
            .map_err(|_| ApiError::RequestTimeout)??;
        parse_json(&bytes).map(JsonBody)
    }
}
