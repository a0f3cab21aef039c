//! Planning which container gets which variable, and building the RFC 6902
//! patch that puts the values in place.
//!
//! The patch is computed against the pod as it arrives, and an entry that is
//! already exactly right produces no operation. So a second review of our own
//! output (reinvocationPolicy IfNeeded) yields an empty patch.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::INJECTED_ANNOTATION;
use super::annotations::{EnvEntry, quote};

/// The variables one container receives, in annotation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    /// JSON pointer of the container, e.g. `/spec/initContainers/0`.
    pub pointer: String,
    pub name: String,
    /// `(VAR, secret name)` pairs.
    pub vars: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub containers: Vec<ContainerPlan>,
}

impl Plan {
    /// Distinct secret names, sorted.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .containers
            .iter()
            .flat_map(|c| c.vars.iter().map(|(_, s)| s.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("annotation secrets.agyn.io/env: entry {position} {}: container {} not found in pod{}", quote(.text), quote(.container), list_known(.known))]
    UnknownContainer {
        position: usize,
        text: String,
        container: String,
        known: Vec<String>,
    },
    #[error(
        "annotation secrets.agyn.io/env: entry {position} {}: {var} is set twice for container {} (also by entry {first}); keep one",
        quote(.text),
        quote(.container)
    )]
    DuplicateVar {
        position: usize,
        text: String,
        var: String,
        container: String,
        first: usize,
    },
    #[error("pod spec is malformed: {0}")]
    Malformed(&'static str),
}

fn list_known(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (containers: {})", names.join(", "))
    }
}

/// The pod's containers and init containers: (pointer, name).
fn containers(pod: &Value) -> Result<Vec<(String, String)>, PatchError> {
    // The patch adds under both; a pod where either is not an object would
    // get a patch that cannot apply.
    if !pod.get("metadata").is_some_and(Value::is_object) {
        return Err(PatchError::Malformed(
            "metadata is missing or not an object",
        ));
    }
    let spec = pod
        .get("spec")
        .filter(|s| s.is_object())
        .ok_or(PatchError::Malformed("spec is missing or not an object"))?;
    let mut found = Vec::new();
    for field in ["initContainers", "containers"] {
        let Some(list) = spec.get(field).filter(|v| !v.is_null()) else {
            continue;
        };
        let list = list
            .as_array()
            .ok_or(PatchError::Malformed("containers is not a list"))?;
        for (i, container) in list.iter().enumerate() {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .ok_or(PatchError::Malformed("a container has no name"))?;
            found.push((format!("/spec/{field}/{i}"), name.to_owned()));
        }
    }
    Ok(found)
}

/// Decides which container gets which variable. Entries without a container
/// go to every container and init container.
pub fn plan_env(pod: &Value, entries: &[EnvEntry]) -> Result<Plan, PatchError> {
    let all = containers(pod)?;
    let names: Vec<String> = all.iter().map(|(_, n)| n.clone()).collect();
    for entry in entries {
        if let Some(container) = &entry.container
            && !names.contains(container)
        {
            return Err(PatchError::UnknownContainer {
                position: entry.position,
                text: entry.text.clone(),
                container: container.clone(),
                known: names,
            });
        }
    }
    let mut plan = Plan::default();
    for (pointer, name) in all {
        let mut vars: Vec<(String, String)> = Vec::new();
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        for entry in entries {
            if entry.container.as_ref().is_some_and(|c| *c != name) {
                continue;
            }
            if let Some(first) = first_of.insert(&entry.var, entry.position) {
                return Err(PatchError::DuplicateVar {
                    position: entry.position,
                    text: entry.text.clone(),
                    var: entry.var.clone(),
                    container: name,
                    first,
                });
            }
            vars.push((entry.var.clone(), entry.secret.clone()));
        }
        if !vars.is_empty() {
            plan.containers.push(ContainerPlan {
                pointer,
                name,
                vars,
            });
        }
    }
    Ok(plan)
}

/// A resolved value to inject.
#[derive(Debug, Clone, Copy)]
pub struct Injection<'a> {
    pub version: i64,
    pub value: &'a str,
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Builds the patch: env entries, image pull secrets and the injected stamp.
/// `values` holds every secret the plan and the pull secrets name; `stamp`
/// lists `(name, version)` of everything injected.
pub fn build_patch(
    pod: &Value,
    plan: &Plan,
    values: &HashMap<&str, Injection<'_>>,
    pull_secrets: &[String],
    stamp: &BTreeMap<String, i64>,
) -> Vec<Value> {
    let mut ops = Vec::new();
    for container in &plan.containers {
        let current = pod
            .pointer(&container.pointer)
            .and_then(|c| c.get("env"))
            .and_then(Value::as_array);
        let desired = container.vars.iter().filter_map(|(var, secret)| {
            values
                .get(secret.as_str())
                .map(|v| json!({ "name": var, "value": v.value }))
        });
        match current {
            None => ops.push(json!({
                "op": "add",
                "path": format!("{}/env", container.pointer),
                "value": desired.collect::<Vec<_>>(),
            })),
            Some(env) => {
                for entry in desired {
                    // Kubernetes lets the last entry of a name win, so every
                    // entry of that name is replaced, not just the first.
                    let mut found = false;
                    for (i, existing) in env.iter().enumerate() {
                        if existing.get("name") != entry.get("name") {
                            continue;
                        }
                        found = true;
                        if *existing != entry {
                            ops.push(json!({
                                "op": "replace",
                                "path": format!("{}/env/{i}", container.pointer),
                                "value": entry,
                            }));
                        }
                    }
                    if !found {
                        ops.push(json!({
                            "op": "add",
                            "path": format!("{}/env/-", container.pointer),
                            "value": entry,
                        }));
                    }
                }
            }
        }
    }

    if !pull_secrets.is_empty() {
        let current = pod
            .pointer("/spec/imagePullSecrets")
            .and_then(Value::as_array);
        let wanted = pull_secrets
            .iter()
            .map(|name| json!({ "name": format!("agyn-pull-{name}") }));
        match current {
            None => ops.push(json!({
                "op": "add",
                "path": "/spec/imagePullSecrets",
                "value": wanted.collect::<Vec<_>>(),
            })),
            Some(list) => {
                for entry in wanted {
                    if !list.iter().any(|e| e.get("name") == entry.get("name")) {
                        ops.push(json!({ "op": "add", "path": "/spec/imagePullSecrets/-", "value": entry }));
                    }
                }
            }
        }
    }

    if !stamp.is_empty() {
        let text = stamp
            .iter()
            .map(|(name, version)| format!("{name}@{version}"))
            .collect::<Vec<_>>()
            .join(",");
        let annotations = pod.pointer("/metadata/annotations");
        let current = annotations
            .and_then(|a| a.get(INJECTED_ANNOTATION))
            .and_then(Value::as_str);
        if current != Some(text.as_str()) {
            if annotations.is_some_and(Value::is_object) {
                ops.push(json!({
                    "op": "add",
                    "path": format!("/metadata/annotations/{}", escape(INJECTED_ANNOTATION)),
                    "value": text,
                }));
            } else {
                ops.push(json!({
                    "op": "add",
                    "path": "/metadata/annotations",
                    "value": { INJECTED_ANNOTATION: text },
                }));
            }
        }
    }
    ops
}

/// The pod's name, or its generateName while the name is not set yet (pods
/// made by controllers).
pub fn pod_name(pod: &Value) -> String {
    let meta = pod.get("metadata");
    meta.and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .or_else(|| {
            meta.and_then(|m| m.get("generateName"))
                .and_then(Value::as_str)
        })
        .unwrap_or("")
        .to_owned()
}

/// The controlling owner's kind and name, if any.
pub fn pod_owner(pod: &Value) -> Option<(String, String)> {
    let owners = pod.pointer("/metadata/ownerReferences")?.as_array()?;
    let owner = owners
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .or_else(|| owners.first())?;
    Some((
        owner.get("kind")?.as_str()?.to_owned(),
        owner.get("name")?.as_str()?.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::parse_env;

    fn pod() -> Value {
        json!({
            "metadata": {"generateName": "web-", "annotations": {"secrets.agyn.io/env": "x"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9", "controller": true}]},
            "spec": {
                "initContainers": [{"name": "init"}],
                "containers": [
                    {"name": "app", "env": [{"name": "KEEP", "value": "k"}, {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]},
                    {"name": "sidecar"}
                ]
            }
        })
    }

    fn apply(pod: &Value, ops: &[Value]) -> Value {
        let mut pod = pod.clone();
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops.to_vec())).unwrap();
        json_patch::patch(&mut pod, &patch).unwrap();
        pod
    }

    #[test]
    fn plans_global_and_specific_entries() {
        let plan = plan_env(&pod(), &parse_env("A=a,app:B=b").unwrap()).unwrap();
        let summary: Vec<(&str, usize)> = plan
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.vars.len()))
            .collect();
        assert_eq!(summary, vec![("init", 1), ("app", 2), ("sidecar", 1)]);
        assert_eq!(plan.containers[0].pointer, "/spec/initContainers/0");
        assert_eq!(plan.secret_names(), vec!["a", "b"]);
    }

    #[test]
    fn unknown_containers_and_duplicates_are_refused() {
        let error = plan_env(&pod(), &parse_env("worker:A=a").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("container \"worker\" not found in pod"),
            "{error}"
        );
        assert!(error.contains("init, app, sidecar"), "{error}");
        let error = plan_env(&pod(), &parse_env("A=a,app:A=b").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("entry 2") && error.contains("A is set twice for container \"app\""),
            "{error}"
        );
    }

    #[test]
    fn patch_creates_replaces_appends_and_is_idempotent() {
        let pod = pod();
        let plan = plan_env(&pod, &parse_env("A=a,app:B=b").unwrap()).unwrap();
        let values = HashMap::from([
            (
                "a",
                Injection {
                    version: 2,
                    value: "va",
                },
            ),
            (
                "b",
                Injection {
                    version: 1,
                    value: "vb",
                },
            ),
        ]);
        let stamp = BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)]);
        let pulls = vec!["ghcr".to_owned()];
        let ops = build_patch(&pod, &plan, &values, &pulls, &stamp);
        let patched = apply(&pod, &ops);
        assert_eq!(
            patched.pointer("/spec/initContainers/0/env").unwrap(),
            &json!([{"name": "A", "value": "va"}])
        );
        assert_eq!(
            patched.pointer("/spec/containers/0/env").unwrap(),
            &json!([{"name": "KEEP", "value": "k"}, {"name": "A", "value": "va"}, {"name": "B", "value": "vb"}])
        );
        assert_eq!(
            patched.pointer("/spec/containers/1/env").unwrap(),
            &json!([{"name": "A", "value": "va"}])
        );
        assert_eq!(
            patched.pointer("/spec/imagePullSecrets").unwrap(),
            &json!([{"name": "agyn-pull-ghcr"}])
        );
        assert_eq!(
            patched
                .pointer("/metadata/annotations/secrets.agyn.io~1injected")
                .unwrap(),
            &json!("a@2,b@1")
        );
        assert!(build_patch(&patched, &plan, &values, &pulls, &stamp).is_empty());
    }

    #[test]
    fn every_entry_of_a_duplicated_name_is_replaced() {
        let pod = json!({"metadata": {}, "spec": {"containers": [{"name": "app", "env": [
            {"name": "A", "value": "old"}, {"name": "KEEP", "value": "k"}, {"name": "A", "value": "older"}
        ]}]}});
        let plan = plan_env(&pod, &parse_env("A=a").unwrap()).unwrap();
        let values = HashMap::from([(
            "a",
            Injection {
                version: 1,
                value: "va",
            },
        )]);
        let ops = build_patch(&pod, &plan, &values, &[], &BTreeMap::new());
        let patched = apply(&pod, &ops);
        assert_eq!(
            patched.pointer("/spec/containers/0/env").unwrap(),
            &json!([{"name": "A", "value": "va"}, {"name": "KEEP", "value": "k"}, {"name": "A", "value": "va"}])
        );
        assert!(build_patch(&patched, &plan, &values, &[], &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_spec_or_metadata_that_is_not_an_object_is_refused() {
        for pod in [
            json!({"metadata": {}, "spec": []}),
            json!({"spec": {"containers": []}}),
        ] {
            assert!(matches!(plan_env(&pod, &[]), Err(PatchError::Malformed(_))));
        }
    }

    #[test]
    fn names_and_owners() {
        assert_eq!(pod_name(&pod()), "web-");
        assert_eq!(
            pod_owner(&pod()),
            Some(("ReplicaSet".into(), "web-7d9".into()))
        );
        assert_eq!(pod_owner(&json!({"metadata": {}})), None);
    }
}
