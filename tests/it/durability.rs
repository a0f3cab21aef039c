//! Crash durability: the server is killed with SIGKILL in the middle of a
//! stream of API writes (creates, rotations, deletes), on SQLite and on
//! PostgreSQL. After a restart, every write that was answered 2xx is there
//! and decrypts, and nothing is half written.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Backend, Server, TestDb, needs};
use rstest::rstest;
use serde_json::{Value, json};
use sqlx::Row;

/// A local secret as the server should hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    version: i64,
    value: String,
}

/// A write whose answer never came: it may or may not have happened.
#[derive(Debug, Clone)]
struct Pending {
    name: String,
    after: Option<State>,
}

/// What one writer knows: the acknowledged state of its own secrets (`None`
/// once deleted), and the write in flight when the server died.
#[derive(Debug, Default)]
struct Model {
    acked: BTreeMap<String, Option<State>>,
    pending: Option<Pending>,
    writes: usize,
}

/// A small xorshift generator: reproducible from the seed it prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Sends one request; `None` when no answer came (the server died).
async fn send(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Option<(u16, String)> {
    let mut request = http
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(20));
    if let Some(body) = body {
        common::record_sent_values(&body);
        request = request.json(&body);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let text = response.text().await.ok()?;
    common::record_response(method, path, status, &text);
    Some((status, text))
}

/// Writes until the server stops answering. Each writer owns the secrets
/// whose names start with its prefix, so its model is exact.
async fn writer(base: String, token: String, prefix: String, mut model: Model, seed: u64) -> Model {
    let http = common::http();
    let mut rng = Rng(seed | 1);
    let mut counter = 0usize;
    loop {
        counter += 1;
        let live: Vec<(String, State)> = model
            .acked
            .iter()
            .filter_map(|(n, s)| s.clone().map(|s| (n.clone(), s)))
            .collect();
        let value = format!("DurableValue-{prefix}-{counter}-{:016x}", rng.next());
        let choice = rng.below(10);
        let (method, path, body, name, after) = if live.len() < 3 || (choice < 4 && live.len() < 12)
        {
            let name = format!("{prefix}-{}", rng.below(40));
            if model.acked.get(&name).is_some_and(Option::is_some) {
                continue;
            }
            (
                "POST",
                "/v1/organizations/acme/secrets".to_owned(),
                Some(json!({"name": name, "storage": "local", "value": value})),
                name,
                Some(State { version: 1, value }),
            )
        } else if choice < 8 {
            let (name, state) = &live[rng.below(live.len() as u64) as usize];
            (
                "PATCH",
                format!("/v1/organizations/acme/secrets/{name}"),
                Some(json!({"value": value})),
                name.clone(),
                Some(State {
                    version: state.version + 1,
                    value,
                }),
            )
        } else {
            let (name, _) = &live[rng.below(live.len() as u64) as usize];
            (
                "DELETE",
                format!("/v1/organizations/acme/secrets/{name}?force=true"),
                None,
                name.clone(),
                None,
            )
        };
        model.pending = Some(Pending {
            name: name.clone(),
            after: after.clone(),
        });
        match send(&http, &base, &token, method, &path, body).await {
            Some((status, _)) if (200..300).contains(&status) => {
                model.acked.insert(name, after);
                model.pending = None;
                model.writes += 1;
            }
            Some((status, text)) if status < 500 => {
                panic!("{method} {path}: {status} {text}")
            }
            // 5xx while going down, or no answer at all.
            _ => return model,
        }
    }
}

/// The organization's secrets as stored: name → (id, version).
async fn stored(server: &Server, db: &TestDb) -> (BTreeMap<String, (String, i64)>, Vec<String>) {
    let url = match &db.url {
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}?mode=ro",
            server.data_dir.join("agyn-secrets.db").display()
        ),
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT s.id, s.name, s.version, \
         (SELECT COUNT(*) FROM audit_events a WHERE a.target_id = s.id AND a.action = 'secret.create') AS creates, \
         (SELECT COUNT(*) FROM audit_events a WHERE a.target_id = s.id AND a.action = 'secret.rotate') AS rotations \
         FROM secrets s JOIN organizations o ON o.id = s.organization_id WHERE o.name = 'acme'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut secrets = BTreeMap::new();
    for row in &rows {
        let name: String = row.get("name");
        let version: i64 = row.get("version");
        let creates: i64 = row.get("creates");
        let rotations: i64 = row.get("rotations");
        // The row and its audit events are one transaction.
        assert_eq!(
            creates, 1,
            "{}: {name} has {creates} create events",
            db.label
        );
        assert_eq!(
            rotations,
            version - 1,
            "{}: {name} is at version {version} with {rotations} rotation events",
            db.label
        );
        secrets.insert(name, (row.get::<String, _>("id"), version));
    }
    // A deleted secret is gone with its row, not half there.
    let deleted: Vec<String> = sqlx::query_scalar(
        "SELECT a.target_id FROM audit_events a WHERE a.action LIKE 'secret.delete%' \
         AND EXISTS (SELECT 1 FROM secrets s WHERE s.id = a.target_id)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    (secrets, deleted)
}

/// Waits until PostgreSQL has no session of the killed server left. A
/// backend whose client died still runs what it had already received, a
/// COMMIT included, so until it exits the write in flight may yet land.
async fn backends_gone(url: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if others == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{others} sessions of the killed server are still open after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.close().await;
}

fn integrity_check(server: &Server) {
    let db = server.data_dir.join("agyn-secrets.db");
    let Some(sqlite3) = common::tool("sqlite3") else {
        common::skip("the sqlite3 command is missing; integrity not checked");
        return;
    };
    let output = std::process::Command::new(sqlite3)
        .arg(&db)
        .arg("PRAGMA integrity_check;")
        .output()
        .expect("run sqlite3");
    assert!(
        output.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
}

/// Reconciles the models with what survived, checking every acknowledged
/// write; the write in flight may have happened or not, but entirely.
async fn check(server: &Server, db: &TestDb, runtime: &str, models: &mut [Model]) -> usize {
    let (secrets, deleted_but_present) = stored(server, db).await;
    assert!(
        deleted_but_present.is_empty(),
        "{}: deleted secrets still present: {deleted_but_present:?}",
        db.label
    );
    let api = server.client_as(runtime);
    let mut expected_total = 0;
    for model in models.iter_mut() {
        if let Some(pending) = model.pending.take() {
            let before = model.acked.get(&pending.name).cloned().flatten();
            let actual = secrets.get(&pending.name).map(|(_, v)| *v);
            let happened = match (&pending.after, actual) {
                (Some(after), Some(version)) if version == after.version => true,
                (None, None) => true,
                _ => false,
            };
            let not_happened = before.as_ref().map(|s| s.version) == actual;
            assert!(
                happened || not_happened,
                "{}: {} is at {actual:?}, neither before ({before:?}) nor after ({:?}) the write in flight",
                db.label,
                pending.name,
                pending.after
            );
            if happened {
                model.acked.insert(pending.name, pending.after);
            }
        }
        for (name, state) in &model.acked {
            match state {
                None => assert!(
                    !secrets.contains_key(name),
                    "{}: {name} was deleted (answered 2xx) but is back",
                    db.label
                ),
                Some(state) => {
                    expected_total += 1;
                    let Some((_, version)) = secrets.get(name) else {
                        panic!("{}: {name} was acknowledged but is missing", db.label);
                    };
                    assert_eq!(*version, state.version, "{}: {name}", db.label);
                }
            }
        }
    }
    assert_eq!(
        secrets.len(),
        expected_total,
        "{}: unexpected secrets",
        db.label
    );

    // Every stored secret decrypts, and to the acknowledged value.
    let names: Vec<&String> = secrets.keys().collect();
    let mut values = serde_json::Map::new();
    for chunk in names.chunks(100) {
        let reply = api
            .post(
                "/v1/organizations/acme/resolve",
                json!({"names": chunk, "consumer": "durability-check"}),
            )
            .await
            .expect(200);
        values.extend(reply["values"].as_object().unwrap().clone());
    }
    for model in models.iter() {
        for (name, state) in &model.acked {
            if let Some(state) = state {
                assert_eq!(
                    values[name.as_str()],
                    json!(state.value),
                    "{}: {name}",
                    db.label
                );
            }
        }
    }
    secrets.len()
}

async fn crash_during_writes(db: TestDb) {
    let mut server = Server::start(&db).await;
    let owner = server.seed("acme", "team-a", &[]).await;
    let runtime = server
        .client()
        .create_token("acme", "proxy", "runtime")
        .await;
    let seed = std::env::var("AGYN_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!(
        "{}: seed {seed} (AGYN_TEST_SEED reproduces the choice of writes)",
        db.label
    );
    let mut rng = Rng(seed | 1);
    const WRITERS: usize = 4;
    let mut models: Vec<Model> = (0..WRITERS).map(|_| Model::default()).collect();
    let mut total_writes = 0;
    for round in 0..3 {
        let writers: Vec<_> = std::mem::take(&mut models)
            .into_iter()
            .enumerate()
            .map(|(i, model)| {
                tokio::spawn(writer(
                    server.api.clone(),
                    owner.clone(),
                    format!("w{i}"),
                    model,
                    rng.next(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + rng.below(500))).await;
        server.kill();
        for handle in writers {
            models.push(handle.await.unwrap());
        }
        let writes: usize = models.iter().map(|m| m.writes).sum::<usize>() - total_writes;
        total_writes += writes;
        let in_flight = models.iter().filter(|m| m.pending.is_some()).count();
        match &db.url {
            None => integrity_check(&server),
            Some(url) => backends_gone(url).await,
        }
        server.restart().await;
        let present = check(&server, &db, &runtime, &mut models).await;
        eprintln!(
            "{} round {round}: {writes} writes answered 2xx, {in_flight} in flight at SIGKILL, {present} secrets present and decrypting after restart",
            db.label
        );
        assert!(writes > 10, "{}: too few writes before the kill", db.label);
    }
}

#[rstest]
#[needs(sqlite3)]
#[case::sqlite(Backend::Sqlite)]
#[needs(postgres)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn sigkill_during_writes_loses_no_acknowledged_write(#[case] backend: Backend) {
    let Some(db) = backend.db().await else {
        return;
    };
    crash_during_writes(db).await;
}
