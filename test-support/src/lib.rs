//! What the workspace's tests share: the real `agyn-secrets` binary on free
//! loopback ports (`Server`), on a SQLite file or a PostgreSQL database
//! (`TestDb`), a JSON client of its API (`Api`), the artifacts the leak
//! scan reads, and the programs some tests need (`tools`, `#[needs(...)]`).
//!
//! A test that needs a program writes `#[needs(bao)]` (or several names):
//! when the build did not find it, libtest reports the test as ignored with
//! the reason. The test still looks for the program when it runs, and
//! [`skip`]s loudly (or fails under `AGYN_TEST_REQUIRE_ALL=1`) should it
//! have gone since.

mod api;
mod artifacts;
mod postgres;
mod server;
pub mod tools;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub use agyn_test_support_macros::needs;
pub use api::*;
pub use artifacts::*;
pub use postgres::*;
pub use server::*;

/// The workspace's root directory.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace")
}

/// A program the tests run, where the build looked for it: the workspace's
/// `.venv/bin`, else `PATH`.
pub fn tool(name: &str) -> Option<PathBuf> {
    tools::program(workspace(), name)
}

/// Whether a missing tool fails the test instead of skipping it (CI).
pub fn require_all() -> bool {
    std::env::var("AGYN_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// For a test that runs although a tool it needs is missing (the build
/// found it, and it has gone since): says so loudly, or fails when
/// `AGYN_TEST_REQUIRE_ALL=1`. The caller then returns.
pub fn skip(reason: &str) {
    use std::io::Write;
    if require_all() {
        panic!("AGYN_TEST_REQUIRE_ALL=1 and a required tool is missing: {reason}");
    }
    // Straight to the file descriptor: libtest captures `eprintln!`, and
    // this must be seen although the test passes.
    let banner = format!(
        "\n************************************************************\n\
         SKIPPED: {reason}\n\
         ************************************************************\n"
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
}

/// Whether this process runs as root (chroot needs it).
pub fn is_root() -> bool {
    tools::is_root()
}

/// A loopback port that is free now and that nothing in this process has
/// been given before.
///
/// Ports come from just below the kernel's ephemeral range, never from it:
/// a port taken from the ephemeral range with `bind(:0)` is released before
/// the server under test binds it, and in that gap any outgoing connection
/// of a concurrent test may be given it as its source port. They are four
/// apart, because some servers also take the ports after their own (an
/// OpenBao dev server listens on port + 1 for its cluster).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const STRIDE: u32 = 4;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = ephemeral_low();
    let slots = 8000.min(u32::from(low) - 1024) / STRIDE;
    // Processes that run one after the other start at different places.
    let start = std::process::id() % slots;
    for _ in 0..slots {
        let slot = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % slots;
        let port = (u32::from(low) - (slots - slot) * STRIDE) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {low}");
}

/// The first port of the kernel's ephemeral range (32768 when unknown).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .filter(|&low: &u16| low > 2048)
        .unwrap_or(32768)
}

/// An HTTP client builder. reqwest takes its TLS provider from the process
/// default, which is installed here as the product installs it: aws-lc.
pub fn http_builder() -> reqwest::ClientBuilder {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may install it first; either way one is installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    reqwest::Client::builder()
}

pub fn http() -> reqwest::Client {
    http_builder().build().expect("build an HTTP client")
}

/// `<target dir>/<profile>`, where cargo put the running test's executable
/// (it runs from `<target dir>/<profile>/deps`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from <target dir>/<profile>/deps")
        .to_owned()
}

/// The product binary in the running test's target directory. cargo builds
/// it for the main package's tests; another package's tests do not get it,
/// so it is built there first when it is missing.
pub fn product_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let profile = profile_dir();
        let binary = profile.join(format!("agyn-secrets{}", std::env::consts::EXE_SUFFIX));
        if binary.is_file() {
            return binary;
        }
        let target_dir = profile.parent().expect("a target directory");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .current_dir(workspace())
            .args(["build", "-p", "agyn-secrets", "--bin", "agyn-secrets"])
            .env("CARGO_TARGET_DIR", target_dir);
        match profile.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                command.arg("--release");
            }
            Some(other) => {
                command.args(["--profile", other]);
            }
        }
        let status = command.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p agyn-secrets failed");
        assert!(binary.is_file(), "{} was not built", binary.display());
        binary
    })
}
