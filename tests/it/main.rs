//! The integration tests of `agyn-secrets`, one module per suite, built into
//! one binary: linked once instead of once per suite, which saves most of
//! the time a change in `src/` costs before the tests can run, and most of
//! the disk (ARCHITECTURE.md, "Tests"). Run one suite with
//! `cargo test --test it <suite>::`.

mod common;

mod api;
mod aws;
mod cache;
mod certs;
mod cli;
mod concurrency;
mod console;
mod delivery;
mod durability;
mod exec;
mod faults;
mod fence;
mod hostile;
mod openapi;
mod pagination;
mod properties;
mod providers;
mod pull_secrets;
mod reliability;
mod rollout;
mod tls;
mod vault;
mod webhook;
mod workloads;
