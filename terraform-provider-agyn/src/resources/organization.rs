//! `agyn_organization`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::{OrganizationView, check_name, import_hint, organization_path};
use crate::client::{Shared, body};
use crate::diagnostics::Report;
use crate::schema::{Computed, Required, block, schema, string};
use crate::values::{known, text};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrganizationState {
    pub id: Value<String>,
    pub name: Value<String>,
    pub created_at: Value<String>,
}

impl OrganizationState {
    fn from_view(view: OrganizationView) -> Self {
        Self {
            id: known(view.id),
            name: known(view.name),
            created_at: known(view.created_at),
        }
    }
}

pub struct OrganizationResource(pub Shared);

#[async_trait]
impl Resource for OrganizationResource {
    type State<'a> = OrganizationState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(block(
            "An organization: it owns secrets, providers and image pull secrets. Creating one needs a platform-admin token. The API cannot delete organizations: destroying this resource only removes it from the Terraform state (with a warning).",
            vec![
                ("id", string(Computed, "The organization's id.")),
                (
                    "name",
                    string(
                        Required,
                        "Unique name, a DNS label. Changing it creates a new organization.",
                    ),
                ),
                (
                    "created_at",
                    string(Computed, "When it was created (RFC 3339)."),
                ),
            ],
        )))
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: OrganizationState) -> Option<()> {
        check_name(diags, "name", &config.name);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: OrganizationState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(OrganizationState, ValueEmpty)> {
        let client = self.0.client(diags)?;
        let Some(id) = text(&state.id) else {
            return Some((state, private_state));
        };
        match client
            .find::<OrganizationView>(&organization_path(id))
            .await
        {
            Ok(Some(view)) => Some((OrganizationState::from_view(view), private_state)),
            Ok(None) => None,
            Err(e) => {
                e.report(diags, &format!("reading organization {id:?}"));
                Some((state, private_state))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        _diags: &mut Diagnostics,
        proposed: OrganizationState,
        _config: OrganizationState,
        _meta: ValueEmpty,
    ) -> Option<(OrganizationState, ValueEmpty)> {
        Some((
            OrganizationState {
                id: Value::Unknown,
                created_at: Value::Unknown,
                ..proposed
            },
            ValueEmpty::default(),
        ))
    }

    async fn plan_update<'a>(
        &self,
        _diags: &mut Diagnostics,
        prior: OrganizationState,
        proposed: OrganizationState,
        _config: OrganizationState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(OrganizationState, ValueEmpty, Vec<AttributePath>)> {
        if prior.name == proposed.name {
            return Some((proposed, private_state, vec![]));
        }
        let planned = OrganizationState {
            id: Value::Unknown,
            created_at: Value::Unknown,
            ..proposed
        };
        Some((planned, private_state, vec![AttributePath::new("name")]))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: OrganizationState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(private_state)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: OrganizationState,
        _config: OrganizationState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(OrganizationState, ValueEmpty)> {
        let client = self.0.client(diags)?;
        let name = text(&planned.name)?.to_owned();
        match client
            .post::<OrganizationView>(
                "/v1/organizations",
                &body(&agyn_api::CreateOrganization { name: name.clone() }),
            )
            .await
        {
            Ok(view) => Some((OrganizationState::from_view(view), private_state)),
            Err(e) => {
                let action = format!("creating organization {name:?}");
                if e.is_already_exists() {
                    e.report_with_hint(diags, &action, &import_hint("organization", &name));
                } else {
                    e.report(diags, &action);
                }
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: OrganizationState,
        planned: OrganizationState,
        _config: OrganizationState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(OrganizationState, ValueEmpty)> {
        // The name is the only setting and changing it replaces the
        // organization, so an in-place update has nothing to send.
        Some((planned, private_state))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: OrganizationState,
        _private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<()> {
        let name = text(&prior.name).unwrap_or("?");
        let id = text(&prior.id).unwrap_or("?");
        diags.warn_root(
            format!("Organization {name:?} was not deleted"),
            format!(
                "The agyn API has no way to delete an organization, so {name:?} (id {id}) stays, with whatever it still holds; it is only removed from the Terraform state. Import it again with: terraform import <address> {id}"
            ),
        );
        Some(())
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(OrganizationState, ValueEmpty)> {
        let client = self.0.client(diags)?;
        match client
            .find::<OrganizationView>(&organization_path(id.trim()))
            .await
        {
            Ok(Some(view)) => Some((OrganizationState::from_view(view), ValueEmpty::default())),
            Ok(None) => {
                diags.fail_root(
                    format!("Organization {id:?} not found"),
                    "Import an organization by its id or its name.",
                );
                None
            }
            Err(e) => {
                e.report(diags, &format!("importing organization {id:?}"));
                None
            }
        }
    }
}
