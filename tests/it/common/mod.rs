//! Shared test harness: the real binary on free loopback ports, a real
//! SQLite file or a fresh PostgreSQL database, and a real HTTPS client. The
//! parts the Terraform provider's tests use as well live in
//! `agyn-test-support` (re-exported here); this module adds what only this
//! package's tests need.
#![allow(dead_code)]

pub mod kube;
pub mod moto;
pub mod openbao;
pub mod remote;

use std::path::Path;

use serde_json::{Value, json};

pub use agyn_test_support::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_agyn-secrets");

/// The database a test case runs on: rstest cases `sqlite` and `postgres`,
/// the second marked `#[needs(postgres)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A fresh database. SQLite lives under the server's data directory.
    /// PostgreSQL is a new database on the server `AGYN_TEST_POSTGRES_URL`
    /// names (`scripts/with-postgres.sh` starts one for the whole run), else
    /// on a server of the test's own. `None`, after a loud skip, when
    /// PostgreSQL has gone since the build found it.
    pub async fn db(self) -> Option<TestDb> {
        match self {
            Backend::Sqlite => Some(TestDb::sqlite()),
            Backend::Postgres => match std::env::var("AGYN_TEST_POSTGRES_URL") {
                Ok(base) if !base.is_empty() => Some(TestDb::postgres(fresh_postgres(&base).await)),
                _ => {
                    let server = OwnPostgres::start()?;
                    let url = fresh_postgres(&server.base_url()).await;
                    Some(TestDb::postgres_on(server, url))
                }
            },
        }
    }
}

/// Creates an empty database on the server at `base` and returns its URL.
pub async fn fresh_postgres(base: &str) -> String {
    use sqlx::Connection;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let (head, _) = base.rsplit_once('/').expect("a database URL with a path");
    format!("{head}/{name}")
}

/// Applies a webhook answer's patch to `object`; no patch leaves it as it is.
pub fn apply_patch(object: &Value, review: &Value) -> Value {
    use base64::Engine;
    let mut object = object.clone();
    if let Some(patch) = review["response"]["patch"].as_str() {
        assert_eq!(review["response"]["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut object, &patch).unwrap();
    }
    object
}

/// Loads a fixture from `tests/data`.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The review of `fixture`, with `annotation` as its `secrets.agyn.io/env`
/// and `uid` as its uid.
pub fn review_with_env(fixture_name: &str, annotation: &str, uid: &str) -> Value {
    let mut review = fixture(fixture_name);
    review["request"]["uid"] = json!(uid);
    review["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] =
        json!(annotation);
    review
}
