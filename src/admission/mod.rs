//! AdmissionReview in, JSONPatch out. Pure code: no I/O, no values logged.

mod annotations;
mod patch;
mod review;

pub use annotations::{EnvEntry, ParseError, parse_env, parse_pull_secrets};
pub use patch::{Injection, PatchError, Plan, plan_env, build_patch, pod_owner, pod_name};
pub use review::{AdmissionRequest, AdmissionReview, Denial, ReviewError, parse_review, allow, deny};

/// Annotation naming the env vars to inject.
pub const ENV_ANNOTATION: &str = "secrets.agyn.io/env";
/// Annotation naming image pull secrets to inject.
pub const PULL_SECRETS_ANNOTATION: &str = "secrets.agyn.io/image-pull-secrets";
/// Stamp of what was injected: `name@version,…`.
pub const INJECTED_ANNOTATION: &str = "secrets.agyn.io/injected";
