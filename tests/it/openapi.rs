//! The OpenAPI document is derived from the router and the types of
//! `agyn-api`; these tests hold it to what a running server does: the
//! checked-in copy is what the server serves, every documented operation is
//! routed, a documented path answers no other method, every `/v1` route
//! needs the bearer token, and real error answers are documented for their
//! route and match the error schema.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Server, sqlite};
use serde_json::{Value, json};

/// The HTTP methods the API uses.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// What fixes a stale checked-in document.
const FIX: &str =
    "docs/openapi.json is not what the server serves: run `make openapi` and commit the result";

fn checked_in() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {FIX}", path.display()))
}

/// A server whose source address may fail authentication often: the probes
/// here send no token on purpose.
async fn server() -> Server {
    Server::start_with(&sqlite(), &["--auth-failures-per-minute", "100000"], &[]).await
}

/// Every operation: method, path template, operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (method, operation) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&method.as_str()) {
                found.push((method.clone(), path.clone(), operation.clone()));
            }
        }
    }
    found
}

/// The path with every `{parameter}` filled in.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{org}" => "acme",
            "{namespace}" => "team-a",
            s if s.starts_with('{') => "no-such-object",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn send(server: &Server, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = common::http().request(method, format!("{}{path}", server.api));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
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

/// Checks `value` against `schema`, for the parts of JSON Schema the
/// document uses: `$ref`, `type`, `enum`, `required`, `properties`,
/// `additionalProperties: false`, `items`, `oneOf`, `allOf`, `maxItems` and
/// `minimum`. Problems are added to `problems`, each with where it is.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            check(doc, part, value, at, problems);
        }
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let matching = one
            .iter()
            .filter(|part| {
                let mut found = Vec::new();
                check(doc, part, value, at, &mut found);
                found.is_empty()
            })
            .count();
        if matching != 1 {
            problems.push(format!("{at}: matches {matching} of oneOf, not one"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types
            .iter()
            .any(|t| *t == actual || (*t == "number" && actual == "integer"));
        if !fits {
            problems.push(format!("{at}: is {actual}, not {types:?}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let (Some(minimum), Some(n)) = (schema["minimum"].as_f64(), value.as_f64())
        && n < minimum
    {
        problems.push(format!("{at}: {n} is below {minimum}"));
    }
    if let Value::Array(items) = value {
        if let Some(max) = schema["maxItems"].as_u64()
            && items.len() as u64 > max
        {
            problems.push(format!("{at}: more than {max} items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(doc, item_schema, item, &format!("{at}[{i}]"), problems);
            }
        }
    }
    if let Value::Object(object) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                problems.push(format!("{at}: lacks required {name}"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, field) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(field_schema) => {
                    check(doc, field_schema, field, &format!("{at}.{name}"), problems);
                }
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    problems.push(format!("{at}: {name} is not documented"));
                }
                None => {}
            }
        }
    }
}

#[tokio::test]
async fn the_checked_in_document_is_what_the_server_serves() {
    assert!(
        checked_in() == agyn_secrets::api::document(),
        "{FIX} (the built document differs)"
    );
    let server = server().await;
    let response = common::http()
        .get(format!("{}/openapi.json", server.api))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "the document's content type"
    );
    let served = response.text().await.unwrap();
    assert!(served == checked_in(), "{FIX}");

    let doc: Value = serde_json::from_str(&served).expect("the document is JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1."))
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{"bearerAuth": []}]));
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else_on_its_path() {
    let server = server().await;
    let doc: Value = serde_json::from_str(agyn_secrets::api::document()).unwrap();
    let operations = operations(&doc);
    assert!(
        operations.len() > 30,
        "too few operations: {}",
        operations.len()
    );
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    for (method, template, operation) in &operations {
        let name = format!("{} {template}", method.to_uppercase());
        if !operation["operationId"]
            .as_str()
            .is_some_and(|id| ids.insert(id.to_owned()))
        {
            problems.push(format!("{name}: operationId missing or repeated"));
        }
        let path = concrete(template);
        let (status, text) = send(&server, method, &path, None).await;
        if template.starts_with("/v1/") {
            // The token is checked by the handler itself, never by the
            // fallback: a 401 means the route is there.
            if status != 401 {
                problems.push(format!(
                    "{name}: without a token answers {status}, not 401: {text}"
                ));
            }
            if operation.get("security").is_some() {
                problems.push(format!("{name}: overrides the bearer security"));
            }
            if operation["responses"].get("401").is_none() {
                problems.push(format!("{name}: does not document its 401"));
            }
        } else {
            if !(200..300).contains(&status) && status != 503 {
                problems.push(format!("{name}: answers {status}: {text}"));
            }
            if operation["security"] != json!([]) {
                problems.push(format!("{name}: needs no token, so security is []"));
            }
        }
    }
    // A documented path answers no undocumented method.
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                continue;
            }
            let (status, _) = send(&server, method, &concrete(template), None).await;
            if status != 405 {
                problems.push(format!(
                    "{} {template}: not documented, yet answers {status}, not 405",
                    method.to_uppercase()
                ));
            }
        }
    }
    // Paths that are not documented are not served.
    for path in [
        "/v1",
        "/v1/organizations/acme/secrets/x/value",
        "/v1/tokens",
        "/v2/organizations",
    ] {
        let (status, text) = send(&server, "get", path, None).await;
        if status != 404 || !text.contains("no route") {
            problems.push(format!("GET {path}: answers {status}: {text}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A request that fails: method, path template, concrete path, token,
/// body, and the status it must answer.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    u16,
);

#[tokio::test]
async fn error_answers_are_documented_for_their_route_and_match_the_error_schema() {
    let server = server().await;
    let doc: Value = serde_json::from_str(agyn_secrets::api::document()).unwrap();
    let admin = server.client();
    admin
        .post("/v1/organizations", json!({"name": "acme"}))
        .await
        .expect(201);
    let runtime = admin.create_token("acme", "app", "runtime").await;
    admin
        .post(
            "/v1/organizations/acme/secrets",
            json!({"name": "ghcr-token", "value": "t0k3n"}),
        )
        .await
        .expect(201);
    admin
        .post(
            "/v1/organizations/acme/image-pull-secrets",
            json!({"name": "ghcr", "registry": "ghcr.io", "username": "bot", "password_secret": "ghcr-token"}),
        )
        .await
        .expect(201);

    let admin_token = server.admin_token.clone();
    let cases: Vec<Case> = vec![
        ("get", "/v1/whoami", "/v1/whoami", None, None, 401),
        (
            "get",
            "/v1/organizations/{org}",
            "/v1/organizations/nope",
            Some(&admin_token),
            None,
            404,
        ),
        (
            "get",
            "/v1/organizations/{org}",
            "/v1/organizations/acme",
            Some(&runtime),
            None,
            403,
        ),
        (
            "post",
            "/v1/organizations",
            "/v1/organizations",
            Some(&admin_token),
            Some(r#"{"name": "Not A Label"}"#),
            422,
        ),
        (
            "post",
            "/v1/organizations",
            "/v1/organizations",
            Some(&admin_token),
            Some(r#"{"name": "acme2", "colour": "red"}"#),
            422,
        ),
        (
            "post",
            "/v1/organizations",
            "/v1/organizations",
            Some(&admin_token),
            Some("{"),
            400,
        ),
        (
            "post",
            "/v1/organizations",
            "/v1/organizations",
            Some(&admin_token),
            Some(r#"{"name": "acme"}"#),
            409,
        ),
        (
            "get",
            "/v1/organizations/{org}/secrets",
            "/v1/organizations/acme/secrets?limit=0",
            Some(&admin_token),
            None,
            422,
        ),
        (
            "get",
            "/v1/organizations/{org}/audit",
            "/v1/organizations/acme/audit?colour=red",
            Some(&admin_token),
            None,
            400,
        ),
        (
            "delete",
            "/v1/organizations/{org}/secrets/{id}",
            "/v1/organizations/acme/secrets/ghcr-token?force=maybe",
            Some(&admin_token),
            None,
            422,
        ),
        (
            "delete",
            "/v1/organizations/{org}/secrets/{id}",
            "/v1/organizations/acme/secrets/ghcr-token",
            Some(&admin_token),
            None,
            409,
        ),
        (
            "post",
            "/v1/organizations/{org}/resolve",
            "/v1/organizations/acme/resolve",
            Some(&runtime),
            Some(r#"{"names": ["missing"], "consumer": "test"}"#),
            404,
        ),
    ];
    let mut problems = Vec::new();
    let mut referenced = false;
    for (method, template, path, token, body, expected) in cases {
        let name = format!("{} {path}", method.to_uppercase());
        let method_name = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut request = common::http().request(method_name, format!("{}{path}", server.api));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        if status != expected {
            problems.push(format!("{name}: answered {status}, not {expected}: {text}"));
            continue;
        }
        let Some(documented) = doc["paths"][template][method]["responses"]
            .get(status.to_string())
            .map(|r| resolve(&doc, r))
        else {
            problems.push(format!(
                "{name}: answered {status}, which {template} does not document"
            ));
            continue;
        };
        let schema = &documented["content"]["application/json"]["schema"];
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        check(&doc, schema, &body, &name, &mut problems);
        // The shared type reads it too, and the code's status is the one
        // answered.
        match serde_json::from_value::<agyn_api::ErrorBody>(body.clone()) {
            Ok(error) => {
                let code: agyn_api::ErrorCode =
                    serde_json::from_value(json!(error.error.code)).unwrap();
                if code.status() != status {
                    problems.push(format!("{name}: code {code:?} is not for {status}"));
                }
                referenced |= error.references.is_some_and(|r| !r.is_empty());
            }
            Err(e) => problems.push(format!("{name}: not an ErrorBody ({e}): {text}")),
        }
    }
    assert!(referenced, "the delete guard's references were checked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn answers_match_the_documented_success_schemas() {
    let server = server().await;
    let doc: Value = serde_json::from_str(agyn_secrets::api::document()).unwrap();
    let admin = server.client();
    admin
        .post("/v1/organizations", json!({"name": "acme"}))
        .await
        .expect(201);
    admin
        .post(
            "/v1/organizations/acme/secrets",
            json!({"name": "db", "value": "s3cr3t"}),
        )
        .await
        .expect(201);
    let mut problems = Vec::new();
    for (template, path) in [
        ("/v1/whoami", "/v1/whoami"),
        ("/v1/organizations", "/v1/organizations"),
        ("/v1/organizations/{org}", "/v1/organizations/acme"),
        (
            "/v1/organizations/{org}/secrets",
            "/v1/organizations/acme/secrets",
        ),
        (
            "/v1/organizations/{org}/secrets/{id}",
            "/v1/organizations/acme/secrets/db",
        ),
        (
            "/v1/organizations/{org}/audit",
            "/v1/organizations/acme/audit",
        ),
        (
            "/v1/organizations/{org}/tokens",
            "/v1/organizations/acme/tokens",
        ),
    ] {
        let reply = admin.get(path).await;
        if reply.status != 200 {
            problems.push(format!("GET {path}: {} {}", reply.status, reply.text));
            continue;
        }
        let schema = &resolve(&doc, &doc["paths"][template]["get"]["responses"]["200"])["content"]
            ["application/json"]["schema"];
        check(&doc, schema, &reply.body, path, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn lists_document_their_pages_and_values_are_write_only() {
    let doc: Value = serde_json::from_str(agyn_secrets::api::document()).unwrap();
    let mut lists = BTreeSet::new();
    let mut problems = Vec::new();
    for (method, template, operation) in operations(&doc) {
        let schema = resolve(
            &doc,
            &resolve(&doc, &operation["responses"]["200"])["content"]["application/json"]["schema"],
        );
        if schema["properties"]["items"]["type"] != "array" {
            continue;
        }
        let name = format!("{} {template}", method.to_uppercase());
        lists.insert(template.clone());
        let query: Vec<&Value> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .collect();
        let limit = query.iter().find(|p| p["name"] == "limit");
        if !limit.is_some_and(|l| {
            l["schema"]["minimum"] == 1
                && l["schema"]["maximum"] == 500
                && l["schema"]["default"] == 100
        }) {
            problems.push(format!("{name}: limit is not 1 to 500, default 100"));
        }
        if !query
            .iter()
            .any(|p| p["name"] == "cursor" && p["schema"]["type"] == "string")
        {
            problems.push(format!("{name}: no string cursor"));
        }
        if schema["properties"]["next_cursor"]["type"] != "string"
            || schema["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("next_cursor")))
        {
            problems.push(format!("{name}: next_cursor is not an optional string"));
        }
    }
    let expected: BTreeSet<String> = [
        "/v1/organizations",
        "/v1/organizations/{org}/tokens",
        "/v1/organizations/{org}/secrets",
        "/v1/organizations/{org}/secrets/{id}/references",
        "/v1/organizations/{org}/secrets/{id}/rollouts",
        "/v1/organizations/{org}/providers",
        "/v1/organizations/{org}/image-pull-secrets",
        "/v1/organizations/{org}/audit",
        "/v1/namespaces",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(lists, expected, "the lists of the API");

    let schemas = &doc["components"]["schemas"];
    for name in ["CreateSecret", "UpdateSecret"] {
        if schemas[name]["properties"]["value"]["writeOnly"] != true {
            problems.push(format!("{name}.value is not write-only"));
        }
    }
    for name in ["Secret", "Token"] {
        let properties = &schemas[name]["properties"];
        if properties.get("value").is_some() || properties.get("token").is_some() {
            problems.push(format!("{name} shows a value or a token"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
