//! AWS Secrets Manager (`kind: "aws-secrets-manager"`): `GetSecretValue`
//! of a secret's current version (`AWSCURRENT`), signed with SigV4, with
//! static keys or a role assumed with the pod's web identity token (IRSA).
//!
//! The requests go through the product's own HTTP client (`reqwest`, see
//! `net.rs`) and are signed with the official `aws-sigv4` crate, rather
//! than through the AWS SDK: the client is where every provider's
//! address is checked against the forbidden and operator ranges at
//! connection time, redirects are refused and each request is bounded,
//! and the SDK brings an HTTP stack of its own around which those rules
//! would have to be rebuilt. The comparison of both is in
//! docs/decisions.md ("AWS Secrets Manager").

mod session;

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::net::{self, NetPolicy};
use super::provider::{
    Failure, FailureKind, Invalid, Kind, SessionEnv, Validated, check_ca_pem, parse_settings,
};
use crate::crypto::SecretValue;
use crate::store::Provider;

pub use session::Session;

/// An AWS Secrets Manager provider's settings, as stored and as the API
/// shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// E.g. `eu-west-1`.
    pub region: String,
    /// The Secrets Manager endpoint, for VPC endpoints, other partitions
    /// or tests; `https://secretsmanager.<region>.amazonaws.com` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The STS endpoint, for web identity and the provider check;
    /// `https://sts.<region>.amazonaws.com` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_endpoint: Option<String>,
    /// The only CA trusted for the endpoints, when they use a private one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    pub auth: Auth,
}

/// How the product signs its requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Auth {
    /// An access key; its secret is a local secret of the organization.
    Static {
        access_key_id: String,
        secret_access_key_secret: String,
    },
    /// A role assumed with STS `AssumeRoleWithWebIdentity`, with the token
    /// file the server's `--web-identity-token-file` names (IRSA).
    WebIdentity { role_arn: String },
}

impl Settings {
    fn domain(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        }
    }

    pub fn secrets_manager_url(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://secretsmanager.{}.{}", self.region, self.domain()))
    }

    pub fn sts_url(&self) -> String {
        self.sts_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://sts.{}.{}", self.region, self.domain()))
    }
}

pub struct SecretsManager;

impl Kind for SecretsManager {
    fn name(&self) -> &'static str {
        "aws-secrets-manager"
    }

    fn validate(
        &self,
        settings: Map<String, Value>,
        net: &NetPolicy,
    ) -> Result<Validated, Invalid> {
        let mut settings: Settings = parse_settings(settings)?;
        check_region(&settings.region)?;
        for (field, url) in [
            ("endpoint", &mut settings.endpoint),
            ("sts_endpoint", &mut settings.sts_endpoint),
        ] {
            *url = url.take().filter(|u| !u.is_empty());
            if let Some(text) = url {
                *text = net::check_url(field, text, net)?;
            }
        }
        settings.ca_pem = settings.ca_pem.filter(|p| !p.trim().is_empty());
        if let Some(pem) = &settings.ca_pem {
            check_ca_pem(pem)?;
        }
        let (credential, admin_only) = match &settings.auth {
            Auth::Static {
                access_key_id,
                secret_access_key_secret,
            } => {
                check_access_key_id(access_key_id)?;
                (
                    Some((
                        secret_access_key_secret.clone(),
                        "auth.secret_access_key_secret",
                    )),
                    false,
                )
            }
            // The product's own web identity token is shared by every
            // organization: an owner who could pick the role would act as
            // the product.
            Auth::WebIdentity { role_arn } => {
                check_role_arn(role_arn)?;
                (None, true)
            }
        };
        let Value::Object(settings) = serde_json::to_value(&settings).expect("settings serialize")
        else {
            unreachable!("settings serialize to an object")
        };
        Ok(Validated {
            settings,
            credential,
            admin_only,
        })
    }

    fn check_reference(&self, path: &str, key: Option<&str>) -> Result<(), Invalid> {
        let ok = !path.is_empty()
            && path.len() <= 2048
            && !path.chars().any(|c| c.is_control() || c.is_whitespace());
        if !ok {
            return Err(Invalid::new(
                "remote_path",
                "must be the secret's name or ARN, such as prod/db",
            ));
        }
        match key {
            Some(key) if key.is_empty() || key.len() > 256 => Err(Invalid::new(
                "remote_key",
                "must be a key of the secret's JSON value; leave it out to take a plain string whole",
            )),
            _ => Ok(()),
        }
    }

    fn session(
        &self,
        provider: &Provider,
        credential: Option<SecretValue>,
        env: SessionEnv,
    ) -> Result<Box<dyn super::provider::Session>, Failure> {
        let settings: Settings = serde_json::from_value(Value::Object(provider.settings.clone()))
            .map_err(|e| {
            env.fail(
                FailureKind::Config,
                format!("its stored settings cannot be read ({e}); update the provider"),
            )
        })?;
        Ok(Box::new(Session::new(
            &provider.name,
            settings,
            credential,
            env,
        )?))
    }
}

impl super::provider::Session for Session {
    fn name(&self) -> &str {
        self.name()
    }

    fn label(&self) -> String {
        format!("aws-secrets-manager provider {:?}", self.name())
    }

    fn log_in(&self) -> BoxFuture<'_, Result<(), Failure>> {
        Box::pin(async move { self.credentials().await.map(drop) })
    }

    fn read<'a>(
        &'a self,
        path: &'a str,
        keys: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<BTreeMap<String, SecretValue>, Failure>> {
        Box::pin(Session::read(self, path, keys))
    }

    fn check(&self) -> BoxFuture<'_, Result<String, Failure>> {
        Box::pin(Session::check(self))
    }

    fn current_version<'a>(
        &'a self,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Failure>> {
        Box::pin(Session::current_version(self, path))
    }

    fn fail(&self, kind: FailureKind, message: String) -> Failure {
        Session::fail(self, kind, message)
    }
}

/// Upper-case letters and digits, such as `AKIAIOSFODNN7EXAMPLE`.
fn check_access_key_id(id: &str) -> Result<(), Invalid> {
    let ok = (16..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "auth.access_key_id",
            "must be an AWS access key id (upper-case letters and digits, such as AKIA…)",
        ))
    }
}

/// `arn:<partition>:iam::<account>:role/<name>`.
fn check_role_arn(arn: &str) -> Result<(), Invalid> {
    let ok = arn.starts_with("arn:")
        && arn.contains(":role/")
        && arn.len() <= 2048
        && !arn.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "auth.role_arn",
            "must be a role ARN such as arn:aws:iam::123456789012:role/agyn-secrets",
        ))
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`.
fn check_region(region: &str) -> Result<(), Invalid> {
    let ok = (4..=32).contains(&region.len())
        && region.starts_with(|c: char| c.is_ascii_lowercase())
        && region.ends_with(|c: char| c.is_ascii_digit())
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "region",
            "must be an AWS region such as eu-west-1",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn validate(settings: Value) -> Result<Validated, Invalid> {
        let Value::Object(map) = settings else {
            panic!("an object")
        };
        SecretsManager.validate(map, &NetPolicy::default())
    }

    #[test]
    fn static_keys_name_their_secret() {
        let validated = validate(json!({"region": "eu-west-1", "endpoint": "",
            "auth": {"method": "static", "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                     "secret_access_key_secret": "aws-key"}}))
        .unwrap();
        assert_eq!(
            validated.credential,
            Some(("aws-key".to_owned(), "auth.secret_access_key_secret"))
        );
        assert!(!validated.admin_only);
        assert!(validated.settings.get("endpoint").is_none());
        let assumed = validate(json!({"region": "us-gov-west-1",
            "auth": {"method": "web-identity", "role_arn": "arn:aws-us-gov:iam::123456789012:role/agyn"}}))
        .unwrap();
        assert!(assumed.admin_only && assumed.credential.is_none());
    }

    #[rstest]
    #[case::region(json!({"region": "EU", "auth": {"method": "web-identity", "role_arn": "arn:aws:iam::1:role/r"}}), "region")]
    #[case::endpoint(json!({"region": "eu-west-1", "endpoint": "http://169.254.169.254", "auth": {"method": "web-identity", "role_arn": "arn:aws:iam::1:role/r"}}), "endpoint")]
    #[case::sts(json!({"region": "eu-west-1", "sts_endpoint": "http://[fd00:ec2::254]", "auth": {"method": "web-identity", "role_arn": "arn:aws:iam::1:role/r"}}), "sts_endpoint")]
    #[case::token_file(json!({"region": "eu-west-1", "auth": {"method": "web-identity", "role_arn": "arn:aws:iam::1:role/r", "token_file": "/etc/passwd"}}), "auth.token_file")]
    #[case::key_id(json!({"region": "eu-west-1", "auth": {"method": "static", "access_key_id": "nope", "secret_access_key_secret": "k"}}), "auth.access_key_id")]
    #[case::arn(json!({"region": "eu-west-1", "auth": {"method": "web-identity", "role_arn": "role/r"}}), "auth.role_arn")]
    #[case::vault_field(json!({"region": "eu-west-1", "address": "http://x", "auth": {"method": "web-identity", "role_arn": "arn:aws:iam::1:role/r"}}), "address")]
    fn bad_settings_name_the_field(#[case] settings: Value, #[case] field: &str) {
        assert_eq!(validate(settings).unwrap_err().field, field);
    }

    #[test]
    fn endpoints_follow_the_region() {
        let settings = |region: &str| Settings {
            region: region.into(),
            endpoint: None,
            sts_endpoint: None,
            ca_pem: None,
            auth: Auth::WebIdentity {
                role_arn: "arn:aws:iam::1:role/r".into(),
            },
        };
        assert_eq!(
            settings("eu-west-1").secrets_manager_url(),
            "https://secretsmanager.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            settings("cn-north-1").sts_url(),
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn references() {
        let kind = SecretsManager;
        assert!(kind.check_reference("prod/db", None).is_ok());
        assert!(
            kind.check_reference(
                "arn:aws:secretsmanager:eu-west-1:1:secret:prod/db-AbCdEf",
                Some("password")
            )
            .is_ok()
        );
        assert!(kind.check_reference("prod db", None).is_err());
        assert!(kind.check_reference("prod/db", Some("")).is_err());
    }
}
