//! Namespace fences: a secret with `allowed_namespaces` reaches pods in
//! those namespaces only, through every delivery and as an image pull
//! secret's password; the API sets, shows and audits the fence.

use crate::common;

use common::{Backend, Server, needs, review_with_env};
use rstest::rstest;
use serde_json::{Value, json};

const DB_PASSWORD: &str = "FencedDbPassword-4471";

/// The review of a pod in `namespace` that asks for `env`.
fn review_in(namespace: &str, env: &str, uid: &str) -> Value {
    let mut review = review_with_env("pod-env-value.json", env, uid);
    review["request"]["namespace"] = json!(namespace);
    review["request"]["object"]["metadata"]["namespace"] = json!(namespace);
    review
}

fn denial(answer: &Value) -> String {
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    answer["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `acme` with namespaces team-a-prod, team-a-dev and ops bound, and three
/// secrets: one fenced to team-a-prod, one to the glob team-a-*, one open.
async fn setup(server: &Server) -> String {
    let owner = server.seed("acme", "team-a-prod", &[]).await;
    for namespace in ["team-a-dev", "ops"] {
        server
            .client()
            .put(
                &format!("/v1/namespaces/{namespace}"),
                json!({"organization": "acme"}),
            )
            .await
            .expect_ok();
    }
    let api = server.client_as(&owner);
    let created = api
        .post(
            "/v1/organizations/acme/secrets",
            json!({"name": "db-password", "value": DB_PASSWORD, "allowed_namespaces": ["team-a-prod"]}),
        )
        .await
        .expect(201);
    assert_eq!(created["allowed_namespaces"], json!(["team-a-prod"]));
    api.post(
        "/v1/organizations/acme/secrets",
        json!({"name": "team-token", "value": "TeamToken-5", "allowed_namespaces": ["team-a-*"]}),
    )
    .await
    .expect(201);
    let open = api
        .post(
            "/v1/organizations/acme/secrets",
            json!({"name": "open", "value": "OpenValue-6"}),
        )
        .await
        .expect(201);
    assert_eq!(open["allowed_namespaces"], json!([]));
    owner
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[needs(postgres)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_api_sets_shows_and_audits_a_fence(#[case] backend: Backend) {
    let Some(db) = backend.db().await else {
        return;
    };
    let server = Server::start(&db).await;
    let owner = setup(&server).await;
    let api = server.client_as(&owner);

    for bad in [
        json!(["Team-A"]),
        json!(["a,b"]),
        json!([""]),
        json!("team-a"),
    ] {
        let reply = api
            .post(
                "/v1/organizations/acme/secrets",
                json!({"name": "bad", "value": "x", "allowed_namespaces": bad}),
            )
            .await;
        assert!(
            reply.status == 422 || reply.status == 400,
            "{bad}: {}",
            reply.status
        );
        if reply.status == 422 {
            assert_eq!(reply.field(), Some("allowed_namespaces"), "{bad}");
        }
    }
    api.get("/v1/organizations/acme/secrets/bad")
        .await
        .expect(404);

    // A fence alone changes no version, is tidied, and is audited.
    let fenced = api
        .patch(
            "/v1/organizations/acme/secrets/open",
            json!({"allowed_namespaces": ["ops", "team-a-prod", "ops"]}),
        )
        .await
        .expect(200);
    assert_eq!(fenced["allowed_namespaces"], json!(["ops", "team-a-prod"]));
    assert_eq!(fenced["version"], 1);
    // With a rotation, in the same write.
    let rotated = api
        .patch(
            "/v1/organizations/acme/secrets/open",
            json!({"value": "OpenValue-7", "allowed_namespaces": []}),
        )
        .await
        .expect(200);
    assert_eq!(rotated["allowed_namespaces"], json!([]));
    assert_eq!(rotated["version"], 2);
    let listed = api.all_pages("/v1/organizations/acme/secrets", 10).await;
    let fences: Vec<(&str, &Value)> = listed
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), &s["allowed_namespaces"]))
        .collect();
    assert_eq!(
        fences,
        [
            ("db-password", &json!(["team-a-prod"])),
            ("open", &json!([])),
            ("team-token", &json!(["team-a-*"])),
        ]
    );
    let audit = api.get("/v1/organizations/acme/audit").await.expect(200);
    let fence_events = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "secret.fence" && e["target_name"] == "open")
        .count();
    assert_eq!(fence_events, 2, "{audit}");

    // The audit log of one secret, by name or id, newest first.
    let by_name = api
        .get("/v1/organizations/acme/audit?secret=open")
        .await
        .expect(200);
    let mut actions: Vec<&str> = by_name["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.last(), Some(&"secret.create"), "{by_name}");
    // A rotation and its fence share a millisecond: compare as a set.
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "secret.create",
            "secret.fence",
            "secret.fence",
            "secret.rotate"
        ],
        "{by_name}"
    );
    let id = rotated["id"].as_str().unwrap();
    let by_id = api
        .get(&format!("/v1/organizations/acme/audit?secret={id}"))
        .await
        .expect(200);
    assert_eq!(by_id["items"], by_name["items"]);
}

#[tokio::test]
async fn a_pod_outside_a_fence_is_denied_and_one_inside_gets_its_value() {
    let server = Server::start(&common::sqlite()).await;
    let owner = setup(&server).await;

    let answer = server
        .review(&review_in(
            "team-a-prod",
            "DB=db-password,T=team-token",
            "in",
        ))
        .await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let patched = common::apply_patch(
        &review_in("team-a-prod", "", "x")["request"]["object"],
        &answer,
    );
    let env = &patched["spec"]["containers"][0]["env"];
    assert!(env.to_string().contains(DB_PASSWORD), "{env}");

    let message = denial(
        &server
            .review(&review_in(
                "team-a-dev",
                "DB=db-password,T=team-token,O=open",
                "dev",
            ))
            .await,
    );
    assert!(
        message.contains(
            r#"secret "db-password" may not be used in namespace "team-a-dev" (allowed: team-a-prod)"#
        ),
        "{message}"
    );
    assert!(
        !message.contains("team-token"),
        "the glob lets team-a-dev in: {message}"
    );

    let message = denial(
        &server
            .review(&review_in("ops", "T=team-token,DB=db-password", "ops"))
            .await,
    );
    assert!(
        message.contains(
            r#"secret "team-token" may not be used in namespace "ops" (allowed: team-a-*)"#
        ) && message.contains(r#"secret "db-password" may not be used in namespace "ops""#),
        "every fenced secret is named: {message}"
    );

    // Image pull secrets whose password is fenced follow the same rule.
    let api = server.client_as(&owner);
    api.post(
        "/v1/organizations/acme/image-pull-secrets",
        json!({"name": "ghcr", "registry": "ghcr.io", "username": "bot", "password_secret": "db-password"}),
    )
    .await
    .expect(201);
    let mut review = review_in("team-a-dev", "O=open", "pull");
    review["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/image-pull-secrets"] =
        json!("ghcr");
    let message = denial(&server.review(&review).await);
    assert!(
        message.contains(r#"secret "db-password" may not be used in namespace "team-a-dev""#),
        "{message}"
    );

    // Lifting the fence lets the pod in; `resolve` was never fenced.
    api.patch(
        "/v1/organizations/acme/secrets/db-password",
        json!({"allowed_namespaces": []}),
    )
    .await
    .expect(200);
    let answer = server
        .review(&review_in("team-a-dev", "DB=db-password", "lifted"))
        .await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    api.patch(
        "/v1/organizations/acme/secrets/db-password",
        json!({"allowed_namespaces": ["nowhere"]}),
    )
    .await
    .expect(200);
    let runtime = server
        .client()
        .create_token("acme", "proxy", "runtime")
        .await;
    let values = server
        .client_as(&runtime)
        .post(
            "/v1/organizations/acme/resolve",
            json!({"names": ["db-password"], "consumer": "llm-proxy"}),
        )
        .await
        .expect(200);
    assert_eq!(values["values"]["db-password"], DB_PASSWORD);
    assert!(!server.logs().contains(DB_PASSWORD));
}
