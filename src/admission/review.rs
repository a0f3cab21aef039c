//! The `admission.k8s.io/v1` AdmissionReview envelope. Only the fields the
//! mutation needs are read, borrowed from the body; answers are written
//! straight to JSON text.

use std::borrow::Cow;

use serde::Deserialize;

use super::ops::Patch;
use super::pod::{Pod, PodWire, Str, StrictPod};

const API_VERSION: &str = "admission.k8s.io/v1";

/// A review whose pod is read as `O`: a [`StrictPod`] in one pass, or a
/// [`PodWire`] part by part.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewWire<'a, O> {
    #[serde(borrow)]
    api_version: Option<Str<'a>>,
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    request: Option<RequestWire<'a, O>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersionKind<'a> {
    #[serde(default, borrow)]
    pub group: Cow<'a, str>,
    #[serde(default, borrow)]
    pub version: Cow<'a, str>,
    #[serde(default, borrow)]
    pub kind: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestWire<'a, O> {
    #[serde(borrow)]
    uid: Cow<'a, str>,
    #[serde(borrow)]
    kind: GroupVersionKind<'a>,
    #[serde(default, borrow)]
    sub_resource: Option<Str<'a>>,
    #[serde(default, borrow)]
    operation: Cow<'a, str>,
    #[serde(default, borrow)]
    namespace: Option<Str<'a>>,
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    // A missing Option is None without `default`, which would ask O: Default.
    object: Option<O>,
    #[serde(default)]
    dry_run: Option<bool>,
}

/// The request of a review, borrowed from its body.
#[derive(Debug)]
pub struct AdmissionRequest<'a> {
    pub uid: Cow<'a, str>,
    pub kind: GroupVersionKind<'a>,
    pub sub_resource: Option<Str<'a>>,
    pub operation: Cow<'a, str>,
    pub namespace: Option<Str<'a>>,
    pub name: Option<Str<'a>>,
    pub object: Option<Pod<'a>>,
    pub dry_run: Option<bool>,
}

impl AdmissionRequest<'_> {
    /// Whether this is the creation of a Pod (not a subresource).
    pub fn is_pod_create(&self) -> bool {
        self.kind.group.is_empty()
            && self.kind.kind == "Pod"
            && self.operation == "CREATE"
            && self.sub_resource.as_deref().unwrap_or("").is_empty()
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run.unwrap_or(false)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not an AdmissionReview: {0}")]
    Shape(String),
    #[error(
        "apiVersion {0:?} is not supported; send admission.k8s.io/v1 (admissionReviewVersions: [\"v1\"])"
    )]
    Version(String),
    #[error("kind {0:?} is not AdmissionReview")]
    Kind(String),
    #[error("AdmissionReview has no request")]
    NoRequest,
    #[error("AdmissionReview request has an empty uid")]
    NoUid,
}

/// Parses and checks an AdmissionReview body.
///
/// A pod as the API server sends it is read in one pass. Anything else
/// (a part of the pod that is not shaped like a pod's) is read again, part
/// by part, so that it still gets an answer that says what is wrong.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest<'_>, ReviewError> {
    // One pass over the whole body checks its UTF-8, instead of one check
    // per string read.
    let body = std::str::from_utf8(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    if let Ok(review) = serde_json::from_str::<ReviewWire<'_, StrictPod<'_>>>(body) {
        return check(review, Pod::from_strict);
    }
    let review: ReviewWire<'_, PodWire<'_>> =
        serde_json::from_str(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ReviewError::Shape(e.to_string()),
            _ => ReviewError::NotJson(e.to_string()),
        })?;
    check(review, Pod::read)
}

fn check<'a, O>(
    review: ReviewWire<'a, O>,
    pod: impl FnOnce(O) -> Pod<'a>,
) -> Result<AdmissionRequest<'a>, ReviewError> {
    let version = review.api_version.as_deref().unwrap_or_default();
    if version != API_VERSION {
        return Err(ReviewError::Version(version.to_owned()));
    }
    let kind = review.kind.as_deref().unwrap_or_default();
    if kind != "AdmissionReview" {
        return Err(ReviewError::Kind(kind.to_owned()));
    }
    let request = review.request.ok_or(ReviewError::NoRequest)?;
    if request.uid.is_empty() {
        return Err(ReviewError::NoUid);
    }
    Ok(AdmissionRequest {
        uid: request.uid,
        kind: request.kind,
        sub_resource: request.sub_resource,
        operation: request.operation,
        namespace: request.namespace,
        name: request.name,
        object: request.object.map(pod),
        dry_run: request.dry_run,
    })
}

/// Writes `{"apiVersion":…,"kind":"AdmissionReview","response":{"uid":…,`;
/// the caller writes the rest of the response object. The buffer has room
/// for that rest around `capacity` bytes of message or patch, so that it is
/// not grown while it is written.
fn begin(uid: &str, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(192 + uid.len() + capacity);
    out.extend_from_slice(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"#,
    );
    serde_json::to_writer(&mut out, uid).expect("writing to a Vec cannot fail");
    out
}

/// An allowing answer, with the patch when there is one.
pub fn allow(uid: &str, patch: &Patch) -> Vec<u8> {
    if patch.is_empty() {
        let mut out = begin(uid, 0);
        out.extend_from_slice(br#","allowed":true}}"#);
        return out;
    }
    let json = patch.as_json();
    // A SIMD encoder: the patch carries every value once per container,
    // and encoding it byte by byte took a twentieth of an admission.
    let encoded = base64_simd::STANDARD.encoded_length(json.len());
    let mut out = begin(uid, encoded);
    out.extend_from_slice(br#","allowed":true,"patchType":"JSONPatch","patch":""#);
    let start = out.len();
    out.resize(start + encoded, 0);
    let _ = base64_simd::STANDARD.encode(json, base64_simd::Out::from_slice(&mut out[start..]));
    out.extend_from_slice(b"\"}}");
    out
}

/// Why a pod is denied: the person's fault (403) or a dependency's (503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Forbidden,
    Unavailable,
}

/// A denying answer. The message is shown to whoever created the pod.
pub fn deny(uid: &str, denial: Denial, message: &str) -> Vec<u8> {
    let (code, reason) = match denial {
        Denial::Forbidden => (403, "Forbidden"),
        Denial::Unavailable => (503, "ServiceUnavailable"),
    };
    let mut out = begin(uid, message.len());
    out.extend_from_slice(
        format!(r#","allowed":false,"status":{{"code":{code},"reason":"{reason}","message":"#)
            .as_bytes(),
    );
    serde_json::to_writer(&mut out, message).expect("writing to a Vec cannot fail");
    out.extend_from_slice(b"}}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::{Value, json};

    #[test]
    fn rejects_what_is_not_a_v1_review() {
        assert!(matches!(
            parse_review(b"not json"),
            Err(ReviewError::NotJson(_))
        ));
        assert!(matches!(parse_review(b"[]"), Err(ReviewError::Shape(_))));
        // JSON text is UTF-8 (RFC 8259), inside strings as everywhere else.
        assert!(matches!(
            parse_review(b"{\"apiVersion\":\"admission.k8s.io/v1\xff\"}"),
            Err(ReviewError::NotJson(_))
        ));
        let v1beta1 = br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"}}}"#;
        assert!(matches!(
            parse_review(v1beta1),
            Err(ReviewError::Version(_))
        ));
        let no_request = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        assert!(matches!(
            parse_review(no_request),
            Err(ReviewError::NoRequest)
        ));
    }

    #[test]
    fn reads_the_request_and_its_pod() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"u\"1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE",
            "namespace":"team-a","dryRun":true,"userInfo":{"username":"x"},
            "object":{"metadata":{"name":"p"},"spec":{"containers":[{"name":"app"}]}}}}"#;
        let request = parse_review(body).unwrap();
        assert!(request.is_pod_create() && request.dry_run());
        assert_eq!(request.uid, "u\"1");
        assert_eq!(request.namespace.as_deref(), Some("team-a"));
        assert_eq!(request.object.as_ref().unwrap().name(), "p");
    }

    #[test]
    fn answers_carry_the_uid() {
        let parse = |bytes: Vec<u8>| serde_json::from_slice::<Value>(&bytes).unwrap();
        let text = r#"{"metadata":{},"spec":{"containers":[{"name":"app"}]}}"#;
        let pod = Pod::parse(text).unwrap();
        let entries = crate::admission::parse_env("A=a").unwrap();
        let plan = crate::admission::plan_env(&pod, &entries).unwrap();
        let value = crate::admission::Injection {
            version: 1,
            source: crate::admission::EnvSource::Value("v"),
        };
        let patch = crate::admission::build_patch(&pod, &plan, |_| Some(value), &[], &[], None);
        let allowed = parse(allow("a\"bc", &patch));
        assert_eq!(allowed["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(allowed["kind"], "AdmissionReview");
        assert_eq!(allowed["response"]["uid"], "a\"bc");
        assert_eq!(allowed["response"]["patchType"], "JSONPatch");
        let ops = STANDARD
            .decode(allowed["response"]["patch"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&ops).unwrap(),
            json!([{"op": "add", "path": "/spec/containers/0/env", "value": [{"name": "A", "value": "v"}]}])
        );
        // Every length modulo 3, so every kind of padding, decodes back.
        for length in 1..=6 {
            let value = "v".repeat(length);
            let value = crate::admission::Injection {
                version: 1,
                source: crate::admission::EnvSource::Value(&value),
            };
            let patch = crate::admission::build_patch(&pod, &plan, |_| Some(value), &[], &[], None);
            let allowed = parse(allow("abc", &patch));
            let ops = STANDARD
                .decode(allowed["response"]["patch"].as_str().unwrap())
                .unwrap();
            assert_eq!(ops, patch.as_json());
        }
        let plain = parse(allow("abc", &Patch::default()));
        assert_eq!(plain["response"], json!({"uid": "abc", "allowed": true}));
        let denied = parse(deny("abc", Denial::Unavailable, "no \"way\"\n"));
        assert_eq!(
            denied["response"],
            json!({"uid": "abc", "allowed": false,
                   "status": {"code": 503, "reason": "ServiceUnavailable", "message": "no \"way\"\n"}})
        );
    }
}
