//! Shared test harness: the real binary on free loopback ports, a real
//! SQLite file or a fresh PostgreSQL database, and a real HTTPS client.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_agyn-secrets");

/// An HTTP client builder. reqwest takes its TLS provider from the process
/// default, which the product's code installs as the binary does.
pub fn http_builder() -> reqwest::ClientBuilder {
    agyn_secrets::tls::provider();
    reqwest::Client::builder()
}

pub fn http() -> reqwest::Client {
    http_builder().build().expect("build an HTTP client")
}

/// Whether a missing tool fails the test instead of skipping it (CI).
pub fn require_all() -> bool {
    std::env::var("AGYN_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Skips loudly, or fails when `AGYN_TEST_REQUIRE_ALL=1`.
pub fn skip(reason: &str) {
    if require_all() {
        panic!("AGYN_TEST_REQUIRE_ALL=1 and a required tool is missing: {reason}");
    }
    eprintln!("\n************************************************************");
    eprintln!("SKIPPED: {reason}");
    eprintln!("************************************************************\n");
}

/// Whether this process runs as root (chroot needs it).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"0")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A database for one test.
pub struct TestDb {
    pub label: &'static str,
    /// `None` for SQLite: the server's `--dev` default under its data directory.
    pub url: Option<String>,
}

/// A SQLite database under the server's data directory.
pub fn sqlite() -> TestDb {
    TestDb {
        label: "sqlite",
        url: None,
    }
}

/// SQLite always; PostgreSQL when `AGYN_TEST_POSTGRES_URL` names a server
/// (a fresh database is created per call).
pub async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb {
        label: "sqlite",
        url: None,
    }];
    match std::env::var("AGYN_TEST_POSTGRES_URL") {
        Ok(base) => dbs.push(TestDb {
            label: "postgres",
            url: Some(fresh_postgres(&base).await),
        }),
        Err(_) => skip(
            "AGYN_TEST_POSTGRES_URL is not set; PostgreSQL cases not run (make test starts a server)",
        ),
    }
    dbs
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

/// The host name of the webhook's certificate when the server runs as in a
/// cluster (`certs generate --service agyn-secrets --namespace agyn-secrets`).
pub const WEBHOOK_HOST: &str = "agyn-secrets.agyn-secrets.svc";

/// How a test server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `serve --dev`: everything generated under the data directory.
    Dev,
    /// `serve`, as in a cluster: a key ring from `keys generate`,
    /// certificates from `certs generate --client` for [`WEBHOOK_HOST`], an
    /// admin token from `token create --admin`, and with `client_ca` the
    /// webhook's client CA set to the CA that signed the API server's
    /// client certificate.
    Production { client_ca: bool },
}

/// A running `agyn-secrets serve`.
pub struct Server {
    pub api: String,
    pub webhook: String,
    pub mode: Mode,
    pub admin_token: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log_path: PathBuf,
    api_port: u16,
    webhook_port: u16,
    /// The exec listener's port (delivery `exec`).
    pub exec_port: u16,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    pub async fn start(db: &TestDb) -> Server {
        Self::start_with(db, &[], &[]).await
    }

    pub async fn start_with(db: &TestDb, extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_in(Mode::Dev, db, extra_args, env).await
    }

    /// Starts `serve` without `--dev`, set up as in a cluster.
    pub async fn start_production(
        client_ca: bool,
        db: &TestDb,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Self::start_in(Mode::Production { client_ca }, db, extra_args, env).await
    }

    pub async fn start_in(
        mode: Mode,
        db: &TestDb,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let mut server = Server {
            api: String::new(),
            webhook: String::new(),
            mode,
            admin_token: String::new(),
            log_path: tmp.path().join("server.log"),
            data_dir,
            database_url: db.url.clone(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            api_port: free_port(),
            webhook_port: free_port(),
            exec_port: free_port(),
            child: None,
            _tmp: Some(tmp),
        };
        if mode != Mode::Dev {
            server.prepare_production();
        }
        server.spawn().await;
        server.admin_token = std::fs::read_to_string(server.data_dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        server
    }

    /// What an operator does before the first `serve`: key ring,
    /// certificates, database and admin token, with the product's own commands.
    fn prepare_production(&mut self) {
        std::fs::create_dir_all(&self.data_dir).unwrap();
        let run = |args: &[&str]| {
            let output = Command::new(BIN)
                .args(args)
                .env_remove("AGYN_DATABASE_URL")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "agyn-secrets {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        };
        let path = |name: &str| self.data_dir.join(name).to_str().unwrap().to_owned();
        run(&[
            "keys",
            "generate",
            "--keyring-dir",
            &path("keyring"),
            "--id",
            "k1",
            "--primary",
        ]);
        run(&[
            "certs",
            "generate",
            "--client",
            "--service",
            "agyn-secrets",
            "--namespace",
            "agyn-secrets",
            "--out",
            &path("certs"),
        ]);
        let url = self
            .database_url
            .get_or_insert_with(|| format!("sqlite://{}?mode=rwc", path("agyn-secrets.db")))
            .clone();
        // As an operator would: the database first, then a token in it.
        run(&["migrate", "--database-url", &url]);
        let token = run(&["token", "create", "--admin", "--database-url", &url]);
        std::fs::write(self.data_dir.join("admin-token"), token).unwrap();
    }

    /// The directory `certs generate --client` wrote (production mode).
    pub fn certs_dir(&self) -> PathBuf {
        self.data_dir.join("certs")
    }

    /// The client certificate and key the API server presents, as one PEM.
    pub fn apiserver_identity(&self) -> reqwest::Identity {
        let mut pem = std::fs::read(self.certs_dir().join("client.crt")).unwrap();
        pem.extend(std::fs::read(self.certs_dir().join("client.key")).unwrap());
        reqwest::Identity::from_pem(&pem).unwrap()
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut command = Command::new(BIN);
        command.arg("serve");
        match self.mode {
            Mode::Dev => {
                command.arg("--dev").arg("--data-dir").arg(&self.data_dir);
            }
            Mode::Production { client_ca } => {
                let certs = self.certs_dir();
                command
                    .arg("--keyring-dir")
                    .arg(self.data_dir.join("keyring"))
                    .arg("--tls-cert")
                    .arg(certs.join("tls.crt"))
                    .arg("--tls-key")
                    .arg(certs.join("tls.key"));
                if client_ca {
                    command.arg("--webhook-client-ca").arg(certs.join("ca.crt"));
                }
            }
        }
        command
            .arg("--api-addr")
            .arg(format!("127.0.0.1:{}", self.api_port))
            .arg("--webhook-addr")
            .arg(format!("127.0.0.1:{}", self.webhook_port))
            .arg("--exec-addr")
            .arg(format!("127.0.0.1:{}", self.exec_port))
            .args(&self.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("AGYN_TEST_SERVER_LOG").unwrap_or_else(|_| "trace".into()),
            )
            .env_remove("AGYN_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        for (k, v) in &self.env {
            command.env(k, v);
        }
        self.child = Some(command.spawn().expect("start agyn-secrets"));
        self.api = format!("http://127.0.0.1:{}", self.api_port);
        self.webhook = match self.mode {
            Mode::Dev => format!("https://127.0.0.1:{}", self.webhook_port),
            Mode::Production { .. } => format!("https://{WEBHOOK_HOST}:{}", self.webhook_port),
        };
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let client = http();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited with {status}:\n{}", self.logs());
            }
            if let Ok(r) = client.get(format!("{}/readyz", self.api)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server not ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the process with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts again on the same data directory and database.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        match self.mode {
            Mode::Dev => std::fs::read(self.data_dir.join("tls/ca.crt")).unwrap(),
            Mode::Production { .. } => std::fs::read(self.certs_dir().join("ca.crt")).unwrap(),
        }
    }

    /// A client of the webhook that trusts its CA and, like the API server,
    /// presents the client certificate when the webhook asks for one.
    pub fn webhook_client(&self) -> reqwest::Client {
        let identity = match self.mode {
            Mode::Production { client_ca: true } => Some(self.apiserver_identity()),
            _ => None,
        };
        self.webhook_client_with(identity)
    }

    /// A client of the webhook that trusts its CA and presents `identity`.
    pub fn webhook_client_with(&self, identity: Option<reqwest::Identity>) -> reqwest::Client {
        let mut builder = http_builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca_pem()).unwrap())
            .resolve(
                WEBHOOK_HOST,
                std::net::SocketAddr::from(([127, 0, 0, 1], self.webhook_port)),
            );
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        builder.build().unwrap()
    }

    /// The delivery this server uses for `review`: its annotation, else the
    /// server's default.
    pub fn delivery_of(&self, review: &Value) -> String {
        let annotation =
            &review["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/delivery"];
        if let Some(delivery) = annotation.as_str() {
            return delivery.trim().to_owned();
        }
        let flag = self
            .extra_args
            .iter()
            .position(|a| a == "--default-delivery")
            .and_then(|i| self.extra_args.get(i + 1));
        match (flag, self.mode) {
            (Some(delivery), _) => delivery.clone(),
            (None, Mode::Dev) => "env".to_owned(),
            (None, Mode::Production { .. }) => "secret".to_owned(),
        }
    }

    pub fn client(&self) -> Api {
        Api {
            base: self.api.clone(),
            token: Some(self.admin_token.clone()),
            http: http(),
        }
    }

    pub fn client_as(&self, token: &str) -> Api {
        Api {
            base: self.api.clone(),
            token: Some(token.to_owned()),
            http: http(),
        }
    }

    /// Sends an AdmissionReview to `/mutate` and returns the response review.
    /// Answers that must carry no value (every delivery but `env`) are kept,
    /// patch decoded, for the leak scan.
    pub async fn review(&self, review: &Value) -> Value {
        let response = self
            .webhook_client()
            .post(format!("{}/mutate", self.webhook))
            .json(review)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "mutate answered {}",
            response.status()
        );
        let answer: Value = response.json().await.unwrap();
        if self.delivery_of(review) != "env" {
            record_webhook_answer(&answer);
        }
        answer
    }

    /// Sets up an organization `org`, binds `namespace` to it, creates local
    /// secrets, and returns an owner token.
    pub async fn seed(&self, org: &str, namespace: &str, secrets: &[(&str, &str)]) -> String {
        let admin = self.client();
        admin
            .post("/v1/organizations", json!({"name": org}))
            .await
            .expect(201);
        admin
            .put(
                &format!("/v1/namespaces/{namespace}"),
                json!({"organization": org}),
            )
            .await
            .expect_ok();
        let owner = admin.create_token(org, "owner", "owner").await;
        for (name, value) in secrets {
            self.client_as(&owner)
                .post(
                    &format!("/v1/organizations/{org}/secrets"),
                    json!({"name": name, "storage": "local", "value": value}),
                )
                .await
                .expect(201);
        }
        owner
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.save_artifacts();
        self.kill();
    }
}

/// A small JSON client of the API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
}

/// A response: status and parsed body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Reply {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text);
        self.body
    }

    #[track_caller]
    pub fn expect_ok(self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "status {}: {}",
            self.status,
            self.text
        );
        self.body
    }

    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    /// The request field an error names.
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }
}

impl Api {
    pub fn anonymous(mut self) -> Self {
        self.token = None;
        self
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            record_sent_values(&body);
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        record_response(method, path, status, &text);
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    /// Creates a token in `org` and returns its value.
    pub async fn create_token(&self, org: &str, name: &str, role: &str) -> String {
        self.post(
            &format!("/v1/organizations/{org}/tokens"),
            json!({"name": name, "role": role}),
        )
        .await
        .expect(201)["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send("PUT", path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send("PATCH", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None).await
    }
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

/// Loads a fixture from `tests/data`.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Finds a tool in the project's `.venv`, then on PATH.
pub fn venv_tool(name: &str) -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    if venv.exists() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.exists())
    })
}

// ---------------------------------------------------------------------------
// Artifacts for the leak scan.
//
// With `AGYN_TEST_ARTIFACTS=<dir>`, every value a test sends in a JSON
// `value` field is recorded in `<dir>/values-<pid>.txt` (one JSON string a
// line), every API response body but `resolve`'s is appended to
// `<dir>/responses-<pid>.log`, and each server leaves its log, `/metrics`,
// and its SQLite files or a PostgreSQL dump under `<dir>/servers/`.
// `scripts/leak-scan.py <dir>` then looks for every value in all of it.

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
            let pg_dump = std::env::var("AGYN_TEST_POSTGRES_BIN")
                .map(|bin| format!("{bin}/pg_dump"))
                .unwrap_or_else(|_| "pg_dump".into());
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

impl Server {
    /// Leaves this server's log, metrics and database for the leak scan,
    /// when the run collects artifacts.
    pub fn save_artifacts(&mut self) {
        let label = match &self.database_url {
            Some(url) if !url.starts_with("sqlite:") => "postgres",
            _ => "sqlite",
        };
        let Some(dir) = server_artifacts_dir(label) else {
            return;
        };
        let running = self
            .child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none());
        if running && let Some(metrics) = fetch_metrics_blocking(self.api_port) {
            let _ = std::fs::write(dir.join("metrics.txt"), metrics);
        }
        self.kill();
        copy_server_files(
            &dir,
            &self.log_path,
            &self.data_dir,
            self.database_url.as_deref(),
        );
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// The server's resident memory now and at its peak, in MiB, from
    /// `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
    pub fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc status"))
                / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Sends SIGTERM, as Kubernetes does to stop a pod.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits at most `limit` for the process to exit, and returns its status.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.as_mut()?.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where the webhook listens.
    pub fn webhook_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.webhook_port))
    }

    /// The API's port.
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

// ---------------------------------------------------------------------------
// A PostgreSQL server of one test's own, which the test may stop and start
// again without disturbing the server that the rest of the run shares.

pub struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

/// The PostgreSQL server binaries: `AGYN_TEST_POSTGRES_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn postgres_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("AGYN_TEST_POSTGRES_BIN") {
        return Some(PathBuf::from(bin));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

impl OwnPostgres {
    /// Starts a throwaway server on a free port (`None`, after a loud skip,
    /// when PostgreSQL is not installed).
    pub fn start() -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            skip("no PostgreSQL server binaries (initdb, pg_ctl) found");
            return None;
        };
        // PostgreSQL refuses to run as root.
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = tempfile::Builder::new()
            .prefix("agyn-own-pg.")
            .tempdir()
            .unwrap();
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the PostgreSQL directory");
        }
        let server = OwnPostgres {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &["-D", &data.to_string_lossy(), "-A", "trust", "-U", "agyn"],
        );
        server.resume();
        Some(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// URL of the `postgres` database, for [`fresh_postgres`].
    pub fn base_url(&self) -> String {
        format!("postgres://agyn@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().to_string_lossy(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }

    /// Starts the server (again) on the same port and data, waiting until it
    /// accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().to_string_lossy(),
                "-l",
                &self.dir.path().join("log").to_string_lossy(),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let _ = command
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
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

// ---------------------------------------------------------------------------
// Lists: every list answers pages of `{"items": [...], "next_cursor": "..."}`.

impl Api {
    /// One page of the list at `path`, at most `limit` items, after `cursor`.
    pub async fn page(&self, path: &str, limit: usize, cursor: Option<&str>) -> Value {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut url = format!("{path}{separator}limit={limit}");
        if let Some(cursor) = cursor {
            // base64url: nothing to escape.
            url.push_str("&cursor=");
            url.push_str(cursor);
        }
        let page = self.get(&url).await.expect(200);
        let items = page["items"].as_array().expect("a page has items");
        assert!(items.len() <= limit, "{url}: {} items", items.len());
        page
    }

    /// Every item of the list at `path`, following `next_cursor` in pages of
    /// `limit`.
    pub async fn all_pages(&self, path: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.page(path, limit, cursor.as_deref()).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
            assert!(items.len() < 1_000_000, "{path}: the cursor never ends");
        }
    }
}
