//! Artifacts for the leak scan.
//!
//! With `AGYN_TEST_ARTIFACTS=<dir>`, every value a test sends in a JSON
//! `value` field is recorded in `<dir>/values-<pid>.txt` (one JSON string a
//! line), every API response body but `resolve`'s is appended to
//! `<dir>/responses-<pid>.log`, and each server leaves its log, `/metrics`,
//! and its SQLite files or a PostgreSQL dump under `<dir>/servers/`.
//! `scripts/leak-scan.py <dir>` then looks for every value in all of it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// The artifacts directory, when the run collects them.
pub fn artifacts_dir() -> Option<PathBuf> {
    std::env::var_os("AGYN_TEST_ARTIFACTS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn append_artifact(name: &str, text: &str) {
    use std::io::Write;
    let Some(dir) = artifacts_dir() else { return };
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
    {
        let _ = file.write_all(text.as_bytes());
    }
}

/// Records every string found under a `value` key of a request body.
pub fn record_sent_values(body: &Value) {
    fn walk(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    if key == "value"
                        && let Value::String(text) = item
                    {
                        out.push_str(&Value::String(text.clone()).to_string());
                        out.push('\n');
                    }
                    walk(item, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    if artifacts_dir().is_none() {
        return;
    }
    let mut lines = String::new();
    walk(body, &mut lines);
    if !lines.is_empty() {
        append_artifact(&format!("values-{}.txt", std::process::id()), &lines);
    }
}

/// Records a credential or value the test handed to something other than
/// the API (a provider's token, a value written into a provider), so that
/// the scan looks for it too.
pub fn record_secret(text: &str) {
    if artifacts_dir().is_some() {
        append_artifact(
            &format!("values-{}.txt", std::process::id()),
            &format!("{}\n", Value::String(text.to_owned())),
        );
    }
}

/// Records the string values of a JSON object written into a provider.
pub fn record_map(data: &Value) {
    for value in data.as_object().into_iter().flat_map(|m| m.values()) {
        if let Some(text) = value.as_str() {
            record_secret(text);
        }
    }
}

/// Keeps an API response body for the scan; `resolve` answers carry values
/// by design and are left out.
pub fn record_response(method: &str, path: &str, status: u16, text: &str) {
    if artifacts_dir().is_none() || path.split('?').next().unwrap_or("").ends_with("/resolve") {
        return;
    }
    append_artifact(
        &format!("responses-{}.log", std::process::id()),
        &format!("### {method} {path} {status}\n{text}\n"),
    );
}

/// Keeps a webhook answer that must carry no value, with its patch decoded,
/// for the leak scan.
pub fn record_webhook_answer(answer: &Value) {
    if artifacts_dir().is_none() {
        return;
    }
    let ops = serde_json::to_string(&patch_ops(answer)).unwrap();
    append_artifact(
        &format!("responses-{}.log", std::process::id()),
        &format!("### POST /mutate\n{answer}\n{ops}\n"),
    );
}

/// A fresh directory for one server's artifacts.
pub fn server_artifacts_dir(label: &str) -> Option<PathBuf> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = artifacts_dir()?
        .join("servers")
        .join(format!("{}-{n}-{label}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// `GET /metrics` over a plain socket: this runs in `Drop`, where an async
/// client cannot be driven.
pub fn fetch_metrics_blocking(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    Some(String::from_utf8_lossy(&response).into_owned())
}

/// Copies what a server leaves behind into `dir`: its log, its SQLite files
/// (`agyn-secrets.db*` under `data_dir`, and any files next to a
/// `sqlite://` database elsewhere) or a dump of its PostgreSQL database.
pub fn copy_server_files(dir: &Path, log_path: &Path, data_dir: &Path, database_url: Option<&str>) {
    let _ = std::fs::copy(log_path, dir.join("server.log"));
    let mut sqlite_files: Vec<PathBuf> = Vec::new();
    let mut collect = |folder: &Path, prefix: &str| {
        if let Ok(entries) = std::fs::read_dir(folder) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(prefix) {
                    sqlite_files.push(entry.path());
                }
            }
        }
    };
    match database_url {
        None => collect(data_dir, "agyn-secrets.db"),
        Some(url) if url.starts_with("sqlite:") => {
            let path = Path::new(
                url.trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:")
                    .split('?')
                    .next()
                    .unwrap_or(""),
            );
            if let (Some(folder), Some(name)) = (path.parent(), path.file_name()) {
                collect(folder, &name.to_string_lossy());
            }
        }
        Some(url) => {
            let pg_dump = crate::postgres_bin()
                .map(|bin| bin.join("pg_dump"))
                .unwrap_or_else(|| "pg_dump".into());
            if let Ok(output) = Command::new(pg_dump).arg("--data-only").arg(url).output()
                && output.status.success()
            {
                let _ = std::fs::write(dir.join("pg_dump.sql"), output.stdout);
            }
        }
    }
    for file in sqlite_files {
        if let Some(name) = file.file_name() {
            let _ = std::fs::copy(&file, dir.join(name));
        }
    }
}

/// The patch operations of a webhook answer (empty when there is no patch).
pub fn patch_ops(review: &Value) -> Vec<Value> {
    use base64::Engine;
    match review["response"]["patch"].as_str() {
        Some(patch) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(patch)
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        }
        None => Vec::new(),
    }
}
