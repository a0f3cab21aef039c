//! The request and response types of the agyn-secrets API under `/v1`:
//! the contract, written once. The server answers with them, clients such
//! as the Terraform provider read and send them, and the OpenAPI document
//! is derived from them.
//!
//! Requests refuse unknown fields; responses do not, so that a client keeps
//! working when a newer server adds one.

mod error;
mod namespaces;
mod organizations;
mod providers;
mod pull_secrets;
mod secrets;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use namespaces::{BindNamespace, NamespaceAccess, NamespaceBinding};
pub use organizations::{
    AuditEvent, CreateOrganization, CreateToken, CreatedToken, Organization, Role, Token, WhoAmI,
};
pub use providers::{
    AwsAuth, AwsSecretsManagerSettings, CreateProvider, Provider, ProviderCheck, ProviderSettings,
    UpdateProvider, VaultAuth, VaultSettings,
};
pub use pull_secrets::{CreateImagePullSecret, ImagePullSecret};
pub use secrets::{
    CreateSecret, DeleteSecretQuery, Reference, ResolveRequest, ResolveResponse, Rollout,
    RolloutState, Secret, SecretText, Storage, UpdateSecret,
};

/// Most items one page of a list holds.
pub const MAX_PAGE: usize = 500;
/// Items in a page when the request gives no `limit`.
pub const DEFAULT_PAGE: usize = 100;

/// One page of a list, in a stable order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present only while more items follow: pass it as `cursor` for the
    /// next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
}

/// Which page of a list to answer. Lists ignore other query parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many items the page holds at most.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500, default = 100)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The `next_cursor` of the page before; absent or empty for the first.
    /// Opaque, and valid only for the list it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The page parameters of the audit log, which refuses any other query
/// parameter with 400.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// How many events the page holds at most.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500, default = 100)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The `next_cursor` of the page before; absent or empty for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only the events of this secret: its id, or its name (a deleted
    /// secret's events are found by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_error_body_is_written_in_alphabetical_order_and_without_absent_fields() {
        let mut body = ErrorBody::new(ErrorCode::ValidationFailed, "name: is required");
        body.error.field = Some("name".into());
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"validation_failed","field":"name","message":"name: is required"}}"#
        );
        body.references = Some(vec![Reference::Provider {
            id: "p1".into(),
            name: "vault".into(),
        }]);
        body.reference_count = Some(3);
        assert!(serde_json::to_string(&body).unwrap().ends_with(
            r#""reference_count":3,"references":[{"kind":"provider","id":"p1","name":"vault"}]}"#
        ));
    }

    #[test]
    fn a_provider_is_one_object_whose_common_fields_win() {
        let provider: Provider = serde_json::from_value(json!({
            "id": "p1", "organization_id": "o1", "name": "vault-prod", "kind": "vault",
            "address": "https://vault.example.com", "created_at": "c", "updated_at": "u",
        }))
        .unwrap();
        assert_eq!(provider.kind(), "vault");
        let mut shadowing = provider.clone();
        shadowing.settings.insert("id".into(), json!("not-the-id"));
        assert_eq!(
            serde_json::to_value(&shadowing).unwrap(),
            serde_json::to_value(&provider).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&provider).unwrap(),
            r#"{"address":"https://vault.example.com","created_at":"c","id":"p1","kind":"vault","name":"vault-prod","organization_id":"o1","updated_at":"u"}"#
        );
    }

    #[test]
    fn an_update_tells_null_from_absence_and_requests_refuse_unknown_fields() {
        let cleared: UpdateSecret = serde_json::from_value(json!({"remote_key": null})).unwrap();
        assert_eq!(cleared.remote_key, Some(None));
        assert_eq!(
            serde_json::to_value(&cleared).unwrap(),
            json!({"remote_key": null})
        );
        let kept: UpdateSecret = serde_json::from_value(json!({"remote_path": "a/b"})).unwrap();
        assert_eq!(kept.remote_key, None);
        assert_eq!(
            serde_json::to_value(&kept).unwrap(),
            json!({"remote_path": "a/b"})
        );
        let error = serde_json::from_value::<CreateOrganization>(json!({"name": "a", "colour": 1}))
            .unwrap_err();
        assert!(
            error.to_string().contains("unknown field `colour`"),
            "{error}"
        );
    }

    #[test]
    fn a_value_is_never_printed() {
        let request = CreateSecret {
            name: "db".into(),
            value: Some(SecretText::new("s3cr3t")),
            ..CreateSecret::default()
        };
        assert!(!format!("{request:?}").contains("s3cr3t"));
        let answer = ResolveResponse {
            values: [("db".to_owned(), "s3cr3t".to_owned())].into(),
        };
        assert!(!format!("{answer:?}").contains("s3cr3t"));
    }
}
