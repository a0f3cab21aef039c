//! Properties of the mutation, for any pod and any annotation text:
//! - the annotation parsers never panic, and what they accept is well formed;
//! - every patch `build_patch` returns applies to the pod it came from;
//! - a second pass over the patched pod yields an empty patch;
//! - each container then sees exactly the injected value, and nothing else in
//!   the pod changes;
//! - no error or denial message carries a value.
//!
//! The last three are also checked through the real server, with fewer cases.

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};

use agyn_secrets::admission::{
    ENV_ANNOTATION, EnvSource, INJECTED_ANNOTATION, Injection, PULL_SECRETS_ANNOTATION, Patch,
    Plan, Pod, build_patch, parse_env, parse_pull_secrets, parse_review, plan_env,
};
use agyn_secrets::validate::{is_dns_label, is_env_var_name};
use common::Server;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// Part of every value and of every env value already in a pod: a message
/// that contains it has leaked one.
const MARK: &str = "zqVALUEqz";

/// Secret names every pure case can resolve.
const SECRETS: [&str; 4] = ["s0", "s1", "s2", "s3"];

// ---------------------------------------------------------------------------
// Generators

fn container_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["app", "init", "sidecar", "worker"]).prop_map(str::to_owned),
        1 => "[a-z][a-z0-9-]{0,8}[a-z0-9]",
    ]
}

fn var_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["A", "B", "STRIPE_KEY", "DB_PASSWORD", "my.var", "_X", "-dash"])
            .prop_map(str::to_owned),
        1 => "[A-Za-z_.-][A-Za-z0-9_.-]{0,10}",
    ]
}

fn secret_name(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(names).prop_map(str::to_owned)
}

/// An entry of a container's existing `env`. `realistic` keeps to what the
/// API server lets through; otherwise any JSON may appear.
fn env_entry(realistic: bool) -> BoxedStrategy<Value> {
    let valid = prop_oneof![
        4 => (var_name(), any::<u16>()).prop_map(|(name, i)| json!({"name": name, "value": format!("{MARK}-existing-{i}")})),
        2 => var_name().prop_map(|name| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})),
        1 => var_name().prop_map(|name| json!({"name": name})),
    ];
    if realistic {
        valid.boxed()
    } else {
        prop_oneof![
            8 => valid,
            1 => Just(json!({"value": format!("{MARK}-nameless")})),
            1 => Just(json!(42)),
            1 => Just(json!({"name": 7, "value": format!("{MARK}-numeric-name")})),
        ]
        .boxed()
    }
}

fn env_field(realistic: bool) -> BoxedStrategy<Option<Value>> {
    let arrays =
        prop::collection::vec(env_entry(realistic), 0..5).prop_map(|e| Some(Value::Array(e)));
    if realistic {
        prop_oneof![1 => Just(None), 3 => arrays].boxed()
    } else {
        prop_oneof![
            2 => Just(None),
            6 => arrays,
            1 => Just(Some(Value::Null)),
            1 => Just(Some(json!("not a list"))),
        ]
        .boxed()
    }
}

fn container(realistic: bool) -> impl Strategy<Value = Value> {
    (container_name(), env_field(realistic), any::<bool>()).prop_map(|(name, env, env_from)| {
        let mut c = json!({"name": name, "image": "busybox:1.36"});
        if let Some(env) = env {
            c["env"] = env;
        }
        if env_from {
            c["envFrom"] = json!([{"secretRef": {"name": "plain-k8s-secret"}}]);
        }
        c
    })
}

/// A pod without the two annotations the webhook reads; they are added by
/// [`with_annotations`].
fn pod(realistic: bool) -> BoxedStrategy<Value> {
    let pull_names = prop::sample::select(vec!["agyn-pull-ghcr", "regcred", "agyn-pull-quay"]);
    let spec = (
        prop::option::of(prop::collection::vec(container(realistic), 0..3)),
        prop::collection::vec(container(realistic), 1..4),
        prop::option::of(prop::collection::vec(pull_names, 0..3)),
    )
        .prop_map(|(init, containers, pulls)| {
            let mut spec = json!({"containers": containers, "restartPolicy": "Always"});
            if let Some(init) = init {
                spec["initContainers"] = json!(init);
            }
            if let Some(pulls) = pulls {
                spec["imagePullSecrets"] = pulls.iter().map(|n| json!({"name": n})).collect();
            }
            spec
        });
    let injected = prop::option::of(prop_oneof![
        Just("s0@1".to_owned()),
        Just("junk".to_owned()),
        "[a-z0-9@,]{0,12}",
    ]);
    let shaped = (spec, injected, any::<bool>(), "[a-z]{1,8}").prop_map(
        |(spec, injected, labelled, name)| {
            let mut annotations = json!({"example.com/other": "kept"});
            if let Some(injected) = injected {
                annotations[INJECTED_ANNOTATION] = json!(injected);
            }
            let mut pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": format!("pod-{name}"), "namespace": "team-a", "annotations": annotations},
                "spec": spec,
            });
            if labelled {
                pod["metadata"]["labels"] = json!({"secrets.agyn.io/inject": "true"});
            }
            pod
        },
    );
    if realistic {
        shaped.boxed()
    } else {
        // Shapes the API server would never send, which the pure code must
        // still refuse cleanly rather than turn into a patch that fails.
        let malformed = prop_oneof![
            Just(json!({"metadata": {"annotations": {}}})),
            Just(json!({"metadata": {"annotations": {}}, "spec": {"containers": "app"}})),
            Just(
                json!({"metadata": {"annotations": {}}, "spec": {"containers": [{"image": "x"}]}})
            ),
            Just(json!({"metadata": {"annotations": {}}, "spec": []})),
            Just(json!({"metadata": {"annotations": {}}, "spec": null})),
            Just(
                json!({"metadata": {"annotations": null}, "spec": {"containers": [{"name": "app"}]}})
            ),
            Just(json!({"spec": {"containers": [{"name": "app"}]}})),
            Just(json!({"metadata": "x", "spec": {"containers": [{"name": "app"}]}})),
        ];
        prop_oneof![12 => shaped, 1 => malformed].boxed()
    }
}

fn spaces() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", " ", "\t"])
}

/// One entry of `secrets.agyn.io/env`, valid or not.
fn env_entry_text(secrets: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (var_name(), secret_name(secrets), spaces(), spaces())
            .prop_map(|(var, secret, a, b)| format!("{a}{var}{b}={a}{secret}{b}")),
        3 => (container_name(), var_name(), secret_name(secrets), spaces())
            .prop_map(|(c, var, secret, s)| format!("{c}{s}:{s}{var}={secret}")),
        1 => prop::sample::select(vec![
            "FOO", "1A=s0", "A=Bad_Name", "Bad:A=s0", "=s0", "A=", ":A=s0", "a:b:C=s0", "A==s0",
            "A=s0=s1", "app:=s0",
        ]).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

fn join_entries(entries: Vec<String>, separators: Vec<&'static str>) -> String {
    let mut text = String::new();
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            text.push_str(separators[i % separators.len()]);
        }
        text.push_str(entry);
    }
    text
}

fn env_text(secrets: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(env_entry_text(secrets), 0..6),
        prop::collection::vec(
            prop::sample::select(vec![",", "\n", ", ", ",,", "\n\n", " ,\n"]),
            1..4,
        ),
    )
        .prop_map(|(entries, separators)| join_entries(entries, separators))
}

fn pull_text() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        6 => prop::sample::select(vec!["ghcr", "quay", "docker-hub"]).prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ];
    (
        prop::collection::vec(name, 0..4),
        prop::collection::vec(prop::sample::select(vec![",", "\n", " , "]), 1..3),
    )
        .prop_map(|(names, separators)| join_entries(names, separators))
}

/// Any text at all: arbitrary strings, strings made of the characters the
/// syntax cares about, and structured entries.
fn any_annotation_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[,\n:= \taAzZ0s_.-]{0,40}",
        env_text(&SECRETS),
        pull_text(),
    ]
}

/// A value for each of [`SECRETS`], with the characters that stress JSON,
/// JSON Pointer and base64 handling.
fn values() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        (
            "[a-zA-Z0-9]{1,12}",
            prop::sample::select(vec![
                "",
                "\"q\"",
                "back\\slash",
                "line\nbreak",
                "~1/~0",
                "é🔑",
                " ",
            ]),
        ),
        SECRETS.len(),
    )
    .prop_map(|parts| {
        parts
            .into_iter()
            .enumerate()
            .map(|(i, (word, tail))| format!("{MARK}-{i}-{word}{tail}"))
            .collect()
    })
}

// ---------------------------------------------------------------------------
// Checks shared by the pure and the server cases

/// The operations of a patch.
fn ops_of(patch: &Patch) -> Vec<Value> {
    serde_json::from_slice(patch.as_json()).expect("a patch is a JSON array")
}

/// The stamp `build_patch` expects: `(name, version)` sorted by name.
fn stamp_of(stamp: &BTreeMap<String, i64>) -> Vec<(&str, i64)> {
    stamp.iter().map(|(n, v)| (n.as_str(), *v)).collect()
}

fn apply(pod: &Value, ops: &[Value]) -> Result<Value, String> {
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops.to_vec())).map_err(|e| e.to_string())?;
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch).map_err(|e| e.to_string())?;
    Ok(patched)
}

/// What a container sees for `var`: Kubernetes lets the last entry of a
/// name win.
fn effective<'a>(container: &'a Value, var: &str) -> Option<&'a Value> {
    container
        .get("env")?
        .as_array()?
        .iter()
        .rev()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(var))
}

/// The pod without what the mutation may touch: the injected variables, the
/// managed image pull secrets and the injected stamp.
fn untouched_part(pod: &Value, plan: &Plan, pulls: &[&str]) -> Value {
    let mut pod = pod.clone();
    for container in &plan.containers {
        let vars: HashSet<&str> = container.vars.iter().map(|(v, _)| *v).collect();
        if let Some(c) = pod.pointer_mut(&container.pointer()) {
            let env = c.get("env").and_then(Value::as_array).map(|env| {
                env.iter()
                    .filter(|e| {
                        !e.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| vars.contains(n))
                    })
                    .cloned()
                    .collect::<Vec<_>>()
            });
            match env {
                Some(env) if !env.is_empty() => c["env"] = Value::Array(env),
                _ => {
                    c.as_object_mut().unwrap().remove("env");
                }
            }
        }
    }
    let managed: Vec<Value> = pulls
        .iter()
        .map(|n| json!({"name": format!("agyn-pull-{n}")}))
        .collect();
    if let Some(list) = pod
        .pointer_mut("/spec/imagePullSecrets")
        .and_then(Value::as_array_mut)
    {
        list.retain(|e| !managed.contains(e));
    }
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut)
        && spec
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .is_none_or(|l| l.is_empty())
    {
        spec.remove("imagePullSecrets");
    }
    if let Some(metadata) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove(INJECTED_ANNOTATION);
        }
        // `null` and `{}` are the same to Kubernetes; the stamp may turn one
        // into the other.
        if metadata
            .get("annotations")
            .is_some_and(|a| a.is_null() || a.as_object().is_some_and(|o| o.is_empty()))
        {
            metadata.remove("annotations");
        }
    }
    pod
}

/// Checks a patched pod against its plan: every planned variable has its
/// value, the pull secrets and the stamp are there, nothing else changed.
fn check_patched(
    original: &Value,
    patched: &Value,
    plan: &Plan,
    values: &HashMap<&str, Injection<'_>>,
    pulls: &[&str],
    stamp: &BTreeMap<String, i64>,
) -> Result<(), TestCaseError> {
    for container in &plan.containers {
        let c = patched.pointer(&container.pointer()).unwrap();
        for (var, secret) in &container.vars {
            let expected = match values[secret].source {
                EnvSource::Value(value) => json!({"name": var, "value": value}),
                EnvSource::SecretKey { secret, key } => json!({"name": var,
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}),
            };
            prop_assert_eq!(
                effective(c, var),
                Some(&expected),
                "container {} variable {}",
                container.name,
                var
            );
        }
    }
    for name in pulls {
        let wanted = json!({"name": format!("agyn-pull-{name}")});
        let list = patched
            .pointer("/spec/imagePullSecrets")
            .and_then(Value::as_array);
        prop_assert!(list.is_some_and(|l| l.contains(&wanted)), "{name} missing");
    }
    if !stamp.is_empty() {
        let text = stamp
            .iter()
            .map(|(n, v)| format!("{n}@{v}"))
            .collect::<Vec<_>>()
            .join(",");
        prop_assert_eq!(
            patched
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(INJECTED_ANNOTATION)),
            Some(&json!(text))
        );
    }
    prop_assert_eq!(
        untouched_part(original, plan, pulls),
        untouched_part(patched, plan, pulls)
    );
    Ok(())
}

fn no_value_in(message: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !message.contains(MARK),
        "a message carries a value: {message}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Pure properties

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // A failure prints its minimal input; nothing is written next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The parsers never panic; what they accept is well formed, and what
    /// they refuse names the annotation and the entry, briefly.
    #[test]
    fn annotation_parsers_accept_only_well_formed_entries(text in any_annotation_text()) {
        match parse_env(&text) {
            Ok(entries) => {
                for (i, entry) in entries.iter().enumerate() {
                    prop_assert_eq!(entry.position, i + 1);
                    prop_assert!(is_env_var_name(entry.var), "{:?}", entry);
                    prop_assert!(is_dns_label(entry.secret), "{:?}", entry);
                    prop_assert!(entry.container.is_none_or(is_dns_label), "{:?}", entry);
                    prop_assert!(!entry.text.is_empty() && entry.text.trim() == entry.text);
                }
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.starts_with("annotation secrets.agyn.io/env: entry "), "{}", message);
                // Quotes are cut at 80 characters, however long the entry.
                prop_assert!(message.len() < 3000, "{}", message.len());
            }
        }
        match parse_pull_secrets(&text) {
            Ok(names) => {
                let distinct: HashSet<&&str> = names.iter().collect();
                prop_assert_eq!(distinct.len(), names.len());
                prop_assert!(names.iter().all(|n| is_dns_label(n)), "{:?}", names);
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(
                    message.starts_with("annotation secrets.agyn.io/image-pull-secrets: entry "),
                    "{}", message
                );
                prop_assert!(message.len() < 3000, "{}", message.len());
            }
        }
    }

}

proptest! {
    // About a third of the cases are refused before a patch is built (unknown
    // containers, variables set twice, bad entries), so this one runs more.
    #![proptest_config(ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every patch applies, a second pass is empty, each container sees its
    /// value, nothing else changes, and no error carries a value.
    #[test]
    fn patches_apply_once_and_only_once(
        pod in pod(false),
        env in env_text(&SECRETS),
        pulls in pull_text(),
        values in values(),
        versions in prop::collection::vec(1i64..50, SECRETS.len()),
        by_reference in any::<bool>(),
    ) {
        let entries = match parse_env(&env) {
            Ok(entries) => entries,
            Err(error) => return no_value_in(&error.to_string()),
        };
        let pulls = match parse_pull_secrets(&pulls) {
            Ok(pulls) => pulls,
            Err(error) => return no_value_in(&error.to_string()),
        };
        let text = pod.to_string();
        let view = Pod::parse(&text).unwrap();
        let plan = match plan_env(&view, &entries) {
            Ok(plan) => plan,
            Err(error) => return no_value_in(&error.to_string()),
        };
        let injections: HashMap<&str, Injection<'_>> = SECRETS
            .iter()
            .zip(values.iter().zip(&versions))
            .map(|(name, (value, version))| {
                // `secret` delivery refers to a key of one Secret; `env` inlines.
                let source = if by_reference {
                    EnvSource::SecretKey { secret: "agyn-env-0123456789abcdef", key: name }
                } else {
                    EnvSource::Value(value)
                };
                (*name, Injection { version: *version, source })
            })
            .collect();
        let stamp: BTreeMap<String, i64> = plan
            .secret_names()
            .into_iter()
            .map(|n| (n.to_owned(), injections[n].version))
            .collect();
        let value = |n: &str| injections.get(n).copied();
        let ops = ops_of(&build_patch(&view, &plan, value, &pulls, &stamp_of(&stamp), None));
        let patched = apply(&pod, &ops);
        prop_assert!(patched.is_ok(), "patch {:?} does not apply to {}: {:?}", ops, pod, patched);
        let patched = patched.unwrap();
        let patched_text = patched.to_string();
        let patched_view = Pod::parse(&patched_text).unwrap();
        let again = ops_of(&build_patch(&patched_view, &plan, value, &pulls, &stamp_of(&stamp), None));
        prop_assert!(again.is_empty(), "second pass: {:?}", again);
        // Planning again on the patched pod gives the same plan.
        let replanned = plan_env(&patched_view, &entries);
        prop_assert_eq!(replanned.as_ref(), Ok(&plan));
        check_patched(&pod, &patched, &plan, &injections, &pulls, &stamp)?;
    }

    /// An AdmissionReview carrying any pod parses back to that pod.
    #[test]
    fn reviews_carry_the_pod_through(pod in pod(false), uid in "[a-f0-9-]{1,36}") {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "operation": "CREATE", "namespace": "team-a", "object": pod},
        });
        let body = serde_json::to_vec(&review).unwrap();
        let request = parse_review(&body).unwrap();
        prop_assert!(request.is_pod_create());
        prop_assert_eq!(&request.uid, &uid);
        // The pod read from inside the review is the pod read on its own.
        let carried = request.object.as_ref().unwrap();
        let text = pod.to_string();
        let direct = Pod::parse(&text).unwrap();
        prop_assert_eq!(format!("{carried:?}"), format!("{direct:?}"));
        if let Ok(spec) = &carried.spec {
            let names: Vec<Option<&str>> = spec.init_containers.iter().chain(&spec.containers)
                .flatten().map(|c| c.name.as_deref()).collect();
            let expected: Vec<Option<&str>> = ["initContainers", "containers"].iter()
                .filter_map(|f| pod["spec"][f].as_array())
                .flatten().map(|c| c["name"].as_str()).collect();
            prop_assert_eq!(names, expected);
        }
    }
}

// ---------------------------------------------------------------------------
// Through the real server

/// Names the server cases may use: one is never created, so some pods are
/// denied for it.
const SERVER_SECRETS: [&str; 5] = ["s0", "s1", "s2", "s3", "missing"];

fn server_case() -> impl Strategy<Value = (Value, String, Option<String>)> {
    (
        pod(true),
        env_text(&SERVER_SECRETS),
        prop::option::weighted(0.1, pull_text()),
    )
}

fn admission_review(uid: &str, pod: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "team-a",
            "object": pod,
        },
    })
}

/// The same properties through `/mutate` over TLS: what the pure code
/// refuses is denied with the same message, every denial is free of values,
/// every answer's patch applies, and our own output passes unchanged.
#[test]
fn through_the_server_denials_carry_no_value_and_patches_apply() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = common::TestDb::sqlite();
    let salt = uuid::Uuid::new_v4().simple().to_string();
    let values: Vec<String> = SECRETS
        .iter()
        .enumerate()
        .map(|(i, _)| format!("{MARK}-{i}-{}-\"q\"\\n\nline~1/é🔑", &salt[..12]))
        .collect();
    let server = runtime.block_on(async {
        let server = Server::start(&db).await;
        let secrets: Vec<(&str, &str)> = SECRETS
            .iter()
            .zip(&values)
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        server.seed("acme", "team-a", &secrets).await;
        server
    });
    let by_name: HashMap<&str, &str> = SECRETS
        .iter()
        .zip(&values)
        .map(|(n, v)| (*n, v.as_str()))
        .collect();

    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&server_case(), |(mut pod, env, pulls)| {
        let counter = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let annotations = &mut pod["metadata"]["annotations"];
        annotations[ENV_ANNOTATION] = json!(env);
        if let Some(pulls) = &pulls {
            annotations[PULL_SECRETS_ANNOTATION] = json!(pulls);
        }
        let uid = format!("case-{counter}");
        let answer = runtime.block_on(server.review(&admission_review(&uid, &pod)));
        let response = &answer["response"];
        prop_assert_eq!(&response["uid"], &json!(uid));

        // What the pure code expects of this pod.
        // The server checks in this order: the env annotation, the pull
        // secrets annotation, the plan, then what the store holds.
        let text = pod.to_string();
        let view = Pod::parse(&text).unwrap();
        let parsed = parse_env(&env)
            .map_err(|e| e.to_string())
            .and_then(|entries| {
                let pulls = parse_pull_secrets(pulls.as_deref().unwrap_or(""))
                    .map_err(|e| e.to_string())?;
                Ok((entries, pulls.first().map(|p| p.to_string())))
            });
        let expected: Result<Plan, String> =
            parsed
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|(entries, pull)| {
                    let plan = plan_env(&view, entries).map_err(|e| e.to_string())?;
                    if let Some(name) = pull {
                        return Err(format!("image pull secret {name:?} not found"));
                    }
                    if plan.secret_names().contains(&"missing") {
                        return Err("\"missing\" not found in organization \"acme\"".to_owned());
                    }
                    Ok(plan)
                });
        match expected {
            Err(reason) => {
                prop_assert_eq!(&response["allowed"], &json!(false), "{}", answer);
                let message = response["status"]["message"].as_str().unwrap_or("");
                prop_assert!(
                    message.contains(&reason),
                    "{} does not say {}",
                    message,
                    reason
                );
                no_value_in(message)?;
                prop_assert!(response.get("patch").is_none());
            }
            Ok(plan) => {
                prop_assert_eq!(&response["allowed"], &json!(true), "{}", answer);
                let ops = common::patch_ops(&answer);
                let patched = apply(&pod, &ops);
                prop_assert!(patched.is_ok(), "{:?}", patched);
                let patched = patched.unwrap();
                let injections: HashMap<&str, Injection<'_>> = by_name
                    .iter()
                    .map(|(n, v)| {
                        (
                            *n,
                            Injection {
                                version: 1,
                                source: EnvSource::Value(v),
                            },
                        )
                    })
                    .collect();
                let stamp: BTreeMap<String, i64> = plan
                    .secret_names()
                    .into_iter()
                    .map(|n| (n.to_owned(), 1))
                    .collect();
                check_patched(&pod, &patched, &plan, &injections, &[], &stamp)?;
                let again = runtime.block_on(server.review(&admission_review("again", &patched)));
                prop_assert_eq!(&again["response"]["allowed"], &json!(true));
                prop_assert!(common::patch_ops(&again).is_empty(), "{}", again);
            }
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}\nserver log tail:\n{}", tail(&server.logs()));
    }
    let logs = server.logs();
    for value in &values {
        assert!(!logs.contains(value.as_str()), "the log carries a value");
    }
    assert!(!logs.contains(MARK), "the log carries a value");
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(1500);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    &text[start..]
}
