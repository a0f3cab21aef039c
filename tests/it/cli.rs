//! The commands that write files or open a database refuse what would
//! silently go wrong: replacing a CA, or making an empty database from a
//! mistyped path.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::BIN;

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("AGYN_DATABASE_URL")
        .env_remove("AGYN_KEYRING_DIR")
        .output()
        .expect("cannot run agyn-secrets")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn certs_generate_keeps_existing_certificates_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out = out.to_str().unwrap();
    let first = run(&["certs", "generate", "--client", "--out", out]);
    assert!(first.status.success(), "{}", stderr(&first));
    let ca = std::fs::read(Path::new(out).join("ca.crt")).unwrap();

    let again = run(&["certs", "generate", "--client", "--out", out]);
    assert!(!again.status.success());
    let message = stderr(&again);
    assert!(
        message
            .contains("already holds ca.crt, ca.key, tls.crt, tls.key, ca-bundle.b64, client.crt")
            && message.contains("--force"),
        "{message}"
    );
    assert!(again.stdout.is_empty(), "nothing is written");
    assert_eq!(std::fs::read(Path::new(out).join("ca.crt")).unwrap(), ca);

    let forced = run(&["certs", "generate", "--client", "--out", out, "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read(Path::new(out).join("ca.crt")).unwrap(), ca);
}

#[test]
fn commands_that_need_a_database_refuse_a_missing_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring");
    let made = run(&[
        "keys",
        "generate",
        "--keyring-dir",
        keyring.to_str().unwrap(),
        "--primary",
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    let typo = dir.path().join("agyn-secrets.bd");
    let url = format!("sqlite://{}?mode=rwc", typo.display());
    for args in [
        vec!["token", "create", "--admin", "--database-url", &url],
        vec![
            "keys",
            "rewrap",
            "--database-url",
            &url,
            "--keyring-dir",
            keyring.to_str().unwrap(),
        ],
    ] {
        let output = run(&args);
        assert!(!output.status.success(), "{args:?}");
        let message = stderr(&output);
        assert!(
            message.contains(&format!("no SQLite database at {}", typo.display()))
                && message.contains("Only `serve` and `migrate` make a database"),
            "{args:?}: {message}"
        );
        assert!(
            output.stdout.is_empty(),
            "{args:?} printed a token or a count"
        );
        assert!(!typo.exists(), "{args:?} made a database");
    }

    // `migrate` makes it; then a token can be created in it.
    let migrated = run(&["migrate", "--database-url", &url]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let token = run(&["token", "create", "--admin", "--database-url", &url]);
    assert!(token.status.success(), "{}", stderr(&token));
    assert!(String::from_utf8_lossy(&token.stdout).starts_with("agyn_"));
}

#[test]
fn an_error_says_each_cause_once() {
    let output = run(&[
        "migrate",
        "--database-url",
        "postgres://agyn:pw@127.0.0.1:1/agyn",
    ]);
    assert!(!output.status.success());
    let message = stderr(&output);
    let line = message.lines().last().unwrap();
    assert!(
        line.starts_with(
            "error: connect to the database at postgres://agyn:<redacted>@127.0.0.1:1/agyn: "
        ),
        "{line}"
    );
    let causes: Vec<&str> = line.split(": ").collect();
    let mut seen = std::collections::HashSet::new();
    assert!(
        causes.iter().all(|c| seen.insert(*c)),
        "a cause is repeated: {line}"
    );
    assert!(!line.contains("pw"), "{line}");
}
