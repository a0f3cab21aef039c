//! The error answer shared by the listeners: its status, its JSON body, and
//! how store and resolver errors map onto it.

use agyn_api::{ErrorBody, ErrorCode};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::resolve::ResolveError;
use crate::store::{Reference, StoreError};

/// Every error the API, the console and the exec listener answer with, and
/// the webhook's answer to a body that is not an AdmissionReview. The body is
/// `agyn_api::ErrorBody`: `{"error":{"code":…,"message":…[,"field":…]}}`.
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

    fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Unauthorized | ApiError::Unauthenticated(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::Referenced { .. } => ErrorCode::Referenced,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::RequestTimeout => ErrorCode::RequestTimeout,
            ApiError::Validation { .. } => ErrorCode::ValidationFailed,
            ApiError::RateLimited { .. } | ApiError::TooManyCalls { .. } => ErrorCode::RateLimited,
            ApiError::BadGateway(_) => ErrorCode::ProviderError,
            ApiError::GatewayTimeout(_) => ErrorCode::ProviderTimeout,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status =
            StatusCode::from_u16(code.status()).expect("every error code has a valid status");
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "Internal error");
        }
        if let ApiError::Unavailable(cause) = &self {
            tracing::warn!(error = %cause, "Service unavailable");
        }
        let mut body = ErrorBody::new(code, self.to_string());
        if let ApiError::Validation {
            field: Some(field), ..
        } = &self
        {
            body.error.field = Some(field.clone());
        }
        if let ApiError::Referenced {
            references, total, ..
        } = &self
        {
            body.references = Some(references.iter().cloned().map(Into::into).collect());
            body.reference_count = Some(*total);
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

impl From<Reference> for agyn_api::Reference {
    fn from(reference: Reference) -> Self {
        match reference {
            Reference::Pod {
                namespace,
                pod,
                owner_kind,
                owner_name,
                container,
                env_var,
                first_seen_at,
                last_seen_at,
            } => Self::Pod {
                namespace,
                pod,
                owner_kind,
                owner_name,
                container,
                env_var,
                first_seen_at,
                last_seen_at,
            },
            Reference::Runtime {
                consumer,
                first_seen_at,
                last_seen_at,
            } => Self::Runtime {
                consumer,
                first_seen_at,
                last_seen_at,
            },
            Reference::ImagePullSecret { id, name } => Self::ImagePullSecret { id, name },
            Reference::Provider { id, name } => Self::Provider { id, name },
        }
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
            ResolveError::Fenced { .. } => ApiError::Forbidden(error.to_string()),
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
