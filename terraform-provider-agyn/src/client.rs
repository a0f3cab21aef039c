//! A small client of the agyn-secrets API, and the translation of its
//! errors into Terraform diagnostics.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use tf_provider::{AttributePath, Diagnostics};

use agyn_api::{ErrorDetail, Page};

use crate::diagnostics::Report;
use crate::references::Reference;

/// How long one API call may take before the provider gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything that can go wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error body.
    #[error("{message}")]
    Api {
        method: Method,
        path: String,
        status: StatusCode,
        code: String,
        message: String,
        field: Option<String>,
        /// The first references, when the API refused because something
        /// uses the object.
        references: Vec<Reference>,
        /// How many references there are in all.
        reference_count: Option<usize>,
    },
    /// The request did not get an answer.
    #[error("cannot reach the agyn API at {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The answer was not what this provider understands.
    #[error("unexpected answer to {method} {path}: {reason}")]
    Decode {
        method: Method,
        path: String,
        reason: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { status, .. } if *status == StatusCode::NOT_FOUND)
    }

    /// Whether the API refused a create because an object of that name (or
    /// namespace) already exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::Api { status, code, .. }
            if *status == StatusCode::CONFLICT && code == "conflict")
    }

    /// Adds this error to `diags`. `action` says what was being done, e.g.
    /// `creating secret "stripe-api-key"`. The API's own message is the
    /// summary; a field it names becomes the diagnostic's attribute.
    pub fn report(&self, diags: &mut Diagnostics, action: &str) {
        self.report_with_hint(diags, action, "");
    }

    /// Like [`Error::report`], with `hint`, what to do about it, as the
    /// detail's last paragraph.
    pub fn report_with_hint(&self, diags: &mut Diagnostics, action: &str, hint: &str) {
        let (mut detail, attribute) = match self {
            Error::Api {
                method,
                path,
                status,
                code,
                field,
                references,
                reference_count,
                ..
            } => {
                let mut detail = format!(
                    "While {action}, the agyn API answered {method} {path} with HTTP {} ({code}).",
                    status.as_u16()
                );
                if !references.is_empty() {
                    detail.push_str("\nReferences:\n");
                    detail.push_str(&crate::references::list(
                        references,
                        reference_count.unwrap_or(references.len()),
                    ));
                }
                let attribute = field
                    .as_deref()
                    .map(attribute_path)
                    .unwrap_or_else(AttributePath::root);
                (detail, attribute)
            }
            _ => (format!("While {action}."), AttributePath::root()),
        };
        if !hint.is_empty() {
            detail.push_str("\n\n");
            detail.push_str(hint);
        }
        diags.fail(self.to_string(), detail, attribute);
    }
}

/// `auth.role` → the attribute path `auth.role`.
pub fn attribute_path(field: &str) -> AttributePath {
    let mut steps = field.split('.');
    let mut path = AttributePath::new(steps.next().unwrap_or(field).to_owned());
    for step in steps {
        path = path.attribute(step.to_owned());
    }
    path
}

/// The error body (`agyn_api::ErrorBody`), read so that a reference of a
/// kind this provider does not know yet still counts.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
    #[serde(default)]
    references: Option<Vec<Reference>>,
    #[serde(default)]
    reference_count: Option<usize>,
}

/// The largest page the API gives.
const PAGE_LIMIT: usize = agyn_api::MAX_PAGE;

/// A request of `agyn_api` as the JSON body the client sends.
pub fn body<T: serde::Serialize>(request: &T) -> Json {
    serde_json::to_value(request).expect("a request of the API is JSON")
}

/// A configured connection to one agyn-secrets API.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// `endpoint` is the API's base URL (`https://secrets.example.com`);
    /// a trailing `/` or `/v1` is accepted and dropped. `ca_pem` adds
    /// certificate authorities to the system's.
    pub fn new(endpoint: &str, token: &str, ca_pem: Option<&str>) -> Result<Self, String> {
        let base = endpoint.trim().trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(format!(
                "endpoint {endpoint:?} must be an http:// or https:// URL such as https://secrets.example.com"
            ));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!(
                "terraform-provider-agyn/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| format!("ca_cert_pem is not a PEM certificate bundle: {e}"))?;
            if certs.is_empty() {
                return Err("ca_cert_pem holds no PEM certificate".into());
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Self {
            base: base.to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Json>) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |e: reqwest::Error| Error::Transport {
            url: url.clone(),
            reason: error_chain(&e),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let (code, message, field, references, reference_count) =
            match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => (
                    body.error.code,
                    body.error.message,
                    body.error.field,
                    body.references.unwrap_or_default(),
                    body.reference_count,
                ),
                Err(_) => (
                    status
                        .canonical_reason()
                        .unwrap_or("error")
                        .to_ascii_lowercase(),
                    String::from_utf8_lossy(&bytes).trim().to_owned(),
                    None,
                    Vec::new(),
                    None,
                ),
            };
        let message = if message.is_empty() {
            format!("HTTP {status}")
        } else {
            message
        };
        Err(Error::Api {
            method,
            path: path.to_owned(),
            status,
            code,
            message,
            field,
            references,
            reference_count,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Json>,
    ) -> Result<T> {
        let bytes = self.send(method.clone(), path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            method,
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None).await
    }

    /// Every item of the list at `path`: the API answers lists a page at a
    /// time, and this follows `next_cursor` to the last page.
    pub async fn list<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let mut page_path = format!("{path}{separator}limit={PAGE_LIMIT}");
            if let Some(cursor) = &cursor {
                page_path.push_str("&cursor=");
                page_path.push_str(&segment(cursor));
            }
            let page: Page<T> = self.get(&page_path).await?;
            items.extend(page.items);
            match page.next_cursor.filter(|next| !next.is_empty()) {
                Some(next) if cursor.as_ref() == Some(&next) => {
                    return Err(Error::Decode {
                        method: Method::GET,
                        path: page_path,
                        reason: "the same cursor came back; the list does not advance".into(),
                    });
                }
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// Like [`Client::list`], with a 404 answered as `None`.
    pub async fn find_list<T: DeserializeOwned>(&self, path: &str) -> Result<Option<Vec<T>>> {
        match self.list(path).await {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like [`Client::get`], with a 404 answered as `None`.
    pub async fn find<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        match self.get(path).await {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Json) -> Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put<T: DeserializeOwned>(&self, path: &str, body: &Json) -> Result<T> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch<T: DeserializeOwned>(&self, path: &str, body: &Json) -> Result<T> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// Deletes; an object that is already gone counts as deleted.
    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.send(Method::DELETE, path, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A reqwest error with its causes, which carry the useful part (e.g.
/// "connection refused", "invalid peer certificate").
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Percent-encodes one path segment (ids, names and namespaces are plain
/// DNS labels or UUIDs, but a typo must not change the path).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The client once `ConfigureProvider` has run, shared by every resource
/// and data source of one provider process.
#[derive(Clone, Default)]
pub struct Shared(Arc<RwLock<Option<Client>>>);

impl Shared {
    pub fn set(&self, client: Client) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(client);
    }

    /// The configured client, or an error diagnostic when the provider was
    /// not configured (Terraform configures it before any remote call).
    pub fn client(&self, diags: &mut Diagnostics) -> Option<Client> {
        let client = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        if client.is_none() {
            diags.fail_root(
                "The agyn provider is not configured",
                "Terraform did not send the provider configuration before this call.",
            );
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("acme", "acme")]
    #[case::uuid(
        "0b6a8f0e-8a43-4a8e-9a55-1d3b3f0f2c11",
        "0b6a8f0e-8a43-4a8e-9a55-1d3b3f0f2c11"
    )]
    #[case::slash("a/b", "a%2Fb")]
    #[case::space("a b", "a%20b")]
    #[case::query("a?x", "a%3Fx")]
    fn segments(#[case] text: &str, #[case] encoded: &str) {
        assert_eq!(segment(text), encoded);
    }

    #[rstest]
    #[case::bare("http://127.0.0.1:8080", "http://127.0.0.1:8080")]
    #[case::slash("https://secrets.example.com/", "https://secrets.example.com")]
    #[case::v1("https://secrets.example.com/v1/", "https://secrets.example.com")]
    fn endpoints(#[case] endpoint: &str, #[case] base: &str) {
        assert_eq!(Client::new(endpoint, "t", None).unwrap().base, base);
    }

    #[test]
    fn endpoint_needs_a_scheme() {
        assert!(Client::new("secrets.example.com", "t", None).is_err());
    }

    #[test]
    fn field_becomes_a_nested_attribute_path() {
        let path = attribute_path("auth.role");
        assert_eq!(path, AttributePath::new("auth").attribute("role"));
    }
}
