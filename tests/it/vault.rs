//! Remote secrets against a real OpenBao dev server: KV v2 and v1 reads
//! through admission and the runtime `resolve` endpoint, token, AppRole and
//! Kubernetes auth, renewal of short-lived tokens, and what a pod is told
//! when the provider is sealed, stopped, slow or has no value.

use crate::common;
use crate::common::openbao;
use crate::common::remote;

use std::time::{Duration, Instant};

use common::{Api, Server, needs};
use openbao::{OpenBao, ROOT_TOKEN, SlowProxy, TokenReviews, service_account_jwt};
use remote::{
    ORG, admit, assert_never_exposed, check, counter, denied, errors, local_secret, remote_secret,
    resolve, runtime,
};
use serde_json::{Value, json};

const STRIPE_V1: &str = "sk_live_bao_4f9c2a71e0";
const STRIPE_V2: &str = "sk_live_bao_rotated_83d1b6";
const DB_PASSWORD: &str = "pg-bao-pass-5e7a9d";

/// OpenBao, the product, and an owner of organization `acme` (bound to
/// namespace `team-a`); `None` when `bao` is not installed.
async fn setup(args: &[&str]) -> Option<(OpenBao, Server, Api)> {
    let bao = OpenBao::start().await?;
    let (server, owner) = remote::start(args).await;
    Some((bao, server, owner))
}

/// A provider with `auth`; answers its id.
async fn provider(owner: &Api, name: &str, address: &str, auth: Value) -> String {
    owner
        .post(
            &format!("/v1/organizations/{ORG}/providers"),
            json!({"name": name, "kind": "vault", "address": address, "auth": auth}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A token-auth provider whose token is the local secret `<name>-token`.
async fn token_provider(owner: &Api, name: &str, address: &str, token: &str) -> String {
    let secret = format!("{name}-token");
    local_secret(owner, &secret, token).await;
    provider(
        owner,
        name,
        address,
        json!({"method": "token", "token_secret": secret}),
    )
    .await
}

/// `stripe-api-key`, read from `secret/data/prod/stripe` key `value`.
async fn stripe_from(owner: &Api, provider_id: &str) {
    remote_secret(
        owner,
        "stripe-api-key",
        provider_id,
        "secret/data/prod/stripe",
        "value",
    )
    .await;
}

/// A provider `bao` logging in with AppRole; the secret id is kept in the
/// local secret `approle-secret-id`.
async fn approle_provider(owner: &Api, address: &str, role_id: &str, secret_id: &str) -> String {
    local_secret(owner, "approle-secret-id", secret_id).await;
    provider(
        owner,
        "bao",
        address,
        json!({"method": "approle", "role_id": role_id, "secret_id_secret": "approle-secret-id"}),
    )
    .await
}

#[needs(bao)]
#[tokio::test]
async fn kv_v2_and_v1_values_reach_pods_and_a_rotation_reaches_the_next_pod() {
    let Some((bao, server, owner)) = setup(&[]).await else {
        return;
    };
    bao.reader_policy("reader").await;
    bao.mount_kv1("kv1").await;
    bao.put_v2("prod/stripe", json!({"value": STRIPE_V1})).await;
    bao.must(
        "POST",
        "kv1/prod/db",
        Some(json!({"user": "app", "password": DB_PASSWORD})),
    )
    .await;
    let token = bao.create_token(&["reader"], "1h").await;
    let id = token_provider(&owner, "bao", &bao.addr, &token).await;
    stripe_from(&owner, &id).await;
    remote_secret(&owner, "db-password", &id, "kv1/prod/db", "password").await;
    remote_secret(&owner, "db-user", &id, "kv1/prod/db", "user").await;
    let annotation = "STRIPE=stripe-api-key,DB_PASSWORD=db-password,DB_USER=db-user";

    let env = admit(&server, annotation).await.unwrap();
    assert_eq!(env["STRIPE"], STRIPE_V1);
    assert_eq!(env["DB_PASSWORD"], DB_PASSWORD);
    assert_eq!(env["DB_USER"], "app");

    // Three secrets on two paths: two reads per admission.
    let before = counter(&server, "agyn_provider_requests_total", "acme/bao").await;
    admit(&server, annotation).await.unwrap();
    let after = counter(&server, "agyn_provider_requests_total", "acme/bao").await;
    assert_eq!(after - before, 2.0);

    bao.put_v2("prod/stripe", json!({"value": STRIPE_V2})).await;
    let env = admit(&server, annotation).await.unwrap();
    assert_eq!(
        env["STRIPE"], STRIPE_V2,
        "the next pod gets the new version"
    );

    let runtime = runtime(&server, &owner).await;
    let values = resolve(&runtime, &["stripe-api-key", "db-password"])
        .await
        .expect(200);
    assert_eq!(values["values"]["stripe-api-key"], STRIPE_V2);
    assert_eq!(values["values"]["db-password"], DB_PASSWORD);

    // A provider with a namespace sends X-Vault-Namespace.
    bao.must("POST", "sys/namespaces/ns1", None).await;
    let (status, _) = bao
        .call(
            "POST",
            "ns1/sys/mounts/secret",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    assert_eq!(status, 204);
    bao.must(
        "POST",
        "ns1/secret/data/app",
        Some(json!({"data": {"key": "namespaced-value-71c3"}})),
    )
    .await;
    local_secret(&owner, "bao-root", ROOT_TOKEN).await;
    let namespaced = owner
        .post(
            &format!("/v1/organizations/{ORG}/providers"),
            json!({
                "name": "bao-ns1", "kind": "vault", "address": bao.addr, "namespace": "ns1",
                "auth": {"method": "token", "token_secret": "bao-root"},
            }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    remote_secret(&owner, "namespaced", &namespaced, "secret/data/app", "key").await;
    let env = admit(&server, "NS_VALUE=namespaced").await.unwrap();
    assert_eq!(env["NS_VALUE"], "namespaced-value-71c3");

    assert_never_exposed(
        &server,
        &[
            STRIPE_V1,
            STRIPE_V2,
            DB_PASSWORD,
            &token,
            "namespaced-value-71c3",
        ],
    )
    .await;
}

#[needs(bao)]
#[tokio::test]
async fn missing_deleted_and_destroyed_values_deny_naming_provider_and_path() {
    let Some((bao, server, owner)) = setup(&[]).await else {
        return;
    };
    bao.reader_policy("reader").await;
    bao.mount_kv1("kv1").await;
    bao.put_v2("prod/deleted", json!({"value": "deleted-value-0a1b"}))
        .await;
    bao.must("DELETE", "secret/data/prod/deleted", None).await;
    bao.put_v2("prod/destroyed", json!({"value": "destroyed-value-2c3d"}))
        .await;
    bao.must(
        "PUT",
        "secret/destroy/prod/destroyed",
        Some(json!({"versions": [1]})),
    )
    .await;
    bao.must(
        "POST",
        "kv1/prod/db",
        Some(json!({"user": "app", "password": DB_PASSWORD})),
    )
    .await;
    let token = bao.create_token(&["reader"], "1h").await;
    let id = token_provider(&owner, "vault-prod", &bao.addr, &token).await;

    let cases = [
        (
            "missing",
            "secret/data/prod/nothing",
            "value",
            "no value at secret/data/prod/nothing (the path does not exist)",
        ),
        (
            "deleted",
            "secret/data/prod/deleted",
            "value",
            "no value at secret/data/prod/deleted: the latest version (1) was deleted",
        ),
        (
            "destroyed",
            "secret/data/prod/destroyed",
            "value",
            "no value at secret/data/prod/destroyed: the latest version (1) was destroyed",
        ),
        (
            "missing-key",
            "kv1/prod/db",
            "passwd",
            "key \"passwd\" not found at kv1/prod/db (keys: password, user)",
        ),
        (
            "not-allowed",
            "other/data/x",
            "value",
            "permission denied reading other/data/x",
        ),
        (
            "own-token",
            "auth/token/lookup-self",
            "id",
            "auth/token/lookup-self answers with the provider's own token",
        ),
    ];
    for (name, path, key, _) in &cases {
        remote_secret(&owner, name, &id, path, *key).await;
    }
    let runtime = runtime(&server, &owner).await;
    for (name, _, _, expected) in &cases {
        let message = denied(admit(&server, &format!("VALUE={name}")).await);
        assert!(
            message.starts_with("vault provider \"vault-prod\": "),
            "{message}"
        );
        assert!(message.contains(expected), "{name}: {message}");
        let reply = resolve(&runtime, &[name]).await;
        assert_eq!(reply.status, 502, "{}", reply.text);
        assert_eq!(reply.error_message(), message);
    }

    assert_never_exposed(
        &server,
        &[
            "deleted-value-0a1b",
            "destroyed-value-2c3d",
            DB_PASSWORD,
            &token,
        ],
    )
    .await;
}

#[needs(bao)]
#[tokio::test]
async fn approle_logs_in_once_and_renews_a_short_lived_token_across_admissions() {
    let Some((bao, server, owner)) = setup(&[]).await else {
        return;
    };
    bao.reader_policy("reader").await;
    bao.put_v2("prod/stripe", json!({"value": STRIPE_V1})).await;
    let (role_id, secret_id) = bao
        .approle(
            "agyn",
            json!({"token_policies": ["reader"], "token_ttl": "6s", "token_max_ttl": "120s"}),
        )
        .await;
    let id = approle_provider(&owner, &bao.addr, &role_id, &secret_id).await;
    stripe_from(&owner, &id).await;

    // The token lives 6 s and is renewed at two thirds of that (4 s);
    // admissions every half second for 10 s need one login and two
    // renewals, with room for slow admissions on a busy machine.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let env = admit(&server, "STRIPE=stripe-api-key").await.unwrap();
        assert_eq!(env["STRIPE"], STRIPE_V1);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let logins = counter(&server, "agyn_provider_logins_total", "acme/bao").await;
    let renewals = counter(&server, "agyn_provider_renewals_total", "acme/bao").await;
    assert_eq!(logins, 1.0, "one login serves every admission");
    assert!(renewals >= 2.0, "renewals: {renewals}");

    let result = check(&owner, &id).await.expect(200);
    assert_eq!(result["ok"], true, "{result}");
    let message = result["message"].as_str().unwrap();
    assert!(message.contains("logged in with approle auth"), "{message}");
    assert!(!message.contains(&secret_id));

    // A wrong secret id says so, without echoing it.
    local_secret(&owner, "wrong-secret-id", "not-the-secret-id-9f1e").await;
    let wrong = provider(
        &owner,
        "bao-wrong",
        &bao.addr,
        json!({"method": "approle", "role_id": role_id, "secret_id_secret": "wrong-secret-id"}),
    )
    .await;
    let result = check(&owner, &wrong).await.expect(200);
    assert_eq!(result["ok"], false);
    let message = result["message"].as_str().unwrap();
    assert!(
        message.contains("approle login at auth/approle was refused (HTTP 400); check role_id"),
        "{message}"
    );
    assert!(!message.contains("not-the-secret-id-9f1e"));

    assert_never_exposed(&server, &[STRIPE_V1, &secret_id, "not-the-secret-id-9f1e"]).await;
}

#[needs(bao)]
#[tokio::test]
async fn kubernetes_auth_logs_in_with_the_service_account_token() {
    // The token file is the server's to name, never the API's.
    let dir = tempfile::tempdir().unwrap();
    let jwt_path = dir.path().join("token");
    let jwt = service_account_jwt("agyn-secrets", "agyn-secrets", "3f1c9a52-sa");
    common::record_secret(&jwt);
    std::fs::write(&jwt_path, &jwt).unwrap();
    let flag = jwt_path.to_str().unwrap();
    let Some((bao, server, owner)) = setup(&["--service-account-token-file", flag]).await else {
        return;
    };
    let reviews = TokenReviews::start("agyn-secrets", "agyn-secrets", "3f1c9a52-sa").await;
    bao.reader_policy("reader").await;
    bao.put_v2("prod/stripe", json!({"value": STRIPE_V1})).await;
    bao.must(
        "POST",
        "sys/auth/kubernetes",
        Some(json!({"type": "kubernetes"})),
    )
    .await;
    // OpenBao wants a CA for the Kubernetes API even when it is reached
    // over plain HTTP, as the loopback stand-in is.
    let any_ca = String::from_utf8(server.ca_pem()).unwrap();
    bao.must(
        "POST",
        "auth/kubernetes/config",
        Some(json!({
            "kubernetes_host": reviews.addr,
            "disable_local_ca_jwt": true,
            "kubernetes_ca_cert": any_ca,
        })),
    )
    .await;
    bao.must(
        "POST",
        "auth/kubernetes/role/agyn",
        Some(json!({
            "bound_service_account_names": ["agyn-secrets"],
            "bound_service_account_namespaces": ["agyn-secrets"],
            "token_policies": ["reader"],
            "token_ttl": "1h",
        })),
    )
    .await;
    // A path from the API is refused: it would let a caller send any file
    // the server can read to an address of their choice.
    let refused = server
        .client()
        .post(
            &format!("/v1/organizations/{ORG}/providers"),
            json!({"name": "bao", "kind": "vault", "address": bao.addr,
                   "auth": {"method": "kubernetes", "role": "agyn", "jwt_path": "/etc/passwd"}}),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.field(), Some("auth.jwt_path"), "{}", refused.text);
    // Only a platform admin configures Kubernetes auth; an owner is refused.
    let refused = owner
        .post(
            &format!("/v1/organizations/{ORG}/providers"),
            json!({"name": "bao", "kind": "vault", "address": bao.addr,
                   "auth": {"method": "kubernetes", "role": "agyn"}}),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(
        refused.error_message().contains("only a platform admin"),
        "{}",
        refused.text
    );
    let id = provider(
        &server.client(),
        "bao",
        &bao.addr,
        json!({"method": "kubernetes", "role": "agyn"}),
    )
    .await;
    stripe_from(&owner, &id).await;

    for _ in 0..3 {
        let env = admit(&server, "STRIPE=stripe-api-key").await.unwrap();
        assert_eq!(env["STRIPE"], STRIPE_V1);
    }
    assert_eq!(reviews.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        counter(&server, "agyn_provider_logins_total", "acme/bao").await,
        1.0
    );
    let result = check(&owner, &id).await.expect(200);
    assert_eq!(result["ok"], true, "{result}");

    // A role that does not exist, and a token file that is not there.
    let bad_role = provider(
        &server.client(),
        "bao-bad-role",
        &bao.addr,
        json!({"method": "kubernetes", "role": "nope"}),
    )
    .await;
    remote_secret(
        &owner,
        "bad-role",
        &bad_role,
        "secret/data/prod/stripe",
        "value",
    )
    .await;
    let message = denied(admit(&server, "STRIPE=bad-role").await);
    assert!(
        message.contains("vault provider \"bao-bad-role\"")
            && message.contains("kubernetes login at auth/kubernetes was refused (HTTP 400); check that kubernetes auth role \"nope\" exists"),
        "{message}"
    );
    std::fs::remove_file(&jwt_path).unwrap();
    let no_file = provider(
        &server.client(),
        "bao-no-file",
        &bao.addr,
        json!({"method": "kubernetes", "role": "agyn"}),
    )
    .await;
    let result = check(&owner, &no_file).await.expect(200);
    assert_eq!(result["ok"], false);
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains(&format!("cannot read the service account token at {flag}")),
        "{result}"
    );

    assert_never_exposed(&server, &[STRIPE_V1, &jwt]).await;
}

#[needs(bao)]
#[tokio::test]
async fn a_sealed_server_denies_saying_it_is_sealed() {
    let Some((bao, server, owner)) = setup(&[]).await else {
        return;
    };
    bao.put_v2("prod/stripe", json!({"value": STRIPE_V1})).await;
    let id = token_provider(&owner, "bao", &bao.addr, ROOT_TOKEN).await;
    stripe_from(&owner, &id).await;
    admit(&server, "STRIPE=stripe-api-key").await.unwrap();

    bao.must("PUT", "sys/seal", None).await;
    let message = denied(admit(&server, "STRIPE=stripe-api-key").await);
    assert_eq!(
        message,
        "vault provider \"bao\": reading secret/data/prod/stripe: server is sealed; unseal it, then retry"
    );
    let runtime = runtime(&server, &owner).await;
    let reply = resolve(&runtime, &["stripe-api-key"]).await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.error_message(), message);
    let result = check(&owner, &id).await.expect(200);
    assert_eq!(result["ok"], false);
    assert!(
        result["message"].as_str().unwrap().contains("sealed"),
        "{result}"
    );
    // The admission, the resolve call and the check.
    assert_eq!(errors(&server, "acme/bao", "sealed").await, 3.0);
}

#[needs(bao)]
#[tokio::test]
async fn a_stopped_server_denies_in_time_and_admission_recovers_when_it_is_back() {
    let Some((mut bao, server, owner)) = setup(&[]).await else {
        return;
    };
    bao.put_v2("prod/stripe", json!({"value": STRIPE_V1})).await;
    let id = token_provider(&owner, "bao", &bao.addr, ROOT_TOKEN).await;
    stripe_from(&owner, &id).await;
    admit(&server, "STRIPE=stripe-api-key").await.unwrap();

    bao.stop();
    let started = Instant::now();
    let message = denied(admit(&server, "STRIPE=stripe-api-key").await);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the admission deadline is 5 s"
    );
    assert_eq!(
        message,
        format!(
            "vault provider \"bao\": reading secret/data/prod/stripe: cannot reach the provider at {} (check the address, the network path and, for https, its ca_pem)",
            bao.addr
        )
    );
    let runtime = runtime(&server, &owner).await;
    let reply = resolve(&runtime, &["stripe-api-key"]).await;
    assert_eq!(reply.status, 502, "{}", reply.text);

    // A dev server starts empty: write the value again.
    bao.restart().await;
    bao.put_v2("prod/stripe", json!({"value": STRIPE_V2})).await;
    let env = admit(&server, "STRIPE=stripe-api-key").await.unwrap();
    assert_eq!(env["STRIPE"], STRIPE_V2);
}

#[needs(bao)]
#[tokio::test]
async fn a_slow_server_times_out_within_the_deadline_and_recovers_without_a_restart() {
    let Some((bao, server, owner)) = setup(&["--provider-timeout", "1s"]).await else {
        return;
    };
    bao.put_v2("prod/stripe", json!({"value": STRIPE_V1})).await;
    let proxy = SlowProxy::start(bao.port, Duration::from_secs(3)).await;
    let id = token_provider(&owner, "bao", &proxy.addr, ROOT_TOKEN).await;
    stripe_from(&owner, &id).await;
    admit(&server, "STRIPE=stripe-api-key").await.unwrap();

    proxy.set_slow(true);
    let started = Instant::now();
    let message = denied(admit(&server, "STRIPE=stripe-api-key").await);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "denied after {elapsed:?}"
    );
    assert_eq!(
        message,
        "vault provider \"bao\": reading secret/data/prod/stripe: timed out after 1s"
    );
    let runtime = runtime(&server, &owner).await;
    let reply = resolve(&runtime, &["stripe-api-key"]).await;
    assert_eq!(reply.status, 504, "{}", reply.text);
    assert_eq!(reply.error_message(), message);

    proxy.set_slow(false);
    let env = admit(&server, "STRIPE=stripe-api-key").await.unwrap();
    assert_eq!(env["STRIPE"], STRIPE_V1);
    assert_eq!(errors(&server, "acme/bao", "timeout").await, 2.0);
}

#[needs(bao)]
#[tokio::test]
async fn a_burst_of_pods_keeps_at_most_32_requests_in_flight_to_a_provider() {
    let Some((bao, server, owner)) = setup(&[]).await else {
        return;
    };
    let proxy = SlowProxy::start(bao.port, Duration::from_millis(200)).await;
    let id = token_provider(&owner, "bao", &proxy.addr, ROOT_TOKEN).await;
    for i in 0..10 {
        bao.put_v2(
            &format!("burst/path-{i}"),
            json!({"value": format!("value-{i}")}),
        )
        .await;
        let path = format!("secret/data/burst/path-{i}");
        remote_secret(&owner, &format!("burst-{i}"), &id, &path, "value").await;
    }
    let env: Vec<String> = (0..10).map(|i| format!("VAR_{i}=burst-{i}")).collect();
    let env = env.join(",");

    // Eight pods at once, ten reads each: 80 reads, each answered 200 ms
    // late. They wait their turn and all finish within the deadline.
    proxy.set_slow(true);
    let pods = futures::future::join_all((0..8).map(|_| admit(&server, &env))).await;
    for pod in pods {
        let pod = pod.unwrap();
        for i in 0..10 {
            assert_eq!(pod[&format!("VAR_{i}")], format!("value-{i}"));
        }
    }
    let most = proxy.most_held_at_once();
    assert!(most <= 32, "{most} requests were in flight at once");
    assert!(
        most > 10,
        "the pods' reads did not overlap ({most} at once)"
    );
}

#[needs(bao)]
#[tokio::test]
async fn check_reports_whether_a_provider_works_and_edits_apply_at_once() {
    let Some((bao, server, owner)) = setup(&[]).await else {
        return;
    };
    bao.reader_policy("reader").await;
    bao.put_v2("prod/stripe", json!({"value": STRIPE_V1})).await;
    let token = bao.create_token(&["reader"], "1h").await;

    let good = token_provider(&owner, "bao", &bao.addr, &token).await;
    let result = check(&owner, &good).await.expect(200);
    assert_eq!(result["ok"], true, "{result}");
    let message = result["message"].as_str().unwrap();
    assert!(
        message.starts_with("vault provider \"bao\": reachable; ")
            && message.contains("is valid")
            && message.contains("reader"),
        "{message}"
    );
    assert!(!message.contains(&token));

    let refused = token_provider(&owner, "bao-bad-token", &bao.addr, "s.not-a-real-token").await;
    let result = check(&owner, &refused).await.expect(200);
    assert_eq!(result["ok"], false);
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains("was refused (HTTP 403)"),
        "{result}"
    );
    assert!(
        !result["message"]
            .as_str()
            .unwrap()
            .contains("s.not-a-real-token")
    );

    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let nowhere = provider(
        &owner,
        "bao-nowhere",
        &closed,
        json!({"method": "token", "token_secret": "bao-token"}),
    )
    .await;
    let result = check(&owner, &nowhere).await.expect(200);
    assert_eq!(result["ok"], false);
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains(&format!("cannot reach the provider at {closed} ")),
        "{result}"
    );

    // Who may check: owners and admins, not members.
    let member = owner.create_token(ORG, "member", "member").await;
    assert_eq!(check(&server.client_as(&member), &good).await.status, 403);
    check(&server.client(), &good).await.expect(200);
    assert_eq!(check(&owner, "no-such-provider").await.status, 404);

    // Editing the provider, or rotating its credential, applies to the next
    // admission without a restart.
    remote_secret(
        &owner,
        "via-nowhere",
        &nowhere,
        "secret/data/prod/stripe",
        "value",
    )
    .await;
    remote_secret(
        &owner,
        "via-bad-token",
        &refused,
        "secret/data/prod/stripe",
        "value",
    )
    .await;
    let message = denied(admit(&server, "STRIPE=via-nowhere").await);
    assert!(message.contains("cannot reach the provider"), "{message}");
    owner
        .patch(
            &format!("/v1/organizations/{ORG}/providers/{nowhere}"),
            json!({"address": bao.addr}),
        )
        .await
        .expect(200);
    let env = admit(&server, "STRIPE=via-nowhere").await.unwrap();
    assert_eq!(env["STRIPE"], STRIPE_V1);

    let message = denied(admit(&server, "STRIPE=via-bad-token").await);
    assert!(
        message.contains("permission denied reading secret/data/prod/stripe"),
        "{message}"
    );
    let token_secret = owner
        .get(&format!(
            "/v1/organizations/{ORG}/secrets/bao-bad-token-token"
        ))
        .await
        .expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    owner
        .patch(
            &format!("/v1/organizations/{ORG}/secrets/{token_secret}"),
            json!({"value": token}),
        )
        .await
        .expect(200);
    let env = admit(&server, "STRIPE=via-bad-token").await.unwrap();
    assert_eq!(env["STRIPE"], STRIPE_V1);

    assert_never_exposed(&server, &[STRIPE_V1, &token, "s.not-a-real-token"]).await;
}

#[needs(bao)]
#[tokio::test]
async fn tls_needs_the_provider_ca() {
    let Some(bao) = OpenBao::start_tls().await else {
        return;
    };
    let (server, owner) = remote::start(&[]).await;
    bao.put_v2("prod/stripe", json!({"value": STRIPE_V1})).await;
    let id = token_provider(&owner, "bao", &bao.addr, ROOT_TOKEN).await;
    stripe_from(&owner, &id).await;

    let message = denied(admit(&server, "STRIPE=stripe-api-key").await);
    assert!(
        message.starts_with(&format!(
            "vault provider \"bao\": reading secret/data/prod/stripe: cannot reach the provider at {}",
            bao.addr
        )),
        "{message}"
    );
    assert!(message.contains("ca_pem"), "{message}");

    owner
        .patch(
            &format!("/v1/organizations/{ORG}/providers/{id}"),
            json!({"ca_pem": bao.ca_pem}),
        )
        .await
        .expect(200);
    let env = admit(&server, "STRIPE=stripe-api-key").await.unwrap();
    assert_eq!(env["STRIPE"], STRIPE_V1);
}

#[needs(bao)]
#[tokio::test]
async fn a_server_that_lost_its_tokens_gets_a_fresh_login() {
    let Some((mut bao, server, owner)) = setup(&[]).await else {
        return;
    };
    let role = json!({"token_policies": ["reader"], "token_ttl": "1h", "role_id": "agyn-role-id"});
    bao.reader_policy("reader").await;
    bao.put_v2("prod/stripe", json!({"value": STRIPE_V1})).await;
    let (role_id, secret_id) = bao.approle("agyn", role.clone()).await;
    let id = approle_provider(&owner, &bao.addr, &role_id, &secret_id).await;
    stripe_from(&owner, &id).await;
    admit(&server, "STRIPE=stripe-api-key").await.unwrap();

    // A dev server forgets every token when it restarts. Set up the same
    // role and secret id again; the cached token is now refused.
    bao.restart().await;
    bao.reader_policy("reader").await;
    bao.put_v2("prod/stripe", json!({"value": STRIPE_V2})).await;
    bao.approle("agyn", role).await;
    bao.must(
        "POST",
        "auth/approle/role/agyn/custom-secret-id",
        Some(json!({"secret_id": secret_id})),
    )
    .await;
    // A token younger than 10 s that is refused is a policy problem, not a
    // lost token; only older ones are replaced.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let env = admit(&server, "STRIPE=stripe-api-key").await.unwrap();
    assert_eq!(env["STRIPE"], STRIPE_V2);
    assert_eq!(
        counter(&server, "agyn_provider_logins_total", "acme/bao").await,
        2.0
    );
}
