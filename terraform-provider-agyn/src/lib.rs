//! Terraform provider for agyn-secrets.
//!
//! It manages the companion API's objects (organizations, secret providers,
//! secrets, image pull secrets and namespace bindings) over its JSON API
//! under `/v1`, and speaks Terraform plugin protocol 6 through the
//! `tf-provider` crate. The API never returns a secret's value, so the
//! provider never reads one back: a change of `value` is found by comparing
//! the configuration with the state.

#![forbid(unsafe_code)]

mod client;
mod data_sources;
mod diagnostics;
mod provider;
mod references;
mod resources;
mod schema;
mod values;

pub use provider::AgynProvider;
