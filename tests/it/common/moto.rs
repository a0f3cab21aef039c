//! A real moto server (PyPI `moto[server]` in the project's `.venv`) that
//! plays AWS Secrets Manager and STS on a loopback port. moto accepts any
//! access key and does not check signatures, so the harness talks to it
//! with a placeholder `Authorization` header that only names the service.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{free_port, record_secret, tool};

pub const REGION: &str = "eu-west-1";
/// The access key the tests configure; moto takes any.
pub const ACCESS_KEY_ID: &str = "AKIAAGYNTESTKEY00001";
/// Its secret, kept by the product as a local secret.
pub const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYagynSECRET1";

/// A moto server on a loopback port, killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:<port>`, the endpoint of every service.
    pub endpoint: String,
    pub port: u16,
    /// moto's `moto_server` script.
    program: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Moto {
    /// Starts a server, or skips (returns `None`) when moto is missing.
    pub async fn start() -> Option<Moto> {
        let Some(program) = tool("moto_server") else {
            crate::common::skip("moto is not installed (PyPI `moto[server]`); run `make venv`");
            return None;
        };
        let port = free_port();
        let mut moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            program,
            dir: tempfile::tempdir().unwrap(),
            child: None,
            http: crate::common::http(),
        };
        moto.spawn().await;
        Some(moto)
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("moto.log"))
            .unwrap();
        let child = Command::new(&self.program)
            .args(["-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .env("HOME", self.dir.path())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start moto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("moto exited with {status}:\n{}", self.logs());
            }
            let ready = self
                .http
                .get(format!("{}/moto-api/", self.endpoint))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto did not start:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Stops the server; its port then refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One Secrets Manager call; answers status and JSON body.
    pub async fn call(&self, action: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/", self.endpoint))
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20261206/{REGION}/secretsmanager/aws4_request, SignedHeaders=host, Signature=0"
                ),
            )
            .header("X-Amz-Target", format!("secretsmanager.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn must(&self, action: &str, body: Value) -> Value {
        let (status, answer) = self.call(action, body).await;
        assert_eq!(status, 200, "{action} answered {status}: {answer}");
        answer
    }

    /// Creates secret `name` holding `text`; answers its ARN.
    pub async fn create_secret(&self, name: &str, text: &str) -> String {
        record_secret(text);
        let answer = self
            .must("CreateSecret", json!({"Name": name, "SecretString": text}))
            .await;
        answer["ARN"].as_str().unwrap().to_owned()
    }

    /// Creates secret `name` holding the JSON object `data`; answers its ARN.
    pub async fn create_json_secret(&self, name: &str, data: Value) -> String {
        crate::common::record_map(&data);
        self.create_secret(name, &data.to_string()).await
    }

    /// A new current version of secret `name`.
    pub async fn put_value(&self, name: &str, text: &str) {
        record_secret(text);
        self.must(
            "PutSecretValue",
            json!({"SecretId": name, "SecretString": text}),
        )
        .await;
    }

    /// Schedules secret `name` for deletion, recoverable for 7 days.
    pub async fn delete_secret(&self, name: &str) {
        self.must(
            "DeleteSecret",
            json!({"SecretId": name, "RecoveryWindowInDays": 7}),
        )
        .await;
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
