//! Faults at run time: the database stops, the key ring breaks, the disk
//! fills. Each is survived without a restart, with a clear error while it
//! lasts, and recovered from on its own.
//!
//! OpenBao stopped, sealed and slow are in `tests/vault.rs`; garbage TLS
//! files in `tests/tls.rs`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Api, OwnPostgres, Server, TestDb, apply_patch, needs, review_with_env, sqlite};
use serde_json::{Value, json};

const VALUE: &str = "sk_live_FaultsValue_6b2e0d";
const ROTATED: &str = "sk_live_FaultsRotated_77c1aa";
const NEW_VALUE: &str = "sk_live_FaultsNewSecret_19fe";

async fn readyz(api: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{api}/readyz")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn metrics(api: &str) -> String {
    reqwest::get(format!("{api}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Reviews a pod asking for `STRIPE_API_KEY=stripe-api-key` and returns the
/// answer and how long it took.
async fn timed_review(server: &Server, uid: &str) -> (Value, Duration) {
    let review = review_with_env(
        "pod-envfrom-only.json",
        "STRIPE_API_KEY=stripe-api-key",
        uid,
    );
    let started = Instant::now();
    let answer = server.review(&review).await;
    (answer, started.elapsed())
}

fn injected(answer: &Value) -> Option<String> {
    let review = common::fixture("pod-envfrom-only.json");
    let patched = apply_patch(&review["request"]["object"], answer);
    patched
        .pointer("/spec/containers/0/env/0/value")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn runtime_token(server: &Server) -> String {
    server
        .client()
        .create_token("acme", "proxy", "runtime")
        .await
}

async fn resolve(api: &Api, name: &str) -> Value {
    api.post(
        "/v1/organizations/acme/resolve",
        json!({"names": [name], "consumer": "faults"}),
    )
    .await
    .expect(200)["values"][name]
        .clone()
}

/// Polls `check` every 100 ms until it holds, for at most `limit`; returns
/// how long that took.
async fn until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL stopped in the middle of a run

#[needs(postgres)]
#[tokio::test]
async fn postgres_stopped_mid_run_denies_quickly_and_recovers_on_its_own() {
    let Some(pg) = OwnPostgres::start() else {
        return;
    };
    let url = common::fresh_postgres(&pg.base_url()).await;
    let server = Server::start(&TestDb::postgres(url)).await;
    let owner = server
        .seed("acme", "team-a", &[("stripe-api-key", VALUE)])
        .await;
    let owner = server.client_as(&owner);
    let (answer, _) = timed_review(&server, "before").await;
    assert_eq!(injected(&answer).as_deref(), Some(VALUE));

    pg.stop();

    // Admissions are denied with a message about the database, well inside
    // the 5 s admission deadline (the API server's own timeout is 10 s).
    // Until the server has noticed that its change listener is gone (a few
    // milliseconds), a pod whose every read is cached and whose references
    // were just written may still be admitted with the unchanged values; no
    // change can be made while the database is down.
    until(Duration::from_secs(3), "the first denial", || async {
        let (answer, _) = timed_review(&server, "probe").await;
        answer["response"]["allowed"] == false
    })
    .await;
    let mut slowest = Duration::ZERO;
    for i in 0..3 {
        let (answer, took) = timed_review(&server, &format!("down-{i}")).await;
        let response = &answer["response"];
        assert_eq!(response["allowed"], false, "{answer}");
        assert_eq!(response["status"]["code"], 503, "{answer}");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(message.contains("database"), "{message}");
        assert!(!message.contains(VALUE));
        slowest = slowest.max(took);
    }
    assert!(
        slowest < Duration::from_secs(4),
        "a denial took {slowest:?}"
    );
    eprintln!("slowest denial while PostgreSQL was down: {slowest:?}");

    // Not ready, and says why, within its own one-second budget.
    let started = Instant::now();
    let (status, body) = readyz(&server.api).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["database"]["ok"], false, "{body}");
    assert!(took < Duration::from_secs(2), "readyz took {took:?}");
    let webhook_ready = server
        .webhook_client()
        .get(format!("{}/readyz", server.webhook))
        .send()
        .await
        .unwrap();
    assert_eq!(webhook_ready.status(), 503);

    // API writes fail with 503 and a message, not a hang.
    let started = Instant::now();
    let write = owner
        .patch(
            "/v1/organizations/acme/secrets/stripe-api-key",
            json!({"value": ROTATED}),
        )
        .await;
    assert_eq!(write.status, 503, "{}", write.text);
    assert!(write.error_message().contains("database"), "{}", write.text);
    assert!(started.elapsed() < Duration::from_secs(5));

    pg.resume();
    let recovered = until(
        Duration::from_secs(30),
        "readyz after the database is back",
        || async { readyz(&server.api).await.0 == 200 },
    )
    .await;
    eprintln!("ready again {recovered:?} after PostgreSQL was back");
    let (answer, _) = timed_review(&server, "after").await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(injected(&answer).as_deref(), Some(VALUE));
    owner
        .patch(
            "/v1/organizations/acme/secrets/stripe-api-key",
            json!({"value": ROTATED}),
        )
        .await
        .expect(200);
    let (answer, _) = timed_review(&server, "rotated").await;
    assert_eq!(injected(&answer).as_deref(), Some(ROTATED));
    assert!(
        metrics(&server.api)
            .await
            .contains("agyn_admissions_total{result=\"unavailable\"}")
    );
    // The server's artifacts (a dump) need the database: drop it first.
    drop(server);
}

// ---------------------------------------------------------------------------
// The key ring breaks at run time

fn keyring_healthy(metrics: &str) -> Option<i64> {
    metrics
        .lines()
        .find(|l| l.starts_with("agyn_keyring_healthy "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// While the ring is broken, everything keeps working on the last good ring.
async fn still_serving(server: &Server, owner: &Api, runtime: &Api, round: &str) {
    let name = format!("new-{round}");
    owner
        .post(
            "/v1/organizations/acme/secrets",
            json!({"name": name, "storage": "local", "value": NEW_VALUE}),
        )
        .await
        .expect(201);
    assert_eq!(resolve(runtime, &name).await, NEW_VALUE);
    owner
        .patch(
            "/v1/organizations/acme/secrets/stripe-api-key",
            json!({"value": format!("{ROTATED}-{round}")}),
        )
        .await
        .expect(200);
    let (answer, _) = timed_review(server, round).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(
        injected(&answer).unwrap(),
        format!("{ROTATED}-{round}"),
        "{round}"
    );
}

async fn wait_keyring(server: &Server, healthy: i64, warning: Option<&str>) {
    // The metric is read alone first: it must not depend on /readyz being
    // polled.
    until(Duration::from_secs(10), "agyn_keyring_healthy", || async {
        keyring_healthy(&metrics(&server.api).await) == Some(healthy)
    })
    .await;
    until(
        Duration::from_secs(10),
        "the key ring's readiness check",
        || async {
            let (status, body) = readyz(&server.api).await;
            assert_eq!(
                status, 200,
                "the last good ring keeps the server ready: {body}"
            );
            let keyring = &body["checks"]["keyring"];
            assert_eq!(keyring["primary"], "dev-1", "{body}");
            let shown = keyring.get("warning").and_then(Value::as_str);
            match warning {
                Some(text) => shown.is_some_and(|w| w.contains(text)),
                None => shown.is_none(),
            }
        },
    )
    .await;
}

/// Replaces a file in one step, as Kubernetes updates a mounted Secret, so
/// that the server never reads it half written.
fn replace(path: &Path, content: &[u8]) {
    let name = path.file_name().unwrap().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn a_key_ring_broken_at_run_time_keeps_the_last_good_ring() {
    let server = Server::start(&sqlite()).await;
    let owner = server
        .seed("acme", "team-a", &[("stripe-api-key", VALUE)])
        .await;
    let owner = server.client_as(&owner);
    let runtime = server.client_as(&runtime_token(&server).await);
    let keyring = server.data_dir.join("keyring");
    wait_keyring(&server, 1, None).await;

    // The primary file disappears.
    std::fs::remove_file(keyring.join("primary")).unwrap();
    wait_keyring(&server, 0, Some("primary")).await;
    still_serving(&server, &owner, &runtime, "no-primary").await;
    replace(&keyring.join("primary"), b"dev-1\n");
    wait_keyring(&server, 1, None).await;

    // The primary key's file is corrupted.
    let good = std::fs::read(keyring.join("dev-1")).unwrap();
    replace(&keyring.join("dev-1"), b"bm90IGEga2V5\n");
    wait_keyring(&server, 0, Some("keyring/dev-1")).await;
    still_serving(&server, &owner, &runtime, "corrupt").await;
    // The primary names a key that is not there.
    replace(&keyring.join("dev-1"), &good);
    replace(&keyring.join("primary"), b"nope\n");
    wait_keyring(&server, 0, Some("\"nope\"")).await;
    still_serving(&server, &owner, &runtime, "unknown-primary").await;

    replace(&keyring.join("primary"), b"dev-1\n");
    wait_keyring(&server, 1, None).await;
    still_serving(&server, &owner, &runtime, "repaired").await;

    // Each distinct problem is logged once, not once a second.
    let logs = server.logs();
    let reported = logs.matches("Key ring reload failed").count();
    assert_eq!(reported, 3, "{reported} reports");
    for text in [VALUE, NEW_VALUE, ROTATED] {
        assert!(!logs.contains(text));
    }
}

// ---------------------------------------------------------------------------
// A full disk under SQLite

/// A directory too small for what the test will write: an 8 MiB tmpfs when
/// mounting is allowed (6 MiB of it taken by a file to delete later); else a
/// plain directory, and the server runs under a file-size limit instead.
struct SmallDisk {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl SmallDisk {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // AGYN_TEST_NO_MOUNT=1 tries the file-size limit where mounting works.
        let mounted = std::env::var_os("AGYN_TEST_NO_MOUNT").is_none()
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs"])
                .arg(dir.path())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        SmallDisk { dir, mounted }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.path()).status();
        }
    }
}

/// `serve --dev` with its database on the small disk. Its output goes
/// through a pipe, so that a file-size limit applies to the database only.
struct DiskServer {
    child: Child,
    api: String,
    admin: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    database_url: String,
    api_port: u16,
    _tmp: tempfile::TempDir,
}

impl DiskServer {
    async fn start(
        db_dir: &Path,
        file_size_limit: Option<u64>,
        tmp: Option<tempfile::TempDir>,
    ) -> Self {
        let tmp = tmp.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let data_dir = tmp.path().join("data");
        let log_path = tmp.path().join("server.log");
        let api_port = common::free_port();
        let database_url = format!("sqlite://{}", db_dir.join("agyn.db").display());
        let mut command = match file_size_limit {
            // SIGXFSZ would kill the process; ignored, the write fails with
            // EFBIG instead, as a full disk fails with ENOSPC.
            Some(bytes) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(r#"trap '' XFSZ; exec prlimit --fsize="$0" -- "$@""#)
                    .arg(bytes.to_string())
                    .arg(common::BIN);
                c
            }
            None => Command::new(common::BIN),
        };
        command
            .args(["serve", "--dev", "--data-dir"])
            .arg(&data_dir)
            .arg("--database-url")
            .arg(&database_url)
            .arg("--api-addr")
            .arg(format!("127.0.0.1:{api_port}"))
            .arg("--webhook-addr")
            .arg(format!("127.0.0.1:{}", common::free_port()))
            .arg("--exec-addr")
            .arg("127.0.0.1:0")
            .env(
                "RUST_LOG",
                std::env::var("AGYN_TEST_SERVER_LOG").unwrap_or_else(|_| "trace".into()),
            )
            .env_remove("AGYN_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let path = log_path.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap();
                let _ = std::io::copy(&mut stream, &mut file);
            });
        }
        let api = format!("http://127.0.0.1:{api_port}");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "server exited with {status}:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if let Ok(r) = reqwest::get(format!("{api}/readyz")).await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server not ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let admin = std::fs::read_to_string(data_dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        DiskServer {
            child,
            api,
            admin,
            data_dir,
            log_path,
            database_url,
            api_port,
            _tmp: tmp,
        }
    }

    fn client(&self, token: &str) -> Api {
        Api {
            base: self.api.clone(),
            token: Some(token.to_owned()),
            http: common::http(),
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Stops the process and hands back its directory, for a restart.
    fn stop(mut self) -> tempfile::TempDir {
        self.save_artifacts();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let tmp = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self._tmp, tmp)
    }

    fn save_artifacts(&mut self) {
        if let Some(dir) = common::server_artifacts_dir("sqlite-small-disk") {
            if self.running()
                && let Some(metrics) = common::fetch_metrics_blocking(self.api_port)
            {
                let _ = std::fs::write(dir.join("metrics.txt"), metrics);
            }
            common::copy_server_files(
                &dir,
                &self.log_path,
                &self.data_dir,
                Some(&self.database_url),
            );
        }
    }
}

impl Drop for DiskServer {
    fn drop(&mut self) {
        if self.running() {
            self.save_artifacts();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn integrity_check(db: &Path) -> String {
    let Some(sqlite3) = common::tool("sqlite3") else {
        common::skip("the sqlite3 command is missing; integrity not checked");
        return "ok".into();
    };
    let output = Command::new(sqlite3)
        .arg(db)
        .arg("PRAGMA integrity_check;")
        .output()
        .expect("run sqlite3");
    assert!(
        output.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A value of 60 KiB, different per index (ciphertext does not compress,
/// and neither does this).
fn big_value(i: usize) -> String {
    let mut value = format!("DiskFillValue-{i:04}-");
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ i as u64;
    while value.len() < 60 * 1024 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        value.push(char::from(b'a' + (state % 26) as u8));
    }
    value
}

#[needs(sqlite3)]
#[tokio::test]
async fn a_full_disk_gives_a_clear_error_and_no_corruption() {
    let disk = SmallDisk::new();
    // Without a tmpfs, a file-size limit on the process stands in for it.
    let limit = (!disk.mounted).then_some(3 << 20);
    if limit.is_some() {
        eprintln!("mounting a tmpfs is not permitted: using a 3 MiB file-size limit instead");
    }
    // Ballast that a person would delete to free space: freed, it leaves
    // room for the checkpoint of the write-ahead log as well as new writes.
    let ballast = disk.path().join("ballast");
    if disk.mounted {
        std::fs::write(&ballast, vec![0u8; 6 << 20]).unwrap();
    }
    let mut server = DiskServer::start(disk.path(), limit, None).await;
    let admin = server.client(&server.admin);
    admin
        .post("/v1/organizations", json!({"name": "acme"}))
        .await
        .expect(201);
    let owner_token = admin.create_token("acme", "owner", "owner").await;
    let owner = server.client(&owner_token);

    // Fill it through the API until a write fails.
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let mut failure = None;
    for i in 0..400 {
        let name = format!("fill-{i}");
        let value = big_value(i);
        let started = Instant::now();
        let reply = owner
            .post(
                "/v1/organizations/acme/secrets",
                json!({"name": name, "storage": "local", "value": value}),
            )
            .await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(15), "write {i} took {took:?}");
        match reply.status {
            201 => acknowledged.push((name, value)),
            status => {
                failure = Some((i, status, reply.text.clone()));
                break;
            }
        }
    }
    let (at, status, text) = failure.expect("the disk never filled");
    eprintln!("write {at} failed with {status}: {text}");
    assert!((500..600).contains(&status), "{status}: {text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON error body");
    let message = body["error"]["message"].as_str().unwrap();
    if disk.mounted {
        // A full disk is SQLITE_FULL; a file-size limit is an I/O error.
        assert_eq!(status, 503, "{text}");
        assert!(message.contains("storage is full"), "{text}");
    }
    assert!(!text.contains("DiskFillValue"));
    assert!(server.running(), "the process must survive a full disk");
    // Reads keep working, and so does readiness.
    let listed = owner
        .get("/v1/organizations/acme/secrets")
        .await
        .expect(200);
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        acknowledged.len()
    );
    let again = owner
        .post(
            "/v1/organizations/acme/secrets",
            json!({"name": "one-more", "storage": "local", "value": big_value(999)}),
        )
        .await;
    assert!((500..600).contains(&again.status), "{}", again.text);
    assert!(server.running());

    // Free space (or lift the limit): the same process writes again.
    let db = disk.path().join("agyn.db");
    if disk.mounted {
        std::fs::remove_file(&ballast).unwrap();
    } else {
        let dir = server.stop();
        server = DiskServer::start(disk.path(), None, Some(dir)).await;
    }
    let owner = server.client(&owner_token);
    for i in 0..20 {
        // A write that fails inside its transaction (404: no such secret)
        // must not leave its connection holding the write lock, or keep
        // later writes on that connection from being committed.
        owner
            .patch(
                "/v1/organizations/acme/secrets/no-such-secret",
                json!({"value": "AfterSpaceRotation"}),
            )
            .await
            .expect(404);
        let name = format!("after-space-{i}");
        let value = format!("AfterSpaceValue-{i:04}-{}", &big_value(i)[20..40]);
        let reply = owner
            .post(
                "/v1/organizations/acme/secrets",
                json!({"name": name, "storage": "local", "value": value}),
            )
            .await;
        assert_eq!(
            reply.status, 201,
            "{name} after freeing space: {}",
            reply.text
        );
        acknowledged.push((name, value));
    }

    // After a restart, every acknowledged write is there and decrypts.
    let dir = server.stop();
    server = DiskServer::start(disk.path(), None, Some(dir)).await;
    let admin = server.client(&server.admin);
    let owner = server.client(&owner_token);
    let runtime = admin.create_token("acme", "proxy", "runtime").await;
    let runtime = server.client(&runtime);
    let listed = owner
        .get("/v1/organizations/acme/secrets")
        .await
        .expect(200);
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        acknowledged.len(),
        "{listed}"
    );
    for (name, value) in &acknowledged {
        assert_eq!(resolve(&runtime, name).await, json!(value), "{name}");
    }
    drop(server);
    assert_eq!(integrity_check(&db), "ok");
}
