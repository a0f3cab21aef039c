//! The parts of a pod the mutation reads, borrowed from the review's bytes.
//!
//! Only metadata (names, owners, three annotations) and, for each container,
//! its name and env are read; everything else in the pod is skipped without
//! being built. Strings point into the request body unless they hold JSON
//! escapes.
//!
//! The API server only ever sends pods that decode as Kubernetes Pods, and
//! those are read in one pass ([`StrictPod`]). A hand-made review may hold
//! something else; it is then read again part by part ([`PodWire`]): a part
//! that does not have the shape of a pod's is kept as a message, and only a
//! pod that asks for secrets is refused for it. A pod that asks for nothing
//! passes whatever its shape. Both reads give the same [`Pod`] for a
//! well-formed pod (a property test checks it).

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A string borrowed from the input when it has no escapes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Str<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta<'a> {
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    /// Set on pods the API server has stored, not on those it admits.
    #[serde(borrow)]
    pub uid: Option<Str<'a>>,
    #[serde(borrow)]
    pub generate_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub namespace: Option<Str<'a>>,
    #[serde(borrow)]
    pub owner_references: Option<Vec<OwnerReference<'a>>>,
    /// Read separately, leniently: see [`Annotations`].
    #[serde(borrow)]
    annotations: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct OwnerReference<'a> {
    #[serde(borrow)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    pub controller: Option<bool>,
}

/// The annotations the mutation reads. A value that is not a string counts
/// as absent, as it would for a map lookup.
#[derive(Debug, Default)]
pub struct Annotations<'a> {
    pub env: Option<Str<'a>>,
    pub delivery: Option<Str<'a>>,
    pub pull_secrets: Option<Str<'a>>,
    pub injected: Option<Str<'a>>,
    /// Whether `metadata.annotations` is an object that a key can be added to.
    pub is_object: bool,
}

#[derive(Deserialize)]
struct AnnotationsWire<'a> {
    #[serde(rename = "secrets.agyn.io/env", borrow)]
    env: Option<&'a RawValue>,
    #[serde(rename = "secrets.agyn.io/delivery", borrow)]
    delivery: Option<&'a RawValue>,
    #[serde(rename = "secrets.agyn.io/image-pull-secrets", borrow)]
    pull_secrets: Option<&'a RawValue>,
    #[serde(rename = "secrets.agyn.io/injected", borrow)]
    injected: Option<&'a RawValue>,
}

impl<'a> Annotations<'a> {
    fn read(raw: Option<&'a RawValue>) -> Self {
        let Some(raw) = raw.filter(|r| r.get().starts_with('{')) else {
            return Self::default();
        };
        let text = |value: Option<&'a RawValue>| {
            value.and_then(|v| serde_json::from_str::<Str<'a>>(v.get()).ok())
        };
        match serde_json::from_str::<AnnotationsWire<'a>>(raw.get()) {
            Ok(wire) => Annotations {
                env: text(wire.env),
                delivery: text(wire.delivery),
                pull_secrets: text(wire.pull_secrets),
                injected: text(wire.injected),
                is_object: true,
            },
            // Only a key given twice gets here; the API server never sends that.
            Err(_) => Annotations {
                is_object: true,
                ..Self::default()
            },
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec<'a> {
    #[serde(borrow)]
    pub init_containers: Option<Vec<Container<'a>>>,
    #[serde(borrow)]
    pub containers: Option<Vec<Container<'a>>>,
    #[serde(borrow)]
    pub image_pull_secrets: Option<Vec<NameReference<'a>>>,
    /// Only the names: delivery `exec` adds two volumes.
    #[serde(borrow)]
    pub volumes: Option<Vec<NameReference<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container<'a> {
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub env: Option<Vec<EnvVar<'a>>>,
    /// Read for delivery `exec`, which wraps it.
    #[serde(borrow)]
    pub command: Option<Vec<Str<'a>>>,
    #[serde(borrow)]
    pub volume_mounts: Option<Vec<VolumeMount<'a>>>,
}

/// Where a container mounts a volume; the rest of the mount is skipped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount<'a> {
    #[serde(borrow)]
    pub mount_path: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar<'a> {
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub value: Option<Str<'a>>,
    #[serde(borrow)]
    pub value_from: Option<&'a RawValue>,
}

impl EnvVar<'_> {
    /// Whether this entry is exactly what `source` would write for `name`.
    pub fn is(&self, name: &str, source: &EnvSource<'_>) -> bool {
        if self.name.as_deref() != Some(name) {
            return false;
        }
        match source {
            EnvSource::Value(value) => {
                self.value.as_deref() == Some(*value) && self.value_from.is_none()
            }
            EnvSource::SecretKey { secret, key } => {
                self.value.as_deref().unwrap_or_default().is_empty()
                    && self
                        .value_from
                        .and_then(|raw| serde_json::from_str::<ValueFrom<'_>>(raw.get()).ok())
                        .is_some_and(|from| {
                            let r = from.secret_key_ref;
                            *r.name == **secret && *r.key == **key && r.optional != Some(true)
                        })
            }
        }
    }
}

/// Where an injected variable's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvSource<'a> {
    /// The value itself, inline in the pod spec.
    Value(&'a str),
    /// A key of a Kubernetes Secret in the pod's namespace.
    SecretKey { secret: &'a str, key: &'a str },
}

/// A `valueFrom` that is a `secretKeyRef` and nothing else.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ValueFrom<'a> {
    #[serde(borrow)]
    secret_key_ref: SecretKeyRef<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyRef<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    key: Str<'a>,
    optional: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct NameReference<'a> {
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
}

/// The top level of a pod: metadata and spec as raw JSON, the rest skipped.
/// Anything that is not a JSON object reads as a pod without either.
#[derive(Debug, Default)]
pub(super) struct PodWire<'a> {
    metadata: Option<&'a RawValue>,
    spec: Option<&'a RawValue>,
    is_object: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for PodWire<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PodWireVisitor(PhantomData))
    }
}

struct PodWireVisitor<'a>(PhantomData<PodWire<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for PodWireVisitor<'a> {
    type Value = PodWire<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a pod")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pod = PodWire {
            is_object: true,
            ..PodWire::default()
        };
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key {
                "metadata" => pod.metadata = map.next_value::<Option<&'de RawValue>>()?,
                "spec" => pod.spec = map.next_value::<Option<&'de RawValue>>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(pod)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(PodWire::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(PodWire::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(PodWire::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(PodWire::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(PodWire::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(PodWire::default())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(PodWire::default())
    }
}

/// A pod read in one pass: what the API server sends. Any part that is not
/// shaped like a pod's fails the whole read.
#[derive(Debug, Deserialize)]
pub(super) struct StrictPod<'a> {
    #[serde(borrow)]
    metadata: Option<Meta<'a>>,
    #[serde(borrow)]
    spec: Option<Spec<'a>>,
}

#[derive(Deserialize)]
struct AnnotationsOnly<'a> {
    #[serde(borrow)]
    annotations: Option<&'a RawValue>,
}

/// A pod as far as the mutation reads it.
#[derive(Debug)]
pub struct Pod<'a> {
    /// The metadata, or what is wrong with it.
    pub meta: Result<Meta<'a>, String>,
    pub annotations: Annotations<'a>,
    /// The spec, or what is wrong with it.
    pub spec: Result<Spec<'a>, String>,
}

impl<'a> Pod<'a> {
    /// Reads a pod from JSON text. Fails only when the text is not JSON;
    /// JSON that is not shaped like a pod gives a pod that asks for nothing
    /// and says what is wrong.
    pub fn parse(json: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json).map(Self::read)
    }

    /// The same pod as [`Pod::read`] gives for the same JSON.
    pub(super) fn from_strict(pod: StrictPod<'a>) -> Self {
        let annotations = pod
            .metadata
            .as_ref()
            .map(|meta| Annotations::read(meta.annotations))
            .unwrap_or_default();
        Pod {
            meta: pod.metadata.ok_or_else(|| missing("metadata")),
            annotations,
            spec: pod.spec.ok_or_else(|| missing("spec")),
        }
    }

    pub(super) fn read(wire: PodWire<'a>) -> Self {
        if !wire.is_object {
            return Pod {
                meta: Err("the object is not a JSON object".into()),
                annotations: Annotations::default(),
                spec: Err("the object is not a JSON object".into()),
            };
        }
        let (meta, annotations) = match object(wire.metadata, "metadata") {
            Err(error) => (Err(error), Annotations::default()),
            Ok(raw) => match serde_json::from_str::<Meta<'a>>(raw.get()) {
                Ok(meta) => {
                    let annotations = Annotations::read(meta.annotations);
                    (Ok(meta), annotations)
                }
                Err(error) => {
                    let annotations = serde_json::from_str::<AnnotationsOnly<'a>>(raw.get())
                        .map(|a| Annotations::read(a.annotations))
                        .unwrap_or_default();
                    (Err(shape("metadata", &error)), annotations)
                }
            },
        };
        let spec = object(wire.spec, "spec").and_then(|raw| {
            serde_json::from_str::<Spec<'a>>(raw.get()).map_err(|e| shape("spec", &e))
        });
        Pod {
            meta,
            annotations,
            spec,
        }
    }

    /// The pod's name, or its generateName while the name is not set yet
    /// (pods made by controllers).
    pub fn name(&self) -> &str {
        let Ok(meta) = &self.meta else { return "" };
        meta.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(meta.generate_name.as_deref())
            .unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.meta.as_ref().ok()?.namespace.as_deref()
    }

    /// The controlling owner's kind and name, if any.
    pub fn owner(&self) -> Option<(&str, &str)> {
        let owners = self.meta.as_ref().ok()?.owner_references.as_ref()?;
        let owner = owners
            .iter()
            .find(|o| o.controller == Some(true))
            .or_else(|| owners.first())?;
        Some((owner.kind.as_deref()?, owner.name.as_deref()?))
    }
}

fn object<'a>(raw: Option<&'a RawValue>, what: &str) -> Result<&'a RawValue, String> {
    raw.filter(|r| r.get().starts_with('{'))
        .ok_or_else(|| missing(what))
}

fn missing(what: &str) -> String {
    format!("{what} is missing or not an object")
}

/// A decoding error without its position, which would point into a part
/// of the body rather than the body.
fn shape(what: &str, error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text);
    format!("{what} is not shaped like a pod's {what}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_what_the_mutation_needs() {
        let text = r#"{"metadata": {"generateName": "web-", "namespace": "team-a",
            "labels": {"a": "b"},
            "annotations": {"secrets.agyn.io/env": "A=a\nB=b", "other": 5},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "controller": true, "uid": "u"}]},
            "spec": {"containers": [{"name": "app", "image": "x", "env": [{"name": "K", "value": "v"}]}],
                     "volumes": [{"name": "data", "emptyDir": {}}]}}"#;
        let pod = Pod::parse(text).unwrap();
        assert_eq!(pod.name(), "web-");
        assert_eq!(pod.namespace(), Some("team-a"));
        assert_eq!(pod.owner(), Some(("ReplicaSet", "web-1")));
        assert_eq!(pod.annotations.env.as_deref(), Some("A=a\nB=b"));
        assert!(pod.annotations.pull_secrets.is_none());
        let spec = pod.spec.unwrap();
        let app = &spec.containers.as_ref().unwrap()[0];
        assert_eq!(app.name.as_deref(), Some("app"));
        assert!(app.env.as_ref().unwrap()[0].is("K", &EnvSource::Value("v")));
    }

    #[test]
    fn a_secret_reference_matches_only_exactly() {
        let source = EnvSource::SecretKey {
            secret: "agyn-env-1",
            key: "db",
        };
        let entry = |json: &str| {
            let text = format!(
                r#"{{"metadata":{{}},"spec":{{"containers":[{{"name":"a","env":[{json}]}}]}}}}"#
            );
            let pod = Pod::parse(&text).unwrap();
            let spec = pod.spec.unwrap();
            spec.containers.unwrap()[0].env.as_ref().unwrap()[0].is("V", &source)
        };
        assert!(entry(
            r#"{"name":"V","valueFrom":{"secretKeyRef":{"name":"agyn-env-1","key":"db"}}}"#
        ));
        assert!(entry(
            r#"{"name":"V","value":"","valueFrom":{"secretKeyRef":{"key":"db","name":"agyn-env-1","optional":false}}}"#
        ));
        for other in [
            r#"{"name":"V","valueFrom":{"secretKeyRef":{"name":"agyn-env-1","key":"db","optional":true}}}"#,
            r#"{"name":"V","valueFrom":{"secretKeyRef":{"name":"agyn-env-2","key":"db"}}}"#,
            r#"{"name":"V","valueFrom":{"secretKeyRef":{"name":"agyn-env-1","key":"dc"}}}"#,
            r#"{"name":"V","valueFrom":{"configMapKeyRef":{"name":"agyn-env-1","key":"db"}}}"#,
            r#"{"name":"V","value":"x","valueFrom":{"secretKeyRef":{"name":"agyn-env-1","key":"db"}}}"#,
            r#"{"name":"W","valueFrom":{"secretKeyRef":{"name":"agyn-env-1","key":"db"}}}"#,
            r#"{"name":"V","value":"agyn-env-1"}"#,
        ] {
            assert!(!entry(other), "{other}");
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let pod =
            Pod::parse(r#"{"metadata": {"name": "plain", "namespace": "a\u002db"}}"#).unwrap();
        let meta = pod.meta.as_ref().unwrap();
        assert!(matches!(meta.name.as_ref().unwrap().0, Cow::Borrowed(_)));
        assert_eq!(pod.namespace(), Some("a-b"));
    }

    #[test]
    fn shapes_that_are_not_a_pod_are_reported_not_fatal() {
        let pod = Pod::parse("5").unwrap();
        assert!(pod.meta.is_err() && pod.spec.is_err());
        assert!(pod.annotations.env.is_none());

        let pod = Pod::parse(r#"{"metadata": {"name": 7, "annotations": {"secrets.agyn.io/env": "A=a"}}, "spec": "x"}"#).unwrap();
        assert!(
            pod.meta
                .unwrap_err()
                .starts_with("metadata is not shaped like")
        );
        assert_eq!(pod.annotations.env.as_deref(), Some("A=a"));
        assert_eq!(pod.spec.unwrap_err(), "spec is missing or not an object");

        let pod =
            Pod::parse(r#"{"metadata": {"annotations": ["x"]}, "spec": {"containers": "app"}}"#)
                .unwrap();
        assert!(!pod.annotations.is_object);
        let error = pod.spec.unwrap_err();
        assert!(!error.contains("line"), "{error}");
        assert!(error.contains("expected a sequence"), "{error}");

        let pod =
            Pod::parse(r#"{"metadata": {"annotations": {"secrets.agyn.io/env": 7}}}"#).unwrap();
        assert!(pod.annotations.is_object && pod.annotations.env.is_none());
        assert!(Pod::parse("{").is_err());
    }

    #[test]
    fn the_keys_read_are_the_crate_s_annotations() {
        use crate::admission::{
            DELIVERY_ANNOTATION, ENV_ANNOTATION, INJECTED_ANNOTATION, PULL_SECRETS_ANNOTATION,
        };
        let text = serde_json::json!({"metadata": {"annotations": {
            ENV_ANNOTATION: "e", PULL_SECRETS_ANNOTATION: "p", INJECTED_ANNOTATION: "i",
            DELIVERY_ANNOTATION: "d"}}})
        .to_string();
        let pod = Pod::parse(&text).unwrap();
        let a = &pod.annotations;
        assert_eq!(
            (
                a.env.as_deref(),
                a.pull_secrets.as_deref(),
                a.injected.as_deref(),
                a.delivery.as_deref()
            ),
            (Some("e"), Some("p"), Some("i"), Some("d"))
        );
    }
}
