//! The built `agyn-secrets-exec` binary, end to end against a loopback TLS server: what
//! the command receives, exit codes, and what is printed.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::https::{HttpsServer, Reply, Step};
use common::{OTHER_VALUE, Pki, VALUE, assert_no_secret, env_body, error_body};

const BIN: &str = env!("CARGO_BIN_EXE_agyn-secrets-exec");

/// Runs `agyn-secrets-exec exec -- command...` with the settings for `server`, and a few
/// inherited variables besides.
fn exec(
    server: &HttpsServer,
    pki: &Pki,
    dir: &Path,
    extra: &[(&str, &str)],
    command: &[&str],
) -> Output {
    let token = common::write_token(dir);
    let output = Command::new(BIN)
        .args(["exec", "--"])
        .args(command)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/home/app")
        .env("KEEP_ME", "inherited")
        .envs(common::exec_env(&server.ip_url(), pki, &token))
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_no_secret(&stderr);
    // Whatever the command prints is its business; the wrapper prints nothing to stdout.
    if !output.status.success() {
        assert_no_secret(&stdout);
    }
    output
}

fn env_lines(output: &Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn the_command_gets_the_values_and_not_the_settings() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(&pki, vec![Step::Reply(Reply::json(200, env_body()))]);
    let dir = tempfile::tempdir().unwrap();
    let output = exec(&server, &pki, dir.path(), &[], &["env"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let lines = env_lines(&output);
    assert!(lines.contains(&format!("API_KEY={VALUE}")), "{lines:?}");
    assert!(
        lines.contains(&format!("DATABASE_URL={OTHER_VALUE}")),
        "{lines:?}"
    );
    // A value replaces an inherited variable of the same name; others are kept.
    assert!(lines.contains(&"HOME=/override".to_owned()), "{lines:?}");
    assert!(!lines.contains(&"HOME=/home/app".to_owned()), "{lines:?}");
    assert!(lines.contains(&"KEEP_ME=inherited".to_owned()), "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.starts_with("AGYN_EXEC_")),
        "{lines:?}"
    );
}

#[test]
fn the_command_keeps_the_wrappers_pid_and_its_arguments() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(&pki, vec![Step::Reply(Reply::json(200, env_body()))]);
    let dir = tempfile::tempdir().unwrap();
    let token = common::write_token(dir.path());
    let child = Command::new(BIN)
        .args([
            "exec",
            "--",
            "sh",
            "-c",
            "echo \"$$ $0 $1\"",
            "first",
            "--second",
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(common::exec_env(&server.ip_url(), &pki, &token))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        format!("{pid} first --second")
    );
}

#[test]
fn retries_then_runs_the_command() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(
        &pki,
        vec![
            Step::Reply(Reply::json(503, error_body("unavailable", "not ready"))),
            Step::Reply(Reply::json(503, error_body("unavailable", "not ready"))),
            Step::Reply(Reply::json(200, env_body())),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let output = exec(&server, &pki, dir.path(), &[], &["env"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(env_lines(&output).contains(&format!("API_KEY={VALUE}")));
    let log = stderr(&output);
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(
        log.lines()
            .all(|l| l.starts_with("agyn-secrets exec: attempt ")),
        "{log}"
    );
    assert_eq!(server.received().len(), 3);
}

#[test]
fn a_refused_token_exits_1_with_one_line() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(
        &pki,
        vec![Step::Reply(Reply::json(
            401,
            error_body("unauthorized", "token audience is not agyn-secrets"),
        ))],
    );
    let dir = tempfile::tempdir().unwrap();
    let output = exec(&server, &pki, dir.path(), &[], &["env"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "the command must not run");
    assert_eq!(
        stderr(&output),
        "agyn-secrets exec: the server refused this pod's token (401): token audience is not agyn-secrets\n"
    );
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_hung_server_exits_1_after_the_timeout() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(&pki, vec![Step::Hang]);
    let dir = tempfile::tempdir().unwrap();
    let output = exec(
        &server,
        &pki,
        dir.path(),
        &[("AGYN_EXEC_TIMEOUT", "1s")],
        &["env"],
    );
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    let last = log.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "agyn-secrets exec: cannot reach {} after 1s: timed out",
            server.ip_url()
        )),
        "{log}"
    );
}

#[test]
fn a_missing_setting_exits_1_naming_it() {
    let output = Command::new(BIN)
        .args(["exec", "--", "env"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "agyn-secrets exec: AGYN_EXEC_URL is not set; the webhook sets it on containers with delivery exec\n"
    );
}

#[test]
fn exec_failures_exit_as_a_shell_does() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = HttpsServer::start(&pki, vec![Step::Reply(Reply::json(200, env_body()))]);
    let dir = tempfile::tempdir().unwrap();

    let missing = exec(&server, &pki, dir.path(), &[], &["no-such-command-7f3a"]);
    assert_eq!(missing.status.code(), Some(127));
    assert!(
        stderr(&missing).contains("command \"no-such-command-7f3a\" not found"),
        "{}",
        stderr(&missing)
    );

    let script = dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let denied = exec(&server, &pki, dir.path(), &[], &[script.to_str().unwrap()]);
    assert_eq!(denied.status.code(), Some(126));
    assert!(
        stderr(&denied).contains("cannot be executed: permission denied"),
        "{}",
        stderr(&denied)
    );
}

#[test]
fn usage_and_help() {
    let none = Command::new(BIN).output().unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("agyn-secrets exec -- COMMAND"));

    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(
        String::from_utf8(help.stdout)
            .unwrap()
            .contains("AGYN_EXEC_TIMEOUT")
    );

    let no_command = Command::new(BIN).args(["exec", "--"]).output().unwrap();
    assert_eq!(no_command.status.code(), Some(2));
    assert!(stderr(&no_command).starts_with("agyn-secrets exec: no command given"));

    let unknown = Command::new(BIN).arg("run").output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn install_copies_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["install", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let installed = dir.path().join("agyn-secrets");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(BIN).unwrap()
    );

    let bad = Command::new(BIN)
        .args(["install", "/nonexistent/dir"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(stderr(&bad).lines().count(), 1);
    assert!(stderr(&bad).starts_with("agyn-secrets install: cannot use /nonexistent/dir"));
}
