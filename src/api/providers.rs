//! Vault and OpenBao providers of an organization.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use serde::{Deserialize, Deserializer, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{Access, Caller, JsonBody, organization_for};
use super::organizations::{Items, Page, check_name};
use crate::app::App;
use crate::resolve::{ResolveError, is_forbidden_ip};
use crate::store::{
    NewProvider, Provider, ProviderAuth, ProviderChanges, Role, SecretContent, format_time,
};

#[derive(Debug, Serialize)]
pub struct ProviderView {
    id: String,
    organization_id: String,
    name: String,
    kind: String,
    address: String,
    namespace: Option<String>,
    ca_pem: Option<String>,
    auth: ProviderAuth,
    created_at: String,
    updated_at: String,
}

impl From<Provider> for ProviderView {
    fn from(p: Provider) -> Self {
        Self {
            id: p.id,
            organization_id: p.organization_id,
            name: p.name,
            kind: p.kind,
            address: p.address,
            namespace: p.namespace,
            ca_pem: p.ca_pem,
            auth: p.auth,
            created_at: format_time(p.created_at),
            updated_at: format_time(p.updated_at),
        }
    }
}

/// Host names that reach cloud metadata services.
const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata",
    "instance-data",
    "metadata.azure.com",
];

/// Checks a provider address: an http(s) URL with a host that is not a
/// link-local or metadata address.
pub fn check_address(address: &str) -> ApiResult<()> {
    let invalid = |message: &str| ApiError::invalid("address", message);
    let uri: Uri = address
        .parse()
        .map_err(|_| invalid("must be a URL such as https://vault.example.com:8200"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(invalid(
                "must start with https:// (or http:// for a development server)",
            ));
        }
    }
    let host = uri.host().ok_or_else(|| invalid("must name a host"))?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    // 2852039166, 0xa9fea9fe, 0251.0376.0251.0376 and the like reach an IPv4
    // address without spelling it: only the plain dotted form is accepted.
    let numeric = !bare.is_empty()
        && bare.split('.').all(|part| {
            let part = part.to_ascii_lowercase();
            part.strip_prefix("0x")
                .map_or(part.chars().all(|c| c.is_ascii_digit()), |hex| {
                    hex.chars().all(|c| c.is_ascii_hexdigit())
                })
        });
    if numeric && bare.parse::<std::net::Ipv4Addr>().is_err() {
        return Err(invalid(
            "must spell an IPv4 address in plain dotted decimal (a.b.c.d)",
        ));
    }
    if numeric
        && bare
            .split('.')
            .any(|part| part.len() > 1 && part.starts_with('0'))
    {
        return Err(invalid("must spell an IPv4 address without leading zeros"));
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if is_forbidden_ip(ip) {
            return Err(invalid(&format!(
                "{ip} is a link-local or cloud metadata address, which a provider may not use"
            )));
        }
    } else if METADATA_HOSTS.contains(&bare.trim_end_matches('.').to_ascii_lowercase().as_str()) {
        return Err(invalid(&format!(
            "{bare} is a cloud metadata host, which a provider may not use"
        )));
    }
    if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
        return Err(invalid(
            "must be the server's base URL, without a path or query; paths go in each secret's remote_path",
        ));
    }
    Ok(())
}

fn check_ca_pem(pem: &str) -> ApiResult<()> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(()),
        _ => Err(ApiError::invalid(
            "ca_pem",
            "must hold one or more PEM certificates",
        )),
    }
}

fn check_namespace(namespace: &str) -> ApiResult<()> {
    let ok = !namespace.is_empty()
        && namespace.len() <= 255
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "namespace",
            "must be a Vault namespace path such as admin/team-a",
        ))
    }
}

fn check_mount(field: &str, mount: &str) -> ApiResult<()> {
    let ok = !mount.is_empty()
        && mount.len() <= 128
        && !mount.starts_with('/')
        && !mount.ends_with('/')
        && mount
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && mount
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be an auth mount path such as kubernetes or approle",
        ))
    }
}

/// Checks the auth block, and that its credential is a local secret of the
/// organization.
async fn check_auth(app: &App, organization_id: &str, auth: &ProviderAuth) -> ApiResult<()> {
    match auth {
        ProviderAuth::Token { .. } => {}
        ProviderAuth::Kubernetes {
            role,
            mount,
            jwt_path,
        } => {
            if role.is_empty() {
                return Err(ApiError::invalid("auth.role", "is required"));
            }
            check_mount("auth.mount", mount)?;
            if !jwt_path.starts_with('/') {
                return Err(ApiError::invalid(
                    "auth.jwt_path",
                    "must be an absolute file path",
                ));
            }
        }
        ProviderAuth::Approle { role_id, mount, .. } => {
            if role_id.is_empty() {
                return Err(ApiError::invalid("auth.role_id", "is required"));
            }
            check_mount("auth.mount", mount)?;
        }
    }
    if let Some(name) = auth.credential_secret() {
        let field = match auth {
            ProviderAuth::Token { .. } => "auth.token_secret",
            _ => "auth.secret_id_secret",
        };
        match app.store.find_secret(organization_id, name).await? {
            Some(secret)
                if matches!(secret.content, SecretContent::Local(_)) && secret.name == name => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    field,
                    format!(
                        "secret {name:?} is remote; a provider credential must be a local secret"
                    ),
                ));
            }
            None => {
                return Err(ApiError::invalid(
                    field,
                    format!("no local secret {name:?} in this organization"),
                ));
            }
        }
    }
    Ok(())
}

/// Kubernetes auth logs in with the product's own service account token, which
/// every organization shares. An owner who could choose the role or the address
/// could read another organization's Vault secrets, or send that token to a
/// server of their own; so only a platform admin configures it.
fn require_admin_for_kubernetes(caller: &Caller, auth: &ProviderAuth) -> ApiResult<()> {
    match auth {
        ProviderAuth::Kubernetes { .. } if caller.0.role != Role::Admin => Err(ApiError::Forbidden(
            "kubernetes auth logs in with the product's own service account, shared by every organization; only a platform admin may configure it".into(),
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    name: String,
    kind: String,
    address: String,
    namespace: Option<String>,
    ca_pem: Option<String>,
    auth: ProviderAuth,
}

pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    JsonBody(body): JsonBody<CreateProvider>,
) -> ApiResult<(StatusCode, Json<ProviderView>)> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    check_name("name", &body.name)?;
    if body.kind != "vault" {
        return Err(ApiError::invalid(
            "kind",
            "must be \"vault\" (HashiCorp Vault or OpenBao)",
        ));
    }
    check_address(&body.address)?;
    let namespace = body.namespace.filter(|n| !n.is_empty());
    if let Some(namespace) = &namespace {
        check_namespace(namespace)?;
    }
    let ca_pem = body.ca_pem.filter(|p| !p.trim().is_empty());
    if let Some(pem) = &ca_pem {
        check_ca_pem(pem)?;
    }
    check_auth(&app, &org.id, &body.auth).await?;
    require_admin_for_kubernetes(&caller, &body.auth)?;
    let new = NewProvider {
        name: body.name,
        kind: body.kind,
        address: body.address.trim_end_matches('/').to_owned(),
        namespace,
        ca_pem,
        auth: body.auth,
    };
    let provider = app
        .store
        .create_provider(&org.id, new, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(provider.into())))
}

pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(org): Path<String>,
    page: Page,
) -> ApiResult<Json<Items<ProviderView>>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    Ok(Items::of(
        app.store
            .list_providers(&org.id, page.cursor(), page.limit)
            .await?,
    ))
}

pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<ProviderView>> {
    let org = organization_for(&app, &caller, &org, Access::Read).await?;
    let provider = app
        .store
        .find_provider(&org.id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("provider {id:?} not found")))?;
    Ok(Json(provider.into()))
}

/// `null` clears an optional field; absence leaves it as it is.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProvider {
    address: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    namespace: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    ca_pem: Option<Option<String>>,
    auth: Option<ProviderAuth>,
}

pub async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateProvider>,
) -> ApiResult<Json<ProviderView>> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    if let Some(address) = &body.address {
        check_address(address)?;
    }
    let namespace = body.namespace.map(|n| n.filter(|n| !n.is_empty()));
    if let Some(Some(namespace)) = &namespace {
        check_namespace(namespace)?;
    }
    let ca_pem = body.ca_pem.map(|p| p.filter(|p| !p.trim().is_empty()));
    if let Some(Some(pem)) = &ca_pem {
        check_ca_pem(pem)?;
    }
    if let Some(auth) = &body.auth {
        check_auth(&app, &org.id, auth).await?;
        require_admin_for_kubernetes(&caller, auth)?;
    }
    // Repointing a Kubernetes-auth provider sends the product's own service
    // account token to the new address: the same rule applies.
    if let Some(current) = app.store.find_provider(&org.id, &id).await? {
        require_admin_for_kubernetes(&caller, &current.auth)?;
    }
    let changes = ProviderChanges {
        address: body.address.map(|a| a.trim_end_matches('/').to_owned()),
        namespace,
        ca_pem,
        auth: body.auth,
    };
    let provider = app
        .store
        .update_provider(&org.id, &id, changes, &caller.actor())
        .await?;
    Ok(Json(provider.into()))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    app.store
        .delete_provider(&org.id, &id, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
pub struct CheckResult {
    ok: bool,
    message: String,
}

/// Tries the provider's login (a token lookup for token auth) and reports
/// the outcome. A provider that cannot be reached or refuses the login is
/// still a 200, with `ok: false`; no credential is ever in the answer.
pub async fn check(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<CheckResult>> {
    let org = organization_for(&app, &caller, &org, Access::Write).await?;
    let provider = app
        .store
        .find_provider(&org.id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("provider {id:?} not found")))?;
    let (ok, message) = match app.resolver.check(&org, &provider).await {
        Ok(message) => (
            true,
            format!("vault provider {:?}: {message}", provider.name),
        ),
        Err(ResolveError::Store(error)) => return Err(error.into()),
        Err(error) => (false, error.to_string()),
    };
    tracing::info!(organization = %org.name, provider = %provider.name, ok, "Checked provider");
    Ok(Json(CheckResult { ok, message }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::https("https://vault.example.com:8200", true)]
    #[case::loopback("http://127.0.0.1:8200", true)]
    #[case::trailing_slash("https://vault.example.com/", true)]
    #[case::metadata_v4("http://169.254.169.254", false)]
    #[case::link_local("http://169.254.1.1:8200", false)]
    #[case::metadata_v6("http://[fd00:ec2::254]", false)]
    #[case::link_local_v6("http://[fe80::1]:8200", false)]
    #[case::mapped("http://[::ffff:169.254.169.254]", false)]
    #[case::gcp("http://metadata.google.internal", false)]
    #[case::gcp_trailing_dot("http://metadata.google.internal.", false)]
    #[case::decimal("http://2852039166", false)]
    #[case::hex("http://0xa9fea9fe", false)]
    #[case::octal("http://0251.0376.0251.0376", false)]
    #[case::trailing_dot_ip("http://169.254.169.254.", false)]
    #[case::nat64("http://[64:ff9b::a9fe:a9fe]", false)]
    #[case::plain_ip("http://10.0.0.5:8200", true)]
    #[case::no_scheme("vault.example.com", false)]
    #[case::file("file:///etc/passwd", false)]
    #[case::path("https://vault.example.com/v1/secret", false)]
    fn addresses(#[case] address: &str, #[case] ok: bool) {
        assert_eq!(check_address(address).is_ok(), ok, "{address}");
    }
}
