//! Organizations, tokens and the caller's own identity.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use super::extract::{Access, Caller, JsonBody, organization_for};
use crate::app::App;
use crate::http::{ApiError, ApiResult};
use crate::store::{Organization, Role, Token, format_time};
use crate::validate::{DNS_LABEL_RULE, is_dns_label};

#[derive(Debug, Serialize)]
pub struct OrganizationView {
    id: String,
    name: String,
    created_at: String,
}

impl From<Organization> for OrganizationView {
    fn from(org: Organization) -> Self {
        Self {
            id: org.id,
            name: org.name,
            created_at: format_time(org.created_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TokenView {
    id: String,
    name: String,
    role: Role,
    organization_id: Option<String>,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl From<Token> for TokenView {
    fn from(token: Token) -> Self {
        Self {
            id: token.id,
            name: token.name,
            role: token.role,
            organization_id: token.organization_id,
            created_at: format_time(token.created_at),
            token: None,
        }
    }
}

/// Most items one page of a list holds.
pub const MAX_PAGE: usize = 500;
/// Items in a page when the request gives no `limit`.
pub const DEFAULT_PAGE: usize = 100;

/// One page of a list: `{"items": [...], "next_cursor": "..."}`, with
/// `next_cursor` only when more items follow.
#[derive(Debug, Serialize)]
pub struct Items<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Items<T> {
    /// A page of the store's records, and the cursor after it.
    pub fn of<S: Into<T>>((records, next_cursor): (Vec<S>, Option<String>)) -> Json<Self> {
        Json(Items {
            items: records.into_iter().map(Into::into).collect(),
            next_cursor,
        })
    }
}

/// Which page of a list to answer: `?limit=` (1 to [`MAX_PAGE`], default
/// [`DEFAULT_PAGE`]) and `?cursor=` (the `next_cursor` of the page before;
/// absent or empty for the first). Lists ignore other query parameters.
#[derive(Debug)]
pub struct Page {
    pub limit: usize,
    cursor: Option<String>,
}

/// The page parameters as they come, checked by [`Page::new`].
#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<String>,
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
        let Query(query) = Query::<PageQuery>::from_request_parts(parts, state)
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    name: String,
}

pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateOrganization>,
) -> ApiResult<(StatusCode, Json<OrganizationView>)> {
    caller.require_admin()?;
    check_name("name", &body.name)?;
    let org = app
        .store
        .create_organization(&body.name, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(org.into())))
}

/// Admins see every organization; everyone else sees their own.
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    page: Page,
) -> ApiResult<Json<Items<OrganizationView>>> {
    let only = match (&caller.0.role, &caller.0.organization_id) {
        (Role::Admin, _) => None,
        (Role::Runtime, _) => {
            return Err(ApiError::Forbidden(
                "a runtime token may only call resolve".into(),
            ));
        }
        (_, Some(id)) => Some(id.as_str()),
        (_, None) => return Ok(Items::of((Vec::<Organization>::new(), None))),
    };
    Ok(Items::of(
        app.store
            .list_organizations(only, page.cursor(), page.limit)
            .await?,
    ))
}

pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<OrganizationView>> {
    Ok(Json(
        organization_for(&app, &caller, &org, Access::Read)
            .await?
            .into(),
    ))
}

#[derive(Debug, Serialize)]
pub struct WhoAmI {
    token_id: String,
    name: String,
    role: Role,
    organization: Option<OrganizationView>,
}

/// The caller's own token: its role and organization, for clients such as
/// the console and the Terraform provider.
pub async fn whoami(State(app): State<Arc<App>>, caller: Caller) -> ApiResult<Json<WhoAmI>> {
    let organization = match &caller.0.organization_id {
        Some(id) => app.store.find_organization(id).await?.map(Into::into),
        None => None,
    };
    let Token { id, name, role, .. } = caller.0;
    Ok(Json(WhoAmI {
        token_id: id,
        name,
        role,
        organization,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    role: Role,
}

pub async fn create_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenView>)> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    check_name("name", &body.name)?;
    match body.role {
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
        .create_token(Some(&org.id), &body.name, body.role, &caller.actor())
        .await?;
    let mut view = TokenView::from(token);
    view.token = Some(plaintext.expose().to_owned());
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn list_tokens(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    page: Page,
) -> ApiResult<Json<Items<TokenView>>> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    Ok(Items::of(
        app.store
            .list_tokens(&org.id, page.cursor(), page.limit)
            .await?,
    ))
}

pub async fn get_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<TokenView>> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    let token = app
        .store
        .get_token(&org.id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("token {id:?} not found")))?;
    Ok(Json(token.into()))
}

pub async fn delete_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    if app
        .store
        .delete_token(&org.id, &id, &caller.actor())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("token {id:?} not found")))
    }
}
