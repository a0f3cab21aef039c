//! The wrapper behind delivery `exec`.
//!
//! A pod annotated `secrets.agyn.io/delivery: exec` has its container command rewritten
//! by the webhook to `/agyn-secrets/agyn-secrets exec -- <original command>`. At start the
//! wrapper sends the pod's projected service-account token to the server's exec listener
//! (`POST /v1/exec/env`), receives the values of that one container, and replaces itself
//! with the original command (execve), the values in its environment. No value is ever
//! written to the pod spec, to a file or to a log.
//!
//! The same binary also installs itself (`install DIR`): an init container copies it into
//! an in-memory volume shared with the application container.
//!
//! The binary is linked statically and runs in images without a libc resolver (scratch,
//! distroless-static, Alpine), so it resolves host names itself ([`resolve`]).
//!
//! The entry points are [`main_with`] (the whole command line, for the standalone binary
//! and for `agyn-secrets exec` in the main binary), [`exec_main`] (the `exec` subcommand
//! alone), [`fetch`] (the request with its retries, without exec) and [`install()`].

#![forbid(unsafe_code)]

mod client;
mod error;
mod fetch;
mod http;
mod install;
pub mod resolve;
mod run;
mod secret;
mod settings;
mod sys;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

pub use error::Error;
pub use fetch::fetch;
pub use install::{INSTALLED_NAME, InstallError, install};
pub use resolve::Resolver;
pub use secret::Values;
pub use settings::{
    DEFAULT_TIMEOUT, DEFAULT_TOKEN_FILE, ServerUrl, Settings, SettingsError, parse_duration,
};

/// Every line the `exec` subcommand writes starts with this, so that a person reading the
/// container's log knows which program is talking.
pub const PREFIX: &str = "agyn-secrets exec:";

/// The exit code when the values could not be fetched (bad settings, a refusal, or no
/// answer within the timeout). Non-zero so that the kubelet restarts the container with
/// its usual backoff.
pub const EXIT_FAILED: u8 = 1;
/// The exit code for a command line the wrapper does not understand.
pub const EXIT_USAGE: u8 = 2;
/// The exit code when the command exists but cannot be executed (as in a shell).
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// The exit code when the command is not found (as in a shell).
pub const EXIT_NOT_FOUND: u8 = 127;

const USAGE: &str = "\
Usage:
  agyn-secrets exec -- COMMAND [ARGS...]
      Fetch this container's secret values from the agyn-secrets server and run COMMAND
      with them in its environment (COMMAND replaces this process).
  agyn-secrets install DIR
      Copy this program to DIR/agyn-secrets (an init container does this).

Environment for exec (settings only, never values):
  AGYN_EXEC_URL         the server's base URL, https://host:port (required)
  AGYN_EXEC_CA          PEM of the certificate authority to trust (or AGYN_EXEC_CA_FILE)
  AGYN_EXEC_CA_FILE     path to that PEM
  AGYN_EXEC_CONTAINER   this container's name (required)
  AGYN_EXEC_TOKEN_FILE  the pod's token (default /var/run/secrets/agyn-secrets/token)
  AGYN_EXEC_TIMEOUT     how long to keep retrying, e.g. 500ms, 30s, 2m (default 60s)
";

/// Runs the wrapper's command line: `args` are the arguments after the program's name,
/// starting with the subcommand (`exec` or `install`).
///
/// Returns only when there is nothing to exec: after `install`, after `--help`, or on a
/// failure, whose one-line explanation has already been written to stderr.
pub fn main_with<I, S>(args: I) -> ExitCode
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut args = args.into_iter().map(Into::into);
    let Some(subcommand) = args.next() else {
        eprint!("{USAGE}");
        return ExitCode::from(EXIT_USAGE);
    };
    match subcommand.to_str() {
        Some("exec") => exec_main(args.collect()),
        Some("install") => install_main(args.collect()),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("agyn-secrets-exec {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "agyn-secrets: unknown command {:?}; expected exec or install\n\n{USAGE}",
                subcommand.to_string_lossy()
            );
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The `exec` subcommand: `args` are what follows `exec` (an optional `--`, then the
/// command and its arguments).
///
/// Reads the settings from the process environment, fetches the values with retries
/// ([`fetch`]) and execs the command. Returns only on failure, after writing one line to
/// stderr that says what went wrong and what to check.
pub fn exec_main(args: Vec<OsString>) -> ExitCode {
    let mut command = args;
    if command.first().is_some_and(|arg| arg == "--") {
        command.remove(0);
    } else if command
        .first()
        .is_some_and(|arg| arg == "-h" || arg == "--help")
    {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if command.is_empty() {
        eprintln!("{PREFIX} no command given; usage: agyn-secrets exec -- COMMAND [ARGS...]");
        return ExitCode::from(EXIT_USAGE);
    }

    let stderr = std::io::stderr();
    let values = Settings::from_env()
        .map_err(Error::from)
        .and_then(|settings| fetch(&settings, &Resolver::system(), &mut stderr.lock()));
    match values {
        Ok(values) => run::exec(command, values),
        Err(error) => {
            report(&error);
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn install_main(args: Vec<OsString>) -> ExitCode {
    let [dir] = <[OsString; 1]>::try_from(args).unwrap_or_else(|_| [OsString::new()]);
    if dir.is_empty() || dir == "-h" || dir == "--help" {
        eprintln!("agyn-secrets install: usage: agyn-secrets install DIR");
        return ExitCode::from(EXIT_USAGE);
    }
    match install(&PathBuf::from(dir)) {
        Ok(path) => {
            eprintln!("agyn-secrets install: installed {}", path.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("agyn-secrets install: {error}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Writes `error` as the one line a person reads in `kubectl logs`.
fn report(error: &Error) {
    let line = one_line(&error.to_string());
    // Nothing useful can be done when stderr itself is gone.
    let _ = writeln!(std::io::stderr().lock(), "{PREFIX} {line}");
}

/// Folds a message onto one line, so that a log collector never splits it.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
