//! Concurrency: 1,000 admissions from 64 concurrent clients while a secret
//! is rotated over and over. No admission fails, and every admitted pod
//! carries a value that the secret really had, under the version the stamp
//! names: never a mix, never anything else.

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, Server, apply_patch, needs, review_with_env};
use rstest::rstest;
use serde_json::{Value, json};

const ADMISSIONS: usize = 1000;
const CLIENTS: usize = 64;
const STATIC: &str = "ConcurrentStaticValue-5d1e9a";

/// The value of `rotating` at `version`.
fn value_at(salt: &str, version: i64) -> String {
    format!("ConcurrentValue-{version:05}-{salt}")
}

/// One admission's outcome: the version the stamp names and the two values
/// the pod received; or what went wrong.
async fn admit(
    client: &reqwest::Client,
    url: &str,
    n: usize,
) -> Result<(i64, String, String, Duration), String> {
    let mut review = review_with_env(
        "pod-envfrom-only.json",
        "ROTATING=rotating,STATIC=static",
        &format!("concurrent-{n}"),
    );
    // Half the pods are bare pods with their own names (a reference written
    // each), half share a ReplicaSet's generateName.
    if n.is_multiple_of(2) {
        review["request"]["object"]["metadata"]["name"] = json!(format!("bare-{n}"));
    }
    let started = Instant::now();
    let response = client
        .post(url)
        .json(&review)
        .send()
        .await
        .map_err(|e| format!("admission {n}: {e}"))?;
    let status = response.status().as_u16();
    let answer: Value = response
        .json()
        .await
        .map_err(|e| format!("admission {n}: {status}: {e}"))?;
    let took = started.elapsed();
    if status != 200 || answer["response"]["allowed"] != true {
        return Err(format!("admission {n}: {status} {answer}"));
    }
    let patched = apply_patch(&review["request"]["object"], &answer);
    let env = patched["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let get = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("admission {n}: no {name} in {env:?}"))
    };
    let stamp = patched["metadata"]["annotations"]["secrets.agyn.io/injected"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let version = stamp
        .split(',')
        .find_map(|part| part.strip_prefix("rotating@"))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("admission {n}: stamp {stamp:?}"))?;
    Ok((version, get("ROTATING")?, get("STATIC")?, took))
}

async fn admissions_during_rotations(db: common::TestDb) {
    let salt = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let server = Server::start(&db).await;
    let owner = server
        .seed(
            "acme",
            "team-a",
            &[("rotating", &value_at(&salt, 1)), ("static", STATIC)],
        )
        .await;

    // One rotator, as fast as the API allows, until the admissions are done.
    let done = Arc::new(AtomicBool::new(false));
    let rotator = {
        let api = server.client_as(&owner);
        let done = done.clone();
        let salt = salt.clone();
        tokio::spawn(async move {
            let mut version = 1;
            while !done.load(Ordering::Relaxed) {
                version += 1;
                let reply = api
                    .patch(
                        "/v1/organizations/acme/secrets/rotating",
                        json!({"value": value_at(&salt, version)}),
                    )
                    .await;
                assert_eq!(reply.status, 200, "rotation to {version}: {}", reply.text);
                assert_eq!(reply.body["version"], version);
            }
            version
        })
    };

    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{}/mutate", server.webhook);
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let client = server.webhook_client();
            let next = next.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut results = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= ADMISSIONS {
                        return results;
                    }
                    results.push(admit(&client, &url, n).await);
                }
            })
        })
        .collect();
    let mut results = Vec::new();
    for client in clients {
        results.extend(client.await.unwrap());
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let last_version = rotator.await.unwrap();

    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{}: {} of {ADMISSIONS} admissions failed, e.g. {:?}",
        db.label,
        errors.len(),
        &errors[..errors.len().min(3)]
    );
    let mut versions = BTreeSet::new();
    let mut latencies = Vec::new();
    for (version, rotating, static_value, took) in results.into_iter().map(Result::unwrap) {
        assert!(
            (1..=last_version).contains(&version),
            "{}: version {version} was never written",
            db.label
        );
        assert_eq!(
            rotating,
            value_at(&salt, version),
            "{}: the value is not the one of the version stamped",
            db.label
        );
        assert_eq!(static_value, STATIC);
        versions.insert(version);
        latencies.push(took);
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "{}: {ADMISSIONS} admissions from {CLIENTS} clients in {elapsed:?} (p50 {p50:?}, p99 {p99:?}), {} rotations, {} distinct versions injected",
        db.label,
        last_version - 1,
        versions.len()
    );
    assert!(
        versions.len() > 1,
        "{}: the rotations did not overlap the admissions",
        db.label
    );
    let logs = server.logs();
    assert!(
        !logs.contains(&salt) && !logs.contains(STATIC),
        "the log carries a value"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[needs(postgres)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_admissions_during_rotations_see_only_real_values(#[case] backend: Backend) {
    let Some(db) = backend.db().await else {
        return;
    };
    admissions_during_rotations(db).await;
}
