//! What Vault and OpenBao send back, read without any I/O: KV reads (v1 and
//! v2, including the 404 envelope of a deleted or destroyed version), login
//! and renewal `auth` blocks, token lookups and `{"errors":[…]}` lists.
//!
//! What the server says in its error texts is read to tell cases apart
//! (sealed, no engine mounted), never passed on: a server can echo what it
//! was sent, credentials included.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use crate::crypto::SecretValue;
use crate::resolve::provider::scrub;

/// Which KV engine answered a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvVersion {
    V1,
    V2,
}

/// The outcome of `GET /v1/<remote_path>` with status 200 or 404.
#[derive(Debug, PartialEq, Eq)]
pub enum KvRead {
    /// The value map was read. `values` holds the requested keys that are
    /// present; `missing` the requested keys that are not, and `available`
    /// every key name of the map (names only, for messages).
    Found {
        version: KvVersion,
        values: BTreeMap<String, SecretValue>,
        missing: Vec<String>,
        available: Vec<String>,
    },
    /// KV v2: the latest version is soft-deleted.
    Deleted { version: Option<u64> },
    /// KV v2: the latest version is destroyed.
    Destroyed { version: Option<u64> },
    /// Nothing at that path, and why as far as the answer tells.
    Missing { why: Absence },
}

/// Why a read found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absence {
    /// Nothing was ever written there, or the path is wrong.
    Path,
    /// No secrets engine is mounted at the path ("no handler for route").
    Engine,
    /// The provider's namespace does not exist.
    Namespace,
}

impl Absence {
    pub fn describe(self) -> &'static str {
        match self {
            Absence::Path => "the path does not exist",
            Absence::Engine => "no secrets engine is mounted at that path",
            Absence::Namespace => "the provider's namespace does not exist",
        }
    }
}

/// A body that is not what a KV read returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub String);

/// Reads a KV response. The engine version is decided from the shape of
/// the answer, not from the path: KV v2 wraps the value map as `data.data`
/// next to a `data.metadata` object, KV v1 answers the map itself as
/// `data`. A path cannot tell them apart (a v1 mount may well contain a
/// `data/` segment), the response always can, except for a KV v1 secret
/// whose own keys are exactly an object `data` and an object `metadata`.
///
/// Only the requested `keys` are copied out, as [`SecretValue`]s; every
/// string of the parsed body is wiped before this returns. Strings are
/// taken as they are; other JSON values (numbers, booleans, objects) as
/// their compact JSON text.
pub fn read_kv(status: u16, body: &[u8], keys: &BTreeSet<String>) -> Result<KvRead, ShapeError> {
    let mut parsed: Value = serde_json::from_slice(body).map_err(|_| {
        ShapeError(format!(
            "the server answered HTTP {status} with a body that is not JSON"
        ))
    })?;
    let outcome = interpret(status, &parsed, keys);
    scrub(&mut parsed);
    outcome
}

fn interpret(status: u16, parsed: &Value, keys: &BTreeSet<String>) -> Result<KvRead, ShapeError> {
    let data = parsed.get("data").filter(|d| d.is_object());
    let v2 = data.and_then(|d| {
        let metadata = d.get("metadata").filter(|m| m.is_object())?;
        match d.get("data") {
            Some(Value::Object(map)) => Some((Some(map), metadata)),
            Some(Value::Null) => Some((None, metadata)),
            _ => None,
        }
    });
    if let Some((map, metadata)) = v2 {
        return Ok(match map {
            Some(map) if status == 200 => found(KvVersion::V2, map, keys),
            _ => gone(metadata),
        });
    }
    match (status, data) {
        (200, Some(Value::Object(map))) => Ok(found(KvVersion::V1, map, keys)),
        (200, _) => Err(ShapeError(
            "the response has no data object; is this a KV secrets engine path?".into(),
        )),
        _ => {
            let errors = error_text_of(parsed)
                .unwrap_or_default()
                .to_ascii_lowercase();
            let why = if errors.contains("no handler for route") {
                Absence::Engine
            } else if errors.contains("namespace not found") {
                Absence::Namespace
            } else {
                Absence::Path
            };
            Ok(KvRead::Missing { why })
        }
    }
}

/// A KV v2 version without data: deleted, destroyed, or (should the server
/// say neither) simply absent.
fn gone(metadata: &Value) -> KvRead {
    let version = metadata.get("version").and_then(Value::as_u64);
    let destroyed = metadata.get("destroyed").and_then(Value::as_bool) == Some(true);
    let deleted = metadata
        .get("deletion_time")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    if destroyed {
        KvRead::Destroyed { version }
    } else if deleted {
        KvRead::Deleted { version }
    } else {
        KvRead::Missing { why: Absence::Path }
    }
}

fn found(
    version: KvVersion,
    map: &serde_json::Map<String, Value>,
    keys: &BTreeSet<String>,
) -> KvRead {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for key in keys {
        match map.get(key) {
            Some(Value::String(text)) => {
                values.insert(key.clone(), SecretValue::new(text.clone()));
            }
            Some(Value::Null) | None => missing.push(key.clone()),
            Some(other) => {
                values.insert(key.clone(), SecretValue::new(other.to_string()));
            }
        }
    }
    KvRead::Found {
        version,
        values,
        missing,
        available: map.keys().cloned().collect(),
    }
}

/// `data.current_version` of a KV v2 metadata answer.
pub fn current_version(body: &[u8]) -> Option<u64> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    parsed["data"]["current_version"].as_u64()
}

/// Whether the `errors` of a failed request mention `phrase` (in lower
/// case), e.g. "sealed".
pub fn says(body: &[u8], phrase: &str) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| error_text_of(&v))
        .is_some_and(|text| text.to_ascii_lowercase().contains(phrase))
}

fn error_text_of(body: &Value) -> Option<String> {
    let errors = body.get("errors")?.as_array()?;
    let joined = errors
        .iter()
        .filter_map(Value::as_str)
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|e| e.trim_start_matches("1 error occurred: * ").to_owned())
        .filter(|e| !e.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    (!joined.is_empty()).then_some(joined)
}

/// The `auth` block of a login or a renewal.
#[derive(Debug, Deserialize)]
pub struct Auth {
    pub client_token: SecretValue,
    /// Seconds; 0 means the token does not expire.
    #[serde(default)]
    pub lease_duration: u64,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub policies: Vec<String>,
}

/// Reads the `auth` block of a successful login or renewal.
pub fn read_auth(body: &[u8]) -> Result<Auth, ShapeError> {
    #[derive(Deserialize)]
    struct Envelope {
        auth: Option<Auth>,
    }
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|e| e.auth)
        .ok_or_else(|| ShapeError("the response carries no auth block with a client token".into()))
}

/// What `auth/token/lookup-self` says about a token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenInfo {
    /// Seconds left; 0 means the token does not expire.
    #[serde(default)]
    pub ttl: u64,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub policies: Vec<String>,
}

/// Reads the `data` of a successful token lookup. The body also holds the
/// token itself (`data.id`), which is never copied out.
pub fn read_token_info(body: &[u8]) -> Result<TokenInfo, ShapeError> {
    #[derive(Deserialize)]
    struct Envelope {
        data: Option<TokenInfo>,
    }
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|e| e.data)
        .ok_or_else(|| ShapeError("the token lookup answered without token data".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    // Bodies as OpenBao 2.7.2 answered them (see the wire captures in the
    // project's shared data), with request ids shortened.
    const V2_FOUND: &str = r#"{"request_id":"6a6b","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":{"foo":"baz"},"metadata":{"created_time":"2026-11-28T19:18:47.760349236Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":2}},"wrap_info":null,"warnings":null,"auth":null}"#;
    const V2_DELETED: &str = r#"{"request_id":"d3c8","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":null,"metadata":{"created_time":"2026-11-28T19:18:47.760349236Z","custom_metadata":null,"deletion_time":"2026-11-28T19:18:47.826356384Z","destroyed":false,"version":2}},"wrap_info":null,"warnings":null,"auth":null}"#;
    const V2_DESTROYED: &str = r#"{"request_id":"cd25","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":null,"metadata":{"created_time":"2026-11-28T19:18:47.746076781Z","custom_metadata":null,"deletion_time":"","destroyed":true,"version":1}},"wrap_info":null,"warnings":null,"auth":null}"#;
    const V1_FOUND: &str = r#"{"request_id":"bddb","lease_id":"","renewable":false,"lease_duration":3600,"data":{"foo":"bar","ttl":"1h"},"wrap_info":null,"warnings":null,"auth":null}"#;
    const MISSING: &str = r#"{"errors":[]}"#;
    const NO_MOUNT: &str =
        r#"{"errors":["no handler for route \"nomount/data/x\". route entry not found."]}"#;
    const DENIED_OLD: &str = r#"{"errors":["permission denied"]}"#;
    const DENIED_MULTI: &str = r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#;
    const SEALED: &str = r#"{"errors":["Vault is sealed"]}"#;
    const APPROLE_LOGIN: &str = r#"{"request_id":"45cf","lease_id":"","renewable":false,"lease_duration":0,"data":null,"wrap_info":null,"warnings":null,"auth":{"client_token":"s.hLSHa6gwBlzZdTIAkMuMEWC3","accessor":"0XzNTQ2nJhJVRl7QlTASPbXr","policies":["default"],"token_policies":["default"],"metadata":{"role_name":"my-role"},"lease_duration":1200,"renewable":true,"entity_id":"f331ce3f","token_type":"service","orphan":true,"mfa_requirement":null,"num_uses":0}}"#;
    const RENEWED: &str = r#"{"request_id":"835e","lease_id":"","renewable":false,"lease_duration":0,"data":null,"wrap_info":null,"warnings":null,"auth":{"client_token":"s.pCpozCtcQHhoifXaLxVR9wH1","accessor":"C7Vc","policies":["default"],"token_policies":["default"],"metadata":{"user":"t"},"lease_duration":7200,"renewable":true,"entity_id":"","token_type":"service","orphan":false,"mfa_requirement":null,"num_uses":0}}"#;
    const LOOKUP_ROOT: &str = r#"{"request_id":"8c02","lease_id":"","renewable":false,"lease_duration":0,"data":{"accessor":"GDLO","creation_time":1795893523,"creation_ttl":0,"display_name":"token","entity_id":"","expire_time":null,"explicit_max_ttl":0,"id":"root","issue_time":"2026-11-28T19:18:43.833796396Z","meta":null,"num_uses":0,"orphan":true,"path":"auth/token/create","policies":["root"],"renewable":false,"ttl":0,"type":"service"},"wrap_info":null,"warnings":null,"auth":null}"#;
    const LOOKUP_CHILD: &str = r#"{"request_id":"ee9e","lease_id":"","renewable":false,"lease_duration":0,"data":{"accessor":"C7Vc","creation_time":1795893527,"creation_ttl":3600,"display_name":"token","entity_id":"","expire_time":"2026-11-28T20:18:47.910730851Z","explicit_max_ttl":0,"id":"s.pCpozCtcQHhoifXaLxVR9wH1","issue_time":"2026-11-28T19:18:47.910735268Z","meta":{"user":"t"},"num_uses":0,"orphan":false,"path":"auth/token/create","policies":["default"],"renewable":true,"ttl":3599,"type":"service"},"wrap_info":null,"warnings":null,"auth":null}"#;

    fn keys(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|k| k.to_string()).collect()
    }

    fn found(
        read: KvRead,
    ) -> (
        KvVersion,
        BTreeMap<String, String>,
        Vec<String>,
        Vec<String>,
    ) {
        match read {
            KvRead::Found {
                version,
                values,
                missing,
                available,
            } => (
                version,
                values
                    .into_iter()
                    .map(|(k, v)| (k, v.expose().to_owned()))
                    .collect(),
                missing,
                available,
            ),
            other => panic!("expected a value map, got {other:?}"),
        }
    }

    #[test]
    fn kv_v2_takes_the_inner_map() {
        let (version, values, missing, available) =
            found(read_kv(200, V2_FOUND.as_bytes(), &keys(&["foo"])).unwrap());
        assert_eq!(version, KvVersion::V2);
        assert_eq!(values["foo"], "baz");
        assert!(missing.is_empty());
        assert_eq!(available, ["foo"]);
    }

    #[test]
    fn kv_v1_takes_data_itself() {
        let (version, values, missing, available) =
            found(read_kv(200, V1_FOUND.as_bytes(), &keys(&["foo", "password"])).unwrap());
        assert_eq!(version, KvVersion::V1);
        assert_eq!(values["foo"], "bar");
        assert_eq!(missing, ["password"]);
        assert_eq!(available, ["foo", "ttl"]);
    }

    #[test]
    fn kv_v1_map_with_a_data_key_is_still_v1() {
        // A v1 secret may have a key called "data"; without a metadata
        // object beside it, it is not a v2 envelope.
        let body = r#"{"data":{"data":{"x":"y"},"other":"z"}}"#;
        let (version, values, ..) =
            found(read_kv(200, body.as_bytes(), &keys(&["other", "data"])).unwrap());
        assert_eq!(version, KvVersion::V1);
        assert_eq!(values["other"], "z");
        assert_eq!(values["data"], r#"{"x":"y"}"#);
    }

    #[test]
    fn non_string_values_become_their_json_text() {
        let body =
            r#"{"data":{"data":{"port":5432,"tls":true,"empty":null},"metadata":{"version":1}}}"#;
        let (_, values, missing, _) =
            found(read_kv(200, body.as_bytes(), &keys(&["port", "tls", "empty"])).unwrap());
        assert_eq!(values["port"], "5432");
        assert_eq!(values["tls"], "true");
        assert_eq!(missing, ["empty"]);
    }

    #[rstest]
    #[case::deleted(404, V2_DELETED, KvRead::Deleted { version: Some(2) })]
    #[case::destroyed(404, V2_DESTROYED, KvRead::Destroyed { version: Some(1) })]
    #[case::missing(404, MISSING, KvRead::Missing { why: Absence::Path })]
    #[case::no_mount(404, NO_MOUNT, KvRead::Missing { why: Absence::Engine })]
    #[case::namespace(404, r#"{"errors":["namespace not found"]}"#, KvRead::Missing {
        why: Absence::Namespace,
    })]
    fn kv_without_a_value(#[case] status: u16, #[case] body: &str, #[case] expected: KvRead) {
        assert_eq!(
            read_kv(status, body.as_bytes(), &keys(&["foo"])).unwrap(),
            expected
        );
    }

    #[test]
    fn a_body_that_is_not_kv_is_an_error() {
        assert!(read_kv(200, b"<html>", &keys(&["a"])).is_err());
        assert!(read_kv(200, br#"{"data":null}"#, &keys(&["a"])).is_err());
    }

    #[rstest]
    #[case::old_text(DENIED_OLD, "permission denied", true)]
    #[case::multi_line(DENIED_MULTI, "permission denied", true)]
    #[case::sealed(SEALED, "sealed", true)]
    #[case::empty(MISSING, "sealed", false)]
    #[case::not_json("oops sealed", "sealed", false)]
    fn error_texts(#[case] body: &str, #[case] phrase: &str, #[case] expected: bool) {
        assert_eq!(says(body.as_bytes(), phrase), expected);
    }

    #[test]
    fn login_and_renewal_auth_blocks() {
        let login = read_auth(APPROLE_LOGIN.as_bytes()).unwrap();
        assert_eq!(login.client_token.expose(), "s.hLSHa6gwBlzZdTIAkMuMEWC3");
        assert_eq!((login.lease_duration, login.renewable), (1200, true));
        assert_eq!(login.policies, ["default"]);
        assert!(!format!("{login:?}").contains("hLSHa6"));
        let renewed = read_auth(RENEWED.as_bytes()).unwrap();
        assert_eq!(renewed.lease_duration, 7200);
        assert!(read_auth(V2_FOUND.as_bytes()).is_err());
    }

    #[test]
    fn token_lookups() {
        let root = read_token_info(LOOKUP_ROOT.as_bytes()).unwrap();
        assert_eq!((root.ttl, root.renewable), (0, false));
        assert_eq!(root.policies, ["root"]);
        let child = read_token_info(LOOKUP_CHILD.as_bytes()).unwrap();
        assert_eq!((child.ttl, child.renewable), (3599, true));
    }

    #[test]
    fn scrub_wipes_every_string() {
        let mut body: Value = serde_json::from_str(V2_FOUND).unwrap();
        scrub(&mut body);
        assert!(!body.to_string().contains("baz"));
    }
}
