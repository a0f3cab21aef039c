//! The Kubernetes API, as far as the product uses it: the Secrets it
//! manages in bound namespaces (image pull Secrets and the Secrets of
//! `secret` delivery), their clean-up, and checks of its own access.
//!
//! Every call is namespaced: the product lists, reads and writes only in
//! namespaces bound to an organization, so that it needs no cluster-wide
//! right to Secrets (docs/security.md).

mod access;
mod env;
mod managed;
mod pods;
mod pull;
mod workloads;

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::OnceCell;

pub use access::{Access, WORKLOAD_RULES};
pub use env::{ENV_PREFIX, EnvSecret, env_secret_name};
pub use managed::{CleanUp, LAST_USED_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL};
pub use pods::{BoundPod, TokenRefused};
pub use pull::{Credentials, PULL_PREFIX, SOURCE_ANNOTATION, VERSION_ANNOTATION, docker_config};
pub use workloads::{
    RESTART_ON_ROTATION_ANNOTATION, RESTARTED_AT_ANNOTATION, Restart, Workload, WorkloadKind,
};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the Kubernetes API is not configured: {0}")]
    NoClient(String),
    #[error(
        "Secret {namespace}/{name} already exists and is not managed by agyn-secrets; remove or rename that Secret"
    )]
    NotManaged { namespace: String, name: String },
    /// `what` is e.g. `read Secrets` or `get pods`.
    #[error("agyn-secrets may not {what} in namespace {namespace:?}: {fix}")]
    Forbidden {
        what: String,
        namespace: String,
        fix: String,
    },
    #[error("Secret {namespace}/{name} kept changing while it was written; retry")]
    Conflict { namespace: String, name: String },
    #[error("the Kubernetes API failed to {what}: {message}")]
    Call { what: String, message: String },
    #[error("the Kubernetes API failed to {verb} Secret {namespace}/{name}: {message}")]
    Api {
        verb: &'static str,
        namespace: String,
        name: String,
        message: String,
    },
}

/// The product's Kubernetes API client and what it knows about itself.
pub struct Cluster {
    client: Result<kube::Client, String>,
    /// How long a managed Secret may stay unused before it is deleted.
    grace: Duration,
    /// The ClusterRole a RoleBinding in each bound namespace should grant.
    workload_role: String,
    /// Who the product is to the API server, once asked.
    identity: OnceCell<String>,
}

impl Cluster {
    /// Connects with `kubeconfig`, else `KUBECONFIG` or the in-cluster
    /// configuration. A missing configuration is not fatal: only pods that
    /// need the Kubernetes API are then denied, with the reason.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        timeout: Duration,
        grace: Duration,
        workload_role: &str,
    ) -> Self {
        let config = match kubeconfig {
            Some(path) => match Kubeconfig::read_from(path) {
                Ok(file) => {
                    kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                        .await
                        .map_err(|e| format!("kubeconfig {}: {e}", path.display()))
                }
                Err(e) => Err(format!("kubeconfig {}: {e}", path.display())),
            },
            None => kube::Config::infer().await.map_err(|e| e.to_string()),
        };
        let client = config.and_then(|mut config| {
            config.connect_timeout = Some(timeout);
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
            kube::Client::try_from(config).map_err(|e| e.to_string())
        });
        match &client {
            Ok(_) => tracing::info!("Kubernetes API client ready"),
            Err(error) => tracing::warn!(
                %error,
                "No Kubernetes API client; pods that need a Secret written (secret delivery, image pull secrets) will be denied"
            ),
        }
        Self {
            client,
            grace,
            workload_role: workload_role.to_owned(),
            identity: OnceCell::new(),
        }
    }

    /// No Kubernetes API: every pod that needs it is denied with `reason`.
    pub fn unavailable(reason: &str) -> Self {
        Self {
            client: Err(reason.to_owned()),
            grace: Duration::from_secs(3600),
            workload_role: "agyn-secrets-workload".to_owned(),
            identity: OnceCell::new(),
        }
    }

    pub fn is_configured(&self) -> bool {
        self.client.is_ok()
    }

    fn client(&self) -> Result<&kube::Client, ClusterError> {
        self.client
            .as_ref()
            .map_err(|e| ClusterError::NoClient(e.clone()))
    }

    /// Maps an API error of a call on Secret `namespace/name` to what a
    /// person can act on: a refusal names the RoleBinding that is missing.
    async fn error(
        &self,
        verb: &'static str,
        namespace: &str,
        name: &str,
        error: kube::Error,
    ) -> ClusterError {
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        match error {
            kube::Error::Api(status) if status.code == 403 => ClusterError::Forbidden {
                what: match verb.strip_suffix(" in") {
                    Some(on_pods) => on_pods.to_owned(),
                    None => format!("{verb} Secrets"),
                },
                fix: self.binding_fix(&namespace).await,
                namespace,
            },
            kube::Error::Api(status) => ClusterError::Api {
                verb,
                namespace,
                name,
                message: format!("{} {}: {}", status.code, status.reason, status.message),
            },
            other => ClusterError::Api {
                verb,
                namespace,
                name,
                message: format!("the Kubernetes API is unreachable: {other}"),
            },
        }
    }
}
