//! What the listeners share over HTTP: the error answer and its JSON body,
//! bodies read within a limit and parsed as JSON, liveness and readiness.
//! Used by the API, the console, the webhook and the exec listener; knows
//! none of them.

mod body;
mod error;
mod health;

pub use body::{parse_json, read_limited};
pub use error::{ApiError, ApiResult, is_unavailable};
pub use health::{healthz, readiness};
