//! Providers as an attacker with an owner token would configure them: a
//! server that echoes the credential it was sent, remote paths and
//! addresses that try to leave the secrets engine, `check` used to map
//! what listens where, token files named through the API, operator ranges,
//! and the API fields whose spelling was loose (`provider_id`, `force`).

use crate::common;
use crate::common::remote;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use common::Api;
use remote::{ORG, admit, check, denied, local_secret, remote_secret, resolve, runtime};
use serde_json::{Value, json};

/// A Vault token with characters that JSON escapes, so that its raw, JSON
/// and base64 forms all differ.
const TOKEN: &str = "hvs.CAESIHostile\"Echo/Token+9=";
/// An AppRole secret id.
const SECRET_ID: &str = "7a1c0e5b-hostile-secret-id-42";

/// Every form in which a credential could be echoed.
fn forms(credential: &str) -> Vec<String> {
    let json = serde_json::to_string(credential).unwrap();
    vec![
        credential.to_owned(),
        json[1..json.len() - 1].to_owned(),
        base64::engine::general_purpose::STANDARD.encode(credential),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(credential),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    /// Errors whose text holds what the request carried, in every form.
    EchoError,
    /// A KV v2 value whose key names are the credential's forms.
    EchoKeys,
    /// A KV v2 value that is the credential in base64.
    EchoValue,
    /// A token lookup whose policy names are the credential's forms.
    EchoPolicies,
    /// An HTML page, as any web server would answer.
    Html,
}

/// A loopback server that answers as told and records every request's
/// path and query.
struct Hostile {
    addr: String,
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct HostileState {
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn hostile_answer(
    State(state): State<HostileState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.seen.lock().unwrap().push(
        uri.path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
    );
    // What the request carried: the token header or the login body.
    let mut sent = headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Ok(login) = serde_json::from_slice::<Value>(&body)
        && let Some(secret_id) = login["secret_id"].as_str()
    {
        sent = secret_id.to_owned();
    }
    let echoes = forms(&sent);
    let answer = *state.answer.lock().unwrap();
    match answer {
        Answer::EchoError => {
            let status = if uri.path().ends_with("/login") {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            let errors: Vec<String> = echoes.iter().map(|e| format!("bad token {e}")).collect();
            (status, axum::Json(json!({ "errors": errors }))).into_response()
        }
        Answer::EchoKeys => {
            let data: serde_json::Map<String, Value> = echoes
                .iter()
                .map(|e| (e.clone(), json!("x")))
                .chain([("ok".to_owned(), json!("y"))])
                .collect();
            axum::Json(
                json!({"request_id": "1", "data": {"data": data, "metadata": {"version": 1}}}),
            )
            .into_response()
        }
        Answer::EchoValue => axum::Json(json!({"request_id": "1", "data": {
            "data": {"value": format!("creds:{}", echoes[2])}, "metadata": {"version": 1}}}))
        .into_response(),
        Answer::EchoPolicies => {
            let mut policies = echoes.clone();
            policies.push("default".into());
            axum::Json(json!({"request_id": "1", "data": {"ttl": 0, "renewable": false, "policies": policies},
                              "auth": {"client_token": "s.issued-by-hostile", "lease_duration": 0,
                                       "renewable": false, "policies": policies}}))
            .into_response()
        }
        Answer::Html => (
            [("content-type", "text/html")],
            "<html><body>It works!</body></html>",
        )
            .into_response(),
    }
}

impl Hostile {
    async fn start(answer: Answer) -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let state = HostileState {
            answer: Arc::new(Mutex::new(answer)),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let app = axum::Router::new()
            .fallback(hostile_answer)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Hostile {
            addr,
            answer: state.answer,
            seen: state.seen,
            task,
        }
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn create_provider(api: &Api, body: Value) -> common::Reply {
    api.post(&format!("/v1/organizations/{ORG}/providers"), body)
        .await
}

async fn vault_provider(api: &Api, name: &str, address: &str, auth: Value) -> String {
    create_provider(
        api,
        json!({"name": name, "kind": "vault", "address": address, "auth": auth}),
    )
    .await
    .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Fails when any form of `credentials` is in `text`.
#[track_caller]
fn assert_clean(what: &str, text: &str, credentials: &[&str]) {
    for credential in credentials {
        for form in forms(credential) {
            assert!(!text.contains(&form), "{what} holds a credential: {text}");
        }
    }
}

#[tokio::test]
async fn a_server_that_echoes_its_credentials_never_gets_them_shown() {
    let hostile = Hostile::start(Answer::EchoError).await;
    let (server, owner) = remote::start(&[]).await;
    local_secret(&owner, "hostile-token", TOKEN).await;
    local_secret(&owner, "hostile-secret-id", SECRET_ID).await;
    let by_token = vault_provider(
        &owner,
        "by-token",
        &hostile.addr,
        json!({"method": "token", "token_secret": "hostile-token"}),
    )
    .await;
    let by_approle = vault_provider(
        &owner,
        "by-approle",
        &hostile.addr,
        json!({"method": "approle", "role_id": "agyn", "secret_id_secret": "hostile-secret-id"}),
    )
    .await;
    remote_secret(&owner, "t", &by_token, "secret/data/app", "missing").await;
    remote_secret(&owner, "a", &by_approle, "secret/data/app", "missing").await;
    remote_secret(&owner, "v", &by_token, "secret/data/app", "value").await;
    let runtime = runtime(&server, &owner).await;
    let credentials = [TOKEN, SECRET_ID];

    let mut shown = Vec::new();
    for answer in [
        Answer::EchoError,
        Answer::EchoKeys,
        Answer::EchoValue,
        Answer::EchoPolicies,
    ] {
        hostile.answer(answer);
        for (secret, provider) in [("t", &by_token), ("a", &by_approle), ("v", &by_token)] {
            let message = match admit(&server, &format!("V={secret}")).await {
                Ok(_) if answer == Answer::EchoPolicies => continue,
                Ok(env) => panic!("{answer:?}: admitted with {:?}", env.keys()),
                Err(message) => message,
            };
            assert_clean(&format!("{answer:?} denial"), &message, &credentials);
            let reply = resolve(&runtime, &[secret]).await;
            assert_clean(&format!("{answer:?} resolve"), &reply.text, &credentials);
            let checked = check(&owner, provider).await.expect(200);
            assert_clean(
                &format!("{answer:?} check"),
                &checked.to_string(),
                &credentials,
            );
            shown.push(message);
        }
    }
    // What was said instead: the status and a fixed reason, the keys that
    // name no credential, and a refusal to hand the credential out.
    let said = shown.join("\n");
    assert!(said.contains("the server answered HTTP 500"), "{said}");
    assert!(
        said.contains("approle login at auth/approle was refused (HTTP 400)"),
        "{said}"
    );
    assert!(said.contains("(keys: ok and 3 more)"), "{said}");
    assert!(
        said.contains("answers with the provider's own token"),
        "{said}"
    );

    // Nor in the log, at any level, nor in the metrics.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.logs().contains("Provider request") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let logs = server.logs();
    assert!(logs.contains("Provider request"));
    assert_clean("the log", &logs, &credentials);
    let metrics = reqwest::get(format!("{}/metrics", server.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_clean("/metrics", &metrics, &credentials);
}

#[tokio::test]
async fn remote_paths_and_addresses_cannot_leave_the_secrets_engine() {
    let hostile = Hostile::start(Answer::EchoValue).await;
    let (mut server, owner) = remote::start(&[]).await;
    local_secret(&owner, "hostile-token", TOKEN).await;
    let id = vault_provider(
        &owner,
        "bao",
        &hostile.addr,
        json!({"method": "token", "token_secret": "hostile-token"}),
    )
    .await;

    let paths = [
        r"a\..\..\outside",
        "secret/../../sys/raw",
        "secret/data/./x",
        "secret//data/x",
        "/secret/data/x",
        "secret/data/x#frag",
        "secret/data/x?list=true",
        "secret/data/%2e%2e/x",
        "secret/data/x\u{0}",
        "secret/data/x\ny",
    ];
    for path in paths {
        let reply = owner
            .post(
                &format!("/v1/organizations/{ORG}/secrets"),
                json!({"name": "escape", "storage": "remote", "provider_id": id,
                       "remote_path": path, "remote_key": "value"}),
            )
            .await;
        assert_eq!(reply.status, 422, "{path:?}: {}", reply.text);
        assert_eq!(reply.field(), Some("remote_path"), "{path:?}");
    }
    remote_secret(&owner, "inside", &id, "secret/data/app", "value").await;
    let inside = owner
        .get(&format!("/v1/organizations/{ORG}/secrets/inside"))
        .await
        .expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = owner
        .patch(
            &format!("/v1/organizations/{ORG}/secrets/{inside}"),
            json!({"remote_path": r"a\..\..\outside"}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);

    let base = hostile.addr.clone();
    for address in [
        format!("{base}/#frag"),
        format!("{base}#frag"),
        format!("{base}/v1/../"),
        format!("{base}?x=1"),
        base.replace("http://", "http://user:pass@"),
        "file:///etc/passwd".to_owned(),
    ] {
        let reply = create_provider(
            &owner,
            json!({"name": "bad-address", "kind": "vault", "address": address,
                   "auth": {"method": "token", "token_secret": "hostile-token"}}),
        )
        .await;
        assert_eq!(reply.status, 422, "{address}: {}", reply.text);
        assert_eq!(reply.field(), Some("address"), "{address}");
    }

    // A path that got into the database by other means is refused before
    // any request is sent.
    server.kill();
    {
        let url = format!(
            "sqlite://{}",
            server.data_dir.join("agyn-secrets.db").display()
        );
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        sqlx::query("UPDATE secrets SET remote_path = ? WHERE id = ?")
            .bind(r"a\..\..\outside")
            .bind(&inside)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    server.restart().await;
    let message = denied(admit(&server, "V=inside").await);
    assert!(
        message.contains("remote_path must be a path such as"),
        "{message}"
    );
    let seen = hostile.seen();
    assert!(
        seen.iter()
            .all(|path| path.starts_with("/v1/") && !path.contains("..")),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|p| p.contains("outside")), "{seen:?}");
}

#[tokio::test]
async fn check_tells_only_whether_the_protocol_answered() {
    let html = Hostile::start(Answer::Html).await;
    let (server, owner) = remote::start(&[]).await;
    local_secret(&owner, "any-token", TOKEN).await;
    local_secret(
        &owner,
        "aws-secret-key",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYagynSECRET1",
    )
    .await;
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let webhook = format!("http://{}", server.webhook_addr());
    let html_over_tls = html.addr.replace("http://", "https://");
    let api = format!("http://127.0.0.1:{}", server.api_port());
    let targets = [
        ("closed port", closed),
        ("TLS port spoken to in plain HTTP", webhook),
        ("plain HTTP port spoken to in TLS", html_over_tls),
        ("web server", html.addr.clone()),
        ("JSON API that is not the provider", api),
    ];
    type Body = fn(&str) -> Value;
    let kinds: [(&str, Body); 2] = [
        ("vault", |address| {
            json!({"kind": "vault", "address": address,
                   "auth": {"method": "token", "token_secret": "any-token"}})
        }),
        ("aws-secrets-manager", |address| {
            json!({"kind": "aws-secrets-manager", "region": "eu-west-1",
                   "endpoint": address, "sts_endpoint": address,
                   "auth": {"method": "static", "access_key_id": "AKIAAGYNTESTKEY00001",
                            "secret_access_key_secret": "aws-secret-key"}})
        }),
    ];
    for (kind, body) in kinds {
        let mut said = Vec::new();
        for (i, (what, address)) in targets.iter().enumerate() {
            let mut body = body(address);
            body["name"] = json!(format!("{kind}-{i}"));
            let id = create_provider(&owner, body).await.expect(201)["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let result = check(&owner, &id).await.expect(200);
            assert_eq!(result["ok"], false, "{kind} {what}: {result}");
            let message = result["message"].as_str().unwrap();
            said.push(
                message
                    .replace(address.as_str(), "<address>")
                    .replace(&format!("{kind}-{i}"), "<name>"),
            );
        }
        assert!(
            said.iter().all(|m| m == &said[0]),
            "{kind}: the answers tell the targets apart:\n{}",
            said.join("\n")
        );
        assert!(
            said[0].contains("cannot reach the provider at <address>"),
            "{}",
            said[0]
        );
    }
}

#[tokio::test]
async fn operator_ranges_narrow_where_providers_may_be_reached() {
    let (_server, owner) = remote::start(&["--provider-deny-cidrs", "127.0.0.0/8,::1/128"]).await;
    local_secret(&owner, "any-token", TOKEN).await;
    let reply = create_provider(
        &owner,
        json!({"name": "loopback", "kind": "vault", "address": "http://127.0.0.1:8200",
               "auth": {"method": "token", "token_secret": "any-token"}}),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.field(), Some("address"));
    assert!(
        reply.error_message().contains("127.0.0.1"),
        "{}",
        reply.text
    );

    // A name is resolved when it is used, and refused then.
    let id = vault_provider(
        &owner,
        "by-name",
        "http://localhost:8200",
        json!({"method": "token", "token_secret": "any-token"}),
    )
    .await;
    let result = check(&owner, &id).await.expect(200);
    assert_eq!(result["ok"], false);
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains("localhost may not be reached"),
        "{result}"
    );

    let (_server, owner) = remote::start(&["--provider-allow-cidrs", "10.0.0.0/8"]).await;
    local_secret(&owner, "any-token", TOKEN).await;
    let reply = create_provider(
        &owner,
        json!({"name": "outside", "kind": "vault", "address": "http://127.0.0.1:8200",
               "auth": {"method": "token", "token_secret": "any-token"}}),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    vault_provider(
        &owner,
        "inside",
        "http://10.1.2.3:8200",
        json!({"method": "token", "token_secret": "any-token"}),
    )
    .await;
}

#[tokio::test]
async fn file_paths_never_come_from_the_api() {
    let (server, _owner) = remote::start(&[]).await;
    let admin = server.client();
    for (auth, field) in [
        (
            json!({"kind": "vault", "address": "http://127.0.0.1:8200",
                   "auth": {"method": "kubernetes", "role": "agyn", "jwt_path": "/proc/self/environ"}}),
            "auth.jwt_path",
        ),
        (
            json!({"kind": "aws-secrets-manager", "region": "eu-west-1",
                   "auth": {"method": "web-identity", "role_arn": "arn:aws:iam::1:role/x",
                            "token_file": "/proc/self/environ"}}),
            "auth.token_file",
        ),
    ] {
        let mut body = auth;
        body["name"] = json!("files");
        let reply = create_provider(&admin, body).await;
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert_eq!(reply.field(), Some(field), "{}", reply.text);
    }
}

#[tokio::test]
async fn provider_id_takes_an_id_or_a_name_and_force_takes_true_or_false() {
    let (_server, owner) = remote::start(&[]).await;
    local_secret(&owner, "any-token", TOKEN).await;
    let id = vault_provider(
        &owner,
        "bao",
        "http://127.0.0.1:8200",
        json!({"method": "token", "token_secret": "any-token"}),
    )
    .await;
    remote_secret(&owner, "by-name", "bao", "secret/data/app", "value").await;
    remote_secret(&owner, "by-id", &id, "secret/data/app", "value").await;
    for name in ["by-name", "by-id"] {
        let shown = owner
            .get(&format!("/v1/organizations/{ORG}/secrets/{name}"))
            .await
            .expect(200);
        assert_eq!(shown["provider_id"], id.as_str(), "{shown}");
    }
    let reply = owner
        .post(
            &format!("/v1/organizations/{ORG}/secrets"),
            json!({"name": "nowhere", "storage": "remote", "provider_id": "no-such-provider",
                   "remote_path": "secret/data/app", "remote_key": "value"}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.field(), Some("provider_id"));

    // The credential is referenced by the provider: deleting it needs force.
    let path = format!("/v1/organizations/{ORG}/secrets/any-token");
    for force in ["yes", "1", "TRUE", ""] {
        let reply = owner.delete(&format!("{path}?force={force}")).await;
        assert_eq!(reply.status, 422, "force={force}: {}", reply.text);
        assert_eq!(reply.field(), Some("force"));
    }
    assert_eq!(
        owner.delete(&format!("{path}?force=false")).await.status,
        409
    );
    assert_eq!(
        owner.delete(&format!("{path}?force=true")).await.status,
        204
    );
}

#[tokio::test]
async fn a_patch_reads_null_as_not_set_and_a_repoint_to_the_same_place_keeps_the_version() {
    let (_server, owner) = remote::start(&[]).await;
    local_secret(
        &owner,
        "aws-secret-key",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYagynSECRET1",
    )
    .await;
    let created = create_provider(
        &owner,
        json!({"name": "aws", "kind": "aws-secrets-manager", "region": "eu-west-1",
               "endpoint": "http://127.0.0.1:4566",
               "auth": {"method": "static", "access_key_id": "AKIAAGYNTESTKEY00001",
                        "secret_access_key_secret": "aws-secret-key"}}),
    )
    .await
    .expect(201);
    let path = format!("/v1/organizations/{ORG}/providers/aws");
    for (body, field) in [
        (json!({"namespace": null}), "namespace"),
        (json!({"address": "http://127.0.0.1:8200"}), "address"),
        (json!({"region": null}), "region"),
        (json!({"auth": null}), "auth"),
    ] {
        let reply = owner.patch(&path, body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert_eq!(reply.field(), Some(field), "{body}: {}", reply.text);
    }
    let cleared = owner
        .patch(&path, json!({"endpoint": null}))
        .await
        .expect(200);
    assert!(cleared.get("endpoint").is_none(), "{cleared}");
    assert_eq!(cleared["region"], created["region"]);

    remote_secret(&owner, "db", "aws", "prod/db", "password").await;
    let secret = format!("/v1/organizations/{ORG}/secrets/db");
    let before = owner.get(&secret).await.expect(200);
    let same = owner
        .patch(
            &secret,
            json!({"provider_id": "aws", "remote_path": "prod/db", "remote_key": "password"}),
        )
        .await
        .expect(200);
    assert_eq!(same["version"], before["version"], "{same}");
    let whole = owner
        .patch(&secret, json!({"remote_key": null}))
        .await
        .expect(200);
    assert_eq!(whole["remote_key"], Value::Null);
    assert_eq!(whole["version"], before["version"].as_i64().unwrap() + 1);
    for (field, body) in [
        ("remote_key", json!({"remote_key": "pass\u{7}word"})),
        ("remote_path", json!({"remote_path": "prod/\u{1b}[2Jdb"})),
    ] {
        let reply = owner.patch(&secret, body).await;
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert_eq!(reply.field(), Some(field));
    }
}
