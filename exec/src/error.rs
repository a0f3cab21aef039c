//! Why the values could not be fetched. Every message is one line a person can act on,
//! and none ever holds a value or the token: only names, addresses, statuses and the
//! server's own error message.

use std::path::PathBuf;

use crate::http::AnswerError;
use crate::settings::SettingsError;

/// A failure that ends the wrapper (exit 1), after retries where retrying could help.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("cannot use the certificate authority from AGYN_EXEC_CA/AGYN_EXEC_CA_FILE: {0}")]
    Ca(String),
    #[error("cannot read the pod's token {path}: {reason}; is the projected token volume mounted?")]
    Token { path: PathBuf, reason: String },
    #[error("the server refused this pod's token (401): {message}")]
    Unauthorized { message: String },
    #[error("the server denied this pod its values (403): {message}")]
    Forbidden { message: String },
    #[error("the server has nothing for container {container:?} of this pod (404): {message}")]
    NotFound { container: String, message: String },
    #[error("the server rejected the request (400): {message}")]
    BadRequest { message: String },
    #[error("the server answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error(
        "the answer from {url} is larger than {mib} MiB; is AGYN_EXEC_URL the agyn-secrets exec listener?"
    )]
    TooLarge { url: String, mib: usize },
    #[error("{source} (from {url})")]
    Answer { url: String, source: AnswerError },
    #[error("cannot reach {url} after {after}: {last}; {hint}")]
    Unreachable {
        url: String,
        after: String,
        last: String,
        hint: String,
    },
    #[error(
        "{url} was still unavailable after {after}: it answered {status}: {message}; check the agyn-secrets server's logs"
    )]
    Unavailable {
        url: String,
        after: String,
        status: u16,
        message: String,
    },
}

/// The text shown for an error answer that carries no readable message.
pub(crate) const NO_MESSAGE: &str = "(no message)";
