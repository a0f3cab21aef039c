//! The OpenAPI document, derived from the routes (each handler's
//! `#[utoipa::path]`) and from the types of `agyn-api`: its frame (info,
//! security, tags), the error answers each route lists, and its JSON text.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use agyn_api::ErrorBody;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

/// The prefix of the routes that need a token.
const TOKEN_PREFIX: &str = "/v1/";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agyn-secrets API",
        version = env!("CARGO_PKG_VERSION"),
        description = "The companion API of the agyn-secrets admission webhook: organization secrets for Kubernetes workloads (metadata, providers, image pull secrets, namespace bindings, tokens, audit) and runtime resolution. JSON over HTTP.

**Auth.** `Authorization: Bearer <token>` on every `/v1` route. Roles: `admin` (platform-wide) and, per organization, `owner`, `member` and `runtime`. A `runtime` token can call `resolve` and nothing else, and `resolve` accepts runtime tokens only. A token of one organization gets 404 for every path of another, exactly as for a missing object. A source address with too many failed authentications in a minute gets 429 with `Retry-After`.

**Values.** No answer ever contains a secret value except `resolve`. `value` is write-only; a token appears only in the 201 that creates it.

**Errors.** `{\"error\":{\"code\",\"message\",\"field\"?}}` with the fitting status (`ErrorBody`). Unknown JSON fields are refused with 422 naming the field; malformed JSON is 400; bodies over 1 MiB are 413. `{org}` and `{id}` accept an id or a name (an id wins if both match); tokens are addressed by id.

**Lists.** Every list answers one page, `{\"items\":[…],\"next_cursor\":\"…\"}`, in a stable order. `limit` (1 to 500, default 100) sets the page size; pass a page's `next_cursor` as `cursor` to get the next one. `next_cursor` is present only while more items follow. A cursor is opaque, belongs to the list it came from, and only positions within it; a malformed one, or a `limit` out of range, is 422 naming the parameter.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://localhost:8080", description = "The API listener (`--api-addr`, default `0.0.0.0:8080`).")),
    components(schemas(ErrorBody, agyn_api::ErrorCode)),
    modifiers(&Frame),
    tags(
        (name = "organizations", description = "Organizations and the caller's own token."),
        (name = "tokens", description = "API tokens of an organization."),
        (name = "secrets", description = "Secrets: metadata, rotation, references and the delete guard."),
        (name = "providers", description = "Where remote secrets live: Vault, OpenBao, AWS Secrets Manager."),
        (name = "image-pull-secrets", description = "Registry credentials whose password is a secret."),
        (name = "namespaces", description = "Which organization a Kubernetes namespace draws secrets from (admin only)."),
        (name = "runtime", description = "Values for runtime consumers (runtime tokens only)."),
        (name = "audit", description = "Every change and value read of an organization."),
        (name = "system", description = "Health, readiness, metrics and this document; no token."),
    ),
)]
pub struct ApiDoc;

/// The bearer scheme, required on every `/v1` route and on nothing else.
struct Frame;

impl Modify for Frame {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("agyn_<id>_<secret>")
            .build();
        bearer.description = Some(
            "An API token: `agyn-secrets token create --admin` for admins, `POST /v1/organizations/{org}/tokens` for the rest.".into(),
        );
        components.add_security_scheme("bearerAuth", SecurityScheme::Http(bearer));
    }
}

/// Applied once every route is in: `/v1` routes need the bearer token,
/// the others none.
fn secure(doc: &mut Document) {
    use utoipa::openapi::security::SecurityRequirement;
    doc.security = Some(vec![SecurityRequirement::new(
        "bearerAuth",
        Vec::<String>::new(),
    )]);
    for (path, item) in doc.paths.paths.iter_mut() {
        if path.starts_with(TOKEN_PREFIX) {
            continue;
        }
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            operation.security = Some(Vec::new());
        }
    }
}

/// The document as served and as checked in at `docs/openapi.json`.
pub fn document() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        let (_, mut doc) = super::routes().split_for_parts();
        secure(&mut doc);
        let mut text = serde_json::to_string_pretty(&doc).expect("the document is JSON");
        text.push('\n');
        text
    });
    &TEXT
}

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// Error answers a route lists, each with the error body.
macro_rules! errors {
    ($($(#[$doc:meta])* $name:ident { $($status:literal => $description:literal),+ $(,)? })+) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$(($status.to_string(), error($description))),+])
            }
        }
    )+};
}

errors! {
    /// Every `/v1` route: the token, the source's failures, the database.
    Authenticated {
        "401" => "`unauthorized`: no valid bearer token.",
        "429" => "`rate_limited`: too many failed authentications from this address; see `Retry-After`.",
        "500" => "`internal`: an unexpected failure, logged by the server.",
        "503" => "`unavailable`: the database cannot be reached or its storage is full.",
    }
    /// Routes that check the token's role.
    Forbidden {
        "403" => "`forbidden`: the token's role may not do this.",
    }
    /// Routes of one object, or of one organization's objects.
    NotFound {
        "404" => "`not_found`: no such object, or one of another organization.",
    }
    /// Routes that read a JSON body.
    Body {
        "400" => "`bad_request`: the body is not JSON.",
        "408" => "`request_timeout`: the body did not arrive in time.",
        "413" => "`payload_too_large`: the body is larger than 1 MiB.",
        "422" => "`validation_failed`: a field is missing, unknown or invalid; `field` names it.",
    }
    /// Lists: a bad `limit` or `cursor`.
    Paged {
        "422" => "`validation_failed`: `limit` is out of range or `cursor` is not one of this list; `field` names it.",
    }
    /// A query parameter with a value it cannot have.
    InvalidQuery {
        "422" => "`validation_failed`: a query parameter is invalid; `field` names it.",
    }
    /// Routes that refuse unknown query parameters.
    StrictQuery {
        "400" => "`bad_request`: an unknown or malformed query parameter.",
    }
    /// Routes that create an object with a unique name.
    Conflict {
        "409" => "`conflict`: the name is taken, or the object is in use.",
    }
    /// The secret delete guard.
    Referenced {
        "409" => "`referenced`: something uses the secret; `references` lists the first ones and `reference_count` counts them. Remove them or delete with `?force=true`.",
    }
    /// Routes that read a provider.
    Upstream {
        "502" => "`provider_error`: the provider refused, or did not answer as its protocol does.",
        "504" => "`provider_timeout`: the provider did not answer in time.",
    }
}
