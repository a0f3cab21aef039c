//! The body of every error answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Reference;

/// Machine-readable error code; each maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed (JSON, query).
    BadRequest,
    /// 401: no valid bearer token.
    Unauthorized,
    /// 403: the token's role may not do this.
    Forbidden,
    /// 404: no such object, or one of another organization.
    NotFound,
    /// 409: the name is taken, or the object is in use.
    Conflict,
    /// 409: the secret is used; see `references`.
    Referenced,
    /// 413: the body is larger than 1 MiB.
    PayloadTooLarge,
    /// 408: the body did not arrive in time.
    RequestTimeout,
    /// 422: a field is invalid; see `field`.
    ValidationFailed,
    /// 429: too many failed authentications (or calls); see `Retry-After`.
    RateLimited,
    /// 502: the provider refused or answered something unexpected.
    ProviderError,
    /// 504: the provider did not answer in time.
    ProviderTimeout,
    /// 503: the database cannot be reached or is full.
    Unavailable,
    /// 500: a bug or an unexpected failure; the server logs it.
    Internal,
}

impl ErrorCode {
    /// The code as it appears in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Referenced => "referenced",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ProviderError => "provider_error",
            ErrorCode::ProviderTimeout => "provider_timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status the code is answered with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict | ErrorCode::Referenced => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::ValidationFailed => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::ProviderError => 502,
            ErrorCode::ProviderTimeout => 504,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// What went wrong. Fields are in alphabetical order, as the server has
/// always written them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// One of [`ErrorCode`]; a client should accept codes it does not know.
    #[schema(value_type = ErrorCode)]
    pub code: String,
    /// The request field at fault (validation errors only), e.g. `name`,
    /// `auth.role`, `names[2]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
    /// What went wrong, for a person. Never contains a secret value.
    pub message: String,
}

/// The body of every error answer. A 409 `referenced` answer of the
/// secret delete guard also lists the first references (at most 50, in the
/// order of the reference list) and how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "secret \"stripe-api-key\" not found"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// `referenced` only: how many objects use the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, nullable = false)]
    pub reference_count: Option<u64>,
    /// `referenced` only: the first references; the whole list is
    /// `GET …/secrets/{id}/references`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 50, nullable = false)]
    pub references: Option<Vec<Reference>>,
}

impl ErrorBody {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.as_str().to_owned(),
                field: None,
                message: message.into(),
            },
            reference_count: None,
            references: None,
        }
    }
}
