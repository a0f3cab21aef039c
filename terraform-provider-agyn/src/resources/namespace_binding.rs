//! `agyn_namespace_binding`: which organization the pods of a Kubernetes
//! namespace draw their secrets from.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::{changed, check_name, import_hint, organization_in_state, organization_moved};
use crate::client::{Client, Shared, body, segment};
use crate::diagnostics::Report;
use crate::schema::{Computed, Required, block, schema, string};
use crate::values::{known, text};

use agyn_api::NamespaceBinding as BindingView;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BindingState {
    pub id: Value<String>,
    pub namespace: Value<String>,
    pub organization_id: Value<String>,
    pub created_at: Value<String>,
}

impl BindingState {
    fn with_view(&self, view: BindingView) -> Self {
        Self {
            id: known(view.namespace.clone()),
            namespace: known(view.namespace),
            organization_id: self.organization_id.clone(),
            created_at: known(view.created_at),
        }
    }
}

fn path(namespace: &str) -> String {
    format!("/v1/namespaces/{}", segment(namespace))
}

pub struct NamespaceBindingResource(pub Shared);

impl NamespaceBindingResource {
    async fn bind(
        client: &Client,
        diags: &mut Diagnostics,
        planned: BindingState,
        action: &str,
    ) -> Option<BindingState> {
        let namespace = text(&planned.namespace)?;
        let body = body(&agyn_api::BindNamespace {
            organization: text(&planned.organization_id)?.to_owned(),
        });
        match client.put::<BindingView>(&path(namespace), &body).await {
            Ok(view) => Some(planned.with_view(view)),
            Err(e) => {
                e.report(diags, &format!("{action} namespace {namespace:?}"));
                None
            }
        }
    }
}

#[async_trait]
impl Resource for NamespaceBindingResource {
    type State<'a> = BindingState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(block(
            "Binds a Kubernetes namespace to one organization: pods in it may only use that organization's secrets. Needs a platform-admin token.",
            vec![
                ("id", string(Computed, "The namespace.")),
                (
                    "namespace",
                    string(
                        Required,
                        "The Kubernetes namespace, a DNS label. Changing it creates a new binding.",
                    ),
                ),
                (
                    "organization_id",
                    string(
                        Required,
                        "The organization (id or name). Changing it rebinds the namespace in place.",
                    ),
                ),
                (
                    "created_at",
                    string(Computed, "When the namespace was bound (RFC 3339)."),
                ),
            ],
        )))
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: BindingState) -> Option<()> {
        check_name(diags, "namespace", &config.namespace);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: BindingState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(BindingState, ValueEmpty)> {
        let client = self.0.client(diags)?;
        let Some(namespace) = text(&state.namespace) else {
            return Some((state, private_state));
        };
        match client.find::<BindingView>(&path(namespace)).await {
            Ok(Some(view)) => {
                let organization_id = organization_in_state(
                    &client,
                    &state.organization_id,
                    view.organization_id.clone(),
                )
                .await;
                let mut new = state.with_view(view);
                new.organization_id = organization_id;
                Some((new, private_state))
            }
            Ok(None) => None,
            Err(e) => {
                e.report(
                    diags,
                    &format!("reading the binding of namespace {namespace:?}"),
                );
                Some((state, private_state))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        _diags: &mut Diagnostics,
        proposed: BindingState,
        _config: BindingState,
        _meta: ValueEmpty,
    ) -> Option<(BindingState, ValueEmpty)> {
        let planned = BindingState {
            id: proposed.namespace.clone(),
            created_at: Value::Unknown,
            ..proposed
        };
        Some((planned, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: BindingState,
        mut planned: BindingState,
        _config: BindingState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(BindingState, ValueEmpty, Vec<AttributePath>)> {
        if changed(&prior.namespace, &planned.namespace) {
            planned.id = planned.namespace.clone();
            planned.created_at = Value::Unknown;
            return Some((
                planned,
                private_state,
                vec![AttributePath::new("namespace")],
            ));
        }
        if organization_moved(
            &self.0,
            diags,
            &prior.organization_id,
            &planned.organization_id,
        )
        .await?
        {
            planned.created_at = Value::Unknown;
        }
        Some((planned, private_state, vec![]))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: BindingState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(private_state)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: BindingState,
        _config: BindingState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(BindingState, ValueEmpty)> {
        let client = self.0.client(diags)?;
        let namespace = text(&planned.namespace)?;
        // PUT would silently take over a namespace bound elsewhere; an
        // existing binding must be imported instead.
        match client.find::<BindingView>(&path(namespace)).await {
            Ok(None) => {}
            Ok(Some(existing)) => {
                diags.fail(
                    format!("Namespace {namespace:?} is already bound"),
                    format!(
                        "It is bound to organization {}.\n\n{}",
                        existing.organization_id,
                        import_hint("namespace binding", namespace)
                    ),
                    AttributePath::new("namespace"),
                );
                return None;
            }
            Err(e) => {
                e.report(diags, &format!("binding namespace {namespace:?}"));
                return None;
            }
        }
        Self::bind(&client, diags, planned, "binding")
            .await
            .map(|state| (state, private_state))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: BindingState,
        planned: BindingState,
        _config: BindingState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(BindingState, ValueEmpty)> {
        if !planned.created_at.is_unknown() {
            // Same organization, spelled differently: nothing to send.
            return Some((
                BindingState {
                    created_at: prior.created_at,
                    ..planned
                },
                private_state,
            ));
        }
        let client = self.0.client(diags)?;
        Self::bind(&client, diags, planned, "rebinding")
            .await
            .map(|state| (state, private_state))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: BindingState,
        _private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<()> {
        let client = self.0.client(diags)?;
        let namespace = text(&prior.namespace)?;
        match client.delete(&path(namespace)).await {
            Ok(()) => Some(()),
            Err(e) => {
                e.report(diags, &format!("unbinding namespace {namespace:?}"));
                None
            }
        }
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(BindingState, ValueEmpty)> {
        let client = self.0.client(diags)?;
        let namespace = id.trim();
        match client.find::<BindingView>(&path(namespace)).await {
            Ok(Some(view)) => {
                let state = BindingState {
                    organization_id: known(view.organization_id.clone()),
                    ..BindingState::default()
                }
                .with_view(view);
                Some((state, ValueEmpty::default()))
            }
            Ok(None) => {
                diags.fail_root(
                    format!("Namespace {namespace:?} is not bound"),
                    "Import a namespace binding by the namespace's name.",
                );
                None
            }
            Err(e) => {
                e.report(
                    diags,
                    &format!("importing the binding of namespace {namespace:?}"),
                );
                None
            }
        }
    }
}
