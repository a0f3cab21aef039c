//! The OpenAPI document served at `GET /openapi.json` describes the router
//! exactly: every route and method, and nothing else.
//!
//! The routes are read from the source of `src/api/mod.rs` (the `/v1`
//! router) and of `routes()` in `src/api/system.rs` (health, readiness,
//! metrics and the document itself) with a plain text scan, so that a route
//! added without documentation, or documentation left behind by a removed
//! route, fails here. No server, no network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

const DOCUMENT: &str = include_str!("../src/api/openapi.json");

/// The HTTP methods axum's routing functions are named after.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Routes served by `system::routes()`, merged into the API router next to
/// `/v1`. Parsed from the source like the rest; listed here so that a
/// broken scan cannot pass by finding nothing.
const SYSTEM_PATHS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

type Routes = BTreeMap<String, BTreeSet<String>>;

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("src/api/openapi.json is valid JSON")
}

fn source(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    // Drop line comments, so that a commented-out route does not count.
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("//") {
                ""
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text between the parenthesis that opens at `open` (exclusive) and
/// its match, skipping string literals.
fn parenthesized(text: &str, open: usize) -> &str {
    let bytes = text.as_bytes();
    assert_eq!(bytes[open], b'(');
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses after byte {open}")
}

/// The first string literal in `text`.
fn first_string(text: &str) -> Option<&str> {
    let start = text.find('"')? + 1;
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// The methods chained in a route's method router: `get(…).post(…)`.
fn methods_in(args: &str) -> BTreeSet<String> {
    let bytes = args.as_bytes();
    let mut found = BTreeSet::new();
    for method in METHODS {
        let call = format!("{method}(");
        for (at, _) in args.match_indices(&call) {
            // `get(` but not `organizations::get(`, `forget(`, `x.target(`.
            let standalone = at == 0 || {
                let before = bytes[at - 1];
                !(before.is_ascii_alphanumeric() || before == b'_' || before == b':')
            };
            if standalone {
                found.insert(method.to_owned());
            }
        }
    }
    found
}

/// Every `.route("…", …)` in `text`: its byte offset, path and methods.
fn route_calls(text: &str) -> Vec<(usize, String, BTreeSet<String>)> {
    text.match_indices(".route(")
        .map(|(at, call)| {
            let args = parenthesized(text, at + call.len() - 1);
            let path = first_string(args)
                .unwrap_or_else(|| panic!("a .route( call without a path: {args}"));
            let methods = methods_in(args);
            assert!(!methods.is_empty(), "route {path:?} has no method: {args}");
            (at, path.to_owned(), methods)
        })
        .collect()
}

/// The byte range of the statement `let <name> = …;`.
fn let_statement(text: &str, name: &str) -> Option<(usize, usize)> {
    let start = text.find(&format!("let {name} ="))?;
    let (mut depth, mut in_string) = (0i32, false);
    for (i, b) in text.bytes().enumerate().skip(start) {
        match b {
            b'"' => in_string = !in_string,
            _ if in_string => {}
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b';' if depth == 0 => return Some((start, i)),
            _ => {}
        }
    }
    None
}

/// The routes of `src/api/mod.rs` nested under a prefix, e.g. everything in
/// `let v1 = Router::new()…;` given `.nest("/v1", v1)`, with the prefix.
/// Routes outside a nested router (pages, if any) are not part of the API.
fn api_routes() -> Routes {
    let text = source("src/api/mod.rs");
    let mut routes = Routes::new();
    for (at, call) in text.match_indices(".nest(") {
        let args = parenthesized(&text, at + call.len() - 1);
        let prefix = first_string(args).expect(".nest( names a prefix");
        let name = args
            .rsplit(',')
            .next()
            .map(str::trim)
            .expect(".nest( names a router");
        let (start, end) = let_statement(&text, name)
            .unwrap_or_else(|| panic!("no `let {name} = …;` for .nest({prefix:?}, {name})"));
        for (offset, path, methods) in route_calls(&text) {
            if (start..end).contains(&offset) {
                let full = if path == "/" {
                    prefix.to_owned()
                } else {
                    format!("{prefix}{path}")
                };
                routes.entry(full).or_default().extend(methods);
            }
        }
    }
    routes
}

/// The routes of `routes()` in `src/api/system.rs`.
fn system_routes() -> Routes {
    let text = source("src/api/system.rs");
    let start = text
        .find("fn routes(")
        .expect("src/api/system.rs has fn routes()");
    let open = start + text[start..].find('{').expect("fn routes() has a body");
    let (mut depth, mut end) = (0i32, text.len());
    for (i, b) in text.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    let mut routes = Routes::new();
    for (_, path, methods) in route_calls(&text[open..end]) {
        routes.entry(path).or_default().extend(methods);
    }
    routes
}

/// Every route the API server answers, as `path → methods`.
fn served() -> Routes {
    let api = api_routes();
    assert!(
        api.contains_key("/v1/organizations") && api.len() > 10,
        "the scan of src/api/mod.rs found too little: {api:?}"
    );
    let system = system_routes();
    for path in SYSTEM_PATHS {
        assert!(
            system.contains_key(path),
            "{path} not found in system::routes(): {system:?}"
        );
    }
    let mut all = api;
    for (path, methods) in system {
        all.entry(path).or_default().extend(methods);
    }
    all
}

fn documented(doc: &Value) -> Routes {
    doc["paths"]
        .as_object()
        .expect("paths is an object")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("a path item is an object")
                .keys()
                .filter(|k| {
                    METHODS.contains(&k.as_str())
                        || matches!(k.as_str(), "head" | "options" | "trace")
                })
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// Follows `{"$ref": "#/…"}` within the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external $ref {reference}"));
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("unresolved $ref {reference}")),
            )
        }
        None => value,
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                found.push((path.clone(), method.clone(), operation));
            }
        }
    }
    found
}

#[test]
fn is_openapi_3_1() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi is a string");
    assert!(version.starts_with("3.1."), "openapi is {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
}

#[test]
fn documents_every_route_and_method_and_nothing_else() {
    let served = served();
    let documented = documented(&document());
    let mut problems = Vec::new();
    for (path, methods) in &served {
        match documented.get(path) {
            None => problems.push(format!("{path} is served but not documented")),
            Some(doc_methods) if doc_methods != methods => problems.push(format!(
                "{path}: served methods {methods:?}, documented {doc_methods:?}"
            )),
            Some(_) => {}
        }
    }
    for path in documented.keys() {
        if !served.contains_key(path) {
            problems.push(format!("{path} is documented but no router serves it"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_ref_resolves() {
    fn walk(doc: &Value, value: &Value, at: &str, bad: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let here = format!("{at}/{key}");
                    let target = match (key.as_str(), child) {
                        ("$ref", Value::String(r)) => Some(r.as_str()),
                        _ => None,
                    };
                    if let Some(reference) = target {
                        let ok = reference
                            .strip_prefix('#')
                            .is_some_and(|p| doc.pointer(p).is_some());
                        if !ok {
                            bad.push(format!("{here}: {reference}"));
                        }
                    }
                    walk(doc, child, &here, bad);
                }
                // Discriminator mappings are references too.
                if let Some(mapping) = map
                    .get("discriminator")
                    .and_then(|d| d.get("mapping"))
                    .and_then(Value::as_object)
                {
                    for (name, reference) in mapping {
                        let ok = reference
                            .as_str()
                            .and_then(|r| r.strip_prefix('#'))
                            .is_some_and(|p| doc.pointer(p).is_some());
                        if !ok {
                            bad.push(format!("{at}/discriminator/mapping/{name}: {reference}"));
                        }
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(doc, child, &format!("{at}/{i}"), bad);
                }
            }
            _ => {}
        }
    }
    let doc = document();
    let mut bad = Vec::new();
    walk(&doc, &doc, "#", &mut bad);
    assert!(bad.is_empty(), "unresolved references:\n{}", bad.join("\n"));
}

#[test]
fn operations_are_complete() {
    let doc = document();
    let mut ids = BTreeSet::new();
    let mut problems = Vec::new();
    let bearer = doc["security"]
        .as_array()
        .is_some_and(|s| s.iter().any(|r| r.get("bearerAuth").is_some()));
    assert!(bearer, "the document's default security is bearerAuth");
    for (path, method, operation) in operations(&doc) {
        let name = format!("{} {path}", method.to_uppercase());
        match operation["operationId"].as_str() {
            Some(id) if ids.insert(id.to_owned()) => {}
            other => problems.push(format!("{name}: operationId {other:?} missing or repeated")),
        }
        let responses = operation["responses"].as_object();
        if !responses.is_some_and(|r| r.keys().any(|status| status.starts_with('2'))) {
            problems.push(format!("{name}: no success response"));
        }

        // Every path parameter is declared.
        let declared: BTreeSet<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        if declared != in_path {
            problems.push(format!(
                "{name}: path parameters {in_path:?}, declared {declared:?}"
            ));
        }

        if !path.starts_with("/v1/") {
            if operation["security"] != serde_json::json!([]) {
                problems.push(format!("{name}: needs no token, so security is []"));
            }
            continue;
        }

        // /v1: bearer auth, the error shape, and strict request bodies.
        if operation.get("security").is_some() {
            problems.push(format!("{name}: overrides the bearer security"));
        }
        let responses = responses.expect("checked above");
        if !responses.contains_key("401") {
            problems.push(format!("{name}: no 401"));
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema =
                    &resolve(&doc, response)["content"]["application/json"]["schema"]["$ref"];
                let shared = matches!(
                    schema.as_str(),
                    Some("#/components/schemas/Error" | "#/components/schemas/ReferencedError")
                );
                if !shared {
                    problems.push(format!("{name}: {status} is not the shared Error body"));
                }
            }
        }
        if let Some(body) = operation.get("requestBody") {
            let schema = resolve(&doc, &body["content"]["application/json"]["schema"]);
            let variants: Vec<&Value> = match schema["oneOf"].as_array() {
                Some(list) => list.iter().map(|v| resolve(&doc, v)).collect(),
                None => vec![schema],
            };
            for variant in variants {
                if variant["additionalProperties"] != Value::Bool(false) {
                    problems.push(format!(
                        "{name}: request body allows unknown fields, which the server refuses"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn values_are_write_only_and_tokens_appear_once() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    for name in ["Secret", "SecretList", "Token", "TokenList"] {
        let text = schemas[name].to_string();
        assert!(!text.contains("\"value\":"), "{name} exposes a value");
    }
    for name in ["CreateLocalSecretRequest", "RotateSecretRequest"] {
        assert_eq!(
            schemas[name]["properties"]["value"]["writeOnly"], true,
            "{name}.value is write-only"
        );
    }
    assert!(schemas["Token"]["properties"].get("token").is_none());
    let created = schemas["CreatedToken"].to_string();
    assert!(created.contains("\"token\""));
}

#[test]
fn every_list_documents_its_pages() {
    let doc = document();
    let mut lists = BTreeSet::new();
    let mut problems = Vec::new();
    for (path, method, operation) in operations(&doc) {
        let ok = &operation["responses"]["200"];
        let schema = resolve(
            &doc,
            &resolve(&doc, ok)["content"]["application/json"]["schema"],
        );
        if schema["properties"]["items"]["type"] != "array" {
            continue;
        }
        let name = format!("{} {path}", method.to_uppercase());
        lists.insert(path.clone());
        let query: BTreeMap<String, &Value> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "query")
            .filter_map(|p| Some((p["name"].as_str()?.to_owned(), p)))
            .collect();
        match query.get("limit") {
            Some(limit)
                if limit["schema"]["minimum"] == 1
                    && limit["schema"]["maximum"] == 500
                    && limit["schema"]["default"] == 100 => {}
            other => problems.push(format!("{name}: limit is {other:?}, not 1 to 500 (100)")),
        }
        if query.get("cursor").map(|c| &c["schema"]["type"]) != Some(&Value::from("string")) {
            problems.push(format!("{name}: no string cursor"));
        }
        if schema["properties"]["next_cursor"]["type"] != "string" {
            problems.push(format!("{name}: the page has no next_cursor"));
        }
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        if required.contains(&Value::from("next_cursor")) {
            problems.push(format!("{name}: next_cursor is absent on the last page"));
        }
        if operation["responses"].get("422").is_none() {
            problems.push(format!("{name}: a bad limit or cursor is 422"));
        }
    }
    let expected: BTreeSet<String> = [
        "/v1/organizations",
        "/v1/organizations/{org}/tokens",
        "/v1/organizations/{org}/secrets",
        "/v1/organizations/{org}/secrets/{id}/references",
        "/v1/organizations/{org}/providers",
        "/v1/organizations/{org}/image-pull-secrets",
        "/v1/organizations/{org}/audit",
        "/v1/namespaces",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(lists, expected, "the lists of the API");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
