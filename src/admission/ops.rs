//! An RFC 6902 patch written straight to JSON text (it is only ever sent,
//! never inspected), and the operations the patch builders write.

use super::plan::ContainerPlan;
use super::pod::{EnvSource, EnvVar};

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
    pub(super) fn with_capacity(capacity: usize) -> Self {
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

    pub(super) fn finish(mut self) -> Self {
        self.json.push(b']');
        self
    }
}
