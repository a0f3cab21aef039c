//! The error answer shared by the listeners: its status, its JSON body, and
//! how store and resolver errors map onto it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::resolve::ResolveError;
use crate::store::{Reference, StoreError};

/// Every error the API, the console and the exec listener answer with, and
/// the webhook's answer to a body that is not an AdmissionReview. The body is
/// `{"error":{"code":…,"message":…[,"field":…]}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A caller that is not who it needs to be, and what to do about it.
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Referenced {
        message: String,
        /// The first references, at most `store::MAX_LISTED_REFERENCES`.
        references: Vec<Reference>,
        /// How many there are in all.
        total: u64,
    },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("{message}")]
    Validation {
        field: Option<String>,
        message: String,
    },
    #[error("too many failed authentication attempts; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("too many calls from this pod; retry in {retry_after} s")]
    TooManyCalls { retry_after: u64 },
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    GatewayTimeout(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: Some(field.to_owned()),
            message: format!("{field}: {}", message.into()),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized | ApiError::Unauthenticated(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Referenced { .. } => (StatusCode::CONFLICT, "referenced"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::RateLimited { .. } | ApiError::TooManyCalls { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            ApiError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "provider_error"),
            ApiError::GatewayTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "provider_timeout"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "Internal error");
        }
        if let ApiError::Unavailable(cause) = &self {
            tracing::warn!(error = %cause, "Service unavailable");
        }
        let mut error = json!({ "code": code, "message": self.to_string() });
        if let ApiError::Validation {
            field: Some(field), ..
        } = &self
        {
            error["field"] = json!(field);
        }
        let mut body = json!({ "error": error });
        if let ApiError::Referenced {
            references, total, ..
        } = &self
        {
            body["references"] = json!(references);
            body["reference_count"] = json!(total);
        }
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited { retry_after } | ApiError::TooManyCalls { retry_after } = self
        {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                retry_after
                    .to_string()
                    .parse()
                    .expect("a number is a header value"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::NotFound(message) => ApiError::NotFound(message),
            StoreError::Invalid { field, message } => ApiError::invalid(field, message),
            StoreError::Database(error) if is_storage_full(&error) => ApiError::Unavailable(
                "the database's storage is full; free space on its volume, then retry".into(),
            ),
            StoreError::Database(error) if is_unavailable(&error) => {
                ApiError::Unavailable(format!("database is unavailable: {error}"))
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(error: ResolveError) -> Self {
        match error {
            ResolveError::NotFound { .. } => ApiError::NotFound(error.to_string()),
            ResolveError::Provider {
                timed_out: true, ..
            } => ApiError::GatewayTimeout(error.to_string()),
            ResolveError::Provider { .. } | ResolveError::Unsupported { .. } => {
                ApiError::BadGateway(error.to_string())
            }
            ResolveError::Store(error) => error.into(),
            ResolveError::Crypto { .. } => ApiError::Internal(error.into()),
        }
    }
}

/// Whether a database error means "the database cannot be reached" rather
/// than "this query is wrong".
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
    )
}

/// Whether the database refused a write for lack of space: SQLite's
/// SQLITE_FULL (13) or PostgreSQL's disk_full (53100).
fn is_storage_full(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("13" | "53100")))
}
