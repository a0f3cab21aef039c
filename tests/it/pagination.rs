//! Lists come in keyset pages (`limit`, `cursor`, `next_cursor`), on SQLite
//! and PostgreSQL: pages add up to the whole list while rows come and go,
//! bad parameters are refused, a cursor reveals nothing beyond the caller's
//! list, and references stay bounded, with the delete guard's answer too.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Api, Backend, Server, TestDb, needs, review_with_env};
use futures::StreamExt;
use rstest::rstest;
use serde_json::{Value, json};

/// The tests here send thousands of requests each; one at a time they
/// finish sooner than all at once on a small machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A list under test: where it is, who reads it, what identifies an item,
/// and how to add an item to it.
struct List {
    path: String,
    reader: Api,
    identity: fn(&Value) -> String,
}

fn by_id(item: &Value) -> String {
    item["id"].as_str().expect("an item with an id").to_owned()
}

fn by_namespace(item: &Value) -> String {
    item["namespace"].as_str().unwrap().to_owned()
}

/// A reference is what it is without the times it was seen.
fn by_content(item: &Value) -> String {
    let mut item = item.clone();
    let object = item.as_object_mut().unwrap();
    object.remove("first_seen_at");
    object.remove("last_seen_at");
    item.to_string()
}

/// The whole list, in the largest pages, as the reference order.
async fn whole(list: &List) -> Vec<String> {
    list.reader
        .all_pages(&list.path, 500)
        .await
        .iter()
        .map(list.identity)
        .collect()
}

/// Walks `list` in pages of `limit`, calling `between` after each page.
async fn walk(list: &List, limit: usize, mut between: impl AsyncFnMut(usize)) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for n in 0.. {
        let page = list.reader.page(&list.path, limit, cursor.as_deref()).await;
        let items = page["items"].as_array().unwrap();
        seen.extend(items.iter().map(list.identity));
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(
                    items.len(),
                    limit,
                    "{}: a short page with a cursor",
                    list.path
                );
                cursor = Some(next.to_owned());
            }
            None => break,
        }
        between(n).await;
        assert!(n < 10_000, "{}: the cursor never ends", list.path);
    }
    seen
}

fn duplicates(items: &[String]) -> Vec<&String> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(item, _)| item)
        .collect()
}

/// Pages of every size add up to the whole list, and only the last page
/// lacks a cursor.
async fn pages_add_up(list: &List) {
    let all = whole(list).await;
    assert!(
        all.len() >= 5,
        "{}: too few items to page: {all:?}",
        list.path
    );
    assert!(duplicates(&all).is_empty(), "{}: {all:?}", list.path);
    for limit in [1, 2, 3, all.len() - 1, all.len()] {
        let paged = walk(list, limit, async |_| {}).await;
        assert_eq!(paged, all, "{} in pages of {limit}", list.path);
    }
    let exact = list.reader.page(&list.path, all.len(), None).await;
    assert!(
        exact.get("next_cursor").is_none(),
        "{}: no cursor when nothing follows",
        list.path
    );
    let short = list.reader.page(&list.path, all.len() - 1, None).await;
    assert!(short["next_cursor"].is_string(), "{}", list.path);
}

/// Pages still add up while `add` puts a row in after every page: every
/// item that was there before shows once, in order; nothing shows twice.
async fn pages_add_up_while_rows_are_added(list: &List, add: impl AsyncFnMut(usize)) {
    let before = whole(list).await;
    let paged = walk(list, 2, add).await;
    assert!(
        duplicates(&paged).is_empty(),
        "{}: duplicates {:?}",
        list.path,
        duplicates(&paged)
    );
    let kept: Vec<&String> = paged.iter().filter(|i| before.contains(i)).collect();
    let expected: Vec<&String> = before.iter().collect();
    assert_eq!(kept, expected, "{}: a gap or a change of order", list.path);
    let after: BTreeSet<String> = whole(list).await.into_iter().collect();
    assert!(
        paged.iter().all(|i| after.contains(i)),
        "{}: an item that is not in the list",
        list.path
    );
}

async fn resolve(runtime: &Api, secret: &str, consumer: &str) {
    runtime
        .post(
            "/v1/organizations/acme/resolve",
            json!({"names": [secret], "consumer": consumer}),
        )
        .await
        .expect(200);
}

/// Admits a pod named `pod` in team-a that takes `secret` as `VALUE`.
async fn admit(server: &Server, pod: &str, secret: &str) {
    let mut review = review_with_env(
        "pod-no-env.json",
        &format!("VALUE={secret}"),
        &uuid::Uuid::new_v4().to_string(),
    );
    review["request"]["name"] = json!(pod);
    review["request"]["object"]["metadata"]["name"] = json!(pod);
    let answer = server.review(&review).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

fn provider(name: &str) -> Value {
    json!({"name": name, "kind": "vault", "address": "http://127.0.0.1:8200",
           "auth": {"method": "token", "token_secret": "vault-token"}})
}

fn pull_secret(name: &str, password: &str) -> Value {
    json!({"name": name, "registry": "ghcr.io", "username": "bot", "password_secret": password})
}

/// An organization with a few of everything, the owner's client, and a
/// runtime client.
async fn populated(server: &Server) -> (Api, Api) {
    let admin = server.client();
    let owner = server.client_as(
        &server
            .seed(
                "acme",
                "team-a",
                &[
                    ("vault-token", "s.root-4c1e"),
                    ("registry-password", "pw-77a1"),
                ],
            )
            .await,
    );
    let runtime = server.client_as(&admin.create_token("acme", "llm", "runtime").await);
    for i in 0..6 {
        admin
            .post("/v1/organizations", json!({"name": format!("org-{i}")}))
            .await
            .expect(201);
        admin
            .put(
                &format!("/v1/namespaces/ns-{i}"),
                json!({"organization": "acme"}),
            )
            .await
            .expect_ok();
        owner
            .post(
                "/v1/organizations/acme/tokens",
                json!({"name": format!("member-{i}"), "role": "member"}),
            )
            .await
            .expect(201);
        owner
            .post(
                "/v1/organizations/acme/secrets",
                json!({"name": format!("secret-{i}"), "value": format!("v-{i}")}),
            )
            .await
            .expect(201);
        owner
            .post(
                "/v1/organizations/acme/providers",
                provider(&format!("vault-{i}")),
            )
            .await
            .expect(201);
        let password = if i < 2 {
            "vault-token"
        } else {
            "registry-password"
        };
        owner
            .post(
                "/v1/organizations/acme/image-pull-secrets",
                pull_secret(&format!("registry-{i}"), password),
            )
            .await
            .expect(201);
    }
    // References of every kind to vault-token: 6 providers, 2 image pull
    // secrets, runtime consumers and pods.
    for i in 0..4 {
        resolve(&runtime, "vault-token", &format!("consumer-{i}")).await;
        admit(server, &format!("pod-{i}"), "vault-token").await;
    }
    (owner, runtime)
}

fn lists(server: &Server, owner: &Api) -> Vec<List> {
    let admin = server.client();
    let org = "/v1/organizations/acme";
    vec![
        List {
            path: "/v1/organizations".into(),
            reader: admin.clone(),
            identity: by_id,
        },
        List {
            path: format!("{org}/tokens"),
            reader: owner.clone(),
            identity: by_id,
        },
        List {
            path: format!("{org}/secrets"),
            reader: owner.clone(),
            identity: by_id,
        },
        List {
            path: format!("{org}/secrets/vault-token/references"),
            reader: owner.clone(),
            identity: by_content,
        },
        List {
            path: format!("{org}/providers"),
            reader: owner.clone(),
            identity: by_id,
        },
        List {
            path: format!("{org}/image-pull-secrets"),
            reader: owner.clone(),
            identity: by_id,
        },
        List {
            path: "/v1/namespaces".into(),
            reader: admin,
            identity: by_namespace,
        },
        List {
            path: format!("{org}/audit"),
            reader: owner.clone(),
            identity: by_id,
        },
    ]
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[needs(postgres)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn pages_add_up_to_every_list(#[case] backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(db) = backend.db().await else {
        return;
    };
    let server = Server::start(&db).await;
    let (owner, runtime) = populated(&server).await;
    let lists = lists(&server, &owner);
    for list in &lists {
        pages_add_up(list).await;
    }

    // References come in their documented order: pods, runtime
    // consumers, image pull secrets, providers.
    let kinds: Vec<String> = owner
        .all_pages("/v1/organizations/acme/secrets/vault-token/references", 3)
        .await
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect();
    let mut grouped = kinds.clone();
    grouped.dedup();
    assert_eq!(
        grouped,
        ["pod", "runtime", "image_pull_secret", "provider"],
        "{}: {kinds:?}",
        db.label
    );
    // The audit log is newest first.
    let times: Vec<time::OffsetDateTime> = owner
        .all_pages("/v1/organizations/acme/audit", 7)
        .await
        .iter()
        .map(|e| {
            let at = e["at"].as_str().unwrap();
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Rows added between pages, each list by its own route.
    let admin = server.client();
    let [
        organizations,
        tokens,
        secrets,
        references,
        providers,
        pulls,
        namespaces,
        audit,
    ] = &lists[..]
    else {
        unreachable!()
    };
    pages_add_up_while_rows_are_added(organizations, async |n| {
        // Names that sort before, between and after the others.
        for name in [
            format!("a-new-{n}"),
            format!("org-{n}-new"),
            format!("z-new-{n}"),
        ] {
            admin
                .post("/v1/organizations", json!({"name": name}))
                .await
                .expect(201);
        }
    })
    .await;
    pages_add_up_while_rows_are_added(tokens, async |n| {
        owner
            .post(
                "/v1/organizations/acme/tokens",
                json!({"name": format!("new-{n}"), "role": "member"}),
            )
            .await
            .expect(201);
    })
    .await;
    pages_add_up_while_rows_are_added(secrets, async |n| {
        for name in [
            format!("a-new-{n}"),
            format!("secret-{n}-new"),
            format!("z-new-{n}"),
        ] {
            owner
                .post(
                    "/v1/organizations/acme/secrets",
                    json!({"name": name, "value": "v"}),
                )
                .await
                .expect(201);
        }
    })
    .await;
    pages_add_up_while_rows_are_added(references, async |n| {
        // One of each kind in turn, sorting before or after the cursor.
        match n % 4 {
            0 => admit(&server, &format!("pod-{n}-new"), "vault-token").await,
            1 => resolve(&runtime, "vault-token", &format!("consumer-{n}-new")).await,
            2 => {
                owner
                    .post(
                        "/v1/organizations/acme/image-pull-secrets",
                        pull_secret(&format!("registry-{n}-ref"), "vault-token"),
                    )
                    .await
                    .expect(201);
            }
            _ => {
                owner
                    .post(
                        "/v1/organizations/acme/providers",
                        provider(&format!("vault-{n}-ref")),
                    )
                    .await
                    .expect(201);
            }
        }
    })
    .await;
    pages_add_up_while_rows_are_added(providers, async |n| {
        for name in [format!("a-new-{n}"), format!("vault-{n}-new")] {
            owner
                .post("/v1/organizations/acme/providers", provider(&name))
                .await
                .expect(201);
        }
    })
    .await;
    pages_add_up_while_rows_are_added(pulls, async |n| {
        for name in [format!("a-new-{n}"), format!("registry-{n}-new")] {
            owner
                .post(
                    "/v1/organizations/acme/image-pull-secrets",
                    pull_secret(&name, "registry-password"),
                )
                .await
                .expect(201);
        }
    })
    .await;
    pages_add_up_while_rows_are_added(namespaces, async |n| {
        for name in [
            format!("a-new-{n}"),
            format!("ns-{n}-new"),
            format!("z-new-{n}"),
        ] {
            admin
                .put(
                    &format!("/v1/namespaces/{name}"),
                    json!({"organization": "acme"}),
                )
                .await
                .expect_ok();
        }
    })
    .await;
    pages_add_up_while_rows_are_added(audit, async |n| {
        owner
            .patch(
                "/v1/organizations/acme/secrets/secret-0",
                json!({"value": format!("rotated-{n}")}),
            )
            .await
            .expect(200);
    })
    .await;

    // Rows removed between pages: the rest still shows once each.
    let before = whole(secrets).await;
    let unused: Vec<String> = owner
        .all_pages("/v1/organizations/acme/secrets", 500)
        .await
        .iter()
        .filter(|s| {
            !matches!(
                s["name"].as_str(),
                Some("vault-token" | "registry-password")
            )
        })
        .map(by_id)
        .collect();
    let mut removed = BTreeSet::new();
    let paged = walk(secrets, 3, async |n| {
        // One behind the cursor and one ahead of it.
        for victim in [
            &unused[n * 3 % unused.len()],
            &unused[(n * 3 + 7) % unused.len()],
        ] {
            if removed.insert(victim.clone()) {
                owner
                    .delete(&format!("/v1/organizations/acme/secrets/{victim}"))
                    .await
                    .expect(204);
            }
        }
    })
    .await;
    assert!(duplicates(&paged).is_empty(), "{}", db.label);
    let missing: Vec<&String> = before
        .iter()
        .filter(|i| !removed.contains(*i) && !paged.contains(i))
        .collect();
    assert!(missing.is_empty(), "{}: gaps {missing:?}", db.label);

    // The delete guard lists at most 50 references, and counts them all.
    for secret in ["vault-token", "registry-password"] {
        let total = owner
            .all_pages(
                &format!("/v1/organizations/acme/secrets/{secret}/references"),
                500,
            )
            .await
            .len();
        let refused = owner
            .delete(&format!("/v1/organizations/acme/secrets/{secret}"))
            .await;
        assert_eq!(refused.status, 409, "{}", refused.text);
        assert_eq!(refused.body["reference_count"], total, "{}", refused.text);
        let listed = refused.body["references"].as_array().unwrap().len();
        assert_eq!(listed, total.min(50), "{}: {secret}", db.label);
        let message = refused.error_message();
        assert!(
            message.contains(&format!(" {total} object(s)")),
            "{message}"
        );
    }
}

#[tokio::test]
async fn bad_limits_and_cursors_are_refused_without_echo() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = common::sqlite();
    let server = Server::start(&db).await;
    let (owner, _) = populated(&server).await;
    let lists = lists(&server, &owner);
    let secrets_cursor = owner.page("/v1/organizations/acme/secrets", 1, None).await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let encoded = |text: &str| URL_SAFE_NO_PAD.encode(text);
    let bad_cursors = [
        "not*a*cursor".to_owned(),
        encoded("plain words"),
        encoded(r#"{"l":"secrets","k":[1,2]}"#),
        encoded(r#"{"l":"secrets","k":["a","b"],"x":1}"#),
        encoded(r#"{"k":["a","b"]}"#),
        format!("{secrets_cursor}{}", "A".repeat(5000)),
    ];
    for list in &lists {
        for limit in [
            "0",
            "501",
            "-1",
            "abc",
            "1.5",
            "",
            "99999999999999999999999",
            "1e2",
        ] {
            let url = format!("{}?limit={limit}", list.path);
            let reply = list.reader.get(&url).await;
            assert_eq!(reply.status, 422, "{url}: {}", reply.text);
            assert_eq!(reply.body["error"]["field"], "limit", "{url}");
            assert_eq!(
                reply.error_message(),
                "limit: must be a whole number from 1 to 500"
            );
        }
        let mut cursors = bad_cursors.to_vec();
        if !list.path.ends_with("/secrets") {
            // A cursor of another list.
            cursors.push(secrets_cursor.clone());
        }
        for cursor in &cursors {
            let url = format!("{}?cursor={cursor}", list.path);
            let reply = list.reader.get(&url).await;
            assert_eq!(reply.status, 422, "{url}: {}", reply.text);
            assert_eq!(reply.body["error"]["field"], "cursor", "{url}");
            let message = reply.error_message();
            assert!(message.starts_with("cursor: "), "{message}");
            assert!(!message.contains(cursor.as_str()) && !message.contains("plain"));
        }
        // An empty cursor is the first page; unknown parameters are ignored,
        // except by the audit log, which refuses them as it always has.
        let first = list.reader.page(&list.path, 2, None).await;
        let empty = list
            .reader
            .get(&format!("{}?limit=2&cursor=", list.path))
            .await;
        assert_eq!(empty.expect(200)["items"], first["items"], "{}", list.path);
        let unknown = list.reader.get(&format!("{}?colour=red", list.path)).await;
        if list.path.ends_with("/audit") {
            assert_eq!(unknown.status, 400, "{}", unknown.text);
        } else {
            assert_eq!(unknown.status, 200, "{}: {}", list.path, unknown.text);
        }
        // Without a limit, pages hold 100.
        let default = list.reader.get(&list.path).await.expect(200);
        assert!(default["items"].as_array().unwrap().len() <= 100);
    }
}

#[tokio::test]
async fn a_cursor_positions_only_within_the_callers_list() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = common::sqlite();
    let server = Server::start(&db).await;
    let admin = server.client();
    let names = |prefix: &str| (0..5).map(|i| format!("{prefix}-{i}")).collect::<Vec<_>>();
    let owner_a = server.client_as(&server.seed("org-a", "team-a", &[]).await);
    let owner_b = server.client_as(&server.seed("org-b", "team-b", &[]).await);
    for (owner, org) in [(&owner_a, "org-a"), (&owner_b, "org-b")] {
        // The same names in both organizations, and some of their own.
        for name in names("shared").into_iter().chain(names(org)) {
            owner
                .post(
                    &format!("/v1/organizations/{org}/secrets"),
                    json!({"name": name, "value": "v"}),
                )
                .await
                .expect(201);
        }
    }
    let a_page = owner_a
        .page("/v1/organizations/org-a/secrets", 6, None)
        .await;
    let a_cursor = a_page["next_cursor"].as_str().unwrap();
    let a_ids: BTreeSet<String> = owner_a
        .all_pages("/v1/organizations/org-a/secrets", 500)
        .await
        .iter()
        .map(by_id)
        .collect();
    // Organization b's owner with a's cursor: only b's secrets, after the
    // position the cursor names.
    let b_after = owner_b
        .page("/v1/organizations/org-b/secrets", 500, Some(a_cursor))
        .await;
    let b_items = b_after["items"].as_array().unwrap();
    assert!(!b_items.is_empty());
    assert!(b_items.iter().all(|s| !a_ids.contains(&by_id(s))));
    assert!(
        b_items
            .iter()
            .all(|s| s["organization_id"] != a_page["items"][0]["organization_id"])
    );
    // And a's list stays a's: 404, as for every path of another organization.
    let reply = owner_b
        .get(&format!(
            "/v1/organizations/org-a/secrets?cursor={a_cursor}"
        ))
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    // A member of one organization pages through that one only.
    let orgs = owner_b.all_pages("/v1/organizations", 1).await;
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0]["name"], "org-b");
    let admin_cursor = admin.page("/v1/organizations", 1, None).await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let after = owner_b
        .page("/v1/organizations", 10, Some(&admin_cursor))
        .await;
    assert!(
        after["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["name"] == "org-b")
    );
}

/// Runs `count` requests, `parallel` at a time.
async fn in_parallel<F: Future<Output = ()>>(parallel: usize, requests: impl Iterator<Item = F>) {
    futures::stream::iter(requests)
        .buffer_unordered(parallel)
        .collect::<Vec<()>>()
        .await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[needs(postgres)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn five_thousand_secrets_come_in_bounded_pages(#[case] backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(db) = backend.db().await else {
        return;
    };
    let server = Server::start(&db).await;
    let owner = server.client_as(&server.seed("acme", "team-a", &[]).await);
    in_parallel(
        8,
        (0..5000).map(|i| {
            let owner = owner.clone();
            async move {
                owner
                    .post(
                        "/v1/organizations/acme/secrets",
                        json!({"name": format!("secret-{i:04}"), "value": "v"}),
                    )
                    .await
                    .expect(201);
            }
        }),
    )
    .await;
    let path = "/v1/organizations/acme/secrets";
    // The default page: 100, and a cursor.
    let first = owner.get(path).await;
    assert!(first.text.len() < 100 * 1024, "{} bytes", first.text.len());
    let first = first.expect(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 100);
    assert!(first["next_cursor"].is_string());
    // The largest pages: ten of 500, each of bounded size.
    let mut cursor: Option<String> = None;
    let mut names = BTreeSet::new();
    let mut pages = 0;
    loop {
        let mut url = format!("{path}?limit=500");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let reply = owner.get(&url).await;
        assert!(reply.text.len() < 512 * 1024, "{} bytes", reply.text.len());
        let page = reply.expect(200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 500);
        names.extend(items.iter().map(|s| s["name"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 10, "{}", db.label);
    assert_eq!(names.len(), 5000, "{}", db.label);
    let over = owner.get(&format!("{path}?limit=501")).await;
    assert_eq!(over.status, 422);
}

fn consumers(references: &[Value]) -> BTreeSet<String> {
    references
        .iter()
        .filter(|r| r["kind"] == "runtime")
        .map(|r| r["consumer"].as_str().unwrap().to_owned())
        .collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[needs(postgres)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_secret_keeps_its_newest_thousand_references(#[case] backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(db) = backend.db().await else {
        return;
    };
    check_reference_cap(&db).await;
}

async fn check_reference_cap(db: &TestDb) {
    let server = Server::start(db).await;
    let owner = server.client_as(&server.seed("acme", "team-a", &[("api-key", "k-1")]).await);
    let runtime = server.client_as(&server.client().create_token("acme", "llm", "runtime").await);
    let references = "/v1/organizations/acme/secrets/api-key/references";
    let consumers_at_once = async |names: Vec<String>| {
        in_parallel(
            16,
            names.into_iter().map(|name| {
                let runtime = runtime.clone();
                async move { resolve(&runtime, "api-key", &name).await }
            }),
        )
        .await;
    };
    // 100 references, then, a little later, 1,000 more at once: the first
    // 100 are the oldest and make room.
    consumers_at_once((0..100).map(|i| format!("early-{i:03}")).collect()).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    consumers_at_once((0..1000).map(|i| format!("consumer-{i:04}")).collect()).await;
    let kept = owner.all_pages(references, 500).await;
    assert_eq!(kept.len(), 1000, "{}", db.label);
    let newest: BTreeSet<String> = (0..1000).map(|i| format!("consumer-{i:04}")).collect();
    assert_eq!(consumers(&kept), newest, "{}: the newest stay", db.label);

    // Bursts of distinct pods, then consumers, do not pass the cap either;
    // the oldest make room.
    tokio::time::sleep(Duration::from_millis(5)).await;
    in_parallel(
        16,
        (0..48).map(|i| {
            let server = &server;
            async move { admit(server, &format!("burst-{i:02}"), "api-key").await }
        }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    consumers_at_once((0..48).map(|i| format!("later-{i:02}")).collect()).await;
    let kept = owner.all_pages(references, 500).await;
    assert_eq!(kept.len(), 1000, "{}", db.label);
    let pods: BTreeSet<&str> = kept
        .iter()
        .filter(|r| r["kind"] == "pod")
        .map(|r| r["pod"].as_str().unwrap())
        .collect();
    assert_eq!(pods.len(), 48, "{}: the newest pods stay", db.label);
    let later = consumers(&kept)
        .iter()
        .filter(|c| c.starts_with("later-"))
        .count();
    assert_eq!(later, 48, "{}", db.label);

    // An image pull secret that uses it counts too; the guard lists 50.
    owner
        .post(
            "/v1/organizations/acme/image-pull-secrets",
            pull_secret("ghcr", "api-key"),
        )
        .await
        .expect(201);
    let refused = owner.delete("/v1/organizations/acme/secrets/api-key").await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.body["error"]["code"], "referenced");
    assert_eq!(refused.body["reference_count"], 1001, "{}", db.label);
    let listed = refused.body["references"].as_array().unwrap();
    assert_eq!(listed.len(), 50);
    let first = owner.page(references, 50, None).await;
    assert_eq!(
        listed,
        first["items"].as_array().unwrap(),
        "the list's order"
    );
    assert!(
        refused.error_message().contains("1001 object(s)"),
        "{}",
        refused.error_message()
    );
    assert!(
        refused.text.len() < 64 * 1024,
        "{} bytes",
        refused.text.len()
    );
    owner
        .delete("/v1/organizations/acme/secrets/api-key?force=true")
        .await
        .expect(204);
}

/// Just enough WebDriver to open console pages in headless Chromium and
/// read them.
struct Browser {
    http: reqwest::Client,
    driver: std::process::Child,
    session: String,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None`, after a loud skip, when Chromium is not installed.
    async fn start() -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) =
            (common::tool("chromium"), common::tool("chromedriver"))
        else {
            common::skip(
                "chromium or chromedriver is missing; install Debian's chromium and chromium-driver",
            );
            return None;
        };
        let port = common::free_port();
        let driver = std::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = common::http();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !http
            .get(format!("{base}/status"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run",
                format!("--user-data-dir={}", profile.path().display()),
            ]},
        }}});
        let body: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {body}"))
            .to_owned();
        Some(Browser {
            http,
            driver,
            session,
            base,
            _profile: profile,
        })
    }

    async fn command(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let answer: Value = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.command("/url", json!({"url": url})).await;
    }

    async fn run(&self, script: &str) -> Value {
        self.command("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Polls `expression` in the page until it equals `expected`.
    async fn wait_for(&self, what: &str, expression: &str, expected: Value) {
        let script = format!("try {{ return {expression}; }} catch (e) {{ return null; }}");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.run(&script).await;
            if value == expected {
                return;
            }
            if std::time::Instant::now() > deadline {
                let text = self
                    .run("return document.querySelector('main').innerText.slice(0, 2000)")
                    .await;
                panic!("{what}: {value} instead of {expected}; the page:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn quit(mut self) {
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

/// The console's lists show every item, however many pages the API needs.
#[needs(chromium)]
#[tokio::test]
async fn the_console_shows_every_page() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = common::sqlite();
    let server = Server::start(&db).await;
    let admin = server.client();
    let owner = server.client_as(
        &server
            .seed("acme", "team-a", &[("vault-token", "s.root-9d2f")])
            .await,
    );
    let runtime = server.client_as(&admin.create_token("acme", "llm", "runtime").await);
    // One more than the console's pages of 500 can hold, of each list.
    const MANY: usize = 501;
    let posts = (0..MANY).flat_map(|i| {
        [
            (
                "/v1/organizations".to_owned(),
                json!({"name": format!("org-{i:03}")}),
                &admin,
            ),
            (
                "/v1/organizations/acme/tokens".to_owned(),
                json!({"name": format!("member-{i:03}"), "role": "member"}),
                &owner,
            ),
            (
                "/v1/organizations/acme/secrets".to_owned(),
                json!({"name": format!("secret-{i:03}"), "value": "v"}),
                &owner,
            ),
            (
                "/v1/organizations/acme/providers".to_owned(),
                provider(&format!("vault-{i:03}")),
                &owner,
            ),
            (
                "/v1/organizations/acme/image-pull-secrets".to_owned(),
                pull_secret(&format!("registry-{i:03}"), "vault-token"),
                &owner,
            ),
        ]
    });
    in_parallel(
        8,
        posts.map(|(path, body, client)| async move {
            client.post(&path, body).await.expect(201);
        }),
    )
    .await;
    in_parallel(
        8,
        (0..MANY).map(|i| {
            let runtime = runtime.clone();
            async move { resolve(&runtime, "vault-token", &format!("consumer-{i:03}")).await }
        }),
    )
    .await;

    let Some(browser) = Browser::start().await else {
        return;
    };
    // Signed in as the admin, in this tab's session storage.
    browser.open(&format!("{}/sign-in", server.api)).await;
    browser
        .run(&format!(
            "sessionStorage.setItem('agyn-secrets.token', {}); return true;",
            json!(server.admin_token)
        ))
        .await;
    let rows = "document.querySelectorAll('main table tbody tr').length";
    let org = format!("{}/organizations/acme", server.api);
    for (page, expected) in [
        (format!("{}/organizations", server.api), MANY + 1),
        (format!("{org}/secrets"), MANY + 1),
        (format!("{org}/tokens"), MANY + 2),
        (format!("{org}/providers"), MANY),
        (format!("{org}/image-pull-secrets"), MANY),
    ] {
        browser.open(&page).await;
        browser.wait_for(&page, rows, json!(expected)).await;
    }
    // What uses vault-token: every provider, image pull secret and consumer.
    browser.open(&format!("{org}/secrets/vault-token")).await;
    for (group, heading) in [
        ("refs-runtime", format!("Runtime consumers ({MANY})")),
        ("refs-providers", format!("Providers ({MANY})")),
        ("refs-pull", format!("Image pull secrets ({MANY})")),
    ] {
        browser
            .wait_for(
                &format!("{org}/secrets/vault-token"),
                &format!("document.querySelector('.{group} h3').textContent"),
                json!(heading),
            )
            .await;
    }
    browser.quit().await;
}
