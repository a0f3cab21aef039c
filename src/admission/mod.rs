//! AdmissionReview in, JSONPatch out. Pure code: no I/O, no values logged.

mod annotations;
pub mod exec;
mod ops;
mod patch;
mod plan;
mod pod;
mod review;

pub use annotations::{
    Delivery, EnvEntry, ParseError, parse_delivery, parse_env, parse_pull_secrets, quote,
};
pub use exec::ExecSetup;
pub use ops::{Injection, Patch};
pub use patch::build_patch;
pub use plan::{ContainerList, ContainerPlan, PatchError, Plan, plan_env};
pub use pod::{Annotations, Container, EnvSource, EnvVar, Meta, Pod, Spec, Str};
pub use review::{
    AdmissionRequest, Denial, GroupVersionKind, ReviewError, allow, deny, parse_review,
};

/// Annotation naming the env vars to inject.
pub const ENV_ANNOTATION: &str = "secrets.agyn.io/env";
/// Annotation choosing how values reach the containers.
pub const DELIVERY_ANNOTATION: &str = "secrets.agyn.io/delivery";
/// Annotation naming image pull secrets to inject.
pub const PULL_SECRETS_ANNOTATION: &str = "secrets.agyn.io/image-pull-secrets";
/// Stamp of what was injected: `name@version,…`.
pub const INJECTED_ANNOTATION: &str = "secrets.agyn.io/injected";
