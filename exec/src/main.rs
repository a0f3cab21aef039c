//! `agyn-secrets-exec`: installed into pods as `/agyn-secrets/agyn-secrets`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    agyn_secrets_exec::main_with(std::env::args_os().skip(1))
}
