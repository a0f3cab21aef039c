//! A running `agyn-secrets serve` on free loopback ports, on the database a
//! test chose.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    Api, OwnPostgres, copy_server_files, fetch_metrics_blocking, free_port, http, http_builder,
    product_binary, record_webhook_answer, server_artifacts_dir,
};

/// A database for one test.
pub struct TestDb {
    pub label: &'static str,
    /// `None` for SQLite: the server's `--dev` default under its data directory.
    pub url: Option<String>,
    /// The PostgreSQL server of the test's own that `url` names, if any:
    /// held only to be stopped when the test ends.
    _server: Option<OwnPostgres>,
}

impl TestDb {
    /// SQLite under the server's data directory.
    pub fn sqlite() -> TestDb {
        TestDb {
            label: "sqlite",
            url: None,
            _server: None,
        }
    }

    /// The PostgreSQL database at `url`.
    pub fn postgres(url: String) -> TestDb {
        TestDb {
            label: "postgres",
            url: Some(url),
            _server: None,
        }
    }

    /// The database at `url` on `server`, which lives as long as this.
    pub fn postgres_on(server: OwnPostgres, url: String) -> TestDb {
        TestDb {
            _server: Some(server),
            ..TestDb::postgres(url)
        }
    }
}

/// A SQLite database under the server's data directory.
pub fn sqlite() -> TestDb {
    TestDb::sqlite()
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
            let output = Command::new(product_binary())
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
        let mut command = Command::new(product_binary());
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
