//! The admission path's costs: pure parsing and patching, one envelope
//! decryption, and a whole in-process mutation of a pod with 10 local
//! references (HTTP routing included, TLS not), on one thread and on each
//! of two threads at once, as the webhook's connection threads run it.

use std::sync::Arc;
use std::time::Instant;

use agyn_secrets::admission::{
    Delivery, EnvSource, Injection, allow, build_patch, parse_env, parse_review, plan_env,
};
use agyn_secrets::app::{App, Settings};
use agyn_secrets::cluster::Cluster;
use agyn_secrets::crypto::{Aad, KeyRing, KeyRingHandle, SecretValue, generate_key_file};
use agyn_secrets::store::{NewSecret, Store};
use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tower::ServiceExt;

const REFS: usize = 10;

// The same allocator as the binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A pod as a Deployment's ReplicaSet creates it, asking for 10 secrets.
fn review() -> Value {
    let annotation = (0..REFS)
        .map(|i| format!("VAR_{i}=secret-{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pod-no-env.json");
    let mut review: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    review["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] =
        json!(annotation);
    review
}

fn pure(c: &mut Criterion) {
    let body = serde_json::to_vec(&review()).unwrap();
    let values: Vec<(String, String)> = (0..REFS)
        .map(|i| (format!("secret-{i}"), format!("sk_live_{i:0>40}")))
        .collect();
    c.bench_function("parse review (10 refs)", |b| {
        b.iter(|| parse_review(&body).unwrap())
    });
    let stamp: Vec<(&str, i64)> = values.iter().map(|(n, _)| (n.as_str(), 1)).collect();
    c.bench_function("parse review, plan, patch and answer (10 refs)", |b| {
        b.iter(|| {
            let request = parse_review(&body).unwrap();
            let pod = request.object.as_ref().unwrap();
            let entries = parse_env(pod.annotations.env.as_deref().unwrap()).unwrap();
            let plan = plan_env(pod, &entries).unwrap();
            let value = |name: &str| {
                values
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| Injection {
                        version: 1,
                        source: EnvSource::Value(v.as_str()),
                    })
            };
            let patch = build_patch(pod, &plan, value, &[], &stamp, None);
            allow(&request.uid, &patch)
        })
    });
}

fn decrypt(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    generate_key_file(dir.path(), Some("k1"), true).unwrap();
    let ring = KeyRing::load(dir.path()).unwrap();
    let aad = Aad {
        organization_id: "8c0e6a9e-8f7e-4a8c-9d2b-1f3e5a7c9b0d",
        secret_id: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        version: 3,
    };
    let sealed = ring.seal(
        &SecretValue::from("sk_live_0123456789abcdef0123456789abcdef"),
        aad,
    );
    c.bench_function("envelope decryption of one value", |b| {
        b.iter(|| ring.open(&sealed, aad).unwrap())
    });
}

/// The webhook's router over a store with 10 local secrets, its read cache
/// on. The directory holds the database and key ring.
fn webhook(runtime: &tokio::runtime::Runtime) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let router = runtime.block_on(async {
        generate_key_file(&dir.path().join("keyring"), Some("k1"), true).unwrap();
        let keys = KeyRingHandle::load(&dir.path().join("keyring")).unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("db").display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let org = store.create_organization("acme", "bench").await.unwrap();
        store
            .bind_namespace("team-a", &org.id, "bench")
            .await
            .unwrap();
        for i in 0..REFS {
            let value = SecretValue::new(format!("sk_live_{i:0>40}"));
            store
                .create_secret(
                    &org.id,
                    &format!("secret-{i}"),
                    NewSecret::Local(value),
                    Vec::new(),
                    &keys.current(),
                    "bench",
                )
                .await
                .unwrap();
        }
        store.enable_cache();
        let cluster = Cluster::unavailable("benchmark without a Kubernetes API");
        // Inline values, as `serve --dev` delivers them (the load benchmark's set-up).
        let settings = Settings {
            default_delivery: Delivery::Env,
            env_without_client_auth: true,
            ..Settings::default()
        };
        let app: Arc<App> = App::new(store, keys, settings, cluster);
        agyn_secrets::webhook::router(app)
    });
    (router, dir)
}

/// One admission through the router.
async fn mutate(router: &axum::Router, body: &[u8]) -> axum::body::Bytes {
    let request = axum::http::Request::post("/mutate")
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
}

fn full(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (router, _dir) = webhook(&runtime);
    let body = serde_json::to_vec(&review()).unwrap();
    c.bench_function("in-process mutation, 10 local refs", |b| {
        b.to_async(&runtime).iter(|| mutate(&router, &body))
    });
    // Two threads, each with its own single-threaded runtime, admitting at
    // once: what one admission costs when another thread shares the state.
    c.bench_function(
        "in-process mutation, 10 local refs, on each of two threads at once",
        |b| {
            b.iter_custom(|iters| {
                let threads: Vec<_> = (0..2)
                    .map(|_| {
                        let (router, body) = (router.clone(), body.clone());
                        std::thread::spawn(move || {
                            let runtime = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .unwrap();
                            runtime.block_on(async {
                                let started = Instant::now();
                                for _ in 0..iters {
                                    std::hint::black_box(mutate(&router, &body).await);
                                }
                                started.elapsed()
                            })
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .map(|t| t.join().unwrap())
                    .max()
                    .unwrap()
            })
        },
    );
}

criterion_group!(benches, pure, decrypt, full);
criterion_main!(benches);
