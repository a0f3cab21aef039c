//! The companion API through its HTTP contract: roles, validation, the
//! delete guard, audit, persistence on both databases, and leak checks.

use crate::common;

use common::{Api, Backend, Server, TestDb, needs};
use rstest::rstest;
use serde_json::{Value, json};

const VALUE: &str = "sk_live_PlaintextThatMustNeverLeak_42";
const ROTATED: &str = "sk_live_RotatedPlaintextNeverLeaks_43";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Nobody,
    BadToken,
    Admin,
    Owner,
    Member,
    Runtime,
    OtherOwner,
}

const CALLERS: [Caller; 7] = [
    Caller::Nobody,
    Caller::BadToken,
    Caller::Admin,
    Caller::Owner,
    Caller::Member,
    Caller::Runtime,
    Caller::OtherOwner,
];

#[derive(Debug, Clone, Copy)]
enum Policy {
    Public,
    Authenticated,
    AdminOnly,
    Read,
    Write,
    Resolve,
}

impl Policy {
    fn expected(self, caller: Caller, ok: u16) -> u16 {
        use Caller::*;
        match (self, caller) {
            (Policy::Public, _) => ok,
            (_, Nobody | BadToken) => 401,
            (Policy::Authenticated, _) => ok,
            (Policy::AdminOnly, Admin) => ok,
            (Policy::AdminOnly, _) => 403,
            (_, OtherOwner) => 404,
            (Policy::Read, Admin | Owner | Member) => ok,
            (Policy::Read, Runtime) => 403,
            (Policy::Write, Admin | Owner) => ok,
            (Policy::Write, Member | Runtime) => 403,
            (Policy::Resolve, Runtime) => ok,
            (Policy::Resolve, _) => 403,
        }
    }
}

struct Fixture {
    server: Server,
    tokens: Vec<(Caller, Option<String>)>,
    secret_id: String,
    provider_id: String,
    pull_id: String,
    token_id: String,
}

async fn fixture(db: &TestDb) -> Fixture {
    // The matrix sends many bad tokens from one address on purpose.
    let server = Server::start_with(db, &["--auth-failures-per-minute", "0"], &[]).await;
    let admin = server.client();
    let owner = server
        .seed(
            "acme",
            "team-a",
            &[
                ("stripe-api-key", VALUE),
                ("vault-token", "root-token-value"),
            ],
        )
        .await;
    let owner_api = server.client_as(&owner);
    let member = admin
        .post(
            "/v1/organizations/acme/tokens",
            json!({"name": "member", "role": "member"}),
        )
        .await
        .expect(201);
    let runtime = admin
        .post(
            "/v1/organizations/acme/tokens",
            json!({"name": "runtime", "role": "runtime"}),
        )
        .await
        .expect(201);
    admin
        .post("/v1/organizations", json!({"name": "globex"}))
        .await
        .expect(201);
    let other = admin
        .post(
            "/v1/organizations/globex/tokens",
            json!({"name": "owner", "role": "owner"}),
        )
        .await
        .expect(201);
    let secret = owner_api
        .get("/v1/organizations/acme/secrets/stripe-api-key")
        .await
        .expect(200);
    let provider = owner_api
        .post(
            "/v1/organizations/acme/providers",
            json!({"name": "vault", "kind": "vault", "address": "http://127.0.0.1:8200",
                   "auth": {"method": "token", "token_secret": "vault-token"}}),
        )
        .await
        .expect(201);
    let pull = owner_api
        .post(
            "/v1/organizations/acme/image-pull-secrets",
            json!({"name": "ghcr", "registry": "ghcr.io", "username": "bot", "password_secret": "stripe-api-key"}),
        )
        .await
        .expect(201);
    let token = |v: &Value| Some(v["token"].as_str().unwrap().to_owned());
    Fixture {
        tokens: vec![
            (Caller::Nobody, None),
            (
                Caller::BadToken,
                Some("agyn_00000000000000000000000000000000_forged".into()),
            ),
            (Caller::Admin, Some(server.admin_token.clone())),
            (Caller::Owner, Some(owner)),
            (Caller::Member, token(&member)),
            (Caller::Runtime, token(&runtime)),
            (Caller::OtherOwner, token(&other)),
        ],
        secret_id: secret["id"].as_str().unwrap().to_owned(),
        provider_id: provider["id"].as_str().unwrap().to_owned(),
        pull_id: pull["id"].as_str().unwrap().to_owned(),
        token_id: member["id"].as_str().unwrap().to_owned(),
        server,
    }
}

impl Fixture {
    fn api(&self, caller: Caller) -> Api {
        let token = self
            .tokens
            .iter()
            .find(|(c, _)| *c == caller)
            .unwrap()
            .1
            .clone();
        Api {
            token,
            ..self.server.client()
        }
    }
}

#[tokio::test]
async fn authorization_matrix() {
    let f = fixture(&TestDb::sqlite()).await;
    let s = &f.secret_id;
    let p = &f.provider_id;
    let i = &f.pull_id;
    let t = &f.token_id;
    // (method, path, body, policy, status when allowed). `{c}` becomes the
    // caller's name so that creations do not collide.
    let routes: Vec<(&str, String, Option<Value>, Policy, u16)> = vec![
        ("GET", "/healthz".into(), None, Policy::Public, 200),
        ("GET", "/readyz".into(), None, Policy::Public, 200),
        ("GET", "/metrics".into(), None, Policy::Public, 200),
        ("GET", "/openapi.json".into(), None, Policy::Public, 200),
        ("GET", "/v1/whoami".into(), None, Policy::Authenticated, 200),
        (
            "POST",
            "/v1/organizations".into(),
            Some(json!({"name": "org-{c}"})),
            Policy::AdminOnly,
            201,
        ),
        (
            "GET",
            "/v1/organizations/acme".into(),
            None,
            Policy::Read,
            200,
        ),
        (
            "POST",
            "/v1/organizations/acme/tokens".into(),
            Some(json!({"name": "t-{c}", "role": "member"})),
            Policy::Write,
            201,
        ),
        (
            "GET",
            "/v1/organizations/acme/tokens".into(),
            None,
            Policy::Write,
            200,
        ),
        (
            "GET",
            format!("/v1/organizations/acme/tokens/{t}"),
            None,
            Policy::Write,
            200,
        ),
        (
            "DELETE",
            "/v1/organizations/acme/tokens/0123456789abcdef0123456789abcdef".into(),
            None,
            Policy::Write,
            404,
        ),
        (
            "POST",
            "/v1/organizations/acme/secrets".into(),
            Some(json!({"name": "s-{c}", "storage": "local", "value": VALUE})),
            Policy::Write,
            201,
        ),
        (
            "GET",
            "/v1/organizations/acme/secrets".into(),
            None,
            Policy::Read,
            200,
        ),
        (
            "GET",
            format!("/v1/organizations/acme/secrets/{s}"),
            None,
            Policy::Read,
            200,
        ),
        (
            "PATCH",
            "/v1/organizations/acme/secrets/vault-token".into(),
            Some(json!({"value": "root-token-value"})),
            Policy::Write,
            200,
        ),
        (
            "GET",
            format!("/v1/organizations/acme/secrets/{s}/references"),
            None,
            Policy::Read,
            200,
        ),
        (
            "DELETE",
            "/v1/organizations/acme/secrets/missing".into(),
            None,
            Policy::Write,
            404,
        ),
        (
            "POST",
            "/v1/organizations/acme/providers".into(),
            Some(
                json!({"name": "v-{c}", "kind": "vault", "address": "https://vault.example.com", "auth": {"method": "token", "token_secret": "vault-token"}}),
            ),
            Policy::Write,
            201,
        ),
        (
            "GET",
            "/v1/organizations/acme/providers".into(),
            None,
            Policy::Read,
            200,
        ),
        (
            "GET",
            format!("/v1/organizations/acme/providers/{p}"),
            None,
            Policy::Read,
            200,
        ),
        (
            "PATCH",
            format!("/v1/organizations/acme/providers/{p}"),
            Some(json!({"address": "http://127.0.0.1:8200"})),
            Policy::Write,
            200,
        ),
        (
            "DELETE",
            "/v1/organizations/acme/providers/missing".into(),
            None,
            Policy::Write,
            404,
        ),
        (
            "POST",
            "/v1/organizations/acme/image-pull-secrets".into(),
            Some(
                json!({"name": "r-{c}", "registry": "quay.io", "username": "u", "password_secret": "stripe-api-key"}),
            ),
            Policy::Write,
            201,
        ),
        (
            "GET",
            "/v1/organizations/acme/image-pull-secrets".into(),
            None,
            Policy::Read,
            200,
        ),
        (
            "GET",
            format!("/v1/organizations/acme/image-pull-secrets/{i}"),
            None,
            Policy::Read,
            200,
        ),
        (
            "DELETE",
            "/v1/organizations/acme/image-pull-secrets/missing".into(),
            None,
            Policy::Write,
            404,
        ),
        (
            "POST",
            "/v1/organizations/acme/resolve".into(),
            Some(json!({"names": ["stripe-api-key"], "consumer": "llm/{c}"})),
            Policy::Resolve,
            200,
        ),
        (
            "GET",
            "/v1/organizations/acme/audit".into(),
            None,
            Policy::Write,
            200,
        ),
        ("GET", "/v1/namespaces".into(), None, Policy::AdminOnly, 200),
        (
            "PUT",
            "/v1/namespaces/team-{c}".into(),
            Some(json!({"organization": "acme"})),
            Policy::AdminOnly,
            201,
        ),
        (
            "GET",
            "/v1/namespaces/team-a".into(),
            None,
            Policy::AdminOnly,
            200,
        ),
        (
            "DELETE",
            "/v1/namespaces/unbound".into(),
            None,
            Policy::AdminOnly,
            404,
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, policy, ok) in &routes {
        for caller in CALLERS {
            let name = format!("{caller:?}").to_lowercase();
            let path = path.replace("{c}", &name);
            let body = body
                .as_ref()
                .map(|b| serde_json::from_str(&b.to_string().replace("{c}", &name)).unwrap());
            let reply = f.api(caller).send(method, &path, body).await;
            let want = policy.expected(caller, *ok);
            if reply.status != want {
                failures.push(format!(
                    "{method} {path} as {caller:?}: got {} want {want}: {}",
                    reply.status, reply.text
                ));
            }
            if reply.status >= 400 {
                assert!(
                    reply.body["error"]["code"].is_string(),
                    "{method} {path}: {}",
                    reply.text
                );
            }
            if !path.ends_with("/resolve") {
                assert!(
                    !reply.text.contains(VALUE),
                    "{method} {path} leaked a value"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn another_organizations_objects_look_missing() {
    let f = fixture(&TestDb::sqlite()).await;
    let other = f.api(Caller::OtherOwner);
    let owner = f.api(Caller::Owner);
    for path in [
        format!("/v1/organizations/acme/secrets/{}", f.secret_id),
        format!("/v1/organizations/acme/providers/{}", f.provider_id),
    ] {
        let foreign = other.get(&path).await;
        let missing = owner.get(&path.replace("acme", "no-such-org")).await;
        assert_eq!(foreign.status, 404);
        assert_eq!(foreign.body["error"]["code"], missing.body["error"]["code"]);
        assert_eq!(
            foreign.error_message(),
            missing.error_message().replace("no-such-org", "acme"),
            "the two 404s must read the same"
        );
    }
}

#[tokio::test]
async fn validation_and_error_bodies() {
    let server = Server::start(&TestDb::sqlite()).await;
    let owner = server.client_as(&server.seed("acme", "team-a", &[("existing", VALUE)]).await);
    let secrets = "/v1/organizations/acme/secrets";

    let r = owner
        .post(
            secrets,
            json!({"name": "a", "storage": "local", "value": "v", "colour": "red"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["field"], "colour");
    assert!(r.error_message().contains("colour"));

    for bad in ["UPPER", "-lead", "a_b", &"x".repeat(64)] {
        let r = owner
            .post(
                secrets,
                json!({"name": bad, "storage": "local", "value": "v"}),
            )
            .await;
        assert_eq!(r.status, 422, "{bad}");
        assert_eq!(r.body["error"]["field"], "name");
    }

    let r = owner
        .post(
            secrets,
            json!({"name": "existing", "storage": "local", "value": "v"}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"]["code"], "conflict");

    let r = owner
        .post(
            secrets,
            json!({"name": "b", "storage": "local", "value": "v", "provider_id": "x"}),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = owner
        .post(secrets, json!({"name": "b", "storage": "remote", "provider_id": "nope", "remote_path": "kv/data/x", "remote_key": "k"}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["field"], "provider_id");

    let raw = |body: Vec<u8>| {
        let owner = owner.clone();
        async move {
            // Its own connection: a server that refuses a body early closes it.
            let response = common::http()
                .post(format!("{}{secrets}", owner.base))
                .bearer_auth(owner.token.as_ref().unwrap())
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = raw(b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_request");
    let mut big = br#"{"name":"big","storage":"local","value":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', (1 << 20) + 10));
    big.extend(br#""}"#);
    let (status, body) = raw(big).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");

    let r = owner.get("/v1/nowhere").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "not_found");

    let r = server
        .client()
        .put(
            "/v1/namespaces/team-b",
            json!({"organization": "no-such-org"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["field"], "organization");

    let r = owner
        .post(
            "/v1/organizations/acme/providers",
            json!({"name": "meta", "kind": "vault", "address": "http://169.254.169.254", "auth": {"method": "token", "token_secret": "existing"}}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["field"], "address");
    assert!(r.error_message().contains("metadata"), "{}", r.text);
}

#[tokio::test]
async fn owners_cannot_mint_owners_and_tokens_are_shown_once() {
    let server = Server::start(&TestDb::sqlite()).await;
    let owner = server.client_as(&server.seed("acme", "team-a", &[]).await);
    let r = owner
        .post(
            "/v1/organizations/acme/tokens",
            json!({"name": "o2", "role": "owner"}),
        )
        .await;
    assert_eq!(r.status, 403);
    let created = owner
        .post(
            "/v1/organizations/acme/tokens",
            json!({"name": "ci", "role": "member"}),
        )
        .await
        .expect(201);
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("agyn_"));
    let listed = owner.get("/v1/organizations/acme/tokens").await.expect(200);
    assert!(!listed.to_string().contains(token));
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none())
    );
    let id = created["id"].as_str().unwrap();
    owner
        .delete(&format!("/v1/organizations/acme/tokens/{id}"))
        .await
        .expect(204);
    assert_eq!(server.client_as(token).get("/v1/whoami").await.status, 401);
}

/// The whole life of a secret on each database, across a restart, with the
/// value checked absent from every response but `resolve`, from the
/// database's bytes and from the trace-level log.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[needs(postgres)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn secret_lifecycle_persistence_and_no_leaks(#[case] backend: Backend) {
    let Some(db) = backend.db().await else {
        return;
    };
    let mut server = Server::start(&db).await;
    let owner_token = server
        .seed("acme", "team-a", &[("stripe-api-key", VALUE)])
        .await;
    let admin = server.client();
    let runtime = admin.create_token("acme", "proxy", "runtime").await;
    let mut responses = String::new();
    let owner = server.client_as(&owner_token);
    let secret = owner
        .get("/v1/organizations/acme/secrets/stripe-api-key")
        .await
        .expect(200);
    assert_eq!(secret["value_set"], true, "{}", db.label);
    assert_eq!(secret["version"], 1);
    assert!(secret.get("value").is_none());
    responses += &secret.to_string();

    let rotated = owner
        .patch(
            "/v1/organizations/acme/secrets/stripe-api-key",
            json!({"value": ROTATED}),
        )
        .await
        .expect(200);
    assert_eq!(rotated["version"], 2);
    responses += &rotated.to_string();

    server.restart().await;
    let owner = server.client_as(&owner_token);
    let listed = owner
        .get("/v1/organizations/acme/secrets")
        .await
        .expect(200);
    assert_eq!(
        listed["items"][0]["version"], 2,
        "{}: survives a restart",
        db.label
    );
    responses += &listed.to_string();
    let resolved = server
        .client_as(&runtime)
        .post(
            "/v1/organizations/acme/resolve",
            json!({"names": ["stripe-api-key"], "consumer": "llm/openai"}),
        )
        .await
        .expect(200);
    assert_eq!(
        resolved["values"]["stripe-api-key"], ROTATED,
        "{}",
        db.label
    );

    let refs = owner
        .get("/v1/organizations/acme/secrets/stripe-api-key/references")
        .await
        .expect(200);
    assert_eq!(refs["items"][0]["kind"], "runtime");
    assert_eq!(refs["items"][0]["consumer"], "llm/openai");
    let guarded = owner
        .delete("/v1/organizations/acme/secrets/stripe-api-key")
        .await;
    assert_eq!(guarded.status, 409);
    assert_eq!(guarded.body["references"][0]["kind"], "runtime");
    responses += &guarded.text;

    let audit = owner.get("/v1/organizations/acme/audit").await.expect(200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["secret.create", "secret.rotate", "secret.resolve"] {
        assert!(actions.contains(&action), "{actions:?}");
    }
    responses += &audit.to_string();

    for text in [VALUE, ROTATED] {
        assert!(
            !responses.contains(text),
            "{}: a response leaked a value",
            db.label
        );
        assert!(
            !server.logs().contains(text),
            "{}: the log leaked a value",
            db.label
        );
    }
    assert!(
        server.logs().contains("TRACE"),
        "the server must have run at trace level"
    );
    let dump = database_bytes(&server, &db);
    assert!(!dump.is_empty());
    for text in [VALUE, ROTATED] {
        assert!(
            !dump.windows(text.len()).any(|w| w == text.as_bytes()),
            "{}: plaintext found in the database",
            db.label
        );
    }

    owner
        .delete("/v1/organizations/acme/secrets/stripe-api-key?force=true")
        .await
        .expect(204);
    assert_eq!(
        owner
            .get("/v1/organizations/acme/secrets/stripe-api-key")
            .await
            .status,
        404
    );
}

/// Every byte the database keeps: the SQLite files, or a pg_dump.
fn database_bytes(server: &Server, db: &TestDb) -> Vec<u8> {
    match &db.url {
        None => {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(&server.data_dir).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("agyn-secrets.db")
                {
                    bytes.extend(std::fs::read(&path).unwrap());
                }
            }
            bytes
        }
        Some(url) => {
            let bin = std::env::var("AGYN_TEST_POSTGRES_BIN")
                .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
            let output = std::process::Command::new(format!("{bin}/pg_dump"))
                .arg("--data-only")
                .arg(url)
                .output()
                .expect("run pg_dump");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            output.stdout
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[needs(postgres)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn keys_rewrap_then_old_key_removed(#[case] backend: Backend) {
    let Some(db) = backend.db().await else {
        return;
    };
    let mut server = Server::start(&db).await;
    let owner = server
        .seed("acme", "team-a", &[("stripe-api-key", VALUE)])
        .await;
    let keyring = server.data_dir.join("keyring");
    let url = db.url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            server.data_dir.join("agyn-secrets.db").display()
        )
    });
    let run = |args: &[&str]| {
        let output = std::process::Command::new(common::BIN)
            .args(args)
            .env("AGYN_KEYRING_DIR", &keyring)
            .env("AGYN_DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(
        run(&["keys", "generate", "--id", "k2", "--primary"]).trim(),
        "k2"
    );
    let out = run(&["keys", "rewrap"]);
    assert!(
        out.contains("re-wrapped 1 data key(s)"),
        "{}: {out}",
        db.label
    );
    std::fs::remove_file(keyring.join("dev-1")).unwrap();
    server.restart().await;
    let runtime = server.client().create_token("acme", "rt", "runtime").await;
    let resolved = server
        .client_as(&runtime)
        .post(
            "/v1/organizations/acme/resolve",
            json!({"names": ["stripe-api-key"], "consumer": "check"}),
        )
        .await
        .expect(200);
    assert_eq!(resolved["values"]["stripe-api-key"], VALUE, "{}", db.label);
    let _ = owner;
}

#[tokio::test]
async fn start_up_refuses_a_broken_key_ring_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring");
    std::fs::create_dir_all(&keyring).unwrap();
    std::fs::write(keyring.join("k1"), "c2hvcnQ=\n").unwrap();
    std::fs::write(keyring.join("primary"), "k1\n").unwrap();
    let output = std::process::Command::new(common::BIN)
        .args(["serve", "--dev", "--data-dir"])
        .arg(dir.path())
        .args(["--api-addr", "127.0.0.1:0", "--webhook-addr", "127.0.0.1:0"])
        .args(["--exec-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("keyring/k1") && stderr.contains("decodes to 5 bytes"),
        "{stderr}"
    );

    std::fs::remove_file(keyring.join("primary")).unwrap();
    std::fs::write(
        keyring.join("k1"),
        "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n",
    )
    .unwrap();
    let output = std::process::Command::new(common::BIN)
        .args(["api", "--keyring-dir"])
        .arg(&keyring)
        .args([
            "--database-url",
            "sqlite::memory:",
            "--api-addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no `primary` file"), "{stderr}");
}

#[tokio::test]
async fn failed_authentication_is_limited_per_source() {
    let server = Server::start(&TestDb::sqlite()).await;
    let from = |ip: &str| {
        let http = common::http_builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        Api {
            http,
            ..server.client()
        }
    };
    let attacker = from("127.0.0.2");
    let forged = Api {
        token: Some("agyn_00000000000000000000000000000000_forged".into()),
        ..attacker.clone()
    };
    for _ in 0..10 {
        assert_eq!(forged.get("/v1/whoami").await.status, 401);
    }
    let limited = forged.get("/v1/whoami").await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert_eq!(limited.body["error"]["code"], "rate_limited");
    assert_eq!(
        attacker.get("/v1/whoami").await.status,
        200,
        "a valid token is never refused for others' failures from its address"
    );
    assert_eq!(
        forged.get("/v1/whoami").await.status,
        429,
        "failures still are"
    );
    // Another source is not affected.
    assert_eq!(from("127.0.0.3").get("/v1/whoami").await.status, 200);
    assert_eq!(server.client().get("/v1/whoami").await.status, 200);
}
