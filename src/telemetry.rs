//! Logging set-up.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Lines waiting for the writer thread at most; beyond that, a thread that
/// logs waits for room rather than dropping a line. About 2.5 MiB of
/// 300-byte lines.
const QUEUED_LINES: usize = 8192;

/// Keeps the log writer thread running; dropping it writes out what is
/// queued.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: WorkerGuard,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level
/// (`info`). Safe to call more than once; later calls do nothing.
///
/// Lines are formatted where they are logged and written to stderr by a
/// thread of their own, in batches: the webhook logs a line per admission
/// that resolves values, and writing each with its own system call, under
/// the stderr lock, cost a fifth of an admission's CPU at saturation.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    // Colour only on a terminal, and never under NO_COLOR (no-color.org):
    // escape codes in a log file or a collector's input get in the way of
    // reading and searching it.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard { _writer: guard }
}
