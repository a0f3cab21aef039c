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
        vec!["token", "list", "--admin", "--database-url", &url],
        vec![
            "token",
            "revoke",
            "0123456789abcdef0123456789abcdef",
            "--database-url",
            &url,
        ],
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

#[tokio::test]
async fn admin_tokens_are_listed_and_revoked() {
    let server = crate::common::Server::start(&crate::common::sqlite()).await;
    let database = server.data_dir.join("agyn-secrets.db");
    let url = format!("sqlite://{}", database.display());
    let created = run(&[
        "token",
        "create",
        "--admin",
        "--name",
        "break-glass",
        "--database-url",
        &url,
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    server
        .client_as(&token)
        .get("/v1/organizations")
        .await
        .expect(200);

    let listed = run(&["token", "list", "--admin", "--database-url", &url]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let table = String::from_utf8(listed.stdout).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    assert!(
        rows[0].starts_with("ID") && rows[0].contains("NAME"),
        "{table}"
    );
    assert_eq!(rows.len(), 3, "the dev token and the new one: {table}");
    let id = rows
        .iter()
        .find(|row| row.contains("break-glass"))
        .and_then(|row| row.split_whitespace().next())
        .unwrap_or_else(|| panic!("no break-glass row: {table}"));
    assert!(token.contains(id), "the listed id is the token's");
    assert!(!table.contains(&token), "a listing never shows a token");

    let revoked = run(&["token", "revoke", id, "--database-url", &url]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    server
        .client_as(&token)
        .get("/v1/organizations")
        .await
        .expect(401);
    server.client().get("/v1/organizations").await.expect(200);
    let listed = run(&["token", "list", "--admin", "--database-url", &url]);
    let table = String::from_utf8(listed.stdout).unwrap();
    assert!(!table.contains("break-glass"), "{table}");

    let again = run(&["token", "revoke", id, "--database-url", &url]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("`token list --admin` shows the admin tokens' ids"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn each_role_lists_only_its_own_flags() {
    let help = |role: &str| {
        let output = run(&[role, "--help"]);
        assert!(output.status.success(), "{}", stderr(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    let webhook_only = [
        "--tls-cert",
        "--webhook-addr",
        "--exec-url",
        "--default-delivery",
    ];
    let api_only = ["--api-addr", "--auth-failures-per-minute"];
    let shared = ["--database-url", "--keyring-dir", "--provider-timeout"];
    let (webhook, api, serve) = (help("webhook"), help("api"), help("serve"));
    for flag in shared {
        assert!(webhook.contains(flag) && api.contains(flag) && serve.contains(flag));
    }
    for flag in webhook_only {
        assert!(webhook.contains(flag), "webhook lacks {flag}");
        assert!(!api.contains(flag), "api lists {flag}");
        assert!(serve.contains(flag), "serve lacks {flag}");
    }
    for flag in api_only {
        assert!(api.contains(flag), "api lacks {flag}");
        assert!(!webhook.contains(flag), "webhook lists {flag}");
        assert!(serve.contains(flag), "serve lacks {flag}");
    }
}

#[tokio::test]
async fn serve_dev_logs_the_console_url_and_no_colour_codes_into_a_file() {
    let server = crate::common::Server::start(&crate::common::sqlite()).await;
    let logs = server.logs();
    let url = format!("http://localhost:{}/", server.api_port());
    assert!(
        logs.lines()
            .any(|l| l.contains("API and console listening") && l.contains(&url)),
        "{logs}"
    );
    assert!(!logs.contains('\u{1b}'), "colour codes in a log file");
}
