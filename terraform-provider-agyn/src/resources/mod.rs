//! Managed resources, and what they share: organization look-ups, import
//! ids, and reading, writing and importing the objects of an organization.

mod image_pull_secret;
mod namespace_binding;
mod organization;
mod secret;
mod secret_provider;

pub use image_pull_secret::ImagePullSecretResource;
pub use namespace_binding::NamespaceBindingResource;
pub use organization::OrganizationResource;
pub use secret::{SecretResource, SecretView, storage_name};
pub use secret_provider::SecretProviderResource;

use serde::de::DeserializeOwned;
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use crate::client::{Client, Result, Shared, segment};
use crate::diagnostics::Report;
use crate::values::{DNS_LABEL_RULE, is_dns_label, known, text};

/// `GET /v1/organizations/{org}`.
pub use agyn_api::Organization as OrganizationView;

/// `/v1/organizations/{org}`.
pub fn organization_path(organization: &str) -> String {
    format!("/v1/organizations/{}", segment(organization))
}

/// `/v1/organizations/{org}/{collection}[/{id}]`.
pub fn scoped_path(organization: &str, collection: &str, id: Option<&str>) -> String {
    let mut path = format!("{}/{collection}", organization_path(organization));
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
    let organizations: Vec<OrganizationView> = client.list("/v1/organizations").await?;
    for organization in organizations {
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
                .find::<OrganizationView>(&organization_path(configured))
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
        let path = organization_path(spelling);
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

/// Whether a change of `organization_id` names another organization rather
/// than the same one spelled differently.
pub async fn organization_moved(
    shared: &Shared,
    diags: &mut Diagnostics,
    before: &Value<String>,
    after: &Value<String>,
) -> Option<bool> {
    if !changed(before, after) {
        return Some(false);
    }
    let client = shared.client(diags)?;
    Some(!same_organization(&client, before, after).await)
}

/// The state of an object of an organization, at
/// `/v1/organizations/{org}/{COLLECTION}/{id}`.
pub trait Scoped: Default + Send + Sized {
    /// The object as the API returns it.
    type View: DeserializeOwned + Send;
    const COLLECTION: &'static str;
    /// What messages call the object, in lower case.
    const KIND: &'static str;
    /// The accepted import ids, for messages.
    const IMPORT_FORMS: &'static str;

    fn id(&self) -> &Value<String>;
    fn name(&self) -> &Value<String>;
    fn organization_id(&self) -> &Value<String>;
    fn set_organization_id(&mut self, organization_id: Value<String>);
    fn view_organization_id(view: &Self::View) -> &str;
    /// The state for what the API answered, keeping the organization as
    /// `self` spells it.
    fn with_view(&self, view: Self::View) -> Self;

    fn label(&self) -> String {
        format!("{} {:?}", Self::KIND, text(self.name()).unwrap_or("?"))
    }

    fn path(&self) -> Option<String> {
        Some(scoped_path(
            text(self.organization_id())?,
            Self::COLLECTION,
            Some(text(self.id())?),
        ))
    }
}

/// Reads an object back: `None` when it is gone, the state unchanged when
/// it has no id or the API fails (the failure reported).
pub async fn read_scoped<S: Scoped>(
    shared: &Shared,
    diags: &mut Diagnostics,
    state: S,
) -> Option<S> {
    let client = shared.client(diags)?;
    let Some(path) = state.path() else {
        return Some(state);
    };
    match client.find::<S::View>(&path).await {
        Ok(Some(view)) => {
            let organization_id = organization_in_state(
                &client,
                state.organization_id(),
                S::view_organization_id(&view).to_owned(),
            )
            .await;
            let mut new = state.with_view(view);
            new.set_organization_id(organization_id);
            Some(new)
        }
        Ok(None) => None,
        Err(e) => {
            e.report(diags, &format!("reading {}", state.label()));
            Some(state)
        }
    }
}

/// The state for the API's answer to a create; `None`, with the failure
/// reported, when there is none. When an object of that name already
/// exists, the report gives the command that imports it, naming the
/// organization by name as a person would write it.
pub async fn created<S: Scoped>(
    client: &Client,
    diags: &mut Diagnostics,
    planned: &S,
    answer: Result<S::View>,
) -> Option<S> {
    let e = match answer {
        Ok(view) => return Some(planned.with_view(view)),
        Err(e) => e,
    };
    let action = format!("creating {}", planned.label());
    let (Some(org), Some(name), true) = (
        text(planned.organization_id()),
        text(planned.name()),
        e.is_already_exists(),
    ) else {
        e.report(diags, &action);
        return None;
    };
    let org = match client
        .find::<OrganizationView>(&organization_path(org))
        .await
    {
        Ok(Some(found)) => found.name,
        _ => org.to_owned(),
    };
    e.report_with_hint(
        diags,
        &action,
        &import_hint(S::KIND, &format!("{org}/{name}")),
    );
    None
}

/// What to do when the object a resource would create already exists:
/// import it, with `import_id`, into the resource that failed.
pub fn import_hint(kind: &str, import_id: &str) -> String {
    format!(
        "To manage the existing {kind} with this resource, import it (the resource's address is named above):\n  terraform import <address> {import_id}"
    )
}

/// The state for the API's answer to an update; `None`, with the failure
/// reported, when there is none.
pub fn updated<S: Scoped>(
    diags: &mut Diagnostics,
    planned: &S,
    answer: Result<S::View>,
) -> Option<S> {
    match answer {
        Ok(view) => Some(planned.with_view(view)),
        Err(e) => {
            e.report(diags, &format!("updating {}", planned.label()));
            None
        }
    }
}

/// Deletes an object.
pub async fn delete_scoped<S: Scoped>(
    shared: &Shared,
    diags: &mut Diagnostics,
    prior: &S,
) -> Option<()> {
    let client = shared.client(diags)?;
    match client.delete(&prior.path()?).await {
        Ok(()) => Some(()),
        Err(e) => {
            e.report(diags, &format!("deleting {}", prior.label()));
            None
        }
    }
}

/// Imports an object by one of `S::IMPORT_FORMS`.
pub async fn import_scoped<S: Scoped>(
    shared: &Shared,
    diags: &mut Diagnostics,
    id: &str,
) -> Option<S> {
    let Some((org, object)) = split_import_id(id) else {
        bad_import_id(diags, id, S::IMPORT_FORMS);
        return None;
    };
    let client = shared.client(diags)?;
    match find_for_import::<S::View>(&client, org, S::COLLECTION, object).await {
        Ok(Some(view)) => {
            // The organization's id, however the import id names it: a
            // configuration refers to it as `agyn_organization.x.id`.
            let organization_id = known(S::view_organization_id(&view));
            let mut state = S::default().with_view(view);
            state.set_organization_id(organization_id);
            Some(state)
        }
        Ok(None) => {
            let mut kind = S::KIND.to_owned();
            kind[..1].make_ascii_uppercase();
            diags.fail_root(
                format!("{kind} {id:?} not found"),
                format!("Use {}.", S::IMPORT_FORMS),
            );
            None
        }
        Err(e) => {
            e.report(diags, &format!("importing {} {id:?}", S::KIND));
            None
        }
    }
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
