//! The provider: its configuration, and the resources and data sources it
//! serves.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, DynamicDataSource, DynamicResource, Provider};

use crate::client::{Client, Shared};
use crate::data_sources::SecretDataSource;
use crate::diagnostics::Report;
use crate::resources::{
    ImagePullSecretResource, NamespaceBindingResource, OrganizationResource,
    SecretProviderResource, SecretResource,
};
use crate::schema::{Optional, block, schema, sensitive, string};
use crate::values::text;

pub const ENDPOINT_ENV: &str = "AGYN_ENDPOINT";
pub const TOKEN_ENV: &str = "AGYN_TOKEN";
pub const CA_CERT_PEM_ENV: &str = "AGYN_CA_CERT_PEM";

/// `provider "agyn" { endpoint, token, ca_cert_pem }`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub endpoint: Value<String>,
    pub token: Value<String>,
    pub ca_cert_pem: Value<String>,
}

/// The `agyn` provider. Terraform names its resources `agyn_<name>`.
#[derive(Default)]
pub struct AgynProvider {
    shared: Shared,
}

/// A setting from the configuration, else from the environment.
fn setting(value: &Value<String>, env: &str) -> Option<String> {
    text(value)
        .map(str::to_owned)
        .or_else(|| std::env::var(env).ok())
        .filter(|s| !s.trim().is_empty())
}

#[async_trait]
impl Provider for AgynProvider {
    type Config<'a> = Config;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(block(
            "Manages organizations, secret providers (Vault or OpenBao, AWS Secrets Manager), secrets, image pull secrets and namespace bindings of an [agyn-secrets](https://github.com/agyn) API.",
            vec![
                (
                    "endpoint",
                    string(
                        Optional,
                        "Base URL of the agyn-secrets API, e.g. `https://secrets.example.com` (without `/v1`). Defaults to the `AGYN_ENDPOINT` environment variable.",
                    ),
                ),
                (
                    "token",
                    sensitive(string(
                        Optional,
                        "API bearer token. Defaults to the `AGYN_TOKEN` environment variable. Organizations and namespace bindings need a platform-admin token; everything inside one organization needs an owner token of it (or an admin token).",
                    )),
                ),
                (
                    "ca_cert_pem",
                    string(
                        Optional,
                        "PEM certificate authorities to trust for the API's TLS certificate, in addition to the system's. Defaults to the `AGYN_CA_CERT_PEM` environment variable.",
                    ),
                ),
            ],
        )))
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Config) -> Option<()> {
        if let Some(endpoint) = text(&config.endpoint)
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            diags.fail_short(
                "endpoint must be an http:// or https:// URL such as https://secrets.example.com",
                AttributePath::new("endpoint"),
            );
        }
        Some(())
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        _terraform_version: String,
        config: Config,
    ) -> Option<()> {
        if config.endpoint.is_unknown() || config.token.is_unknown() {
            diags.fail_root(
                "The agyn provider's endpoint or token is not known yet",
                "They depend on values that Terraform only learns during apply; give them directly or through AGYN_ENDPOINT and AGYN_TOKEN.",
            );
            return Some(());
        }
        let Some(endpoint) = setting(&config.endpoint, ENDPOINT_ENV) else {
            diags.fail(
                "The agyn provider needs an endpoint",
                format!("Set endpoint in the provider block, or the {ENDPOINT_ENV} environment variable."),
                AttributePath::new("endpoint"),
            );
            return Some(());
        };
        let Some(token) = setting(&config.token, TOKEN_ENV) else {
            diags.fail(
                "The agyn provider needs an API token",
                format!(
                    "Set token in the provider block, or the {TOKEN_ENV} environment variable."
                ),
                AttributePath::new("token"),
            );
            return Some(());
        };
        let ca_pem = setting(&config.ca_cert_pem, CA_CERT_PEM_ENV);
        match Client::new(&endpoint, token.trim(), ca_pem.as_deref()) {
            Ok(client) => self.shared.set(client),
            Err(message) => diags.fail_root(message, ""),
        }
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        let shared = &self.shared;
        let resources: Vec<(&str, Box<dyn DynamicResource>)> = vec![
            (
                "organization",
                Box::new(OrganizationResource(shared.clone())),
            ),
            (
                "secret_provider",
                Box::new(SecretProviderResource(shared.clone())),
            ),
            ("secret", Box::new(SecretResource(shared.clone()))),
            (
                "image_pull_secret",
                Box::new(ImagePullSecretResource(shared.clone())),
            ),
            (
                "namespace_binding",
                Box::new(NamespaceBindingResource(shared.clone())),
            ),
        ];
        Some(
            resources
                .into_iter()
                .map(|(name, resource)| (name.to_owned(), resource))
                .collect(),
        )
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        let mut sources: HashMap<String, Box<dyn DynamicDataSource>> = HashMap::new();
        sources.insert(
            "secret".to_owned(),
            Box::new(SecretDataSource(self.shared.clone())),
        );
        Some(sources)
    }
}
