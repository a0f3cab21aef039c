//! Who calls the exec listener: a pod's bound service account token,
//! checked with a TokenReview, and that pod as the API server has it.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use super::{Cluster, ClusterError};

/// The extra fields of a token bound to a pod.
const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
const POD_UID: &str = "authentication.kubernetes.io/pod-uid";

/// The pod a token was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundPod {
    pub namespace: String,
    pub service_account: String,
    pub name: String,
    pub uid: String,
}

/// Why a token does not name a pod; said to its sender, and safe to say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    #[error("the Kubernetes API did not accept this token for audience {0:?}")]
    NotAccepted(String),
    #[error(
        "the token is not bound to a pod; mount a projected service account token with audience {0:?}"
    )]
    NotBound(String),
}

impl Cluster {
    /// Asks the API server whose `token` is, for `audience`.
    pub async fn review_token(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<Result<BoundPod, TokenRefused>, ClusterError> {
        let api: Api<TokenReview> = Api::all(self.client()?.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![audience.to_owned()]),
            },
            ..TokenReview::default()
        };
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| call_failed("review a token", e))?;
        let status = answer.status.unwrap_or_default();
        let accepted = status.authenticated == Some(true)
            && status
                .audiences
                .as_deref()
                .is_some_and(|a| a.iter().any(|a| a == audience));
        let user = status.user.unwrap_or_default();
        if !accepted {
            return Ok(Err(TokenRefused::NotAccepted(audience.to_owned())));
        }
        let extra = |key: &str| {
            user.extra
                .as_ref()
                .and_then(|e| e.get(key))
                .and_then(|values| match values.as_slice() {
                    [one] if !one.is_empty() => Some(one.clone()),
                    _ => None,
                })
        };
        let account = user
            .username
            .as_deref()
            .and_then(|u| u.strip_prefix("system:serviceaccount:"))
            .and_then(|rest| rest.split_once(':'));
        match (account, extra(POD_NAME), extra(POD_UID)) {
            (Some((namespace, service_account)), Some(name), Some(uid)) => Ok(Ok(BoundPod {
                namespace: namespace.to_owned(),
                service_account: service_account.to_owned(),
                name,
                uid,
            })),
            _ => Ok(Err(TokenRefused::NotBound(audience.to_owned()))),
        }
    }

    /// The pod `namespace/name`, as JSON text, or `None` when it is gone.
    pub async fn pod_json(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client()?.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(pod)) => Ok(Some(serde_json::to_string(&pod).expect("a pod serializes"))),
            Ok(None) => Ok(None),
            Err(kube::Error::Api(status)) if status.code == 403 => Err(ClusterError::Forbidden {
                what: "get pods".to_owned(),
                fix: self.binding_fix(namespace).await,
                namespace: namespace.to_owned(),
            }),
            Err(error) => Err(call_failed(&format!("read pod {namespace}/{name}"), error)),
        }
    }
}

fn call_failed(what: &str, error: kube::Error) -> ClusterError {
    let message = match error {
        kube::Error::Api(status) => format!("{} {}", status.code, status.reason),
        other => format!("the Kubernetes API is unreachable: {other}"),
    };
    ClusterError::Call {
        what: what.to_owned(),
        message,
    }
}
