//! What uses a secret, as the API lists it, written for people.

use std::fmt;

use serde::Deserialize;

/// One use of a secret (`GET …/secrets/{id}/references`, or the
/// `references` of a 409 answer to a delete), or a kind of use this
/// provider does not know yet, which still counts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Reference {
    Known(agyn_api::Reference),
    Other(serde_json::Value),
}

impl Reference {
    /// Whether Terraform can make this reference go away itself by
    /// destroying another resource first (an image pull secret or a
    /// provider that names the secret). Pods and runtime consumers are
    /// recorded by the API and stay until the secret is deleted.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Reference::Known(
                agyn_api::Reference::ImagePullSecret { .. } | agyn_api::Reference::Provider { .. }
            )
        )
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Reference::Known(known) = self else {
            return f.write_str("another object");
        };
        match known {
            agyn_api::Reference::Pod {
                namespace,
                pod,
                owner_kind,
                owner_name,
                container,
                env_var,
                ..
            } => {
                write!(f, "pod {namespace}/{pod}")?;
                match (owner_kind.as_deref(), owner_name.as_deref()) {
                    (Some(kind), Some(name)) if !kind.is_empty() && !name.is_empty() => {
                        write!(f, " ({kind} {name})")?;
                    }
                    _ => {}
                }
                write!(f, " container {container} env {env_var}")
            }
            agyn_api::Reference::ImagePullSecret { id, name } => {
                write!(f, "image pull secret {name:?} (id {id})")
            }
            agyn_api::Reference::Provider { id, name } => {
                write!(f, "secret provider {name:?} (id {id})")
            }
            agyn_api::Reference::Runtime { consumer, .. } => {
                write!(f, "runtime consumer {consumer}")
            }
        }
    }
}

/// Most references a diagnostic lists one by one.
const LISTED: usize = 50;

/// One indented line per reference, at most [`LISTED`] of them, then how
/// many more of `total` there are (Terraform keeps indented lines of a
/// diagnostic's detail as they are).
pub fn list(references: &[Reference], total: usize) -> String {
    let mut lines: Vec<String> = references
        .iter()
        .take(LISTED)
        .map(|r| format!("  - {r}"))
        .collect();
    let more = total.saturating_sub(lines.len());
    if more > 0 {
        lines.push(format!(
            "  - … and {more} more (GET /v1/organizations/{{org}}/secrets/{{id}}/references lists them all)"
        ));
    }
    lines.join("\n")
}

/// The detail of the diagnostic that stops the deletion of a secret that
/// is still in use: the first `references` of `total`.
pub fn in_use_detail(references: &[Reference], total: usize) -> String {
    format!(
        "The agyn API refuses to delete a secret while something uses it:\n{}\n\n\
         Remove these references first, or, to delete the secret anyway, set \
         force_delete = true on this resource and apply before destroying it. Pods \
         that already run keep their value until they restart; new pods that ask \
         for the secret will be denied.",
        list(references, total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case::pod_with_owner(
        json!({"kind":"pod","namespace":"team-a","pod":"web-7d9-","owner_kind":"ReplicaSet","owner_name":"web-7d9","container":"app","env_var":"STRIPE_KEY","first_seen_at":"t","last_seen_at":"t"}),
        "pod team-a/web-7d9- (ReplicaSet web-7d9) container app env STRIPE_KEY"
    )]
    #[case::bare_pod(
        json!({"kind":"pod","namespace":"team-a","pod":"web","owner_kind":null,"owner_name":null,"container":"app","env_var":"KEY","first_seen_at":"t","last_seen_at":"t"}),
        "pod team-a/web container app env KEY"
    )]
    #[case::empty_owner(
        json!({"kind":"pod","namespace":"ns","pod":"p","owner_kind":"","owner_name":"","container":"c","env_var":"V","first_seen_at":"t","last_seen_at":"t"}),
        "pod ns/p container c env V"
    )]
    #[case::image_pull_secret(
        json!({"kind":"image_pull_secret","id":"42","name":"ghcr"}),
        "image pull secret \"ghcr\" (id 42)"
    )]
    #[case::provider(
        json!({"kind":"provider","id":"7","name":"vault-prod"}),
        "secret provider \"vault-prod\" (id 7)"
    )]
    #[case::runtime(
        json!({"kind":"runtime","consumer":"llm-provider/openai-prod","first_seen_at":"t","last_seen_at":"t"}),
        "runtime consumer llm-provider/openai-prod"
    )]
    #[case::unknown(json!({"kind":"cronjob","name":"x"}), "another object")]
    fn written_for_people(#[case] body: serde_json::Value, #[case] text: &str) {
        let reference: Reference = serde_json::from_value(body).unwrap();
        assert_eq!(reference.to_string(), text);
    }

    fn runtime(consumer: &str) -> Reference {
        Reference::Known(agyn_api::Reference::Runtime {
            consumer: consumer.into(),
            first_seen_at: "t".into(),
            last_seen_at: "t".into(),
        })
    }

    #[test]
    fn the_detail_lists_every_reference_and_the_way_out() {
        let detail = in_use_detail(
            &[
                runtime("llm"),
                Reference::Known(agyn_api::Reference::Provider {
                    id: "1".into(),
                    name: "vault".into(),
                }),
            ],
            2,
        );
        assert!(
            detail.contains("  - runtime consumer llm\n  - secret provider \"vault\" (id 1)\n\n")
        );
        assert!(!detail.contains("more"));
        assert!(detail.contains("force_delete = true"));
    }

    #[test]
    fn a_long_list_names_the_first_fifty_and_counts_the_rest() {
        let references: Vec<Reference> =
            (0..60).map(|i| runtime(&format!("consumer-{i}"))).collect();
        // All 60 known, of 60.
        let text = list(&references, 60);
        assert_eq!(text.lines().count(), 51);
        assert!(text.contains("consumer-49\n") && !text.contains("consumer-50"));
        assert!(text.ends_with(
            "… and 10 more (GET /v1/organizations/{org}/secrets/{id}/references lists them all)"
        ));
        // A refusal's first 50 of 812.
        let text = list(&references[..50], 812);
        assert!(text.contains("… and 762 more"), "{text}");
    }
}
