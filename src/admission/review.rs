//! The `admission.k8s.io/v1` AdmissionReview envelope. Only the fields the
//! mutation needs are read; the pod itself stays a JSON value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

const API_VERSION: &str = "admission.k8s.io/v1";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub request: Option<AdmissionRequest>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

impl AdmissionRequest {
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
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    let review: AdmissionReview = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ReviewError::Shape(e.to_string()),
        _ => ReviewError::NotJson(e.to_string()),
    })?;
    let version = review.api_version.unwrap_or_default();
    if version != API_VERSION {
        return Err(ReviewError::Version(version));
    }
    let kind = review.kind.unwrap_or_default();
    if kind != "AdmissionReview" {
        return Err(ReviewError::Kind(kind));
    }
    let request = review.request.ok_or(ReviewError::NoRequest)?;
    if request.uid.is_empty() {
        return Err(ReviewError::NoUid);
    }
    Ok(request)
}

fn envelope(response: Value) -> Value {
    json!({ "apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response })
}

/// An allowing answer, with the patch when there is one.
pub fn allow(uid: &str, patch: &[Value]) -> Value {
    if patch.is_empty() {
        return envelope(json!({ "uid": uid, "allowed": true }));
    }
    let bytes = serde_json::to_vec(patch).expect("a patch serializes");
    envelope(json!({
        "uid": uid,
        "allowed": true,
        "patchType": "JSONPatch",
        "patch": STANDARD.encode(bytes),
    }))
}

/// Why a pod is denied: the person's fault (403) or a dependency's (503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Forbidden,
    Unavailable,
}

/// A denying answer. The message is shown to whoever created the pod.
pub fn deny(uid: &str, denial: Denial, message: &str) -> Value {
    let (code, reason) = match denial {
        Denial::Forbidden => (403, "Forbidden"),
        Denial::Unavailable => (503, "ServiceUnavailable"),
    };
    envelope(json!({
        "uid": uid,
        "allowed": false,
        "status": { "code": code, "reason": reason, "message": message },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_v1_review() {
        assert!(matches!(
            parse_review(b"not json"),
            Err(ReviewError::NotJson(_))
        ));
        assert!(matches!(parse_review(b"[]"), Err(ReviewError::Shape(_))));
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
    fn answers_carry_the_uid() {
        let allowed = allow("abc", &[json!({"op": "add", "path": "/x", "value": 1})]);
        assert_eq!(allowed["response"]["uid"], "abc");
        assert_eq!(allowed["response"]["patchType"], "JSONPatch");
        let plain = allow("abc", &[]);
        assert!(plain["response"].get("patch").is_none());
        let denied = deny("abc", Denial::Forbidden, "no");
        assert_eq!(denied["response"]["allowed"], false);
        assert_eq!(denied["response"]["status"]["message"], "no");
    }
}
