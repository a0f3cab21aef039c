//! Remote secrets against a real moto server playing AWS Secrets Manager
//! and STS: static keys and web identity, JSON keys and whole strings, a
//! new version reaching the next pod, what a pod is told when a secret, a
//! key or the endpoint is missing, and one pod taking values from AWS and
//! OpenBao at once. moto accepts any access key, so a wrong key is not
//! tested here.

use crate::common;
use crate::common::moto;
use crate::common::openbao;
use crate::common::remote;

use std::time::Duration;

use common::{Api, Server, needs};
use moto::{ACCESS_KEY_ID, Moto, REGION, SECRET_ACCESS_KEY};
use openbao::{OpenBao, ROOT_TOKEN, SlowProxy};
use remote::{
    ORG, admit, assert_never_exposed, check, counter, denied, errors, local_secret, remote_secret,
    resolve, runtime,
};
use serde_json::{Value, json};

const DB_PASSWORD: &str = "aws-db-pass-7c2e91f4";
const DB_USER: &str = "app-user-3b8d";
const API_TOKEN_V1: &str = "tok_live_aws_5e0a41bd";
const API_TOKEN_V2: &str = "tok_live_aws_rotated_9a27c3";

/// moto, the product, and an owner of organization `acme`; `None` when
/// moto is not installed.
async fn setup(args: &[&str]) -> Option<(Moto, Server, Api)> {
    let moto = Moto::start().await?;
    let (server, owner) = remote::start(args).await;
    Some((moto, server, owner))
}

async fn create_provider(api: &Api, body: Value) -> common::Reply {
    api.post(&format!("/v1/organizations/{ORG}/providers"), body)
        .await
}

/// A provider `name` signing with the test access key, whose secret is the
/// local secret `aws-secret-key`; answers its id.
async fn static_provider(owner: &Api, name: &str, endpoint: &str) -> String {
    if owner
        .get(&format!("/v1/organizations/{ORG}/secrets/aws-secret-key"))
        .await
        .status
        == 404
    {
        local_secret(owner, "aws-secret-key", SECRET_ACCESS_KEY).await;
    }
    let body = json!({
        "name": name,
        "kind": "aws-secrets-manager",
        "region": REGION,
        "endpoint": endpoint,
        "sts_endpoint": endpoint,
        "auth": {
            "method": "static",
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key_secret": "aws-secret-key",
        },
    });
    create_provider(owner, body).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `prod/db` (a JSON object) and `prod/api-token` (a plain string).
async fn seed_values(moto: &Moto) -> String {
    let arn = moto
        .create_json_secret(
            "prod/db",
            json!({"username": DB_USER, "password": DB_PASSWORD}),
        )
        .await;
    moto.create_secret("prod/api-token", API_TOKEN_V1).await;
    arn
}

#[needs(moto)]
#[tokio::test]
async fn static_keys_read_json_keys_and_whole_strings_at_every_start() {
    let Some((moto, server, owner)) = setup(&[]).await else {
        return;
    };
    let arn = seed_values(&moto).await;
    let id = static_provider(&owner, "aws", &moto.endpoint).await;
    // provider_id takes the provider's id or its name; the id is kept.
    remote_secret(&owner, "db-password", &id, "prod/db", "password").await;
    remote_secret(&owner, "db-user", "aws", &arn, "username").await;
    remote_secret(&owner, "api-token", "aws", "prod/api-token", None).await;
    let shown = owner
        .get(&format!("/v1/organizations/{ORG}/secrets/api-token"))
        .await
        .expect(200);
    assert_eq!(shown["provider_id"], id.as_str(), "{shown}");
    assert_eq!(shown["remote_key"], Value::Null, "{shown}");

    let env = admit(
        &server,
        "DB_PASSWORD=db-password,DB_USER=db-user,API_TOKEN=api-token",
    )
    .await
    .unwrap();
    assert_eq!(env["DB_PASSWORD"], DB_PASSWORD);
    assert_eq!(env["DB_USER"], DB_USER);
    assert_eq!(env["API_TOKEN"], API_TOKEN_V1);

    // AWSCURRENT is read at every start: a new version reaches the next pod.
    moto.put_value("prod/api-token", API_TOKEN_V2).await;
    let env = admit(&server, "API_TOKEN=api-token").await.unwrap();
    assert_eq!(env["API_TOKEN"], API_TOKEN_V2);

    let runtime = runtime(&server, &owner).await;
    let values = resolve(&runtime, &["db-password", "api-token"])
        .await
        .expect(200);
    assert_eq!(values["values"]["db-password"], DB_PASSWORD, "{values}");
    assert_eq!(values["values"]["api-token"], API_TOKEN_V2, "{values}");

    let result = check(&owner, &id).await.expect(200);
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(
        result["message"],
        format!(
            "aws-secrets-manager provider \"aws\": reachable; access key {ACCESS_KEY_ID} is accepted"
        )
    );
    assert!(counter(&server, "agyn_provider_requests_total", "acme/aws").await >= 6.0);

    assert_never_exposed(
        &server,
        &[
            DB_PASSWORD,
            DB_USER,
            API_TOKEN_V1,
            API_TOKEN_V2,
            SECRET_ACCESS_KEY,
        ],
    )
    .await;
}

#[needs(moto)]
#[tokio::test]
async fn web_identity_assumes_a_role_through_sts_once_for_many_pods() {
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("web-identity-token");
    let token = openbao::service_account_jwt("agyn-secrets", "agyn-secrets", "9d0e-irsa");
    common::record_secret(&token);
    std::fs::write(&token_path, &token).unwrap();
    let flag = token_path.to_str().unwrap();
    let Some((moto, server, owner)) = setup(&["--web-identity-token-file", flag]).await else {
        return;
    };
    seed_values(&moto).await;
    let body = json!({
        "name": "aws-irsa",
        "kind": "aws-secrets-manager",
        "region": REGION,
        "endpoint": moto.endpoint,
        "sts_endpoint": moto.endpoint,
        "auth": {"method": "web-identity", "role_arn": "arn:aws:iam::123456789012:role/agyn-secrets"},
    });
    // The product's own identity is shared by every organization: only a
    // platform admin may point it at a role.
    let refused = create_provider(&owner, body.clone()).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.error_message().contains("only a platform admin"));
    let admin = server.client();
    let id = create_provider(&admin, body).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    remote_secret(&owner, "db-password", &id, "prod/db", "password").await;

    for _ in 0..3 {
        let env = admit(&server, "DB_PASSWORD=db-password").await.unwrap();
        assert_eq!(env["DB_PASSWORD"], DB_PASSWORD);
    }
    assert_eq!(
        counter(&server, "agyn_provider_logins_total", "acme/aws-irsa").await,
        1.0,
        "assumed credentials serve every pod until shortly before they expire"
    );
    let result = check(&owner, &id).await.expect(200);
    assert_eq!(result["ok"], true, "{result}");
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .ends_with("reachable; assumed role arn:aws:iam::123456789012:role/agyn-secrets with the web identity token"),
        "{result}"
    );

    // Without its token file, a new provider says which flag names it.
    std::fs::remove_file(&token_path).unwrap();
    let body = json!({
        "name": "aws-no-token",
        "kind": "aws-secrets-manager",
        "region": REGION,
        "endpoint": moto.endpoint,
        "sts_endpoint": moto.endpoint,
        "auth": {"method": "web-identity", "role_arn": "arn:aws:iam::123456789012:role/agyn-secrets"},
    });
    let no_token = create_provider(&admin, body).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let result = check(&owner, &no_token).await.expect(200);
    assert_eq!(result["ok"], false);
    assert!(
        result["message"].as_str().unwrap().contains(&format!(
            "cannot read the web identity token at {flag} (--web-identity-token-file)"
        )),
        "{result}"
    );

    assert_never_exposed(&server, &[DB_PASSWORD, &token]).await;
}

#[needs(moto)]
#[tokio::test]
async fn a_missing_secret_key_or_deleted_secret_denies_saying_what_to_fix() {
    let Some((moto, server, owner)) = setup(&[]).await else {
        return;
    };
    seed_values(&moto).await;
    moto.create_secret("prod/old", "old-value-4d1f0a").await;
    moto.delete_secret("prod/old").await;
    let id = static_provider(&owner, "aws", &moto.endpoint).await;
    remote_secret(&owner, "nowhere", &id, "prod/nope", None).await;
    remote_secret(&owner, "wrong-key", &id, "prod/db", "passwd").await;
    remote_secret(&owner, "keyed-plain", &id, "prod/api-token", "value").await;
    remote_secret(&owner, "old", &id, "prod/old", None).await;
    // Without a key, a JSON secret is handed over whole.
    remote_secret(&owner, "db-json", &id, "prod/db", None).await;

    let label = "aws-secrets-manager provider \"aws\"";
    let cases = [
        (
            "nowhere",
            format!(
                "{label}: reading prod/nope: no such secret in {REGION}, or it has no current version"
            ),
        ),
        (
            "wrong-key",
            format!(
                "{label}: key \"passwd\" not found in secret \"prod/db\" (keys: password, username)"
            ),
        ),
        (
            "keyed-plain",
            format!(
                "{label}: secret \"prod/api-token\" holds a plain string, not a JSON object; leave remote_key out to take it whole"
            ),
        ),
        (
            "old",
            format!(
                "{label}: reading prod/old: the secret is marked for deletion; restore it, or repoint the secret"
            ),
        ),
    ];
    for (secret, expected) in &cases {
        let message = denied(admit(&server, &format!("VALUE={secret}")).await);
        assert!(message.contains(expected.as_str()), "{secret}: {message}");
    }
    let env = admit(&server, "DB=db-json").await.unwrap();
    let whole: Value = serde_json::from_str(&env["DB"]).unwrap();
    assert_eq!(whole["password"], DB_PASSWORD);

    assert_eq!(errors(&server, "acme/aws", "not_found").await, 1.0);
    assert_eq!(errors(&server, "acme/aws", "missing_key").await, 2.0);
    assert_eq!(errors(&server, "acme/aws", "deleted").await, 1.0);
    assert_never_exposed(
        &server,
        &[
            DB_PASSWORD,
            API_TOKEN_V1,
            "old-value-4d1f0a",
            SECRET_ACCESS_KEY,
        ],
    )
    .await;
}

#[needs(moto)]
#[tokio::test]
async fn an_endpoint_down_or_hung_denies_in_time_and_recovers() {
    let Some((mut moto, server, owner)) = setup(&["--provider-timeout", "1s"]).await else {
        return;
    };
    seed_values(&moto).await;
    let proxy = SlowProxy::start(moto.port, Duration::from_secs(3)).await;
    let id = static_provider(&owner, "aws", &proxy.addr).await;
    remote_secret(&owner, "api-token", &id, "prod/api-token", None).await;
    admit(&server, "API_TOKEN=api-token").await.unwrap();

    proxy.set_slow(true);
    let message = denied(admit(&server, "API_TOKEN=api-token").await);
    assert_eq!(
        message,
        "aws-secrets-manager provider \"aws\": reading prod/api-token: timed out after 1s"
    );
    proxy.set_slow(false);
    let env = admit(&server, "API_TOKEN=api-token").await.unwrap();
    assert_eq!(env["API_TOKEN"], API_TOKEN_V1);

    moto.stop();
    let message = denied(admit(&server, "API_TOKEN=api-token").await);
    assert_eq!(
        message,
        format!(
            "aws-secrets-manager provider \"aws\": reading prod/api-token: cannot reach the provider at {} (check the address, the network path and, for https, its ca_pem)",
            proxy.addr
        )
    );
    assert_eq!(errors(&server, "acme/aws", "timeout").await, 1.0);
    assert_eq!(errors(&server, "acme/aws", "unreachable").await, 1.0);
}

#[needs(moto)]
#[tokio::test]
async fn a_secret_that_holds_the_providers_own_key_is_never_handed_out() {
    use base64::Engine;
    let Some((moto, server, owner)) = setup(&[]).await else {
        return;
    };
    let id = static_provider(&owner, "aws", &moto.endpoint).await;
    let encoded = base64::engine::general_purpose::STANDARD.encode(SECRET_ACCESS_KEY);
    moto.create_json_secret("prod/echo", json!({"creds": format!("aws:{encoded}")}))
        .await;
    remote_secret(&owner, "echo", &id, "prod/echo", "creds").await;
    let message = denied(admit(&server, "ECHO=echo").await);
    assert_eq!(
        message,
        "aws-secrets-manager provider \"aws\": secret \"prod/echo\" holds the provider's own credentials, which are never handed out"
    );
    assert_never_exposed(&server, &[SECRET_ACCESS_KEY, &encoded]).await;
}

#[needs(moto, bao)]
#[tokio::test]
async fn one_pod_takes_values_from_aws_and_openbao_at_once() {
    let Some((moto, server, owner)) = setup(&[]).await else {
        return;
    };
    let Some(bao) = OpenBao::start().await else {
        return;
    };
    seed_values(&moto).await;
    let stripe = "sk_live_bao_mixed_61c0e2";
    bao.put_v2("prod/stripe", json!({"value": stripe})).await;
    let aws = static_provider(&owner, "aws", &moto.endpoint).await;
    local_secret(&owner, "bao-token", ROOT_TOKEN).await;
    let vault = create_provider(
        &owner,
        json!({"name": "bao", "kind": "vault", "address": bao.addr,
               "auth": {"method": "token", "token_secret": "bao-token"}}),
    )
    .await
    .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    remote_secret(&owner, "db-password", &aws, "prod/db", "password").await;
    remote_secret(&owner, "stripe", &vault, "secret/data/prod/stripe", "value").await;
    local_secret(&owner, "local-flag", "local-value-0b5c").await;

    let env = admit(
        &server,
        "DB_PASSWORD=db-password,STRIPE=stripe,FLAG=local-flag",
    )
    .await
    .unwrap();
    assert_eq!(env["DB_PASSWORD"], DB_PASSWORD);
    assert_eq!(env["STRIPE"], stripe);
    assert_eq!(env["FLAG"], "local-value-0b5c");
    assert_never_exposed(&server, &[DB_PASSWORD, stripe, SECRET_ACCESS_KEY]).await;
}
