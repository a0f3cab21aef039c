//! What the product may do in a namespace, asked of the API server with
//! SelfSubjectAccessReviews, and who it is, with a SelfSubjectReview. Both
//! are allowed to every authenticated user by Kubernetes' default
//! `system:basic-user` role, so they need no RBAC rule of their own.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde::Serialize;

use super::Cluster;

/// The (API group, verb, resource) rules the product needs in every bound
/// namespace: Secrets it writes and cleans up, pods it lists to see which
/// Secrets are still in use, the pod it reads when the pod's wrapper asks
/// for its values (delivery `exec`), and the workloads it restarts after a
/// rotation.
pub const WORKLOAD_RULES: [(&str, &str, &str); 14] = [
    ("", "get", "secrets"),
    ("", "list", "secrets"),
    ("", "create", "secrets"),
    ("", "update", "secrets"),
    ("", "delete", "secrets"),
    ("", "list", "pods"),
    ("", "get", "pods"),
    // Restart on rotation.
    ("apps", "get", "deployments"),
    ("apps", "patch", "deployments"),
    ("apps", "get", "statefulsets"),
    ("apps", "patch", "statefulsets"),
    ("apps", "get", "daemonsets"),
    ("apps", "patch", "daemonsets"),
    ("apps", "get", "replicasets"),
];

/// The product's access to one namespace.
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    /// Whether the API server could be asked.
    pub checked: bool,
    /// Whether every rule of [`WORKLOAD_RULES`] is allowed.
    pub ok: bool,
    /// The rules that are not allowed, as `"<verb> <resource>"`.
    pub missing: Vec<String>,
    /// What to do about it, when something is missing or could not be checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Access {
    /// Access that could not be checked, and why.
    fn unchecked(message: String) -> Self {
        Access {
            checked: false,
            ok: false,
            missing: Vec::new(),
            message: Some(message),
        }
    }
}

impl Cluster {
    /// Asks the API server which of [`WORKLOAD_RULES`] the product may
    /// exercise in `namespace`.
    pub async fn access(&self, namespace: &str) -> Access {
        let client = match self.client() {
            Ok(client) => client.clone(),
            Err(error) => {
                return Access::unchecked(format!(
                    "{error}; pods here can use only \"env\" delivery, without image pull secrets"
                ));
            }
        };
        let missing = match missing_rules(client, namespace).await {
            Ok(missing) => missing,
            Err(error) => {
                return Access::unchecked(format!(
                    "could not check access with the Kubernetes API: {error}"
                ));
            }
        };
        if missing.is_empty() {
            return Access {
                checked: true,
                ok: true,
                missing,
                message: None,
            };
        }
        let message = format!(
            "agyn-secrets may not {} in namespace {namespace:?}: {}",
            missing.join(", "),
            self.binding_fix(namespace).await
        );
        Access {
            checked: true,
            ok: false,
            missing,
            message: Some(message),
        }
    }

    /// The command that grants the product what it needs in `namespace`.
    pub async fn binding_fix(&self, namespace: &str) -> String {
        let subject = match self.identity().await {
            Some(name) => match name.strip_prefix("system:serviceaccount:") {
                Some(account) => format!("--serviceaccount={account}"),
                None => format!("--user={name}"),
            },
            None => "--serviceaccount=<its namespace>:<its service account>".to_owned(),
        };
        format!(
            "bind ClusterRole {role} to it there: kubectl create rolebinding agyn-secrets -n {namespace} --clusterrole={role} {subject}",
            role = self.workload_role
        )
    }

    /// The product's user name as the API server knows it, asked once.
    pub async fn identity(&self) -> Option<&str> {
        let client = self.client().ok()?.clone();
        self.identity
            .get_or_try_init(|| async move {
                let api: Api<SelfSubjectReview> = Api::all(client);
                let review = api
                    .create(&PostParams::default(), &SelfSubjectReview::default())
                    .await
                    .map_err(|error| {
                        tracing::debug!(%error, "SelfSubjectReview failed");
                    })?;
                review
                    .status
                    .and_then(|s| s.user_info)
                    .and_then(|u| u.username)
                    .ok_or(())
            })
            .await
            .ok()
            .map(String::as_str)
    }
}

/// The rules of [`WORKLOAD_RULES`] that the product may not exercise in
/// `namespace`, as `"<verb> <resource>"`, each asked at once.
async fn missing_rules(client: kube::Client, namespace: &str) -> Result<Vec<String>, kube::Error> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client);
    let checks = WORKLOAD_RULES.iter().map(|(group, verb, resource)| {
        let review = access_review(namespace, group, verb, resource);
        let api = api.clone();
        async move {
            let answer = api.create(&PostParams::default(), &review).await?;
            Ok::<_, kube::Error>((
                format!("{verb} {resource}"),
                answer.status.is_some_and(|s| s.allowed),
            ))
        }
    });
    let mut missing = Vec::new();
    for result in futures::future::join_all(checks).await {
        let (rule, allowed) = result?;
        if !allowed {
            missing.push(rule);
        }
    }
    Ok(missing)
}

/// The question whether the product may `verb` `resource` in `namespace`.
fn access_review(
    namespace: &str,
    group: &str,
    verb: &str,
    resource: &str,
) -> SelfSubjectAccessReview {
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                group: Some(group.to_owned()),
                verb: Some(verb.to_owned()),
                resource: Some(resource.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    }
}
