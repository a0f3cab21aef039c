//! Test harness: the real `agyn-secrets serve --dev` on free loopback ports,
//! and the real `terraform` binary pointed at this package's provider build
//! through `dev_overrides`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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

/// A program on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `<target dir>/<profile>`, where cargo put this test's executable (it
/// runs from `<target dir>/<profile>/deps`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from <target dir>/<profile>/deps")
        .to_owned()
}

/// The product binary. Another package's binary is not built for this
/// package's tests, so it is taken from the same target directory, and
/// built there first when it is missing.
pub fn product_binary() -> PathBuf {
    let profile = profile_dir();
    let binary = profile.join(format!("agyn-secrets{}", std::env::consts::EXE_SUFFIX));
    if binary.is_file() {
        return binary;
    }
    let target_dir = profile.parent().expect("a target directory");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "-p", "agyn-secrets", "--bin", "agyn-secrets"])
        .env("CARGO_TARGET_DIR", target_dir);
    match profile.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(other) => {
            command.args(["--profile", other]);
        }
    }
    let status = command.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p agyn-secrets failed");
    assert!(binary.is_file(), "{} was not built", binary.display());
    binary
}

/// The directory that holds this package's provider binary, for
/// `dev_overrides`.
pub fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_terraform-provider-agyn"))
        .parent()
        .expect("the provider binary's directory")
        .to_owned()
}

/// A running `agyn-secrets serve --dev`, killed on drop.
pub struct Server {
    pub api: String,
    pub webhook: String,
    pub admin_token: String,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    child: Child,
}

impl Server {
    pub async fn start(dir: &Path) -> Server {
        let data_dir = dir.join("data");
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let (api_port, webhook_port) = (free_port(), free_port());
        let child = Command::new(product_binary())
            .arg("serve")
            .arg("--dev")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--api-addr")
            .arg(format!("127.0.0.1:{api_port}"))
            .arg("--webhook-addr")
            .arg(format!("127.0.0.1:{webhook_port}"))
            .env_remove("AGYN_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start agyn-secrets serve --dev");
        let mut server = Server {
            api: format!("http://127.0.0.1:{api_port}"),
            webhook: format!("https://127.0.0.1:{webhook_port}"),
            admin_token: String::new(),
            data_dir,
            log_path,
            child,
        };
        server.wait_ready().await;
        server.admin_token = std::fs::read_to_string(server.data_dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        server
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("server exited with {status}:\n{}", self.logs());
            }
            if let Ok(response) = client.get(format!("{}/readyz", self.api)).send().await
                && response.status().is_success()
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

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A JSON client of the API with the admin token.
    pub fn api(&self) -> Api {
        Api {
            base: self.api.clone(),
            token: self.admin_token.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// A JSON client of the API with another token.
    pub fn api_as(&self, token: &str) -> Api {
        Api {
            token: token.to_owned(),
            ..self.api()
        }
    }

    /// Sends an AdmissionReview to the webhook, trusting the dev CA, and
    /// returns the answer.
    pub async fn review(&self, review: &Value) -> Value {
        let ca = std::fs::read(self.data_dir.join("tls/ca.crt")).unwrap();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        let response = client
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
        response.json().await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small JSON client of the API.
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// Sends a request and returns the status and the parsed body
    /// (`Value::Null` when empty).
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET that must succeed.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn status(&self, path: &str) -> u16 {
        self.send("GET", path, None).await.0
    }

    /// POST that must answer 201.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.send("POST", path, Some(body)).await;
        assert_eq!(status, 201, "POST {path}: {answer}");
        answer
    }
}

/// The `terraform` binary in one working directory, configured to take the
/// `agyn` provider from this package's build and nothing from a registry.
pub struct Terraform {
    binary: PathBuf,
    pub dir: PathBuf,
    cli_config: PathBuf,
    env: Vec<(String, String)>,
}

/// What one terraform command did.
pub struct Run {
    pub code: Option<i32>,
    /// stdout and stderr together, as a person would see them.
    pub output: String,
}

impl Terraform {
    /// `None` when `terraform` is not on PATH.
    pub fn new(dir: &Path, env: &[(&str, &str)]) -> Option<Terraform> {
        let binary = on_path("terraform")?;
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let cli_config = dir.join("terraformrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"agyn/agyn\" = {:?}\n  }}\n  direct {{}}\n}}\n",
                provider_dir().display().to_string()
            ),
        )
        .unwrap();
        Some(Terraform {
            binary,
            dir: work,
            cli_config,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    pub fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.join(file), text).unwrap();
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let mut command = Command::new(&self.binary);
        command
            .current_dir(&self.dir)
            .args(args)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env_remove("TF_LOG")
            .env_remove("TF_PLUGIN_CACHE_DIR")
            .env_remove("AGYN_ENDPOINT")
            .env_remove("AGYN_TOKEN")
            .env_remove("AGYN_CA_CERT_PEM")
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let Output {
            status,
            stdout,
            stderr,
        } = command.output().expect("run terraform");
        Run {
            code: status.code(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            ),
        }
    }

    /// Runs a command that must succeed, and returns its output.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code,
            Some(0),
            "terraform {} failed:\n{}",
            args.join(" "),
            run.output
        );
        run.output
    }

    /// `terraform plan -detailed-exitcode`: 0 when nothing would change.
    #[track_caller]
    pub fn assert_no_changes(&self) {
        let run = self.run(&["plan", "-detailed-exitcode", "-no-color"]);
        assert_eq!(
            run.code,
            Some(0),
            "expected no changes, plan said:\n{}",
            run.output
        );
    }
}
