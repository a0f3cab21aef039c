//! Acceptance: the real `terraform` binary, with this provider installed by
//! `terraform init` from a filesystem mirror (no registry), against a real
//! `agyn-secrets serve --dev`: apply, a clean second plan, rotation, import,
//! the delete guard while a pod uses a secret, `force_delete`, provider
//! kinds and their checks, and namespace fences.

mod common;

use common::{Server, Terraform, needs, skip, sqlite};
use serde_json::{Value, json};

/// The configuration from the issue, unchanged, plus what it needs: an
/// organization, a Vault provider and its token, a namespace binding, an
/// image pull secret and a data source.
const MAIN_TF: &str = r#"
terraform {
  required_providers {
    agyn = {
      source = "agyn/agyn"
    }
  }
}

variable "endpoint" {
  type = string
}

variable "stripe_api_key" {
  type      = string
  sensitive = true
}

provider "agyn" {
  endpoint = var.endpoint
  # token comes from AGYN_TOKEN
}

resource "agyn_organization" "acme" {
  name = "acme"
}

resource "agyn_secret" "vault_token" {
  organization_id = agyn_organization.acme.id
  name            = "vault-token"
  value           = "s.dev-root-token"
}

resource "agyn_secret_provider" "vault_prod" {
  organization_id = agyn_organization.acme.id
  name            = "vault-prod"
  address         = "http://127.0.0.1:8200/"

  auth {
    method       = "token"
    token_secret = agyn_secret.vault_token.name
  }
}

resource "agyn_secret" "stripe_api_key" {
  organization_id = agyn_organization.acme.id
  name            = "stripe-api-key"
  value           = var.stripe_api_key
  #FORCE_DELETE#
}

resource "agyn_secret" "stripe_api_key_remote" {
  organization_id = agyn_organization.acme.id
  name            = "stripe-api-key-remote"
  provider_id     = agyn_secret_provider.vault_prod.id
  remote_path     = "kv/data/prod/stripe-api-key"
  remote_key      = "value"
}

resource "agyn_secret" "registry_password" {
  organization_id = agyn_organization.acme.id
  name            = "registry-password"
  value           = "ghp_example"
}

resource "agyn_image_pull_secret" "ghcr" {
  organization_id = agyn_organization.acme.id
  name            = "ghcr"
  registry        = "ghcr.io"
  username        = "deploy-bot"
  password_secret = agyn_secret.registry_password.name
}

resource "agyn_namespace_binding" "team_a" {
  namespace       = "team-a"
  organization_id = agyn_organization.acme.id
}

data "agyn_secret" "stripe" {
  organization_id = agyn_organization.acme.id
  name            = agyn_secret.stripe_api_key.name
}

output "stripe_version" {
  value = data.agyn_secret.stripe.version
}
"#;

/// Resources for secrets that were made through the API, then imported.
const IMPORTED_TF: &str = r#"
import {
  to = agyn_secret.legacy
  id = "acme/legacy-token"
}

resource "agyn_secret" "legacy" {
  organization_id = "acme"
  name            = "legacy-token"
  value           = "rotated-by-terraform"
}

resource "agyn_secret" "legacy_remote" {
  organization_id = agyn_organization.acme.id
  name            = "legacy-remote"
  provider_id     = agyn_secret_provider.vault_prod.id
  remote_path     = "kv/data/prod/legacy"
  remote_key      = "password"
}
"#;

fn main_tf(force_delete: bool) -> String {
    MAIN_TF.replace(
        "#FORCE_DELETE#",
        if force_delete {
            "force_delete    = true"
        } else {
            ""
        },
    )
}

/// An AdmissionReview for a ReplicaSet's pod in `team-a` that asks for
/// `stripe-api-key` as `STRIPE_KEY`, as the API server would send it.
fn pod_review() -> Value {
    let uid = format!(
        "7f1c2a3b-0000-4000-8000-{:012x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros()
            & 0xffff_ffff_ffff
    );
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "team-a",
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": "web-7d9-",
                    "namespace": "team-a",
                    "labels": {"app": "web", "secrets.agyn.io/inject": "true"},
                    "annotations": {"secrets.agyn.io/env": "STRIPE_KEY=stripe-api-key"},
                    "ownerReferences": [{
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "web-7d9",
                        "uid": "0d7c9f5e-3b1a-4c2d-9e8f-1a2b3c4d5e6f",
                        "controller": true,
                        "blockOwnerDeletion": true
                    }]
                },
                "spec": {"containers": [{"name": "app", "image": "busybox"}]}
            }
        }
    })
}

#[needs(terraform)]
#[tokio::test(flavor = "multi_thread")]
async fn terraform_manages_secrets_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    if common::tool("terraform").is_none() {
        skip("terraform is not on PATH; the Terraform acceptance test was not run");
        return;
    }
    let server = Server::start(&sqlite()).await;
    let api = server.client();
    let endpoint = server.api.clone();
    let tf_env = |stripe: &'static str| {
        Terraform::new(
            tmp.path(),
            &[
                ("AGYN_TOKEN", server.admin_token.as_str()),
                ("TF_VAR_endpoint", endpoint.as_str()),
                ("TF_VAR_stripe_api_key", stripe),
            ],
        )
        .expect("terraform is on PATH")
    };

    // 1. Apply the configuration.
    let tf = tf_env("sk_test_first");
    tf.write("main.tf", &main_tf(false));
    tf.init();
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    let secrets = "/v1/organizations/acme/secrets";
    let stripe = api
        .get(&format!("{secrets}/stripe-api-key"))
        .await
        .expect(200);
    assert_eq!(stripe["storage"], "local");
    assert_eq!(stripe["version"], 1);
    assert_eq!(stripe["value_set"], true);
    let provider = api
        .get("/v1/organizations/acme/providers/vault-prod")
        .await
        .expect(200);
    assert_eq!(
        provider["auth"],
        json!({"method": "token", "token_secret": "vault-token"})
    );
    let remote = api
        .get(&format!("{secrets}/stripe-api-key-remote"))
        .await
        .expect(200);
    assert_eq!(remote["storage"], "remote");
    assert_eq!(remote["provider_id"], provider["id"]);
    assert_eq!(remote["remote_path"], "kv/data/prod/stripe-api-key");
    assert_eq!(remote["remote_key"], "value");
    let pull = api
        .get("/v1/organizations/acme/image-pull-secrets/ghcr")
        .await
        .expect(200);
    assert_eq!(pull["password_secret"], "registry-password");
    let binding = api.get("/v1/namespaces/team-a").await.expect(200);
    assert_eq!(binding["organization_id"], stripe["organization_id"]);

    // 2. A second plan finds nothing to do.
    tf.assert_no_changes();

    // 3. A new value rotates the secret; the API counts the version up.
    let tf = tf_env("sk_test_second");
    let output = tf.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(output.contains("1 changed"), "{output}");
    assert!(
        !output.contains("sk_test_second"),
        "the value leaked:\n{output}"
    );
    let stripe = api
        .get(&format!("{secrets}/stripe-api-key"))
        .await
        .expect(200);
    assert_eq!(stripe["version"], 2);
    assert_eq!(
        tf.ok(&["output", "-raw", "stripe_version"]).lines().last(),
        Some("2")
    );
    tf.assert_no_changes();

    // 4. Secrets made through the API are imported: with an import block
    //    (`<organization>/<secret>`), and with `terraform import` by bare id.
    let legacy = api
        .post(
            secrets,
            json!({"name": "legacy-token", "storage": "local", "value": "made-by-hand"}),
        )
        .await
        .expect(201);
    let legacy_remote = api
        .post(
            secrets,
            json!({
                "name": "legacy-remote",
                "provider_id": provider["id"],
                "remote_path": "kv/data/prod/legacy",
                "remote_key": "password",
            }),
        )
        .await
        .expect(201);
    tf.write("imported.tf", IMPORTED_TF);
    let remote_id = legacy_remote["id"].as_str().unwrap();
    let output = tf.ok(&[
        "import",
        "-no-color",
        "agyn_secret.legacy_remote",
        remote_id,
    ]);
    assert!(output.contains("Import successful"), "{output}");
    let output = tf.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(output.contains("1 imported"), "{output}");
    assert!(output.contains("0 added"), "{output}");
    // The API never returns the value, so the configured one is written.
    let after = api
        .get(&format!("{secrets}/legacy-token"))
        .await
        .expect(200);
    assert_eq!(after["id"], legacy["id"]);
    assert_eq!(after["version"], 2);
    let after = api
        .get(&format!("{secrets}/legacy-remote"))
        .await
        .expect(200);
    assert_eq!(after["version"], 1, "a remote import changes nothing");
    tf.assert_no_changes();

    // 5. A pod uses stripe-api-key: destroy stops and lists the reference.
    let answer = server.review(&pod_review()).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let references = api
        .get(&format!("{secrets}/stripe-api-key/references"))
        .await
        .expect(200);
    assert_eq!(references["items"][0]["kind"], "pod", "{references}");
    let run = tf.run(&["destroy", "-auto-approve", "-no-color"]);
    assert_ne!(run.code, Some(0), "destroy succeeded:\n{}", run.output);
    assert!(
        run.output
            .contains("secret \"stripe-api-key\" is still in use"),
        "{}",
        run.output
    );
    assert!(
        run.output
            .contains("pod team-a/web-7d9- (ReplicaSet web-7d9) container app env STRIPE_KEY"),
        "{}",
        run.output
    );
    assert!(run.output.contains("force_delete = true"), "{}", run.output);
    assert_eq!(
        api.get(&format!("{secrets}/stripe-api-key")).await.status,
        200
    );
    assert_eq!(api.get("/v1/namespaces/team-a").await.status, 200);

    // 6. force_delete = true: apply (no API call), then destroy succeeds.
    tf.write("main.tf", &main_tf(true));
    let output = tf.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        output.contains("0 added, 1 changed, 0 destroyed"),
        "{output}"
    );
    assert_eq!(
        api.get(&format!("{secrets}/stripe-api-key"))
            .await
            .expect(200)["version"],
        2
    );
    let output = tf.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(
        output.contains("Organization \"acme\" was not deleted"),
        "{output}"
    );
    assert_eq!(api.get(secrets).await.expect(200)["items"], json!([]));
    assert_eq!(
        api.get("/v1/organizations/acme/providers")
            .await
            .expect(200)["items"],
        json!([])
    );
    assert_eq!(
        api.get("/v1/organizations/acme/image-pull-secrets")
            .await
            .expect(200)["items"],
        json!([])
    );
    assert_eq!(api.get("/v1/namespaces/team-a").await.status, 404);
    drop(server);
}

/// A secret of an organization found only on a later page of the
/// organization list, and in use by more references than a diagnostic lists.
const DEEP_TF: &str = r#"
terraform {
  required_providers {
    agyn = {
      source = "agyn/agyn"
    }
  }
}

variable "endpoint" {
  type = string
}

provider "agyn" {
  endpoint = var.endpoint
}

resource "agyn_secret" "deep" {
  organization_id = "zz-last"
  name            = "deep"
  value           = "made-by-hand"
}
"#;

/// The provider reads lists to their end: an import by bare id searches
/// every organization, past the API's largest page, and a destroy that is
/// refused counts every reference.
#[needs(terraform)]
#[tokio::test(flavor = "multi_thread")]
async fn terraform_reads_lists_to_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    if common::tool("terraform").is_none() {
        skip("terraform is not on PATH; the Terraform acceptance test was not run");
        return;
    }
    let server = Server::start(&sqlite()).await;
    let api = server.client();
    // More organizations than one page of 500; the secret's sorts last.
    for i in 0..501 {
        api.post("/v1/organizations", json!({"name": format!("org-{i:03}")}))
            .await
            .expect(201);
    }
    api.post("/v1/organizations", json!({"name": "zz-last"}))
        .await
        .expect(201);
    let deep = api
        .post(
            "/v1/organizations/zz-last/secrets",
            json!({"name": "deep", "value": "made-by-hand"}),
        )
        .await
        .expect(201);
    let runtime = api
        .post(
            "/v1/organizations/zz-last/tokens",
            json!({"name": "llm", "role": "runtime"}),
        )
        .await
        .expect(201);
    let runtime = server.client_as(runtime["token"].as_str().unwrap());
    for i in 0..60 {
        runtime
            .post(
                "/v1/organizations/zz-last/resolve",
                json!({"names": ["deep"], "consumer": format!("consumer-{i:02}")}),
            )
            .await
            .expect(200);
    }

    let tf = Terraform::new(
        tmp.path(),
        &[
            ("AGYN_TOKEN", server.admin_token.as_str()),
            ("TF_VAR_endpoint", server.api.as_str()),
        ],
    )
    .expect("terraform is on PATH");
    tf.write("main.tf", DEEP_TF);
    tf.init();
    let output = tf.ok(&[
        "import",
        "-no-color",
        "agyn_secret.deep",
        deep["id"].as_str().unwrap(),
    ]);
    assert!(output.contains("Import successful"), "{output}");
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    tf.assert_no_changes();

    let run = tf.run(&["destroy", "-auto-approve", "-no-color"]);
    assert_ne!(run.code, Some(0), "destroy succeeded:\n{}", run.output);
    assert!(
        run.output.contains("secret \"deep\" is still in use"),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("runtime consumer consumer-49"),
        "{}",
        run.output
    );
    assert!(
        !run.output.contains("runtime consumer consumer-50"),
        "{}",
        run.output
    );
    assert!(run.output.contains("and 10 more"), "{}", run.output);
    assert_eq!(
        api.get("/v1/organizations/zz-last/secrets/deep")
            .await
            .status,
        200
    );
    drop(server);
}

/// The `terraform` and `provider` blocks every configuration below shares.
const HEADER: &str = r#"
terraform {
  required_providers {
    agyn = {
      source = "agyn/agyn"
    }
  }
}

variable "endpoint" {
  type = string
}

provider "agyn" {
  endpoint = var.endpoint
}

resource "agyn_organization" "acme" {
  name = "acme"
}
"#;

/// An AWS Secrets Manager provider with static keys, a remote secret taken
/// whole (no `remote_key`) and one that takes a key of a JSON secret.
/// `#SETTINGS#` is where the provider's region and endpoint go.
const AWS_TF: &str = r#"
resource "agyn_secret" "aws_secret_key" {
  organization_id = agyn_organization.acme.id
  name            = "aws-secret-key"
  value           = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
}

resource "agyn_secret_provider" "aws_prod" {
  organization_id = agyn_organization.acme.id
  name            = "aws-prod"
  kind            = "aws-secrets-manager"
  #SETTINGS#

  auth {
    method                   = "static"
    access_key_id            = "AKIAIOSFODNN7EXAMPLE"
    secret_access_key_secret = agyn_secret.aws_secret_key.name
  }
}

resource "agyn_secret" "db_url" {
  organization_id = agyn_organization.acme.id
  name            = "db-url"
  provider_id     = agyn_secret_provider.aws_prod.id
  remote_path     = "prod/db-url"
}

resource "agyn_secret" "db_password" {
  organization_id = agyn_organization.acme.id
  name            = "db-password"
  provider_id     = agyn_secret_provider.aws_prod.id
  remote_path     = "prod/db"
  remote_key      = "password"
}
"#;

fn aws_tf(settings: &str) -> String {
    format!("{HEADER}{}", AWS_TF.replace("#SETTINGS#", settings))
}

/// An AWS Secrets Manager provider through its life: create, change a
/// setting in place, clear one, import, destroy; and a remote secret
/// without `remote_key`, which reads back as null and plans no change.
/// Creating a provider does not contact AWS, so none is needed here.
#[needs(terraform)]
#[tokio::test(flavor = "multi_thread")]
async fn terraform_manages_aws_secrets_manager_providers() {
    let tmp = tempfile::tempdir().unwrap();
    if common::tool("terraform").is_none() {
        skip("terraform is not on PATH; the Terraform acceptance test was not run");
        return;
    }
    let server = Server::start(&sqlite()).await;
    let api = server.client();
    let tf = Terraform::new(
        tmp.path(),
        &[
            ("AGYN_TOKEN", server.admin_token.as_str()),
            ("TF_VAR_endpoint", server.api.as_str()),
        ],
    )
    .expect("terraform is on PATH");
    let providers = "/v1/organizations/acme/providers";
    let secrets = "/v1/organizations/acme/secrets";
    let static_auth = json!({
        "method": "static",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key_secret": "aws-secret-key",
    });

    // 1. Create.
    tf.write("main.tf", &aws_tf(r#"region = "eu-west-1""#));
    tf.init();
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    let created = api.get(&format!("{providers}/aws-prod")).await.expect(200);
    assert_eq!(created["kind"], "aws-secrets-manager");
    assert_eq!(created["region"], "eu-west-1");
    assert_eq!(created["auth"], static_auth);
    for absent in ["endpoint", "sts_endpoint", "ca_pem", "address"] {
        assert!(created.get(absent).is_none(), "{absent} in {created}");
    }
    let whole = api.get(&format!("{secrets}/db-url")).await.expect(200);
    assert_eq!(whole["provider_id"], created["id"]);
    assert_eq!(whole["remote_path"], "prod/db-url");
    assert_eq!(whole["remote_key"], Value::Null);
    let keyed = api.get(&format!("{secrets}/db-password")).await.expect(200);
    assert_eq!(keyed["remote_key"], "password");
    tf.assert_no_changes();

    // 2. Change the region and add an endpoint: in place, the same id. The
    //    API drops the trailing '/', and the state keeps it as written.
    tf.write(
        "main.tf",
        &aws_tf(
            r#"region = "eu-central-1"
  endpoint = "https://secretsmanager.eu-central-1.amazonaws.com/""#,
        ),
    );
    let output = tf.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        output.contains("0 added, 1 changed, 0 destroyed"),
        "{output}"
    );
    let updated = api.get(&format!("{providers}/aws-prod")).await.expect(200);
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["region"], "eu-central-1");
    assert_eq!(
        updated["endpoint"],
        "https://secretsmanager.eu-central-1.amazonaws.com"
    );
    assert_eq!(
        api.get(&format!("{secrets}/db-url")).await.expect(200)["version"],
        1
    );
    tf.assert_no_changes();

    // 3. Leaving the endpoint out again removes it.
    tf.write("main.tf", &aws_tf(r#"region = "eu-central-1""#));
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    let cleared = api.get(&format!("{providers}/aws-prod")).await.expect(200);
    assert!(cleared.get("endpoint").is_none(), "{cleared}");
    assert_eq!(cleared["region"], "eu-central-1");
    tf.assert_no_changes();

    // 4. Import the provider and the secret without a key by bare id: the
    //    configuration matches, so nothing changes.
    tf.ok(&[
        "state",
        "rm",
        "-no-color",
        "agyn_secret_provider.aws_prod",
        "agyn_secret.db_url",
    ]);
    for (address, id) in [
        ("agyn_secret_provider.aws_prod", &created["id"]),
        ("agyn_secret.db_url", &whole["id"]),
    ] {
        let output = tf.ok(&["import", "-no-color", address, id.as_str().unwrap()]);
        assert!(output.contains("Import successful"), "{output}");
    }
    tf.assert_no_changes();

    // 5. Destroy.
    tf.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert_eq!(api.get(providers).await.expect(200)["items"], json!([]));
    assert_eq!(api.get(secrets).await.expect(200)["items"], json!([]));
    drop(server);
}

/// A Vault provider with Kubernetes auth that still sets `jwt_path` to the
/// old default, as configurations written before the server flag did.
const JWT_PATH_TF: &str = r##"
resource "agyn_secret_provider" "vault_cluster" {
  organization_id = agyn_organization.acme.id
  name            = "vault-cluster"
  address         = "https://vault.example.com:8200"

  auth {
    method   = "kubernetes"
    role     = "agyn-secrets"
    jwt_path = "#JWT_PATH#"
  }
}
"##;

/// Settings that do not fit the provider's kind or auth method fail the
/// plan, naming the attribute, before anything reaches the API; `jwt_path`
/// at its old default only warns and is never sent.
#[needs(terraform)]
#[tokio::test(flavor = "multi_thread")]
async fn terraform_checks_provider_settings_at_plan_time() {
    let tmp = tempfile::tempdir().unwrap();
    if common::tool("terraform").is_none() {
        skip("terraform is not on PATH; the Terraform acceptance test was not run");
        return;
    }
    let server = Server::start(&sqlite()).await;
    let api = server.client();
    let tf = Terraform::new(
        tmp.path(),
        &[
            ("AGYN_TOKEN", server.admin_token.as_str()),
            ("TF_VAR_endpoint", server.api.as_str()),
        ],
    )
    .expect("terraform is on PATH");
    let refused = [
        (
            r#"
resource "agyn_secret_provider" "bad" {
  organization_id = agyn_organization.acme.id
  name            = "bad"
  kind            = "aws-secrets-manager"
  region          = "eu-west-1"

  auth {
    method       = "token"
    token_secret = "vault-token"
  }
}
"#,
            &[
                "method \"token\" does not apply to kind \"aws-secrets-manager\", whose methods are static or web-identity",
            ][..],
            "method       = \"token\"",
        ),
        (
            r#"
resource "agyn_secret_provider" "bad" {
  organization_id = agyn_organization.acme.id
  name            = "bad"
  address         = "https://vault.example.com"
  region          = "eu-west-1"

  auth {
    method       = "token"
    token_secret = "vault-token"
  }
}
"#,
            &[
                "region does not apply to kind \"vault\"; it is a setting of kind \"aws-secrets-manager\"",
            ],
            "region          = \"eu-west-1\"",
        ),
        (
            r#"
resource "agyn_secret_provider" "bad" {
  organization_id = agyn_organization.acme.id
  name            = "bad"
  kind            = "aws-secrets-manager"
  region          = "eu-west-1"

  auth {
    method        = "static"
    access_key_id = "AKIAIOSFODNN7EXAMPLE"
    role_arn      = "arn:aws:iam::123456789012:role/agyn"
  }
}
"#,
            &[
                "secret_access_key_secret is required for method \"static\"",
                "role_arn does not apply to method \"static\"",
            ],
            "role_arn      = \"arn:aws:iam::123456789012:role/agyn\"",
        ),
        (
            &JWT_PATH_TF.replace("#JWT_PATH#", "/var/run/secrets/tokens/vault"),
            &[
                "jwt_path can no longer be set to \"/var/run/secrets/tokens/vault\": start the agyn-secrets server with --service-account-token-file \"/var/run/secrets/tokens/vault\" instead",
            ],
            "jwt_path = \"/var/run/secrets/tokens/vault\"",
        ),
    ];
    tf.write("main.tf", HEADER);
    tf.init();
    for (resource, messages, line) in refused {
        tf.write("main.tf", &format!("{HEADER}{resource}"));
        let run = tf.run(&["plan", "-no-color"]);
        assert_eq!(run.code, Some(1), "the plan passed:\n{}", run.output);
        for message in messages {
            assert!(
                run.output.contains(&format!("Error: {message}")),
                "{}",
                run.output
            );
        }
        // The error points at the attribute's line in the configuration.
        assert!(run.output.contains(line), "{}", run.output);
    }
    // Nothing reached the API: not even the organization was created.
    assert_eq!(api.get("/v1/organizations/acme").await.status, 404);

    // The old default of jwt_path: a warning, the provider is created, and
    // the API never sees the path.
    let jwt_path_tf = format!(
        "{HEADER}{}",
        JWT_PATH_TF.replace(
            "#JWT_PATH#",
            "/var/run/secrets/kubernetes.io/serviceaccount/token"
        )
    );
    tf.write("main.tf", &jwt_path_tf);
    let output = tf.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        output.contains("Warning: jwt_path is deprecated and ignored"),
        "{output}"
    );
    assert!(output.contains("--service-account-token-file"), "{output}");
    let provider = api
        .get("/v1/organizations/acme/providers/vault-cluster")
        .await
        .expect(200);
    assert_eq!(
        provider["auth"],
        json!({"method": "kubernetes", "role": "agyn-secrets", "mount": "kubernetes"})
    );
    tf.assert_no_changes();

    // Taking jwt_path out of the configuration drops it from the state,
    // with a warning, and sends nothing.
    tf.write("main.tf", &jwt_path_tf.replace("    jwt_path = ", "    # "));
    let output = tf.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        output.contains("Warning: jwt_path is no longer a provider setting"),
        "{output}"
    );
    let after = api
        .get("/v1/organizations/acme/providers/vault-cluster")
        .await
        .expect(200);
    assert_eq!(after["updated_at"], provider["updated_at"]);
    tf.assert_no_changes();

    // A remote secret of a Vault provider needs remote_key: the plan says
    // so, naming the provider, when the provider exists.
    let with_secret = format!(
        "{}{}",
        jwt_path_tf.replace("    jwt_path = ", "    # "),
        r#"
resource "agyn_secret" "db" {
  organization_id = agyn_organization.acme.id
  name            = "db"
  provider_id     = agyn_secret_provider.vault_cluster.id
  remote_path     = "kv/data/prod/db"
}
"#
    );
    tf.write("main.tf", &with_secret);
    let run = tf.run(&["plan", "-no-color"]);
    assert_eq!(run.code, Some(1), "the plan passed:\n{}", run.output);
    assert!(
        run.output
            .contains("remote_key is required for a secret read from a Vault provider"),
        "{}",
        run.output
    );
    assert!(run.output.contains("\"vault-cluster\""), "{}", run.output);
    // By name, too; the state keeps the name, so no change is planned. A
    // name is no reference, so the order comes from depends_on.
    tf.write(
        "main.tf",
        &with_secret.replace(
            "provider_id     = agyn_secret_provider.vault_cluster.id\n  remote_path     = \"kv/data/prod/db\"",
            "provider_id     = \"vault-cluster\"\n  remote_path     = \"kv/data/prod/db\"\n  remote_key      = \"password\"\n  depends_on      = [agyn_secret_provider.vault_cluster]",
        ),
    );
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    let secret = api
        .get("/v1/organizations/acme/secrets/db")
        .await
        .expect(200);
    assert_eq!(secret["provider_id"], provider["id"]);
    tf.assert_no_changes();
    tf.ok(&["destroy", "-auto-approve", "-no-color"]);
    drop(server);
}

/// A fenced secret, one without a fence, and the data source of the first.
/// `#FENCE#` and `#OPEN_FENCE#` are where their `allowed_namespaces` go.
const FENCE_TF: &str = r#"
resource "agyn_secret" "fenced" {
  organization_id = agyn_organization.acme.id
  name            = "fenced"
  value           = "only-for-some"
  #FENCE#
}

resource "agyn_secret" "open" {
  organization_id = agyn_organization.acme.id
  name            = "open"
  value           = "for-everyone"
  #OPEN_FENCE#
}

data "agyn_secret" "fenced" {
  organization_id = agyn_organization.acme.id
  name            = agyn_secret.fenced.name
}

output "fenced_allowed_namespaces" {
  value = join(",", sort(data.agyn_secret.fenced.allowed_namespaces))
}
"#;

fn fence_tf(fence: &str, open_fence: &str) -> String {
    format!(
        "{HEADER}{}",
        FENCE_TF
            .replace("#FENCE#", fence)
            .replace("#OPEN_FENCE#", open_fence)
    )
}

/// `allowed_namespaces` is sent at creation, changed and lifted in place
/// without a new version, read back by the resource and the data source,
/// and put back when changed outside Terraform; leaving it out and writing
/// `[]` are the same, so neither plans a change.
#[needs(terraform)]
#[tokio::test(flavor = "multi_thread")]
async fn terraform_manages_namespace_fences() {
    let tmp = tempfile::tempdir().unwrap();
    if common::tool("terraform").is_none() {
        skip("terraform is not on PATH; the Terraform acceptance test was not run");
        return;
    }
    let server = Server::start(&sqlite()).await;
    let api = server.client();
    let tf = Terraform::new(
        tmp.path(),
        &[
            ("AGYN_TOKEN", server.admin_token.as_str()),
            ("TF_VAR_endpoint", server.api.as_str()),
        ],
    )
    .expect("terraform is on PATH");
    let fenced = "/v1/organizations/acme/secrets/fenced";
    let open = "/v1/organizations/acme/secrets/open";

    // 1. Create: a fence with a glob, and none.
    tf.write(
        "main.tf",
        &fence_tf(
            r#"allowed_namespaces = ["team-a-*", "ops", "team-a-*"]"#,
            "",
        ),
    );
    tf.init();
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    let created = api.get(fenced).await.expect(200);
    assert_eq!(created["allowed_namespaces"], json!(["ops", "team-a-*"]));
    assert_eq!(
        api.get(open).await.expect(200)["allowed_namespaces"],
        json!([])
    );
    assert_eq!(
        tf.ok(&["output", "-raw", "fenced_allowed_namespaces"])
            .lines()
            .last(),
        Some("ops,team-a-*")
    );
    tf.assert_no_changes();

    // 2. `[]` written out is the same as leaving it out.
    tf.write(
        "main.tf",
        &fence_tf(
            r#"allowed_namespaces = ["team-a-*", "ops"]"#,
            "allowed_namespaces = []",
        ),
    );
    tf.assert_no_changes();

    // 3. A new fence replaces the old one in place; the value and its
    //    version stay.
    tf.write(
        "main.tf",
        &fence_tf(r#"allowed_namespaces = ["team-b"]"#, ""),
    );
    let output = tf.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        output.contains("0 added, 1 changed, 0 destroyed"),
        "{output}"
    );
    let changed = api.get(fenced).await.expect(200);
    assert_eq!(changed["allowed_namespaces"], json!(["team-b"]));
    assert_eq!(changed["id"], created["id"]);
    assert_eq!(changed["version"], 1);
    tf.assert_no_changes();

    // 4. A fence set outside Terraform is found and lifted again.
    api.patch(open, json!({"allowed_namespaces": ["intruder"]}))
        .await
        .expect(200);
    let run = tf.run(&["plan", "-detailed-exitcode", "-no-color"]);
    assert_eq!(run.code, Some(2), "{}", run.output);
    assert!(run.output.contains("\"intruder\""), "{}", run.output);
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    assert_eq!(
        api.get(open).await.expect(200)["allowed_namespaces"],
        json!([])
    );
    tf.assert_no_changes();

    // 5. Taking the attribute out lifts the fence.
    tf.write("main.tf", &fence_tf("", ""));
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    let lifted = api.get(fenced).await.expect(200);
    assert_eq!(lifted["allowed_namespaces"], json!([]));
    assert_eq!(lifted["version"], 1);
    tf.assert_no_changes();

    // 6. An entry that is neither a namespace name nor a glob of one fails
    //    the plan on the attribute's line, before anything is sent.
    tf.write(
        "main.tf",
        &fence_tf(r#"allowed_namespaces = ["Team-A"]"#, ""),
    );
    let run = tf.run(&["plan", "-no-color"]);
    assert_eq!(run.code, Some(1), "the plan passed:\n{}", run.output);
    assert!(
        run.output
            .contains("Error: allowed_namespaces entry \"Team-A\" is not a namespace name"),
        "{}",
        run.output
    );
    assert!(
        run.output.contains(r#"allowed_namespaces = ["Team-A"]"#),
        "{}",
        run.output
    );
    assert_eq!(
        api.get(fenced).await.expect(200)["allowed_namespaces"],
        json!([])
    );
    drop(server);
}
