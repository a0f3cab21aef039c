//! `agyn_image_pull_secret`: registry credentials whose password is a local
//! secret. The API cannot change one in place, so every change replaces it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::{
    Scoped, changed, check_name, created, delete_scoped, import_scoped, organization_moved,
    read_scoped, scoped_path,
};
use crate::client::{Shared, body};
use crate::diagnostics::Report;
use crate::schema::{Computed, Required, block, schema, string};
use crate::values::{known, text};

use agyn_api::ImagePullSecret as ImagePullSecretView;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImagePullSecretState {
    pub id: Value<String>,
    pub organization_id: Value<String>,
    pub name: Value<String>,
    pub registry: Value<String>,
    pub username: Value<String>,
    pub password_secret: Value<String>,
    pub created_at: Value<String>,
    pub updated_at: Value<String>,
}

impl Scoped for ImagePullSecretState {
    type View = ImagePullSecretView;
    const COLLECTION: &'static str = "image-pull-secrets";
    const KIND: &'static str = "image pull secret";
    const IMPORT_FORMS: &'static str = "<organization id or name>/<image pull secret id or name>, or a bare <image pull secret id>";

    fn id(&self) -> &Value<String> {
        &self.id
    }

    fn name(&self) -> &Value<String> {
        &self.name
    }

    fn organization_id(&self) -> &Value<String> {
        &self.organization_id
    }

    fn set_organization_id(&mut self, organization_id: Value<String>) {
        self.organization_id = organization_id;
    }

    fn view_organization_id(view: &ImagePullSecretView) -> &str {
        &view.organization_id
    }

    fn with_view(&self, view: ImagePullSecretView) -> Self {
        Self {
            id: known(view.id),
            organization_id: self.organization_id.clone(),
            name: known(view.name),
            registry: known(view.registry),
            username: known(view.username),
            password_secret: known(view.password_secret),
            created_at: known(view.created_at),
            updated_at: known(view.updated_at),
        }
    }
}

pub struct ImagePullSecretResource(pub Shared);

#[async_trait]
impl Resource for ImagePullSecretResource {
    type State<'a> = ImagePullSecretState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(block(
            "Registry credentials for pods that ask for them in `secrets.agyn.io/image-pull-secrets`. The API has no update for them: changing any attribute replaces the image pull secret.",
            vec![
                ("id", string(Computed, "The image pull secret's id.")),
                (
                    "organization_id",
                    string(Required, "The organization that owns it (id or name)."),
                ),
                (
                    "name",
                    string(
                        Required,
                        "Unique name in the organization, a DNS label; pods get a Secret `agyn-pull-<name>`.",
                    ),
                ),
                (
                    "registry",
                    string(Required, "Registry host, e.g. `ghcr.io`."),
                ),
                ("username", string(Required, "Registry user name (no `:`).")),
                (
                    "password_secret",
                    string(
                        Required,
                        "Name of the local secret that holds the password or token.",
                    ),
                ),
                (
                    "created_at",
                    string(Computed, "When it was created (RFC 3339)."),
                ),
                (
                    "updated_at",
                    string(Computed, "When it last changed (RFC 3339)."),
                ),
            ],
        )))
    }

    async fn validate<'a>(
        &self,
        diags: &mut Diagnostics,
        config: ImagePullSecretState,
    ) -> Option<()> {
        check_name(diags, "name", &config.name);
        check_name(diags, "password_secret", &config.password_secret);
        if text(&config.username).is_some_and(|u| u.contains(':')) {
            diags.fail_short(
                "username must not contain ':'",
                AttributePath::new("username"),
            );
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: ImagePullSecretState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ImagePullSecretState, ValueEmpty)> {
        read_scoped(&self.0, diags, state)
            .await
            .map(|state| (state, private_state))
    }

    async fn plan_create<'a>(
        &self,
        _diags: &mut Diagnostics,
        proposed: ImagePullSecretState,
        _config: ImagePullSecretState,
        _meta: ValueEmpty,
    ) -> Option<(ImagePullSecretState, ValueEmpty)> {
        let planned = ImagePullSecretState {
            id: Value::Unknown,
            created_at: Value::Unknown,
            updated_at: Value::Unknown,
            ..proposed
        };
        Some((planned, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ImagePullSecretState,
        mut planned: ImagePullSecretState,
        _config: ImagePullSecretState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ImagePullSecretState, ValueEmpty, Vec<AttributePath>)> {
        let mut replace = Vec::new();
        if organization_moved(
            &self.0,
            diags,
            &prior.organization_id,
            &planned.organization_id,
        )
        .await?
        {
            replace.push(AttributePath::new("organization_id"));
        }
        for (attribute, before, after) in [
            ("name", &prior.name, &planned.name),
            ("registry", &prior.registry, &planned.registry),
            ("username", &prior.username, &planned.username),
            (
                "password_secret",
                &prior.password_secret,
                &planned.password_secret,
            ),
        ] {
            if changed(before, after) {
                replace.push(AttributePath::new(attribute));
            }
        }
        if !replace.is_empty() {
            planned.id = Value::Unknown;
            planned.created_at = Value::Unknown;
            planned.updated_at = Value::Unknown;
        }
        Some((planned, private_state, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: ImagePullSecretState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(private_state)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: ImagePullSecretState,
        _config: ImagePullSecretState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ImagePullSecretState, ValueEmpty)> {
        let client = self.0.client(diags)?;
        let body = body(&agyn_api::CreateImagePullSecret {
            name: text(&planned.name)?.to_owned(),
            registry: text(&planned.registry)?.to_owned(),
            username: text(&planned.username)?.to_owned(),
            password_secret: text(&planned.password_secret)?.to_owned(),
        });
        let path = scoped_path(
            text(&planned.organization_id)?,
            ImagePullSecretState::COLLECTION,
            None,
        );
        let answer = client.post(&path, &body).await;
        created(&client, diags, &planned, answer)
            .await
            .map(|state| (state, private_state))
    }

    async fn update<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: ImagePullSecretState,
        planned: ImagePullSecretState,
        _config: ImagePullSecretState,
        private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ImagePullSecretState, ValueEmpty)> {
        // Every real change is a replacement; what is left is the spelling
        // of the organization, which needs no call.
        Some((planned, private_state))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ImagePullSecretState,
        _private_state: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<()> {
        delete_scoped(&self.0, diags, &prior).await
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(ImagePullSecretState, ValueEmpty)> {
        import_scoped(&self.0, diags, &id)
            .await
            .map(|state| (state, ValueEmpty::default()))
    }
}
