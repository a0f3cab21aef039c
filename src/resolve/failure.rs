//! What can go wrong with a provider, shared by every kind and by the
//! address rules of `net.rs`: a setting refused when it is written
//! ([`Invalid`]), and a failure when it is used ([`Failure`]), counted by
//! its [`FailureKind`].

use crate::metrics::{ProviderErrorLabels, ProviderLabels, ProviderMetrics};

/// A setting that is wrong, and why: the field is a JSON path such as
/// `auth.role` or `remote_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What went wrong, for metrics (`kind` label) and for the API status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Timeout,
    Unreachable,
    ForbiddenAddress,
    Redirect,
    Sealed,
    Unavailable,
    PermissionDenied,
    NotFound,
    Deleted,
    Destroyed,
    MissingKey,
    Login,
    Renewal,
    Credential,
    Config,
    Server,
    Response,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Unreachable => "unreachable",
            FailureKind::ForbiddenAddress => "forbidden_address",
            FailureKind::Redirect => "redirect",
            FailureKind::Sealed => "sealed",
            FailureKind::Unavailable => "unavailable",
            FailureKind::PermissionDenied => "permission_denied",
            FailureKind::NotFound => "not_found",
            FailureKind::Deleted => "deleted",
            FailureKind::Destroyed => "destroyed",
            FailureKind::MissingKey => "missing_key",
            FailureKind::Login => "login",
            FailureKind::Renewal => "renewal",
            FailureKind::Credential => "credential",
            FailureKind::Config => "config",
            FailureKind::Server => "server",
            FailureKind::Response => "invalid_response",
        }
    }

    /// The provider could not be reached or cannot serve right now, as
    /// opposed to refusing what was asked.
    pub fn is_outage(self) -> bool {
        matches!(
            self,
            FailureKind::Timeout
                | FailureKind::Unreachable
                | FailureKind::Sealed
                | FailureKind::Unavailable
        )
    }
}

/// A failure with one provider. The message is the product's own text:
/// never a value, a credential, or what the provider said in its body.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    /// The same failure, said to have happened reading `path`.
    pub fn reading(mut self, path: &str) -> Self {
        self.message = format!("reading {path}: {}", self.message);
        self
    }
}

/// Counts a failure of the provider labelled `labels`.
pub fn count_failure(metrics: &ProviderMetrics, labels: &ProviderLabels, kind: FailureKind) {
    metrics
        .errors
        .get_or_create(&ProviderErrorLabels {
            provider: labels.provider.clone(),
            kind: kind.as_str(),
        })
        .inc();
}
