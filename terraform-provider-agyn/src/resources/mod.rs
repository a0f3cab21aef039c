//! Managed resources, and what they share: organization look-ups and
//! import ids.

mod image_pull_secret;
mod namespace_binding;
mod organization;
mod secret;
mod secret_provider;

pub use image_pull_secret::ImagePullSecretResource;
pub use namespace_binding::NamespaceBindingResource;
pub use organization::OrganizationResource;
pub use secret::{SecretResource, SecretView};
pub use secret_provider::SecretProviderResource;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use crate::client::{Client, Result, segment};
use crate::diagnostics::Report;
use crate::values::{DNS_LABEL_RULE, is_dns_label, known, text};

/// `GET /v1/organizations/{org}`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrganizationView {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

/// `/v1/organizations/{org}/{collection}[/{id}]`.
pub fn scoped_path(organization: &str, collection: &str, id: Option<&str>) -> String {
    let mut path = format!("/v1/organizations/{}/{collection}", segment(organization));
    if let Some(id) = id {
        path.push('/');
        path.push_str(&segment(id));
    }
    path
}

/// Splits an import id `<organization>/<object>` (each an id or a name);
/// a bare `<object id>` has no organization part.
pub fn split_import_id(id: &str) -> Option<(Option<&str>, &str)> {
    let id = id.trim();
    match id.split_once('/') {
        Some((org, object)) if !org.is_empty() && !object.is_empty() && !object.contains('/') => {
            Some((Some(org), object))
        }
        Some(_) => None,
        None if !id.is_empty() => Some((None, id)),
        None => None,
    }
}

/// Finds an object of an organization for `terraform import`: in the named
/// organization, or, for a bare id, in every organization the token can see.
pub async fn find_for_import<T: DeserializeOwned>(
    client: &Client,
    organization: Option<&str>,
    collection: &str,
    object: &str,
) -> Result<Option<T>> {
    if let Some(organization) = organization {
        return client
            .find(&scoped_path(organization, collection, Some(object)))
            .await;
    }
    let organizations: Items<OrganizationView> = client.get("/v1/organizations").await?;
    for organization in organizations.items {
        let path = scoped_path(&organization.id, collection, Some(object));
        if let Some(found) = client.find(&path).await? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The `organization_id` to keep in state: the configured one when it names
/// (by id or by name) the organization the API reports, so that a
/// configuration that uses the name does not show a change on every plan.
pub async fn organization_in_state(
    client: &Client,
    configured: &Value<String>,
    actual: String,
) -> Value<String> {
    match text(configured) {
        Some(configured) if configured != actual => {
            match client
                .find::<OrganizationView>(&format!("/v1/organizations/{}", segment(configured)))
                .await
            {
                Ok(Some(org)) if org.id == actual => known(configured),
                _ => known(actual),
            }
        }
        _ => known(actual),
    }
}

/// Whether two spellings (id or name) name the same organization.
pub async fn same_organization(client: &Client, a: &Value<String>, b: &Value<String>) -> bool {
    let (Some(a), Some(b)) = (text(a), text(b)) else {
        return false;
    };
    if a == b {
        return true;
    }
    let id_of = |spelling: &str| {
        let path = format!("/v1/organizations/{}", segment(spelling));
        async move {
            client
                .find::<OrganizationView>(&path)
                .await
                .ok()
                .flatten()
                .map(|org| org.id)
        }
    };
    matches!((id_of(a).await, id_of(b).await), (Some(x), Some(y)) if x == y)
}

/// Reports a name that the API would refuse, at plan time.
pub fn check_name(diags: &mut Diagnostics, attribute: &'static str, value: &Value<String>) {
    if let Some(name) = text(value)
        && !is_dns_label(name)
    {
        diags.fail(
            format!("{attribute} {name:?} is not a valid name"),
            format!("{attribute} {DNS_LABEL_RULE}."),
            AttributePath::new(attribute),
        );
    }
}

/// The import-id error, with the accepted forms.
pub fn bad_import_id(diags: &mut Diagnostics, id: &str, forms: &str) {
    diags.fail_root(format!("Invalid import id {id:?}"), format!("Use {forms}."));
}

/// Whether the attribute differs between two states (both known values).
pub fn changed<T: PartialEq>(before: &Value<T>, after: &Value<T>) -> bool {
    before != after
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::scoped("acme/stripe-api-key", Some((Some("acme"), "stripe-api-key")))]
    #[case::bare("0b6a8f0e-8a43", Some((None, "0b6a8f0e-8a43")))]
    #[case::spaces(" acme/x ", Some((Some("acme"), "x")))]
    #[case::empty_org("/x", None)]
    #[case::empty_object("acme/", None)]
    #[case::too_deep("a/b/c", None)]
    #[case::empty("", None)]
    fn import_ids(#[case] id: &str, #[case] parsed: Option<(Option<&str>, &str)>) {
        assert_eq!(split_import_id(id), parsed);
    }

    #[test]
    fn paths_are_encoded() {
        assert_eq!(
            scoped_path("acme", "secrets", Some("a b")),
            "/v1/organizations/acme/secrets/a%20b"
        );
        assert_eq!(
            scoped_path("acme", "providers", None),
            "/v1/organizations/acme/providers"
        );
    }
}
