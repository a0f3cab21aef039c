//! The web console, driven in Debian's headless Chromium through
//! chromedriver's WebDriver HTTP API, against the real binary.
//!
//! Screenshots of every page at 1280 and 390 px wide are written to
//! `target/console-screenshots/` for people to look at.

use crate::common;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::FutureExt;
use serde_json::{Value, json};

use common::{Server, TestDb, fixture, free_port, needs, skip};

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WIDE: u32 = 1280;
const NARROW: u32 = 390;

/// Functions every script below may call: controls are found the way a
/// person finds them, by their label or their text.
const HELPERS: &str = r#"
const byLabel = (text) => {
  const label = [...document.querySelectorAll('main label')].find((l) => l.textContent.trim().startsWith(text));
  if (!label) throw new Error(`no label ${JSON.stringify(text)}`);
  const control = label.control || document.getElementById(label.htmlFor);
  if (!control) throw new Error(`label ${JSON.stringify(text)} labels nothing`);
  return control;
};
const byText = (text) => [...document.querySelectorAll('button, a')].find((el) => el.textContent.trim() === text) || null;
const mainText = () => document.querySelector('main').innerText;
"#;

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")
}

/// Chromium and its WebDriver, `(chromium, chromedriver)`, where the build
/// looked for them.
fn chromium() -> Option<(PathBuf, PathBuf)> {
    Some((common::tool("chromium")?, common::tool("chromedriver")?))
}

/// A chromedriver process and one browser session in it.
struct Browser {
    http: reqwest::Client,
    driver: Child,
    base: String,
    session: String,
    console: String,
    _profile: tempfile::TempDir,
    _logs: tempfile::TempDir,
}

impl Browser {
    async fn start(console: &str) -> Browser {
        let (chromium, chromedriver) = chromium().expect("chromium, there when the test began");
        let port = free_port();
        let logs = tempfile::tempdir().unwrap();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                logs.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = common::http();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|s| s["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--hide-scrollbars",
                    format!("--window-size={WIDE},900"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let response = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("ask chromedriver for a session");
        let body: Value = response.json().await.unwrap();
        let session = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {body}"))
            .to_owned();
        Browser {
            http,
            driver,
            base,
            session,
            console: console.to_owned(),
            _profile: profile,
            _logs: logs,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("reach chromedriver");
        let status = response.status();
        let body: Value = response.json().await.expect("a WebDriver answer");
        assert!(
            status.is_success(),
            "WebDriver {path}: {status}: {}",
            body["value"]["message"]
        );
        body["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    /// Opens a console path as a fresh page load.
    async fn open(&self, path: &str) {
        self.post("/url", json!({"url": format!("{}{path}", self.console)}))
            .await;
    }

    /// Runs `body` (a function body that may use [`HELPERS`]) in the page.
    async fn run(&self, body: &str, args: Value) -> Value {
        let script = format!("{HELPERS}\n{body}");
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// Polls `condition` (a JS expression) until it is truthy.
    async fn wait(&self, what: &str, condition: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        let script =
            format!("try {{ return ({condition}) || null; }} catch (e) {{ return null; }}");
        loop {
            let value = self.run(&script, json!([])).await;
            if !value.is_null() && value != false {
                return value;
            }
            if Instant::now() > deadline {
                let state = self
                    .run(
                        "return location.pathname + '\\n' + document.querySelector('main').innerText",
                        json!([]),
                    )
                    .await;
                panic!(
                    "timed out waiting for {what} ({condition}); page:\n{}",
                    state.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_heading(&self, text: &str) {
        self.wait(
            &format!("the heading {text:?}"),
            &format!(
                "document.querySelector('main h1')?.textContent === {}",
                json!(text)
            ),
        )
        .await;
    }

    /// An element reference from a script that returns one element.
    async fn element(&self, body: &str, args: Value) -> String {
        let value = self.run(body, args).await;
        value[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("not an element: {value}"))
            .to_owned()
    }

    async fn click_element(&self, id: &str) {
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Clicks the button or link whose text is exactly `text`.
    async fn click(&self, text: &str) {
        self.wait(
            &format!("a control {text:?}"),
            &format!("byText({})", json!(text)),
        )
        .await;
        let id = self
            .element("return byText(arguments[0]);", json!([text]))
            .await;
        self.click_element(&id).await;
    }

    /// Clicks the element `selector` names.
    async fn click_css(&self, selector: &str) {
        self.wait(
            &format!("an element {selector}"),
            &format!("document.querySelector({})", json!(selector)),
        )
        .await;
        let id = self
            .element(
                "return document.querySelector(arguments[0]);",
                json!([selector]),
            )
            .await;
        self.click_element(&id).await;
    }

    /// Types into the control labelled `label`, replacing what it held.
    async fn fill(&self, label: &str, text: &str) {
        let id = self
            .element("return byLabel(arguments[0]);", json!([label]))
            .await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({"text": text}))
            .await;
    }

    /// Picks the option with `value` in the select labelled `label`.
    async fn choose(&self, label: &str, value: &str) {
        let chosen = self
            .run(
                "const s = byLabel(arguments[0]); s.value = arguments[1]; \
                 s.dispatchEvent(new Event('change', {bubbles: true})); return s.value;",
                json!([label, value]),
            )
            .await;
        assert_eq!(chosen, json!(value), "{label} has no option {value}");
    }

    async fn path(&self) -> String {
        self.run("return location.pathname;", json!([]))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn main_text(&self) -> String {
        self.run("return mainText();", json!([]))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Everything the page could still hold: the document and both storages.
    async fn page_dump(&self) -> String {
        self.run(
            "const all = (s) => JSON.stringify(Object.fromEntries(Object.keys(s).map((k) => [k, s.getItem(k)]))); \
             const values = [...document.querySelectorAll('input, textarea')].map((i) => i.value).join('\\n'); \
             return [document.documentElement.outerHTML, all(sessionStorage), all(localStorage), document.cookie, values].join('\\n');",
            json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
    }

    async fn emulate(&self, width: u32, height: u32) {
        self.post(
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width,
                "height": height,
                "deviceScaleFactor": 1,
                "mobile": width < 600,
            }}),
        )
        .await;
    }

    /// Saves full-page screenshots of the current page at both widths.
    async fn shoot(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        for width in [WIDE, NARROW] {
            self.emulate(width, 900).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            let height = self
                .run(
                    "return Math.ceil(document.documentElement.scrollHeight);",
                    json!([]),
                )
                .await
                .as_u64()
                .unwrap_or(900)
                .clamp(600, 4000);
            self.emulate(width, u32::try_from(height).unwrap()).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            let png = self
                .command(reqwest::Method::GET, "/screenshot", None)
                .await;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(png.as_str().unwrap())
                .unwrap();
            std::fs::write(dir.join(format!("{name}-{width}.png")), bytes).unwrap();
        }
        self.emulate(WIDE, 900).await;
    }

    async fn quit(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn start_server() -> Server {
    Server::start(&TestDb::sqlite()).await
}

/// The console is served by the API address with a strict policy, and
/// every console path is the one page.
#[tokio::test]
async fn console_is_served_with_strict_headers() {
    let server = start_server().await;
    let http = common::http();
    for path in [
        "/",
        "/sign-in",
        "/organizations",
        "/organizations/acme/secrets",
        "/organizations/acme/secrets/new",
        "/organizations/acme/providers/vault-dev/delete",
    ] {
        let response = http
            .get(format!("{}{path}", server.api))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(
            headers["content-type"], "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        let body = response.text().await.unwrap();
        assert!(body.contains("<script type=\"module\" src=\"/console/app.js\">"));
    }
    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("secrets.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let response = http
            .get(format!("{}/console/{file}", server.api))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{file}");
        assert_eq!(response.headers()["content-type"], content_type, "{file}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let etag = response.headers()["etag"].clone();
        let again = http
            .get(format!("{}/console/{file}", server.api))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{file} is revalidated by its ETag");
    }
    let missing = server.client().get("/console/nothing.js").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "not_found");
    // The API keeps its own answers.
    let api = server.client().get("/v1/nowhere").await;
    assert_eq!(api.status, 404);
    assert_eq!(api.body["error"]["code"], "not_found");
    assert_eq!(server.client().get("/healthz").await.status, 200);
}

#[needs(chromium)]
#[tokio::test]
async fn console_in_headless_chromium() {
    if chromium().is_none() {
        skip(
            "chromium or chromedriver is missing; install Debian's chromium and chromium-driver to run the console test",
        );
        return;
    }
    let server = start_server().await;
    let mut browser = Browser::start(&server.api).await;
    let outcome = AssertUnwindSafe(drive(&server, &browser))
        .catch_unwind()
        .await;
    browser.quit().await;
    if let Err(panic) = outcome {
        eprintln!("server log tail:\n{}", tail(&server.logs(), 40));
        std::panic::resume_unwind(panic);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

const LOCAL_VALUE: &str = "sk_live_console_9f3c2a71b5e4";
const AWS_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/console-6a1f";
const FIRST_DB_PASSWORD: &str = "db-password-first-4d1e7a";
const ROTATED_DB_PASSWORD: &str = "db-password-rotated-8b2c9f";

async fn drive(server: &Server, browser: &Browser) {
    let owner = server
        .seed(
            "acme",
            "team-a",
            &[
                ("vault-token", "s.dev-root-token-3c7e"),
                ("db-password", FIRST_DB_PASSWORD),
                ("aws-secret-key", AWS_SECRET_ACCESS_KEY),
            ],
        )
        .await;
    let owner_api = server.client_as(&owner);
    let provider = owner_api
        .post(
            "/v1/organizations/acme/providers",
            json!({
                "name": "vault-dev",
                "kind": "vault",
                "address": "http://127.0.0.1:8200",
                "auth": {"method": "token", "token_secret": "vault-token"},
            }),
        )
        .await
        .expect(201);
    let provider_id = provider["id"].as_str().unwrap().to_owned();
    let token_of = |reply: Value| reply["token"].as_str().unwrap().to_owned();
    let member = token_of(
        server
            .client()
            .post(
                "/v1/organizations/acme/tokens",
                json!({"name": "viewer", "role": "member"}),
            )
            .await
            .expect(201),
    );
    let runtime = token_of(
        server
            .client()
            .post(
                "/v1/organizations/acme/tokens",
                json!({"name": "llm-proxy", "role": "runtime"}),
            )
            .await
            .expect(201),
    );

    // A bad token: the API's own message, next to the field.
    browser.open("/organizations/acme/secrets").await;
    browser.wait_heading("Sign in").await;
    assert_eq!(browser.path().await, "/sign-in");
    browser.shoot("sign-in").await;
    let refusal = server
        .client_as("agyn_not_a_real_token")
        .get("/v1/whoami")
        .await;
    assert_eq!(refusal.status, 401);
    browser.fill("API token", "agyn_not_a_real_token").await;
    browser.click("Sign in").await;
    let shown = browser
        .wait(
            "the sign-in error",
            "document.querySelector('main .field-error')?.textContent",
        )
        .await;
    assert_eq!(shown, json!(refusal.error_message()));
    let described = browser
        .run(
            "const c = byLabel('API token'); return [c.getAttribute('aria-invalid'), \
             (c.getAttribute('aria-describedby') || '').split(' ').map((id) => document.getElementById(id)?.textContent).join('|')];",
            json!([]),
        )
        .await;
    assert_eq!(described[0], "true");
    assert!(
        described[1]
            .as_str()
            .unwrap()
            .contains(refusal.error_message()),
        "{described}"
    );
    browser.shoot("sign-in-error").await;
    assert!(!browser.page_dump().await.contains("agyn_not_a_real_token"));

    // A runtime token is told it cannot use the console, and is not kept.
    browser.fill("API token", &runtime).await;
    browser.click("Sign in").await;
    browser
        .wait(
            "the runtime refusal",
            "document.querySelector('main .field-error')?.textContent.includes('runtime')",
        )
        .await;
    assert!(!browser.page_dump().await.contains(&runtime));

    // The owner signs in and lands on the page asked for first.
    browser.fill("API token", &owner).await;
    browser.click("Sign in").await;
    browser.wait_heading("Secrets").await;
    assert_eq!(browser.path().await, "/organizations/acme/secrets");
    let storage = browser
        .run(
            "return [sessionStorage.length, localStorage.length, document.cookie, Object.values(sessionStorage).join()];",
            json!([]),
        )
        .await;
    assert_eq!(storage[0], 1, "the token is in sessionStorage: {storage}");
    assert_eq!(storage[1], 0, "nothing in localStorage: {storage}");
    assert_eq!(storage[2], "", "no cookie: {storage}");
    assert_eq!(storage[3], json!(owner));
    assert!(browser.main_text().await.contains("db-password"));

    // A refusal with a field shows next to that field.
    browser.click("New secret").await;
    browser.wait_heading("New secret").await;
    assert_eq!(browser.path().await, "/organizations/acme/secrets/new");
    browser.shoot("secret-new").await;
    browser.fill("Name", "Bad_Name").await;
    browser.fill("Value", "irrelevant").await;
    browser.click("Save").await;
    let error = browser
        .wait(
            "the name error",
            "byLabel('Name').getAttribute('aria-invalid') === 'true' && \
             document.getElementById(byLabel('Name').id + '-error')?.textContent",
        )
        .await;
    assert!(error.as_str().unwrap().starts_with("name:"), "{error}");
    let describedby = browser
        .run(
            "return byLabel('Name').getAttribute('aria-describedby');",
            json!([]),
        )
        .await;
    assert!(
        describedby.as_str().unwrap().contains("-error"),
        "{describedby}"
    );
    browser.shoot("secret-new-error").await;

    // A local secret: after save the value is gone from the page and storage.
    browser.fill("Name", "stripe-api-key").await;
    browser.fill("Value", LOCAL_VALUE).await;
    browser.click("Save").await;
    browser.wait_heading("stripe-api-key").await;
    assert_eq!(
        browser.path().await,
        "/organizations/acme/secrets/stripe-api-key"
    );
    let state = browser
        .run(
            "return [document.getElementById('value-state').textContent, byLabel('New value').value, \
             document.getElementById('secret-version').textContent];",
            json!([]),
        )
        .await;
    assert_eq!(state, json!(["set", "", "1"]));
    let dump = browser.page_dump().await;
    assert!(
        !dump.contains(LOCAL_VALUE),
        "the value is still in the page"
    );
    assert!(
        !dump.contains("irrelevant"),
        "a refused value is still in the page"
    );
    browser.shoot("secret-detail").await;
    let stored = owner_api
        .get("/v1/organizations/acme/secrets/stripe-api-key")
        .await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body["value_set"], true);
    assert!(!stored.text.contains(LOCAL_VALUE));

    // A remote secret, pointing at the provider made through the API.
    browser.click("← Secrets").await;
    browser.wait_heading("Secrets").await;
    browser.click("New secret").await;
    browser.wait_heading("New secret").await;
    browser.click_css("#storage-remote").await;
    browser.fill("Name", "stripe-remote").await;
    browser.choose("Provider", &provider_id).await;
    browser.fill("Remote path", "kv/data/prod/stripe").await;
    browser.fill("Remote key", "value").await;
    browser.shoot("secret-new-remote").await;
    browser.click("Save").await;
    browser.wait_heading("stripe-remote").await;
    let remote = owner_api
        .get("/v1/organizations/acme/secrets/stripe-remote")
        .await
        .expect(200);
    assert_eq!(remote["storage"], "remote");
    assert_eq!(remote["provider_id"], json!(provider_id));
    assert_eq!(remote["remote_path"], "kv/data/prod/stripe");
    assert_eq!(remote["remote_key"], "value");
    browser.shoot("secret-remote").await;
    browser.click("← Secrets").await;
    browser.wait_heading("Secrets").await;
    let listed = browser.main_text().await;
    for expected in [
        "stripe-remote",
        "vault-dev",
        "kv/data/prod/stripe",
        "stripe-api-key",
    ] {
        assert!(listed.contains(expected), "{expected} not in:\n{listed}");
    }
    browser.shoot("secrets").await;

    // Rotation: a new value, and the version goes up.
    browser.click("db-password").await;
    browser.wait_heading("db-password").await;
    let version = browser
        .run(
            "return document.getElementById('secret-version').textContent;",
            json!([]),
        )
        .await;
    assert_eq!(version, "1");
    browser.fill("New value", ROTATED_DB_PASSWORD).await;
    browser.click("Rotate value").await;
    browser
        .wait(
            "version 2",
            "document.getElementById('secret-version')?.textContent === '2'",
        )
        .await;
    assert!(browser.main_text().await.contains("now version 2"));
    let dump = browser.page_dump().await;
    assert!(!dump.contains(ROTATED_DB_PASSWORD) && !dump.contains(FIRST_DB_PASSWORD));
    let rotated = owner_api
        .get("/v1/organizations/acme/secrets/db-password")
        .await
        .expect(200);
    assert_eq!(rotated["version"], 2);
    browser.shoot("secret-rotated").await;

    // References: a pod admitted in a bound namespace, and an image pull
    // secret whose password it is.
    let mut review = fixture("pod-no-env.json");
    review["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] =
        json!("DB_PASSWORD=db-password");
    let answer = server.review(&review).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    owner_api
        .post(
            "/v1/organizations/acme/image-pull-secrets",
            json!({"name": "registry-creds", "registry": "ghcr.io", "username": "bot", "password_secret": "db-password"}),
        )
        .await
        .expect(201);
    browser.open("/organizations/acme/secrets").await;
    browser.wait_heading("Secrets").await;
    browser
        .click_css("a[aria-label='Delete db-password']")
        .await;
    browser.wait_heading("Delete secret “db-password”").await;
    let pods = browser
        .wait(
            "the pod references",
            "document.querySelector('.refs-pods')?.innerText",
        )
        .await;
    let pods = pods.as_str().unwrap();
    for expected in [
        "Pods (1)",
        "team-a",
        "ReplicaSet agent-7d9f8c6b5d",
        "agent-7d9f8c6b5d-",
        "DB_PASSWORD",
    ] {
        assert!(pods.contains(expected), "{expected} not in:\n{pods}");
    }
    let pulls = browser
        .run(
            "return document.querySelector('.refs-pull')?.innerText || '';",
            json!([]),
        )
        .await;
    assert!(
        pulls.as_str().unwrap().contains("registry-creds"),
        "{pulls}"
    );
    browser.shoot("secret-delete").await;
    browser.click("Delete anyway").await;
    browser.wait_heading("Secrets").await;
    assert!(browser.main_text().await.contains("“db-password” deleted"));
    assert_eq!(
        owner_api
            .get("/v1/organizations/acme/secrets/db-password")
            .await
            .status,
        404
    );

    // Providers: the list, the form with its connection check, a new one.
    browser.click("Providers").await;
    browser.wait_heading("Providers").await;
    assert!(browser.main_text().await.contains("http://127.0.0.1:8200"));
    browser.shoot("providers").await;
    browser.click("vault-dev").await;
    browser.wait_heading("vault-dev").await;
    browser.click("Check connection").await;
    let checked = browser
        .wait(
            "the connection check's answer",
            "document.querySelector('.check-result .notice')?.textContent",
        )
        .await;
    // Whatever the server says about the connection is what the page shows.
    let answer = owner_api
        .send(
            "POST",
            &format!("/v1/organizations/acme/providers/{provider_id}/check"),
            None,
        )
        .await;
    let expected = if answer.status == 200 {
        answer.body["message"].as_str().unwrap_or_default()
    } else {
        answer.error_message()
    };
    assert!(!expected.is_empty(), "{}", answer.text);
    assert!(
        checked.as_str().unwrap().contains(expected),
        "{checked} does not show {expected:?}"
    );
    browser.shoot("provider-edit").await;
    browser.click("← Providers").await;
    browser.wait_heading("Providers").await;
    browser.click("New provider").await;
    browser.wait_heading("New provider").await;
    browser.fill("Name", "vault-k8s").await;
    browser
        .fill("Address", "https://vault.example.com:8200")
        .await;
    browser.choose("Method", "kubernetes").await;
    browser.fill("Role", "agyn-secrets").await;
    // The token file is the server's flag, not a provider setting.
    let token_path_field = browser
        .run(
            "return [...document.querySelectorAll('main label')].some((l) => /token path|jwt/i.test(l.textContent)) \
             || !!document.querySelector('[name=jwt_path]');",
            json!([]),
        )
        .await;
    assert_eq!(token_path_field, false);
    browser.shoot("provider-new").await;
    browser.click("Save").await;
    // Kubernetes auth is for platform admins only: the page shows the API's refusal.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = browser.main_text().await;
        if text.contains("only a platform admin may configure it") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "refusal not shown: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.shoot("provider-refused").await;
    assert_eq!(
        owner_api
            .get("/v1/organizations/acme/providers/vault-k8s")
            .await
            .status,
        404
    );

    // An AWS Secrets Manager provider: the kind brings its own fields and
    // methods, and a refusal shows next to the field it names.
    browser.click("Cancel").await;
    browser.wait_heading("Providers").await;
    browser.click("New provider").await;
    browser.wait_heading("New provider").await;
    browser.fill("Name", "aws-prod").await;
    browser.choose("Kind", "aws-secrets-manager").await;
    let shown = browser
        .run(
            "const visible = (label) => !byLabel(label).disabled && !byLabel(label).closest('[hidden]'); \
             return [visible('Address'), visible('Region'), visible('Endpoint'), visible('STS endpoint'), \
                     [...byLabel('Method').options].map((o) => o.value)];",
            json!([]),
        )
        .await;
    assert_eq!(
        shown,
        json!([false, true, true, true, ["static", "web-identity"]])
    );
    browser.fill("Region", "eu-west-1").await;
    browser
        .fill("Endpoint", "https://secretsmanager.eu-west-1.amazonaws.com")
        .await;
    browser.choose("Method", "static").await;
    browser.fill("Access key ID", "not-a-key").await;
    browser
        .choose("Secret access key secret", "aws-secret-key")
        .await;
    browser.click("Save").await;
    let error = browser
        .wait(
            "the access key id error",
            "byLabel('Access key ID').getAttribute('aria-invalid') === 'true' && \
             document.getElementById(byLabel('Access key ID').id + '-error')?.textContent",
        )
        .await;
    assert!(
        error.as_str().unwrap().starts_with("auth.access_key_id:"),
        "{error}"
    );
    browser.shoot("provider-new-aws-error").await;
    browser.fill("Access key ID", "AKIAIOSFODNN7EXAMPLE").await;
    browser.shoot("provider-new-aws").await;
    browser.click("Save").await;
    browser.wait_heading("aws-prod").await;
    let aws = owner_api
        .get("/v1/organizations/acme/providers/aws-prod")
        .await
        .expect(200);
    assert_eq!(aws["kind"], "aws-secrets-manager");
    assert_eq!(aws["region"], "eu-west-1");
    assert_eq!(
        aws["endpoint"],
        "https://secretsmanager.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        aws["auth"],
        json!({"method": "static", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key_secret": "aws-secret-key"})
    );
    let aws_id = aws["id"].as_str().unwrap().to_owned();
    // Emptying an optional setting removes it. The notice of the create
    // goes first, so that the one waited for is the update's.
    browser.fill("Endpoint", "").await;
    browser
        .run(
            "document.querySelector('main .notice-ok')?.remove();",
            json!([]),
        )
        .await;
    browser.click("Save changes").await;
    browser
        .wait(
            "the saved notice",
            "document.querySelector('main .notice-ok')?.textContent.includes('aws-prod')",
        )
        .await;
    let aws = owner_api
        .get("/v1/organizations/acme/providers/aws-prod")
        .await
        .expect(200);
    assert!(aws.get("endpoint").is_none(), "{aws}");
    assert_eq!(aws["region"], "eu-west-1");
    browser.shoot("provider-aws").await;
    assert!(!browser.page_dump().await.contains(AWS_SECRET_ACCESS_KEY));
    browser.click("← Providers").await;
    browser.wait_heading("Providers").await;
    let listed = browser.main_text().await;
    for expected in [
        "aws-prod",
        "AWS Secrets Manager",
        "eu-west-1",
        "AKIAIOSFODNN7EXAMPLE",
    ] {
        assert!(listed.contains(expected), "{expected} not in:\n{listed}");
    }
    browser.shoot("providers-both").await;

    // A remote secret without a key: refused for a Vault provider, next to
    // the key; taken whole from AWS Secrets Manager.
    browser.click("Secrets").await;
    browser.wait_heading("Secrets").await;
    browser.click("New secret").await;
    browser.wait_heading("New secret").await;
    browser.click_css("#storage-remote").await;
    browser.fill("Name", "database-url").await;
    browser.choose("Provider", &provider_id).await;
    browser
        .fill("Remote path", "kv/data/prod/database-url")
        .await;
    browser.click("Save").await;
    let error = browser
        .wait(
            "the remote key error",
            "byLabel('Remote key').getAttribute('aria-invalid') === 'true' && \
             document.getElementById(byLabel('Remote key').id + '-error')?.textContent",
        )
        .await;
    assert!(
        error.as_str().unwrap().starts_with("remote_key:"),
        "{error}"
    );
    browser.choose("Provider", &aws_id).await;
    let described = browser
        .run(
            "const key = byLabel('Remote key'); return [key.labels[0].textContent, \
             document.getElementById(key.id + '-hint').textContent];",
            json!([]),
        )
        .await;
    assert_eq!(described[0], "Remote key (optional)");
    let cleared = browser
        .run(
            "return byLabel('Remote key').getAttribute('aria-invalid') === null \
             && !document.querySelector('main .field-error');",
            json!([]),
        )
        .await;
    assert_eq!(cleared, true, "the refusal for the Vault provider stays");
    assert!(
        described[1]
            .as_str()
            .unwrap()
            .contains("Leave empty to take a plain-string secret whole"),
        "{described}"
    );
    browser.fill("Remote path", "prod/database-url").await;
    browser.shoot("secret-new-aws").await;
    browser.click("Save").await;
    browser.wait_heading("database-url").await;
    let whole = owner_api
        .get("/v1/organizations/acme/secrets/database-url")
        .await
        .expect(200);
    assert_eq!(whole["provider_id"], json!(aws_id));
    assert_eq!(whole["remote_path"], "prod/database-url");
    assert_eq!(whole["remote_key"], Value::Null);
    assert!(browser.main_text().await.contains("whole value"));
    browser.shoot("secret-aws").await;

    // Image pull secrets: list, new, delete.
    browser.click("Image pull secrets").await;
    browser.wait_heading("Image pull secrets").await;
    browser.click("New image pull secret").await;
    browser.wait_heading("New image pull secret").await;
    browser.fill("Name", "ghcr").await;
    browser.fill("Registry", "ghcr.io").await;
    browser.fill("Username", "deploy-bot").await;
    browser.choose("Password secret", "stripe-api-key").await;
    browser.shoot("image-pull-secret-new").await;
    browser.click("Save").await;
    browser.wait_heading("Image pull secrets").await;
    let listed = browser.main_text().await;
    assert!(
        listed.contains("ghcr") && listed.contains("deploy-bot"),
        "{listed}"
    );
    browser.shoot("image-pull-secrets").await;
    browser.click_css("a[aria-label='Delete ghcr']").await;
    browser
        .wait_heading("Delete image pull secret “ghcr”")
        .await;
    browser.shoot("image-pull-secret-delete").await;
    browser.click("Delete image pull secret").await;
    browser.wait_heading("Image pull secrets").await;
    assert!(browser.main_text().await.contains("“ghcr” deleted"));

    // Tokens: create one, see it once, revoke it.
    browser.click("Tokens").await;
    browser.wait_heading("Tokens").await;
    browser.shoot("tokens").await;
    browser.click("New token").await;
    browser.wait_heading("New token").await;
    browser.fill("Name", "ci-bot").await;
    browser.shoot("token-new").await;
    browser.click("Create token").await;
    browser.wait_heading("Token “ci-bot” created").await;
    let created = browser
        .run(
            "return document.querySelector('input.token-value').value;",
            json!([]),
        )
        .await;
    let created = created.as_str().unwrap().to_owned();
    assert_eq!(
        server
            .client_as(&created)
            .get("/v1/whoami")
            .await
            .expect(200)["role"],
        "member"
    );
    browser.shoot("token-created").await;
    browser.click("Done").await;
    browser.wait_heading("Tokens").await;
    assert!(!browser.page_dump().await.contains(&created));
    browser.click_css("a[aria-label='Revoke ci-bot']").await;
    browser.wait_heading("Revoke token “ci-bot”").await;
    browser.shoot("token-revoke").await;
    browser.click("Revoke token").await;
    browser.wait_heading("Tokens").await;
    assert_eq!(
        server.client_as(&created).get("/v1/whoami").await.status,
        401
    );

    // Signing out forgets the token.
    browser.click("Sign out").await;
    browser.wait_heading("Sign in").await;
    let left = browser
        .run(
            "return sessionStorage.length + localStorage.length;",
            json!([]),
        )
        .await;
    assert_eq!(left, 0);

    // A member reads everything and finds no way to change anything.
    browser.fill("API token", &member).await;
    browser.click("Sign in").await;
    browser.wait_heading("Secrets").await;
    let no_writes = "const writes = [...document.querySelectorAll(\
        'main form, main input, main select, main textarea, main button, \
         a[href$=\"/new\"], a[href$=\"/delete\"], a[href$=\"/revoke\"], a[href$=\"/tokens\"]')]; \
         return writes.map((el) => el.outerHTML.slice(0, 120));";
    for (path, heading) in [
        ("/organizations/acme/secrets", "Secrets"),
        (
            "/organizations/acme/secrets/stripe-api-key",
            "stripe-api-key",
        ),
        ("/organizations/acme/secrets/stripe-remote", "stripe-remote"),
        ("/organizations/acme/providers", "Providers"),
        ("/organizations/acme/providers/vault-dev", "vault-dev"),
        ("/organizations/acme/providers/aws-prod", "aws-prod"),
        (
            "/organizations/acme/image-pull-secrets",
            "Image pull secrets",
        ),
        ("/organizations/acme/secrets/new", "Read only"),
    ] {
        browser.open(path).await;
        browser.wait_heading(heading).await;
        let found = browser.run(no_writes, json!([])).await;
        assert_eq!(found, json!([]), "write controls for a member on {path}");
        let name = format!(
            "member-{}",
            path.trim_start_matches("/organizations/acme/")
                .replace('/', "-")
        );
        browser.shoot(&name).await;
    }
    browser.click("Sign out").await;
    browser.wait_heading("Sign in").await;

    // An admin picks the organization first.
    browser.fill("API token", &server.admin_token).await;
    browser.click("Sign in").await;
    browser.wait_heading("Organizations").await;
    browser.shoot("organizations").await;
    browser.click("acme").await;
    browser.wait_heading("Secrets").await;
    assert!(browser.main_text().await.contains("stripe-api-key"));
    browser.click("Switch").await;
    browser.wait_heading("Organizations").await;
    browser.fill("Name", "globex").await;
    browser.click("Create organization").await;
    browser.wait_heading("Secrets").await;
    assert_eq!(browser.path().await, "/organizations/globex/secrets");
    server
        .client()
        .get("/v1/organizations/globex")
        .await
        .expect(200);
}
