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

    /// Pastes `text` into the control labelled `label`, as the browser
    /// hands a paste to the page: a `paste` event carrying the clipboard's
    /// text exactly.
    async fn paste(&self, label: &str, text: &str) {
        self.run(
            "const control = byLabel(arguments[0]); control.focus(); \
             const data = new DataTransfer(); data.setData('text/plain', arguments[1]); \
             control.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));",
            json!([label, text]),
        )
        .await;
    }

    /// Chooses `file` in the file picker of the value field labelled `label`.
    async fn pick_file(&self, label: &str, file: &Path) {
        let id = self
            .element(
                "return byLabel(arguments[0]).closest('.value-field').querySelector('input[type=file]');",
                json!([label]),
            )
            .await;
        self.post(
            &format!("/element/{id}/value"),
            json!({"text": file.display().to_string()}),
        )
        .await;
    }

    /// Presses keys (WebDriver key codes, e.g. `\u{E004}` for Tab) as a
    /// person does, wherever the focus is.
    async fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for key in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": key.to_string()}));
            actions.push(json!({"type": "keyUp", "value": key.to_string()}));
        }
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
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

    // A browser that opens a path nobody serves reads the console's "page
    // not found" (drawn by the script), with the console's headers; under
    // /v1 it still gets the API's JSON.
    const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for path in [
        "/nope",
        "/console/nope",
        "/console/nothing.js",
        "/healthz/x",
    ] {
        let response = http
            .get(format!("{}{path}", server.api))
            .header("accept", BROWSER_ACCEPT)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        assert!(
            response.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("default-src 'self'"),
            "{path}"
        );
        let body = response.text().await.unwrap();
        assert!(
            body.contains("<script type=\"module\" src=\"/console/app.js\">"),
            "{path}: {body}"
        );
    }
    for (method, path) in [
        (reqwest::Method::GET, "/v1/nowhere"),
        (reqwest::Method::GET, "/v1"),
        (reqwest::Method::GET, "/v1/organizations/acme/secrets/x/y/z"),
        (reqwest::Method::POST, "/v1/nowhere"),
        (reqwest::Method::POST, "/nope"),
        (reqwest::Method::DELETE, "/organizations-x"),
    ] {
        let response = http
            .request(method.clone(), format!("{}{path}", server.api))
            .header("accept", BROWSER_ACCEPT)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
        assert_eq!(
            body["error"]["message"],
            format!("no route for {path}"),
            "{method} {path}"
        );
    }
    // An API client still gets JSON for a path outside /v1.
    let plain = server.client().get("/nope").await;
    assert_eq!(plain.status, 404);
    assert_eq!(plain.body["error"]["code"], "not_found");
}

/// Runs `drive` against a fresh server in a fresh browser, with the
/// server's log on failure.
async fn in_browser(drive: impl AsyncFnOnce(&Server, &Browser)) {
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

#[needs(chromium)]
#[tokio::test]
async fn console_in_headless_chromium() {
    in_browser(drive).await;
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
    // The API's field name is replaced by the label a person reads.
    assert!(error.as_str().unwrap().starts_with("Name: "), "{error}");
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
        error.as_str().unwrap().starts_with("Access key ID: "),
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
    // Emptying an optional setting removes it. The create's notice goes
    // with the click, so that the one waited for is the update's.
    browser.fill("Endpoint", "").await;
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
        error.as_str().unwrap().starts_with("Remote key: "),
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

/// Signs in with `token` from the sign-in page and waits for `heading`.
async fn sign_in(browser: &Browser, token: &str, heading: &str) {
    browser.open("/sign-in").await;
    browser.wait_heading("Sign in").await;
    browser.fill("API token", token).await;
    browser.click("Sign in").await;
    browser.wait_heading(heading).await;
}

/// What a runtime token reads for the secret `name` of acme.
async fn resolved(runtime: &common::Api, name: &str) -> String {
    let reply = runtime
        .post(
            "/v1/organizations/acme/resolve",
            json!({"names": [name], "consumer": "console-test"}),
        )
        .await
        .expect(200);
    reply["values"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no value for {name}: {reply}"))
        .to_owned()
}

/// The state of the value field labelled `label`: what the textarea holds,
/// the bytes its size hint counts, whether it is masked, and its status.
async fn value_state(browser: &Browser, label: &str) -> Value {
    browser
        .run(
            "const v = byLabel(arguments[0]); \
             return {text: v.value, bytes: Number(document.getElementById(v.id + '-size').dataset.bytes), \
                     size: document.getElementById(v.id + '-size').textContent, \
                     masking: getComputedStyle(v).getPropertyValue('-webkit-text-security'), \
                     status: document.getElementById(v.id + '-status').textContent};",
            json!([label]),
        )
        .await
}

/// Waits until the value field labelled `label` says something containing `text`.
async fn wait_value_status(browser: &Browser, label: &str, text: &str) -> String {
    browser
        .wait(
            &format!("the value status {text:?}"),
            &format!(
                "document.getElementById(byLabel({}).id + '-status')?.textContent.includes({}) && \
                 document.getElementById(byLabel({}).id + '-status').textContent",
                json!(label),
                json!(text),
                json!(label)
            ),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits for the refusal shown next to the control labelled `label`.
async fn field_error(browser: &Browser, label: &str) -> String {
    browser
        .wait(
            &format!("the error next to {label}"),
            &format!(
                "byLabel({0}).getAttribute('aria-invalid') === 'true' && \
                 document.getElementById(byLabel({0}).id + '-error')?.textContent",
                json!(label)
            ),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

/// A key typed line by line, with runs of spaces and a trailing newline.
const PEM_TYPED: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-typed-3f1a\n  two  spaces  inside\n-----END PRIVATE KEY-----\n";
/// A certificate copied from a file with Windows line endings, and tabs.
const PEM_PASTED: &str = "-----BEGIN CERTIFICATE-----\r\nMIIBszCCAVmgAwIBAgIU-pasted-8e2d\r\n\tafter a tab\t \r\n-----END CERTIFICATE-----\r\n";
/// A key read from a PEM file.
const PEM_FILE: &str = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkK3-file-7c2e\nAwEHoUQDQgAE\n-----END EC PRIVATE KEY-----\n";
/// A JSON credential with CRLF line breaks, a tab and a byte-order mark.
const JSON_FILE: &str = "\u{feff}{\r\n  \"type\": \"service_account\",\r\n\t\"private_key\": \"json-file-5b9d\"\r\n}\r\n";

/// The value field keeps every byte, whether typed, pasted or read from a
/// file, as a runtime token's `resolve` proves; it masks the value, counts
/// it against the server's limit and refuses what cannot be a value.
#[needs(chromium)]
#[tokio::test]
async fn console_keeps_every_byte_of_a_value() {
    in_browser(values).await;
}

async fn values(server: &Server, browser: &Browser) {
    let owner = server.seed("acme", "team-a", &[]).await;
    let owner_api = server.client_as(&owner);
    let runtime = server.client_as(
        &server
            .client()
            .create_token("acme", "resolver", "runtime")
            .await,
    );
    let files = tempfile::tempdir().unwrap();
    sign_in(browser, &owner, "Secrets").await;

    // Typed: line breaks, runs of spaces and the last line break stay.
    browser.open("/organizations/acme/secrets/new").await;
    browser.wait_heading("New secret").await;
    browser.fill("Name", "pem-typed").await;
    browser.fill("Value", PEM_TYPED).await;
    let state = value_state(browser, "Value").await;
    assert_eq!(state["text"], PEM_TYPED);
    assert_eq!(state["bytes"], PEM_TYPED.len());
    assert_eq!(
        state["size"],
        format!("{} of 65,536 bytes", PEM_TYPED.len())
    );
    assert_eq!(state["masking"], "disc", "the value is not masked");
    browser.shoot("secret-value-typed").await;
    browser.click("Show value").await;
    let shown = browser
        .run(
            "const v = byLabel('Value'); return [getComputedStyle(v).getPropertyValue('-webkit-text-security'), \
             byText('Show value').getAttribute('aria-pressed')];",
            json!([]),
        )
        .await;
    assert_eq!(shown, json!(["none", "true"]));
    browser.shoot("secret-value-shown").await;
    browser.click("Show value").await;
    assert_eq!(value_state(browser, "Value").await["masking"], "disc");
    // The keyboard leaves the field with Tab, and reaches its tools in
    // order, each with its focus in sight.
    browser.run("byLabel('Value').focus();", json!([])).await;
    let focus = "const el = document.activeElement; const shown = el.type === 'file' ? el.closest('label') : el; \
                 return [el.tagName, el.type, getComputedStyle(shown).outlineStyle];";
    browser.keys("\u{E004}").await;
    assert_eq!(
        browser.run(focus, json!([])).await,
        json!(["BUTTON", "button", "solid"])
    );
    browser.keys("\u{E004}").await;
    assert_eq!(
        browser.run(focus, json!([])).await,
        json!(["INPUT", "file", "solid"])
    );
    assert_eq!(value_state(browser, "Value").await["text"], PEM_TYPED);
    browser.click("Save").await;
    browser.wait_heading("pem-typed").await;
    assert_eq!(resolved(&runtime, "pem-typed").await, PEM_TYPED);

    // Pasted: CRLF line breaks and tabs stay, and a carriage return shows
    // as ↵ in the field.
    browser.click("← Secrets").await;
    browser.wait_heading("Secrets").await;
    browser.click("New secret").await;
    browser.wait_heading("New secret").await;
    browser.fill("Name", "pem-pasted").await;
    browser.paste("Value", PEM_PASTED).await;
    let state = value_state(browser, "Value").await;
    assert_eq!(state["text"], PEM_PASTED.replace('\r', "\u{21b5}"));
    assert_eq!(state["bytes"], PEM_PASTED.len());
    // Text that holds the mark itself could not be told apart: refused.
    browser.paste("Value", "x\u{21b5}y").await;
    let status = wait_value_status(browser, "Value", "holds the character").await;
    assert!(
        status.starts_with("The pasted text holds the character ↵"),
        "{status}"
    );
    assert_eq!(
        value_state(browser, "Value").await["text"],
        PEM_PASTED.replace('\r', "\u{21b5}")
    );
    browser.click("Show value").await;
    browser.shoot("secret-value-pasted").await;
    browser.click("Save").await;
    browser.wait_heading("pem-pasted").await;
    assert_eq!(resolved(&runtime, "pem-pasted").await, PEM_PASTED);

    // Read from a file: the file's bytes, exactly.
    let pem = files.path().join("key.pem");
    std::fs::write(&pem, PEM_FILE).unwrap();
    browser.click("← Secrets").await;
    browser.wait_heading("Secrets").await;
    browser.click("New secret").await;
    browser.wait_heading("New secret").await;
    browser.fill("Name", "pem-file").await;
    browser.pick_file("Value", &pem).await;
    let status = wait_value_status(browser, "Value", "Read key.pem").await;
    assert_eq!(
        status,
        format!("Read key.pem: {} bytes, 4 lines.", PEM_FILE.len())
    );
    assert_eq!(value_state(browser, "Value").await["text"], PEM_FILE);
    let kept = browser
        .run(
            "return byLabel('Value').closest('.value-field').querySelector('input[type=file]').files.length;",
            json!([]),
        )
        .await;
    assert_eq!(kept, 0, "the file input still holds the file");
    browser.shoot("secret-value-file").await;
    browser.click("Save").await;
    browser.wait_heading("pem-file").await;
    assert_eq!(resolved(&runtime, "pem-file").await, PEM_FILE);

    // A rotation from a JSON file with CRLF line breaks and a byte-order mark.
    let json_file = files.path().join("service-account.json");
    std::fs::write(&json_file, JSON_FILE).unwrap();
    browser.pick_file("New value", &json_file).await;
    wait_value_status(browser, "New value", "Read service-account.json").await;
    assert_eq!(
        value_state(browser, "New value").await["bytes"],
        JSON_FILE.len()
    );
    browser.click("Rotate value").await;
    browser
        .wait(
            "version 2",
            "document.getElementById('secret-version')?.textContent === '2'",
        )
        .await;
    assert_eq!(resolved(&runtime, "pem-file").await, JSON_FILE);
    let dump = browser.page_dump().await;
    for value in [PEM_TYPED, PEM_PASTED, PEM_FILE, JSON_FILE] {
        let line = value.lines().nth(1).unwrap();
        assert!(!dump.contains(line), "{line:?} is still in the page");
    }

    // The rotation's banner goes with the next action, and the refusal of
    // an empty value names the field as the page does.
    let banners = browser
        .run(
            "return [...document.querySelectorAll('main .notice-ok')].map((n) => n.textContent);",
            json!([]),
        )
        .await;
    assert_eq!(
        banners,
        json!(["Value rotated: “pem-file” is now version 2."])
    );
    browser.click("Rotate value").await;
    let error = field_error(browser, "New value").await;
    assert_eq!(error, "New value: must not be empty");
    let banners = browser
        .run(
            "return document.querySelectorAll('main .notice').length;",
            json!([]),
        )
        .await;
    assert_eq!(banners, 0, "a banner stayed up beside the refusal");
    browser.shoot("secret-rotate-error").await;

    // What cannot be a value is refused before it is sent, saying why.
    let der = files.path().join("key.der");
    std::fs::write(&der, [0x30, 0x82, 0x01, 0xff, 0xfe, 0x00, 0x80]).unwrap();
    browser.pick_file("New value", &der).await;
    let status = wait_value_status(browser, "New value", "key.der").await;
    assert!(status.contains("key.der is not UTF-8 text"), "{status}");
    assert_eq!(value_state(browser, "New value").await["text"], "");
    let big = files.path().join("big.json");
    std::fs::write(&big, "x".repeat(65_537)).unwrap();
    browser.pick_file("New value", &big).await;
    let status = wait_value_status(browser, "New value", "big.json").await;
    assert_eq!(
        status,
        "big.json is 65,537 bytes; a value holds at most 65,536 bytes."
    );
    assert_eq!(value_state(browser, "New value").await["text"], "");
    browser.shoot("secret-value-refused-file").await;

    // The largest value the server takes fits, to the byte.
    let line = format!("{}\n", "A".repeat(63));
    let largest: String = line.repeat(1024);
    assert_eq!(largest.len(), 65_536);
    let max = files.path().join("largest.pem");
    std::fs::write(&max, &largest).unwrap();
    browser.pick_file("New value", &max).await;
    wait_value_status(browser, "New value", "Read largest.pem").await;
    let state = value_state(browser, "New value").await;
    assert_eq!(state["bytes"], 65_536);
    assert_eq!(state["size"], "65,536 of 65,536 bytes");
    browser.click("Rotate value").await;
    browser
        .wait(
            "version 3",
            "document.getElementById('secret-version')?.textContent === '3'",
        )
        .await;
    assert_eq!(resolved(&runtime, "pem-file").await, largest);

    // One byte more is refused next to the field, and nothing is sent.
    browser
        .run(
            "const v = byLabel('New value'); v.value = 'é'.repeat(32768) + 'x'; \
             v.dispatchEvent(new Event('input', {bubbles: true}));",
            json!([]),
        )
        .await;
    let state = value_state(browser, "New value").await;
    assert_eq!(state["bytes"], 65_537);
    assert_eq!(state["size"], "65,537 of 65,536 bytes: too long");
    browser.click("Rotate value").await;
    let error = field_error(browser, "New value").await;
    assert_eq!(error, "New value: is longer than 65536 bytes");
    browser.shoot("secret-value-too-long").await;
    let stored = owner_api
        .get("/v1/organizations/acme/secrets/pem-file")
        .await
        .expect(200);
    assert_eq!(stored["version"], 3);
}

/// The ids of the audit events the page shows, in order.
async fn audit_rows(browser: &Browser) -> Value {
    browser
        .run(
            "return [...document.querySelectorAll('#audit-events tbody tr')].map((tr) => tr.dataset.event);",
            json!([]),
        )
        .await
}

fn ids(events: &[Value]) -> Value {
    events.iter().map(|e| e["id"].clone()).collect()
}

/// The admin's namespace bindings, organizations by name everywhere, the
/// pages for an unknown organization and an unknown path, and an owner's
/// audit log, paged and filtered.
#[needs(chromium)]
#[tokio::test]
async fn console_namespaces_audit_and_unknown_pages() {
    in_browser(platform).await;
}

async fn platform(server: &Server, browser: &Browser) {
    let owner = server
        .seed("acme", "team-a", &[("db-password", "first")])
        .await;
    let owner_api = server.client_as(&owner);
    let admin = server.client();
    let acme_id = admin.get("/v1/organizations/acme").await.expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let globex_id = admin
        .post("/v1/organizations", json!({"name": "globex"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let member = admin.create_token("acme", "viewer", "member").await;

    // Namespaces, for the admin: bindings name their organization.
    sign_in(browser, &server.admin_token, "Organizations").await;
    browser.click("Namespaces").await;
    browser.wait_heading("Namespaces").await;
    assert_eq!(browser.path().await, "/namespaces");
    let listed = browser
        .run(
            "return [...document.querySelectorAll('main table.list tbody tr')].map((tr) => [...tr.cells].slice(0, 2).map((c) => c.innerText.trim()));",
            json!([]),
        )
        .await;
    assert_eq!(listed, json!([["team-a", "acme"]]));
    assert!(!browser.page_dump().await.contains(&acme_id));
    browser.shoot("namespaces").await;

    // A refusal names the field as the form does.
    browser.fill("Namespace", "Team_B").await;
    browser.choose("Organization", "globex").await;
    browser.click("Bind namespace").await;
    let error = field_error(browser, "Namespace").await;
    assert!(error.starts_with("Namespace: "), "{error}");
    let refusal = admin
        .put("/v1/namespaces/Team_B", json!({"organization": "globex"}))
        .await;
    assert_eq!(refusal.status, 422);
    assert_eq!(
        error,
        refusal
            .error_message()
            .replacen("namespace: ", "Namespace: ", 1)
    );
    browser.shoot("namespaces-error").await;

    // Bound with the keyboard alone, with the focus in sight all the way.
    browser.fill("Namespace", "team-b").await;
    let focus = "const el = document.activeElement; \
                 return [el.tagName, el.name || el.textContent, getComputedStyle(el).outlineStyle];";
    browser.keys("\u{E004}").await;
    assert_eq!(
        browser.run(focus, json!([])).await,
        json!(["SELECT", "organization", "solid"])
    );
    browser.keys("\u{E004}").await;
    assert_eq!(
        browser.run(focus, json!([])).await,
        json!(["BUTTON", "Bind namespace", "solid"])
    );
    browser.keys("\u{E007}").await;
    browser.wait_heading("team-b").await;
    assert_eq!(browser.path().await, "/namespaces/team-b");
    assert!(
        browser
            .main_text()
            .await
            .contains("Namespace “team-b” bound to globex."),
        "{}",
        browser.main_text().await
    );
    let bound = admin.get("/v1/namespaces/team-b").await.expect(200);
    assert_eq!(bound["organization_id"], json!(globex_id));
    browser.shoot("namespace").await;

    // Moved to another organization.
    browser.choose("Organization", "acme").await;
    browser.click("Move namespace").await;
    browser
        .wait(
            "the move's notice",
            "document.querySelector('main .notice-ok')?.textContent.includes('moved from globex to acme')",
        )
        .await;
    let moved = admin.get("/v1/namespaces/team-b").await.expect(200);
    assert_eq!(moved["organization_id"], json!(acme_id));

    // Unbound, after a confirmation.
    browser.click("Unbind").await;
    browser.wait_heading("Unbind namespace “team-b”").await;
    browser.shoot("namespace-unbind").await;
    browser.click("Unbind namespace").await;
    browser.wait_heading("Namespaces").await;
    assert!(
        browser
            .main_text()
            .await
            .contains("Namespace “team-b” unbound.")
    );
    assert_eq!(admin.get("/v1/namespaces/team-b").await.status, 404);

    // An organization opened by its id is shown, and addressed, by its name.
    browser
        .open(&format!("/organizations/{acme_id}/secrets"))
        .await;
    browser.wait_heading("Secrets").await;
    assert_eq!(browser.path().await, "/organizations/acme/secrets");
    let header = browser
        .run(
            "return [document.querySelector('.org-name').textContent, document.getElementById('top').innerText];",
            json!([]),
        )
        .await;
    assert_eq!(header[0], "acme");
    assert!(!header[1].as_str().unwrap().contains(&acme_id), "{header}");

    // An unknown organization: what happened and the way back, no sections.
    browser.open("/organizations/nope/secrets").await;
    browser.wait_heading("Organization not found").await;
    let page = browser
        .run(
            "return [mainText(), !!document.querySelector('nav[aria-label=Organization]')];",
            json!([]),
        )
        .await;
    assert!(
        page[0]
            .as_str()
            .unwrap()
            .contains("No organization named “nope”, or you may not see it."),
        "{page}"
    );
    assert_eq!(page[1], false, "the sections of an unknown organization");
    browser.shoot("organization-unknown").await;
    browser.click("Back to the list of organizations").await;
    browser.wait_heading("Organizations").await;

    // Unknown paths: the console's page, whoever serves them.
    for path in [
        "/console/nope",
        "/nope",
        "/organizations/acme/nope",
        "/#/nope",
    ] {
        browser.open(path).await;
        browser.wait_heading("Page not found").await;
        assert!(
            browser
                .main_text()
                .await
                .contains("There is no console page at"),
            "{path}"
        );
    }
    browser.shoot("page-not-found").await;
    browser.open("/#/organizations/acme/providers").await;
    browser.wait_heading("Providers").await;
    assert_eq!(browser.path().await, "/organizations/acme/providers");

    // The audit log, for an owner: newest first, a page at a time.
    for n in 1..=24 {
        owner_api
            .post(
                "/v1/organizations/acme/secrets",
                json!({"name": format!("s-{n:02}"), "value": format!("v{n}")}),
            )
            .await
            .expect(201);
    }
    for n in 1..=22 {
        owner_api
            .patch(
                "/v1/organizations/acme/secrets/s-07",
                json!({"value": format!("rotated {n}")}),
            )
            .await
            .expect(200);
    }
    let events = owner_api
        .all_pages("/v1/organizations/acme/audit", 500)
        .await;
    assert!(events.len() > 40, "{}", events.len());
    browser.click("Sign out").await;
    sign_in(browser, &owner, "Secrets").await;
    browser.click("Audit log").await;
    browser.wait_heading("Audit log").await;
    assert_eq!(audit_rows(browser).await, ids(&events[..20]));
    browser.shoot("audit").await;
    let mut shown = 20;
    while shown < events.len() {
        browser.click("Show older events").await;
        shown = (shown + 20).min(events.len());
        browser
            .wait(
                &format!("{shown} events"),
                &format!("document.querySelectorAll('#audit-events tbody tr').length === {shown}"),
            )
            .await;
    }
    assert_eq!(audit_rows(browser).await, ids(&events));
    let end = browser
        .run(
            "return [document.querySelector('.audit-status').textContent, byText('Show older events')?.hidden];",
            json!([]),
        )
        .await;
    assert_eq!(
        end,
        json!([
            format!("{} events shown: that is all of them.", events.len()),
            true
        ])
    );

    // One secret's events, paged as well.
    let of_s07: Vec<Value> = events
        .iter()
        .filter(|e| e["target_kind"] == "secret" && e["target_name"] == "s-07")
        .cloned()
        .collect();
    assert_eq!(of_s07.len(), 23);
    browser.choose("Secret", "s-07").await;
    browser.click("Show").await;
    browser.wait_heading("Audit log of “s-07”").await;
    assert_eq!(
        browser.run("return location.search;", json!([])).await,
        "?secret=s-07"
    );
    assert_eq!(audit_rows(browser).await, ids(&of_s07[..20]));
    browser.shoot("audit-secret").await;
    browser.click("Show older events").await;
    browser
        .wait(
            "all of s-07's events",
            "document.querySelectorAll('#audit-events tbody tr').length === 23",
        )
        .await;
    assert_eq!(audit_rows(browser).await, ids(&of_s07));

    // The secret's page leads to its log.
    browser.click("s-07").await;
    browser.wait_heading("s-07").await;
    browser.click("Audit history").await;
    browser.wait_heading("Audit log of “s-07”").await;

    // A member has no audit log.
    browser.click("Sign out").await;
    sign_in(browser, &member, "Secrets").await;
    assert!(
        browser
            .run("return byText('Audit log') === null;", json!([]))
            .await
            == true
    );
    browser.open("/organizations/acme/audit").await;
    browser.wait_heading("Read only").await;
}

/// A secret limited to some namespaces: set when it is made, shown, and
/// changed without a new version.
#[needs(chromium)]
#[tokio::test]
async fn console_allowed_namespaces() {
    in_browser(allowed_namespaces).await;
}

async fn allowed_namespaces(server: &Server, browser: &Browser) {
    let owner = server.seed("acme", "team-a", &[]).await;
    let owner_api = server.client_as(&owner);
    sign_in(browser, &owner, "Secrets").await;
    browser.click("New secret").await;
    browser.wait_heading("New secret").await;
    browser.fill("Name", "scoped").await;
    browser.fill("Value", "scoped-value").await;
    browser
        .fill("Allowed namespaces", "team-a, team-b-*\nteam-c")
        .await;
    browser.shoot("secret-new-namespaces").await;
    browser.click("Save").await;
    browser.wait_heading("scoped").await;
    let stored = owner_api
        .get("/v1/organizations/acme/secrets/scoped")
        .await
        .expect(200);
    assert_eq!(
        stored["allowed_namespaces"],
        json!(["team-a", "team-b-*", "team-c"])
    );
    let shown = browser
        .run(
            "return document.getElementById('secret-namespaces').innerText;",
            json!([]),
        )
        .await;
    for pattern in ["team-a", "team-b-*", "team-c"] {
        assert!(shown.as_str().unwrap().contains(pattern), "{shown}");
    }
    assert_eq!(
        browser
            .run("return byLabel('Allowed namespaces').value;", json!([]))
            .await,
        "team-a\nteam-b-*\nteam-c"
    );
    browser.shoot("secret-namespaces").await;

    // Emptied: every bound namespace, and still version 1.
    browser.fill("Allowed namespaces", "").await;
    browser.click("Save namespaces").await;
    browser
        .wait(
            "the saved notice",
            "document.querySelector('main .notice-ok')?.textContent.includes('every namespace bound to acme')",
        )
        .await;
    let stored = owner_api
        .get("/v1/organizations/acme/secrets/scoped")
        .await
        .expect(200);
    assert_eq!(stored["allowed_namespaces"], json!([]));
    assert_eq!(stored["version"], 1);
    assert!(
        browser
            .main_text()
            .await
            .contains("Every namespace bound to acme")
    );

    // A refusal names the field as the form does.
    browser.fill("Allowed namespaces", "team-a Team_B").await;
    browser.click("Save namespaces").await;
    let error = field_error(browser, "Allowed namespaces").await;
    assert!(
        error.starts_with("Allowed namespaces: \"Team_B\" is not a namespace name"),
        "{error}"
    );
    browser.shoot("secret-namespaces-error").await;

    // The list says where each secret may be used.
    browser.fill("Allowed namespaces", "team-a").await;
    browser.click("Save namespaces").await;
    browser
        .wait(
            "the saved notice",
            "document.querySelector('main .notice-ok')?.textContent.includes('may now be used in team-a')",
        )
        .await;
    browser.click("← Secrets").await;
    browser.wait_heading("Secrets").await;
    let cell = browser
        .run(
            "return document.querySelector('main td[data-label=Namespaces]')?.innerText;",
            json!([]),
        )
        .await;
    assert_eq!(cell, "team-a");
    browser.shoot("secrets-namespaces").await;
}
