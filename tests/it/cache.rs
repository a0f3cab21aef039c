//! The admission path reads through a cache; a change made through one
//! replica must be what the very next admission on any replica sees.

use crate::common;
use crate::common::openbao;

use common::{Backend, Server, apply_patch, fixture, needs};
use openbao::OpenBao;
use rstest::rstest;
use serde_json::json;

const REMOTE_VALUE: &str = "sk_live_cache_remote_7b2e41";

/// The message of a denied admission, or "" for an allowed one.
fn denial_message(answer: &serde_json::Value) -> &str {
    answer["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
}

/// Sets a local secret's value in organization acme through `server`.
async fn set_value(server: &Server, secret: &str, value: &str) {
    server
        .client()
        .patch(
            &format!("/v1/organizations/acme/secrets/{secret}"),
            json!({ "value": value }),
        )
        .await
        .expect(200);
}

fn value_of(server_answer: &serde_json::Value, review: &serde_json::Value) -> String {
    let patched = apply_patch(&review["request"]["object"], server_answer);
    patched["spec"]["containers"][0]["env"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[needs(postgres, bao)]
#[tokio::test]
async fn two_replicas_on_one_postgres_see_every_change_at_once() {
    let Some(db) = Backend::Postgres.db().await else {
        return;
    };
    let a = Server::start(&db).await;
    a.seed("acme", "team-a", &[("stripe-api-key", "v1")]).await;
    let keyring = a.data_dir.join("keyring");
    let b = Server::start_with(&db, &["--keyring-dir", keyring.to_str().unwrap()], &[]).await;
    let review = fixture("pod-envfrom-only.json");

    // Warm B's cache, then change the value through A, many times over.
    assert_eq!(value_of(&b.review(&review).await, &review), "v1");
    for round in 2..=20 {
        let value = format!("v{round}");
        set_value(&a, "stripe-api-key", &value).await;
        assert_eq!(
            value_of(&b.review(&review).await, &review),
            value,
            "B after a rotation through A"
        );
        assert_eq!(
            value_of(&a.review(&review).await, &review),
            value,
            "A after its own rotation"
        );
    }

    // A provider edited through A is what B's next remote read uses. Both
    // addresses refuse connections, and the denial names the one used.
    let [first, second] = [common::free_port(), common::free_port()];
    let token = json!({"name": "bao-token", "storage": "local", "value": "s.token"});
    a.client()
        .post("/v1/organizations/acme/secrets", token)
        .await
        .expect(201);
    let provider = a
        .client()
        .post(
            "/v1/organizations/acme/providers",
            json!({"name": "bao", "kind": "vault", "address": format!("http://127.0.0.1:{first}"),
                   "auth": {"method": "token", "token_secret": "bao-token"}}),
        )
        .await
        .expect(201);
    let remote = json!({"name": "remote-key", "storage": "remote", "provider_id": provider["id"],
                        "remote_path": "secret/data/app", "remote_key": "value"});
    a.client()
        .post("/v1/organizations/acme/secrets", remote)
        .await
        .expect(201);
    let mut remote_review = review.clone();
    remote_review["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] =
        json!("REMOTE=remote-key");
    let provider_path = format!(
        "/v1/organizations/acme/providers/{}",
        provider["id"].as_str().unwrap()
    );
    for (port, through) in [(first, &a), (second, &a), (first, &b)] {
        through
            .client()
            .patch(
                &provider_path,
                json!({"address": format!("http://127.0.0.1:{port}")}),
            )
            .await
            .expect(200);
        for replica in [&a, &b] {
            let answer = replica.review(&remote_review).await;
            let message = denial_message(&answer);
            assert!(
                message.contains(&format!(
                    "cannot reach the provider at http://127.0.0.1:{port} "
                )),
                "{answer}"
            );
        }
    }

    // A provider credential is read through the cache too: rotated through
    // A, it is what B's next remote read sends.
    if let Some(bao) = OpenBao::start().await {
        bao.reader_policy("reader").await;
        bao.put_v2("app", json!({"value": REMOTE_VALUE})).await;
        a.client()
            .patch(&provider_path, json!({"address": bao.addr}))
            .await
            .expect(200);
        let answer = b.review(&remote_review).await;
        let message = denial_message(&answer);
        assert!(
            message.contains("permission denied reading secret/data/app"),
            "{answer}"
        );
        let token = bao.create_token(&["reader"], "1h").await;
        set_value(&a, "bao-token", &token).await;
        assert_eq!(
            value_of(&b.review(&remote_review).await, &remote_review),
            REMOTE_VALUE,
            "B after the credential was rotated through A"
        );
    }

    // Unbinding through B is seen by A's next admission.
    b.client().delete("/v1/namespaces/team-a").await.expect(204);
    let answer = a.review(&review).await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");

    // A secret deleted through A is gone for B.
    b.client()
        .put("/v1/namespaces/team-a", json!({"organization": "acme"}))
        .await
        .expect(201);
    assert_eq!(b.review(&review).await["response"]["allowed"], true);
    a.client()
        .delete("/v1/organizations/acme/secrets/stripe-api-key?force=true")
        .await
        .expect(204);
    let answer = b.review(&review).await;
    let message = denial_message(&answer);
    assert!(
        message.contains("secret \"stripe-api-key\" not found"),
        "{answer}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[needs(postgres)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn one_process_sees_its_own_changes_at_once(#[case] backend: Backend) {
    let Some(db) = backend.db().await else {
        return;
    };
    let server = Server::start(&db).await;
    server.seed("acme", "team-a", &[]).await;
    let review = fixture("pod-envfrom-only.json");
    // Absent first (cached as absent), then created: the next admission has it.
    assert_eq!(server.review(&review).await["response"]["allowed"], false);
    server
        .client()
        .post(
            "/v1/organizations/acme/secrets",
            json!({"name": "stripe-api-key", "storage": "local", "value": "created"}),
        )
        .await
        .expect(201);
    assert_eq!(
        value_of(&server.review(&review).await, &review),
        "created",
        "{}",
        db.label
    );
}
