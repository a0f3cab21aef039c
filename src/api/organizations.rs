//! Organizations, tokens and the caller's own identity.

use std::sync::Arc;

use agyn_api as api;
use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::doc::{Authenticated, Body, Conflict, Forbidden, NotFound, Paged};
use super::extract::{Access, Caller, JsonBody, organization_for};
use crate::app::App;
use crate::http::{ApiError, ApiResult};
use crate::store::{Organization, Role, Token, format_time};
use crate::validate::{DNS_LABEL_RULE, is_dns_label};

const MAX_PAGE: usize = api::MAX_PAGE;
const DEFAULT_PAGE: usize = api::DEFAULT_PAGE;

impl From<Organization> for api::Organization {
    fn from(org: Organization) -> Self {
        Self {
            id: org.id,
            name: org.name,
            created_at: format_time(org.created_at),
        }
    }
}

impl From<Token> for api::Token {
    fn from(token: Token) -> Self {
        Self {
            id: token.id,
            name: token.name,
            role: token.role.into(),
            organization_id: token.organization_id,
            created_at: format_time(token.created_at),
        }
    }
}

impl From<Role> for api::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => api::Role::Admin,
            Role::Owner => api::Role::Owner,
            Role::Member => api::Role::Member,
            Role::Runtime => api::Role::Runtime,
        }
    }
}

impl From<api::Role> for Role {
    fn from(role: api::Role) -> Self {
        match role {
            api::Role::Admin => Role::Admin,
            api::Role::Owner => Role::Owner,
            api::Role::Member => Role::Member,
            api::Role::Runtime => Role::Runtime,
        }
    }
}

/// A page of the store's records, and the cursor after it.
pub fn page_of<T, S: Into<T>>(
    (records, next_cursor): (Vec<S>, Option<String>),
) -> Json<api::Page<T>> {
    Json(api::Page {
        items: records.into_iter().map(Into::into).collect(),
        next_cursor,
    })
}

/// Which page of a list to answer: `?limit=` (1 to [`MAX_PAGE`], default
/// [`DEFAULT_PAGE`]) and `?cursor=` (the `next_cursor` of the page before;
/// absent or empty for the first). Lists ignore other query parameters.
#[derive(Debug)]
pub struct Page {
    pub limit: usize,
    cursor: Option<String>,
}

impl Page {
    /// Checks the limit; the store checks the cursor, which it made. Neither
    /// error repeats what was sent.
    pub fn new(limit: Option<&str>, cursor: Option<String>) -> ApiResult<Self> {
        let limit = match limit {
            None => DEFAULT_PAGE,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_PAGE}"),
                    )
                })?,
        };
        Ok(Self { limit, cursor })
    }

    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let Query(query) = Query::<api::PageQuery>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))?;
        Page::new(query.limit.as_deref(), query.cursor)
    }
}

pub fn check_name(field: &str, name: &str) -> ApiResult<()> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(field, DNS_LABEL_RULE))
    }
}

#[utoipa::path(post, path = "/organizations", operation_id = "createOrganization", tag = "organizations",
    summary = "Create an organization", description = "Admin only.",
    request_body = api::CreateOrganization,
    responses((status = 201, description = "Created.", body = api::Organization), Authenticated, Forbidden, Body, Conflict))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody<api::CreateOrganization>,
) -> ApiResult<(StatusCode, Json<api::Organization>)> {
    caller.require_admin()?;
    check_name("name", &body.name)?;
    let org = app
        .store
        .create_organization(&body.name, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(org.into())))
}

/// Admins see every organization; everyone else sees their own.
#[utoipa::path(get, path = "/organizations", operation_id = "listOrganizations", tag = "organizations",
    summary = "List organizations", params(api::PageQuery),
    responses((status = 200, description = "One page.", body = api::Page<api::Organization>), Authenticated, Forbidden, Paged))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    page: Page,
) -> ApiResult<Json<api::Page<api::Organization>>> {
    let only = match (&caller.0.role, &caller.0.organization_id) {
        (Role::Admin, _) => None,
        (Role::Runtime, _) => {
            return Err(ApiError::Forbidden(
                "a runtime token may only call resolve".into(),
            ));
        }
        (_, Some(id)) => Some(id.as_str()),
        (_, None) => return Ok(page_of((Vec::<Organization>::new(), None))),
    };
    Ok(page_of(
        app.store
            .list_organizations(only, page.cursor(), page.limit)
            .await?,
    ))
}

#[utoipa::path(get, path = "/organizations/{org}", operation_id = "getOrganization", tag = "organizations",
    summary = "Get an organization", description = "Member+.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme")),
    responses((status = 200, description = "The organization.", body = api::Organization), Authenticated, Forbidden, NotFound))]
pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<api::Organization>> {
    Ok(Json(
        organization_for(&app, &caller, &org, Access::Read)
            .await?
            .into(),
    ))
}

/// The caller's own token: its role and organization, for clients such as
/// the console and the Terraform provider.
#[utoipa::path(get, path = "/whoami", operation_id = "whoami", tag = "organizations",
    summary = "The caller's own token",
    responses((status = 200, description = "The token, its role and its organization.", body = api::WhoAmI), Authenticated))]
pub async fn whoami(State(app): State<Arc<App>>, caller: Caller) -> ApiResult<Json<api::WhoAmI>> {
    let organization = match &caller.0.organization_id {
        Some(id) => app.store.find_organization(id).await?.map(Into::into),
        None => None,
    };
    let Token { id, name, role, .. } = caller.0;
    Ok(Json(api::WhoAmI {
        token_id: id,
        name,
        role: role.into(),
        organization,
    }))
}

#[utoipa::path(post, path = "/organizations/{org}/tokens", operation_id = "createToken", tag = "tokens",
    summary = "Create a token", description = "Owner or admin; `owner` tokens need an admin.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme")),
    request_body = api::CreateToken,
    responses((status = 201, description = "Created; `token` is shown this once.", body = api::CreatedToken), Authenticated, Forbidden, NotFound, Body, Conflict))]
pub async fn create_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<api::CreateToken>,
) -> ApiResult<(StatusCode, Json<api::CreatedToken>)> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    check_name("name", &body.name)?;
    let role = Role::from(body.role);
    match role {
        Role::Admin => {
            return Err(ApiError::invalid(
                "role",
                "must be owner, member or runtime; admin tokens are made with `agyn-secrets token create --admin`",
            ));
        }
        Role::Owner if caller.0.role != Role::Admin => {
            return Err(ApiError::Forbidden(
                "only a platform admin may create owner tokens".into(),
            ));
        }
        _ => {}
    }
    let (token, plaintext) = app
        .store
        .create_token(Some(&org.id), &body.name, role, &caller.actor())
        .await?;
    let created = api::CreatedToken {
        metadata: token.into(),
        token: plaintext.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/organizations/{org}/tokens", operation_id = "listTokens", tag = "tokens",
    summary = "List tokens", description = "Owner or admin.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), api::PageQuery),
    responses((status = 200, description = "One page.", body = api::Page<api::Token>), Authenticated, Forbidden, NotFound, Paged))]
pub async fn list_tokens(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    page: Page,
) -> ApiResult<Json<api::Page<api::Token>>> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    Ok(page_of(
        app.store
            .list_tokens(Some(&org.id), page.cursor(), page.limit)
            .await?,
    ))
}

#[utoipa::path(get, path = "/organizations/{org}/tokens/{id}", operation_id = "getToken", tag = "tokens",
    summary = "Get a token", description = "Owner or admin.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The token's id.")),
    responses((status = 200, description = "The token's metadata.", body = api::Token), Authenticated, Forbidden, NotFound))]
pub async fn get_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<api::Token>> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    let token = app
        .store
        .get_token(&org.id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("token {id:?} not found")))?;
    Ok(Json(token.into()))
}

#[utoipa::path(delete, path = "/organizations/{org}/tokens/{id}", operation_id = "deleteToken", tag = "tokens",
    summary = "Revoke a token", description = "Owner or admin.", params(("org" = String, Path, description = "The organization's id or name.", example = "acme"), ("id" = String, Path, description = "The token's id.")),
    responses((status = 204, description = "Revoked."), Authenticated, Forbidden, NotFound))]
pub async fn delete_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    if app
        .store
        .delete_token(Some(&org.id), &id, &caller.actor())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("token {id:?} not found")))
    }
}
