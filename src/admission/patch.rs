//! Building the RFC 6902 patch that puts the values in place.
//!
//! The patch is computed against the pod as it arrives, and an entry that is
//! already exactly right produces no operation. So a second review of our own
//! output (reinvocationPolicy IfNeeded) yields an empty patch.

use super::exec::ExecSetup;
use super::ops::{Injection, Patch};
use super::plan::{ContainerPlan, Plan};
use super::pod::{Annotations, Container, NameReference, Pod};

/// JSON pointer of the injected stamp's annotation (`/` escaped as `~1`).
const INJECTED_POINTER: &str = "/metadata/annotations/secrets.agyn.io~1injected";

/// Builds the patch: env entries (or, for delivery `exec`, the wrapper and
/// its settings), image pull secrets and the injected stamp. `values` gives
/// every secret the plan names; `stamp` lists `(name, version)` of
/// everything injected, sorted by name.
pub fn build_patch<'v>(
    pod: &Pod<'_>,
    plan: &Plan<'_>,
    values: impl Fn(&str) -> Option<Injection<'v>>,
    pull_secrets: &[&str],
    stamp: &[(&str, i64)],
    exec: Option<&ExecSetup<'_>>,
) -> Patch {
    // Room for every variable's operation and value, so that the buffer is
    // not grown while it is written.
    let mut patch = Patch::with_capacity(256 + 192 * plan.var_count());
    let spec = pod.spec.as_ref().ok();
    for container in &plan.containers {
        let current = container.current(spec);
        match exec {
            Some(setup) => super::exec::wrap(&mut patch, container, current, setup),
            None => patch.container_env(container, current, &values),
        }
    }
    if !pull_secrets.is_empty() {
        let current = spec.and_then(|s| s.image_pull_secrets.as_deref());
        patch.pull_secrets(current, pull_secrets);
    }
    if !stamp.is_empty() {
        patch.stamp(&pod.annotations, stamp);
    }
    if let Some(setup) = exec
        && !plan.containers.is_empty()
    {
        // Last: it inserts the installer at the head of the init
        // containers, which shifts the indices the operations above use.
        super::exec::pod_setup(&mut patch, spec, setup);
    }
    patch.finish()
}

/// The steps of [`build_patch`], one part of the pod each.
impl Patch {
    /// Sets a container's variables to the values of their secrets; a
    /// variable whose secret `values` does not give is left alone.
    fn container_env<'v>(
        &mut self,
        container: &ContainerPlan<'_>,
        current: Option<&Container<'_>>,
        values: &impl Fn(&str) -> Option<Injection<'v>>,
    ) {
        let desired = container
            .vars
            .iter()
            .filter_map(|(var, secret)| values(secret).map(|v| (*var, v.source)));
        self.env(container, current.and_then(|c| c.env.as_deref()), desired);
    }

    /// Adds the managed image pull Secret of each of `names` that the pod
    /// does not list yet (`current`), creating the list when there is none.
    fn pull_secrets(&mut self, current: Option<&[NameReference<'_>]>, names: &[&str]) {
        match current {
            None => self.pull_secret_list(names),
            Some(list) => {
                for name in names {
                    let wanted = managed_pull_secret(name);
                    if !list
                        .iter()
                        .any(|e| e.name.as_deref() == Some(wanted.as_str()))
                    {
                        self.begin("add", "/spec/imagePullSecrets/-");
                        self.value();
                        self.name_reference(&wanted);
                        self.end();
                    }
                }
            }
        }
    }

    /// Adds `imagePullSecrets` to a pod that has none, with every one of
    /// `names`.
    fn pull_secret_list(&mut self, names: &[&str]) {
        self.begin("add", "/spec/imagePullSecrets");
        self.value();
        self.json.push(b'[');
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                self.json.push(b',');
            }
            self.name_reference(&managed_pull_secret(name));
        }
        self.json.push(b']');
        self.end();
    }

    /// Writes `{"name": <name>}`.
    fn name_reference(&mut self, name: &str) {
        self.json.extend_from_slice(b"{\"name\":");
        self.string(name);
        self.json.push(b'}');
    }

    /// Sets the injected stamp annotation, unless it already says exactly
    /// this; a pod without an annotations object gets one.
    fn stamp(&mut self, annotations: &Annotations<'_>, stamp: &[(&str, i64)]) {
        let text = stamp_text(stamp);
        if annotations.injected.as_deref() == Some(text.as_str()) {
            return;
        }
        if annotations.is_object {
            self.begin("add", INJECTED_POINTER);
            self.value();
            self.string(&text);
        } else {
            self.begin("add", "/metadata/annotations");
            self.value();
            self.json
                .extend_from_slice(b"{\"secrets.agyn.io/injected\":");
            self.string(&text);
            self.json.push(b'}');
        }
        self.end();
    }
}

/// The name of the Secret the product manages for image pull secret `name`.
fn managed_pull_secret(name: &str) -> String {
    format!("agyn-pull-{name}")
}

/// The injected stamp's text: `name@version` of each entry, comma-separated.
fn stamp_text(stamp: &[(&str, i64)]) -> String {
    let mut text = Vec::with_capacity(stamp.len() * 32);
    for (i, (name, version)) in stamp.iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        text.extend_from_slice(name.as_bytes());
        text.push(b'@');
        if *version < 0 {
            text.push(b'-');
        }
        crate::decimal::push_decimal(&mut text, version.unsigned_abs());
    }
    String::from_utf8(text).expect("names are text")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{EnvSource, PatchError, parse_env, plan_env};
    use serde_json::{Value, json};
    use std::collections::HashMap;

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

    fn apply(pod: &Value, patch: &Patch) -> Value {
        let mut pod = pod.clone();
        let patch: json_patch::Patch = serde_json::from_slice(patch.as_json()).unwrap();
        json_patch::patch(&mut pod, &patch).unwrap();
        pod
    }

    /// Plans `env` for `pod` and builds its patch with the values of `values`.
    fn patch_of(
        pod: &Value,
        env: &str,
        values: &HashMap<&str, Injection<'_>>,
        pulls: &[&str],
    ) -> Patch {
        let text = pod.to_string();
        let view = Pod::parse(&text).unwrap();
        let entries = parse_env(env).unwrap();
        let plan = plan_env(&view, &entries).unwrap();
        let stamp: Vec<(&str, i64)> = plan
            .secret_names()
            .into_iter()
            .map(|n| (n, values[n].version))
            .collect();
        build_patch(
            &view,
            &plan,
            |n| values.get(n).copied(),
            pulls,
            &stamp,
            None,
        )
    }

    #[test]
    fn plans_global_and_specific_entries() {
        let text = pod().to_string();
        let view = Pod::parse(&text).unwrap();
        let entries = parse_env("A=a,app:B=b").unwrap();
        let plan = plan_env(&view, &entries).unwrap();
        let summary: Vec<(&str, usize)> = plan
            .containers
            .iter()
            .map(|c| (c.name, c.vars.len()))
            .collect();
        assert_eq!(summary, vec![("init", 1), ("app", 2), ("sidecar", 1)]);
        assert_eq!(plan.containers[0].pointer(), "/spec/initContainers/0");
        assert_eq!(plan.secret_names(), vec!["a", "b"]);
    }

    #[test]
    fn unknown_containers_and_duplicates_are_refused() {
        let text = pod().to_string();
        let view = Pod::parse(&text).unwrap();
        let entries = parse_env("worker:A=a").unwrap();
        let error = plan_env(&view, &entries).unwrap_err().to_string();
        assert!(
            error.contains("container \"worker\" not found in pod"),
            "{error}"
        );
        assert!(error.contains("init, app, sidecar"), "{error}");
        let entries = parse_env("A=a,app:A=b").unwrap();
        let error = plan_env(&view, &entries).unwrap_err().to_string();
        assert!(
            error.contains("entry 2") && error.contains("A is set twice for container \"app\""),
            "{error}"
        );
        // The earlier entry is named by its position among all entries.
        let entries = parse_env("sidecar:B=b,A=a,app:C=c,app:A=d").unwrap();
        let error = plan_env(&view, &entries).unwrap_err().to_string();
        assert!(
            error.contains("entry 4") && error.contains("(also by entry 2)"),
            "{error}"
        );
    }

    #[test]
    fn patch_creates_replaces_appends_and_is_idempotent() {
        let pod = pod();
        let values = HashMap::from([
            (
                "a",
                Injection {
                    version: 2,
                    source: EnvSource::Value("va"),
                },
            ),
            (
                "b",
                Injection {
                    version: 1,
                    source: EnvSource::Value("v\"b\\/~"),
                },
            ),
        ]);
        let pulls = ["ghcr"];
        let patched = apply(&pod, &patch_of(&pod, "A=a,app:B=b", &values, &pulls));
        assert_eq!(
            patched.pointer("/spec/initContainers/0/env").unwrap(),
            &json!([{"name": "A", "value": "va"}])
        );
        assert_eq!(
            patched.pointer("/spec/containers/0/env").unwrap(),
            &json!([{"name": "KEEP", "value": "k"}, {"name": "A", "value": "va"}, {"name": "B", "value": "v\"b\\/~"}])
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
        assert!(patch_of(&patched, "A=a,app:B=b", &values, &pulls).is_empty());
    }

    #[test]
    fn every_entry_of_a_duplicated_name_is_replaced() {
        let pod = json!({"metadata": {}, "spec": {"containers": [{"name": "app", "env": [
            {"name": "A", "value": "old"}, {"name": "KEEP", "value": "k"}, {"name": "A", "value": "older"}
        ]}]}});
        let values = HashMap::from([(
            "a",
            Injection {
                version: 1,
                source: EnvSource::Value("va"),
            },
        )]);
        let patch = patch_of(&pod, "A=a", &values, &[]);
        assert_eq!(patch.len(), 3, "two replacements and the stamp");
        let patched = apply(&pod, &patch);
        assert_eq!(
            patched.pointer("/spec/containers/0/env").unwrap(),
            &json!([{"name": "A", "value": "va"}, {"name": "KEEP", "value": "k"}, {"name": "A", "value": "va"}])
        );
        assert!(patch_of(&patched, "A=a", &values, &[]).is_empty());
    }

    #[test]
    fn secret_references_replace_values_and_are_idempotent() {
        let pod = pod();
        let reference = |key| EnvSource::SecretKey {
            secret: "agyn-env-0123456789abcdef",
            key,
        };
        let values = HashMap::from([
            (
                "a",
                Injection {
                    version: 2,
                    source: reference("a"),
                },
            ),
            (
                "b",
                Injection {
                    version: 1,
                    source: reference("b"),
                },
            ),
        ]);
        let by_ref =
            |key: &str| json!({"secretKeyRef": {"name": "agyn-env-0123456789abcdef", "key": key}});
        // B held a value inline, A a fieldRef: both become references.
        let mut pod_with_value = pod.clone();
        pod_with_value["spec"]["containers"][0]["env"][0] = json!({"name": "B", "value": "old"});
        let patch = patch_of(&pod_with_value, "A=a,app:B=b", &values, &[]);
        assert!(
            !String::from_utf8_lossy(patch.as_json()).contains("\"value\":\"old\""),
            "no value is carried over"
        );
        let patched = apply(&pod_with_value, &patch);
        assert_eq!(
            patched.pointer("/spec/containers/0/env").unwrap(),
            &json!([{"name": "B", "valueFrom": by_ref("b")}, {"name": "A", "valueFrom": by_ref("a")}])
        );
        assert_eq!(
            patched.pointer("/spec/initContainers/0/env").unwrap(),
            &json!([{"name": "A", "valueFrom": by_ref("a")}])
        );
        assert!(patch_of(&patched, "A=a,app:B=b", &values, &[]).is_empty());
        // Delivered inline afterwards, the references are replaced by values.
        let inline = HashMap::from([
            (
                "a",
                Injection {
                    version: 2,
                    source: EnvSource::Value("va"),
                },
            ),
            (
                "b",
                Injection {
                    version: 1,
                    source: EnvSource::Value("vb"),
                },
            ),
        ]);
        let again = apply(&patched, &patch_of(&patched, "A=a,app:B=b", &inline, &[]));
        assert_eq!(
            again.pointer("/spec/containers/0/env").unwrap(),
            &json!([{"name": "B", "value": "vb"}, {"name": "A", "value": "va"}])
        );
    }

    #[test]
    fn a_spec_or_metadata_that_is_not_an_object_is_refused() {
        for pod in [
            json!({"metadata": {}, "spec": []}),
            json!({"spec": {"containers": []}}),
            json!({"metadata": {}, "spec": {"containers": "app"}}),
            json!({"metadata": {}, "spec": {"containers": [{"image": "x"}]}}),
        ] {
            let text = pod.to_string();
            let view = Pod::parse(&text).unwrap();
            assert!(
                matches!(plan_env(&view, &[]), Err(PatchError::Malformed(_))),
                "{pod}"
            );
        }
    }
}
