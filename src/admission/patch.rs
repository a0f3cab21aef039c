//! Planning which container gets which variable, and building the RFC 6902
//! patch that puts the values in place.
//!
//! The patch is computed against the pod as it arrives, and an entry that is
//! already exactly right produces no operation. So a second review of our own
//! output (reinvocationPolicy IfNeeded) yields an empty patch. The patch is
//! written straight to JSON text: it is only ever sent, never inspected.

use super::annotations::{EnvEntry, quote};
use super::exec::ExecSetup;
use super::pod::{Annotations, Container, EnvSource, EnvVar, NameReference, Pod, Spec};

/// Where a container is listed in the pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerList {
    Init,
    Regular,
}

impl ContainerList {
    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Init => "initContainers",
            ContainerList::Regular => "containers",
        }
    }
}

/// The variables one container receives, in annotation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan<'a> {
    pub list: ContainerList,
    pub index: usize,
    pub name: &'a str,
    /// `(VAR, secret name)` pairs.
    pub vars: Vec<(&'a str, &'a str)>,
}

impl ContainerPlan<'_> {
    /// JSON pointer of the container, e.g. `/spec/initContainers/0`.
    pub fn pointer(&self) -> String {
        format!("/spec/{}/{}", self.list.field(), self.index)
    }

    /// The container as the pod spec has it.
    pub(super) fn current<'s>(&self, spec: Option<&'s Spec<'_>>) -> Option<&'s Container<'s>> {
        let list = match self.list {
            ContainerList::Init => spec?.init_containers.as_deref(),
            ContainerList::Regular => spec?.containers.as_deref(),
        };
        list?.get(self.index)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan<'a> {
    pub containers: Vec<ContainerPlan<'a>>,
}

impl<'a> Plan<'a> {
    /// How many variables all containers receive together.
    pub fn var_count(&self) -> usize {
        self.containers.iter().map(|c| c.vars.len()).sum()
    }

    /// Distinct secret names, sorted.
    pub fn secret_names(&self) -> Vec<&'a str> {
        let mut names = Vec::with_capacity(self.var_count());
        names.extend(
            self.containers
                .iter()
                .flat_map(|c| c.vars.iter().map(|(_, s)| *s)),
        );
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
    #[error("pod is malformed: {0}")]
    Malformed(String),
}

fn list_known(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (containers: {})", names.join(", "))
    }
}

/// The pod's init containers and containers, in that order.
fn containers<'p>(
    pod: &'p Pod<'_>,
) -> impl Iterator<Item = (ContainerList, usize, &'p Container<'p>)> {
    let spec = pod.spec.as_ref().ok();
    let list = move |which: ContainerList| {
        let list = spec.and_then(|s| match which {
            ContainerList::Init => s.init_containers.as_deref(),
            ContainerList::Regular => s.containers.as_deref(),
        });
        list.unwrap_or_default()
            .iter()
            .enumerate()
            .map(move |(i, c)| (which, i, c))
    };
    list(ContainerList::Init).chain(list(ContainerList::Regular))
}

/// Decides which container gets which variable. Entries without a container
/// go to every container and init container.
pub fn plan_env<'a>(pod: &'a Pod<'_>, entries: &[EnvEntry<'a>]) -> Result<Plan<'a>, PatchError> {
    // The patch adds under both; a pod where either is not an object would
    // get a patch that cannot apply.
    if let Err(error) = &pod.meta {
        return Err(PatchError::Malformed(error.clone()));
    }
    if let Err(error) = &pod.spec {
        return Err(PatchError::Malformed(error.clone()));
    }
    let all = named_containers(pod)?;
    check_containers_named(entries, &all)?;
    let mut plan = Plan {
        containers: Vec::with_capacity(all.len()),
    };
    for (list, index, name) in all {
        let vars = container_vars(name, entries)?;
        if !vars.is_empty() {
            plan.containers.push(ContainerPlan {
                list,
                index,
                name,
                vars,
            });
        }
    }
    Ok(plan)
}

/// Every container that can receive variables, with its name: all but the
/// installer that delivery `exec` adds, which is the product's own.
fn named_containers<'a>(
    pod: &'a Pod<'_>,
) -> Result<Vec<(ContainerList, usize, &'a str)>, PatchError> {
    let mut all = Vec::with_capacity(containers(pod).count());
    for (list, index, container) in containers(pod) {
        let name = container
            .name
            .as_deref()
            .ok_or_else(|| PatchError::Malformed("a container has no name".into()))?;
        if list == ContainerList::Init && name == super::exec::INSTALLER {
            continue;
        }
        all.push((list, index, name));
    }
    Ok(all)
}

/// Checks that every container an entry names is one of `all`.
fn check_containers_named(
    entries: &[EnvEntry<'_>],
    all: &[(ContainerList, usize, &str)],
) -> Result<(), PatchError> {
    for entry in entries {
        if let Some(container) = entry.container
            && !all.iter().any(|(_, _, name)| *name == container)
        {
            return Err(PatchError::UnknownContainer {
                position: entry.position,
                text: entry.text.to_owned(),
                container: container.to_owned(),
                known: all.iter().map(|(_, _, n)| (*n).to_owned()).collect(),
            });
        }
    }
    Ok(())
}

/// The `(VAR, secret)` pairs of the entries that apply to container `name`,
/// in annotation order; a variable set twice is an error.
fn container_vars<'a>(
    name: &str,
    entries: &[EnvEntry<'a>],
) -> Result<Vec<(&'a str, &'a str)>, PatchError> {
    let applies = |entry: &&EnvEntry<'_>| entry.container.is_none_or(|c| c == name);
    let mut vars: Vec<(&str, &str)> = Vec::with_capacity(entries.len());
    for entry in entries.iter().filter(applies) {
        if let Some(at) = vars.iter().position(|(var, _)| *var == entry.var) {
            let first = entries
                .iter()
                .filter(applies)
                .nth(at)
                .expect("the earlier entry is one of those that apply");
            return Err(PatchError::DuplicateVar {
                position: entry.position,
                text: entry.text.to_owned(),
                var: entry.var.to_owned(),
                container: name.to_owned(),
                first: first.position,
            });
        }
        vars.push((entry.var, entry.secret));
    }
    Ok(vars)
}

/// A resolved secret to inject: where its variables take their value from.
#[derive(Debug, Clone, Copy)]
pub struct Injection<'a> {
    pub version: i64,
    pub source: EnvSource<'a>,
}

/// An RFC 6902 patch as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub(super) json: Vec<u8>,
    ops: usize,
}

impl Default for Patch {
    fn default() -> Self {
        Patch::with_capacity(1)
    }
}

impl Patch {
    fn with_capacity(capacity: usize) -> Self {
        let mut json = Vec::with_capacity(capacity);
        json.push(b'[');
        Patch { json, ops: 0 }
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops
    }

    pub fn is_empty(&self) -> bool {
        self.ops == 0
    }

    /// The patch: a JSON array of operations.
    pub fn as_json(&self) -> &[u8] {
        &self.json
    }

    /// Starts an operation; the caller writes the rest of the path, then
    /// calls [`Patch::value`], writes the value and calls [`Patch::end`].
    pub(super) fn begin(&mut self, op: &str, path: &str) {
        if self.ops > 0 {
            self.json.push(b',');
        }
        self.ops += 1;
        self.json.extend_from_slice(b"{\"op\":\"");
        self.json.extend_from_slice(op.as_bytes());
        self.json.extend_from_slice(b"\",\"path\":\"");
        self.json.extend_from_slice(path.as_bytes());
    }

    pub(super) fn value(&mut self) {
        self.json.extend_from_slice(b"\",\"value\":");
    }

    pub(super) fn end(&mut self) {
        self.json.push(b'}');
    }

    pub(super) fn container_path(&mut self, container: &ContainerPlan<'_>) {
        self.container_field(container, "env");
    }

    /// Writes `/<list>/<index>/<field>` after a `/spec` path start.
    pub(super) fn container_field(&mut self, container: &ContainerPlan<'_>, field: &str) {
        self.json.push(b'/');
        self.json
            .extend_from_slice(container.list.field().as_bytes());
        self.json.push(b'/');
        self.index(container.index);
        self.json.push(b'/');
        self.json.extend_from_slice(field.as_bytes());
    }

    pub(super) fn index(&mut self, index: usize) {
        crate::decimal::push_decimal(&mut self.json, index as u64);
    }

    pub(super) fn string(&mut self, text: &str) {
        serde_json::to_writer(&mut self.json, text).expect("writing to a Vec cannot fail");
    }

    pub(super) fn env_var(&mut self, name: &str, source: &EnvSource<'_>) {
        self.json.extend_from_slice(b"{\"name\":");
        self.string(name);
        match source {
            EnvSource::Value(value) => {
                self.json.extend_from_slice(b",\"value\":");
                self.string(value);
            }
            EnvSource::SecretKey { secret, key } => {
                self.json
                    .extend_from_slice(b",\"valueFrom\":{\"secretKeyRef\":{\"name\":");
                self.string(secret);
                self.json.extend_from_slice(b",\"key\":");
                self.string(key);
                self.json.extend_from_slice(b"}}");
            }
        }
        self.json.push(b'}');
    }

    /// Sets each `(name, source)` in a container's env: an entry that is
    /// already exactly right stays, every other entry of that name is
    /// replaced, a missing one is added.
    pub(super) fn env<'s>(
        &mut self,
        container: &ContainerPlan<'_>,
        current: Option<&[EnvVar<'_>]>,
        desired: impl Iterator<Item = (&'s str, EnvSource<'s>)>,
    ) {
        match current {
            None => {
                self.begin("add", "/spec");
                self.container_path(container);
                self.value();
                self.json.push(b'[');
                for (i, (var, source)) in desired.enumerate() {
                    if i > 0 {
                        self.json.push(b',');
                    }
                    self.env_var(var, &source);
                }
                self.json.push(b']');
                self.end();
            }
            Some(env) => {
                for (var, source) in desired {
                    // Kubernetes lets the last entry of a name win, so every
                    // entry of that name is replaced, not just the first.
                    let mut found = false;
                    for (i, existing) in env.iter().enumerate() {
                        if existing.name.as_deref() != Some(var) {
                            continue;
                        }
                        found = true;
                        if !existing.is(var, &source) {
                            self.begin("replace", "/spec");
                            self.container_path(container);
                            self.json.push(b'/');
                            self.index(i);
                            self.value();
                            self.env_var(var, &source);
                            self.end();
                        }
                    }
                    if !found {
                        self.begin("add", "/spec");
                        self.container_path(container);
                        self.json.extend_from_slice(b"/-");
                        self.value();
                        self.env_var(var, &source);
                        self.end();
                    }
                }
            }
        }
    }

    /// Writes any JSON value.
    pub(super) fn json_value(&mut self, value: &impl serde::Serialize) {
        serde_json::to_writer(&mut self.json, value).expect("writing to a Vec cannot fail");
    }

    fn finish(mut self) -> Self {
        self.json.push(b']');
        self
    }
}

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
    use crate::admission::parse_env;
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
