//! The web console: a single-page application for people who manage an
//! organization's secrets in a browser.
//!
//! Its files are embedded in the binary, so the console works on clusters
//! without network access, and it talks to the same `/v1` API as every other
//! client, with the user's own token. Every console page (`/`, `/sign-in`,
//! `/organizations/...`, `/namespaces/...`) answers with the one
//! `index.html`; the browser-side router draws the page, and draws "page not
//! found" for any other path a browser opens outside `/v1`. Static files live under [`ASSET_PREFIX`], which
//! cannot collide with `/v1`, the health endpoints, `/metrics` or
//! `/openapi.json`.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use sha2::{Digest, Sha256};

use crate::http::ApiError;

/// The path under which the console's static files are served.
pub const ASSET_PREFIX: &str = "/console";

/// The policy every console response carries: scripts, styles, images and
/// API calls come from this origin only, and no inline script or style runs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../console/index.html");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/console.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../console/icon.svg"),
    },
    Asset {
        name: "app.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../console/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../console/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../console/dom.js"),
    },
    Asset {
        name: "secrets.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../console/secrets.js"),
    },
    Asset {
        name: "providers.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../console/providers.js"),
    },
    Asset {
        name: "pull-secrets.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../console/pull-secrets.js"),
    },
    Asset {
        name: "tokens.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../console/tokens.js"),
    },
    Asset {
        name: "value.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../console/value.js"),
    },
    Asset {
        name: "namespaces.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../console/namespaces.js"),
    },
    Asset {
        name: "audit.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../console/audit.js"),
    },
];

/// A strong validator per asset, so that browsers revalidate cheaply
/// instead of caching a file from an older binary.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a header value")
        })
        .collect()
});

/// The console's routes, served beside the API's. They need no state, so
/// they fit any router's.
///
/// Any other path a browser opens gets the console's "page not found"
/// instead of a JSON error, except under `/v1`, which stays the API's.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/sign-in", get(page))
        .route("/organizations", get(page))
        .route("/organizations/{*rest}", get(page))
        .route("/namespaces", get(page))
        .route("/namespaces/{*rest}", get(page))
        .route(&format!("{ASSET_PREFIX}/{{*file}}"), get(asset))
        .route("/{*rest}", any(unknown))
}

fn security_headers(headers: &mut HeaderMap) {
    let fixed: [(HeaderName, &'static str); 5] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Every console page is the same document; the script draws the page the
/// URL names. `no-store` keeps it from outliving a sign-out in a shared cache.
async fn page() -> Response {
    document(StatusCode::OK)
}

fn document(status: StatusCode) -> Response {
    let mut response = (status, INDEX_HTML).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(headers);
    response
}

/// Whether the request is a browser opening a page, rather than a script,
/// a style sheet or an API client fetching something.
fn wants_page(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"))
}

/// A path nobody serves. A person who opens one in a browser reads the
/// console's "page not found", with a way back; everyone else, and every
/// path under `/v1`, gets the API's JSON 404.
async fn unknown(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let api = path == "/v1" || path.starts_with("/v1/");
    if !api && wants_page(&method, &headers) {
        return document(StatusCode::NOT_FOUND);
    }
    ApiError::NotFound(format!("no route for {path}")).into_response()
}

async fn asset(method: Method, Path(file): Path<String>, request_headers: HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == file) else {
        if wants_page(&method, &request_headers) {
            return document(StatusCode::NOT_FOUND);
        }
        return ApiError::NotFound(format!("no console file {file:?}")).into_response();
    };
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let fresh = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == etag.to_str().unwrap_or_default() || tag.trim() == "*");
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::ETAG, etag.clone());
    security_headers(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_loads_only_files_that_exist_and_runs_no_inline_code() {
        let lower = INDEX_HTML.to_ascii_lowercase();
        assert!(!lower.contains(" style="), "inline style attribute");
        let inline_handler = lower.match_indices(" on").any(|(at, _)| {
            let rest = &lower[at + 3..];
            let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name > 0 && rest[name..].starts_with('=')
        });
        assert!(!inline_handler, "inline event handler");
        for chunk in lower.split("<script").skip(1) {
            let tag = chunk.split('>').next().unwrap_or_default();
            assert!(tag.contains("src="), "inline script: <script{tag}>");
        }
        for part in INDEX_HTML.split(&format!("\"{ASSET_PREFIX}/")).skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html names {name}, which is not embedded"
            );
        }
    }

    #[test]
    fn scripts_import_only_embedded_modules() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JAVASCRIPT) {
            let text = std::str::from_utf8(asset.body).expect("utf-8");
            for part in text.split(" from './").skip(1) {
                let name = part.split('\'').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{} imports {name}, which is not embedded",
                    asset.name
                );
            }
            assert!(
                !text.contains("innerHTML"),
                "{} writes innerHTML",
                asset.name
            );
            assert!(
                !text.contains("localStorage.set"),
                "{} writes localStorage",
                asset.name
            );
        }
    }

    /// The size hint of the value field counts against the server's limit,
    /// as the API documents it.
    #[test]
    fn the_value_field_knows_the_servers_largest_value() {
        let script = ASSETS
            .iter()
            .find(|a| a.name == "value.js")
            .map(|a| std::str::from_utf8(a.body).expect("utf-8"))
            .expect("value.js is embedded");
        let console: usize = script
            .split("export const MAX_VALUE_BYTES = ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .and_then(|n| n.parse().ok())
            .expect("value.js exports MAX_VALUE_BYTES");
        let document: serde_json::Value =
            serde_json::from_str(crate::api::document()).expect("the OpenAPI document is JSON");
        for schema in ["CreateSecret", "UpdateSecret"] {
            let documented =
                &document["components"]["schemas"][schema]["properties"]["value"]["maxLength"];
            assert_eq!(
                documented.as_u64(),
                Some(console as u64),
                "{schema}.value and value.js disagree on the largest value"
            );
        }
    }
}
