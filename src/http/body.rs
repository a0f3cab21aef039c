//! Request bodies read within a byte limit, and JSON parsed into the
//! error shape of [`ApiError`]: a 400 for syntax, a 422 naming the field
//! for shape, never the value at fault.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_LENGTH;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult};

/// Reads a request body of at most `limit` bytes: 413 when a declared or
/// actual length is larger (refused before reading when declared), 400 when
/// the body cannot be read.
pub async fn read_limited(request: Request<Body>, limit: usize) -> ApiResult<bytes::Bytes> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|error| {
            if is_length_limit(&error) {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadRequest(format!("cannot read request body: {error}"))
            }
        })
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Parses a JSON body with the API's error shape: syntax errors are 400,
/// shape errors 422 with the path of the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let text = inner.to_string();
        if inner.classify() != serde_json::error::Category::Data {
            return ApiError::BadRequest(format!("request body is not valid JSON: {text}"));
        }
        let text = crate::validate::without_value(strip_position(&text));
        let text = text.as_str();
        let prefix = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
        let (field, message) = if quoted_field(text, "unknown field `").is_some() {
            (path, "unknown field".to_owned())
        } else if let Some(name) = quoted_field(text, "missing field `") {
            (format!("{prefix}{name}"), "is required".to_owned())
        } else if path == "." {
            return ApiError::Validation {
                field: None,
                message: format!("request body: {text}"),
            };
        } else {
            (path, text.to_owned())
        };
        ApiError::Validation {
            message: format!("{field}: {message}"),
            field: Some(field),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    Ok(value)
}

fn quoted_field<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.strip_prefix(prefix)?.split('`').next()
}

fn strip_position(text: &str) -> &str {
    text.rsplit_once(" at line ").map_or(text, |(head, _)| head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
    }

    #[test]
    fn json_errors_name_the_field() {
        let ApiError::Validation { field, message } =
            parse_json::<Body>(br#"{"name":"a","nmae":1}"#).unwrap_err()
        else {
            panic!("expected a validation error")
        };
        assert_eq!(field.as_deref(), Some("nmae"));
        assert_eq!(message, "nmae: unknown field");
        let ApiError::Validation { field, .. } = parse_json::<Body>(b"{}").unwrap_err() else {
            panic!("expected a validation error")
        };
        assert_eq!(field.as_deref(), Some("name"));
        assert!(matches!(
            parse_json::<Body>(b"{"),
            Err(ApiError::BadRequest(_))
        ));
        let ApiError::Validation { field, .. } = parse_json::<Body>(br#"{"name":1}"#).unwrap_err()
        else {
            panic!("expected a validation error")
        };
        assert_eq!(field.as_deref(), Some("name"));
        assert!(matches!(
            parse_json::<Body>(b"[]"),
            Err(ApiError::Validation { field: None, .. })
        ));
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        value: Option<String>,
        count: Option<u8>,
        kind: Option<Kind>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Local,
    }

    #[test]
    fn shape_errors_never_echo_the_value() {
        for (body, expected) in [
            (
                r#"{"value": 4111111111111111}"#,
                "value: invalid type: integer, expected a string",
            ),
            (
                r#"{"value": {"card": "4111111111111111"}}"#,
                "value: invalid type: map, expected a string",
            ),
            (
                r#"{"count": 4111111111111111}"#,
                "count: invalid value: integer, expected u8",
            ),
            (
                r#"{"count": "4111111111111111"}"#,
                "count: invalid type: string, expected u8",
            ),
            (
                r#"{"kind": "4111111111111111"}"#,
                "kind: unknown variant, expected `local`",
            ),
        ] {
            let error = parse_json::<Typed>(body.as_bytes()).unwrap_err();
            let message = error.to_string();
            assert_eq!(message, expected, "{body}");
            assert!(!message.contains("4111"), "{message}");
        }
    }
}
