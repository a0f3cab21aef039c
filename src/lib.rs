//! agyn-secrets: a Kubernetes mutating admission webhook and resolver for
//! organization secrets, with a companion API.
#![forbid(unsafe_code)]

pub mod admission;
pub mod api;
pub mod app;
pub mod auth_limit;
pub mod budget;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
pub mod crypto;
mod decimal;
pub mod dev;
pub mod exec;
pub mod fence;
pub mod http;
pub mod metrics;
pub mod resolve;
pub mod rollout;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod validate;
pub mod webhook;
