//! Adopting what already exists in the API: `terraform init` with a real
//! backend installs the provider from a filesystem mirror without a
//! registry; a configuration that would create existing objects fails with
//! the `terraform import` command for each; importing by name leaves a
//! clean plan.

mod common;

use common::{Api, PROVIDER_VERSION, Server, Terraform, needs, skip, sqlite};
use serde_json::{Value, json};

const ORG: &str = "example-org";
const NAMESPACE: &str = "example-apps";

/// An organization with a local secret, a Vault provider, a remote secret,
/// an image pull secret and a bound namespace, all made through the API.
async fn seed(api: &Api) -> Value {
    let org = api
        .post("/v1/organizations", json!({"name": ORG}))
        .await
        .expect(201);
    let base = format!("/v1/organizations/{ORG}");
    api.post(
        &format!("{base}/secrets"),
        json!({"name": "vault-token", "storage": "local", "value": "s.example"}),
    )
    .await
    .expect(201);
    api.post(
        &format!("{base}/providers"),
        json!({
            "name": "vault-prod",
            "kind": "vault",
            "address": "http://127.0.0.1:8200",
            "auth": {"method": "token", "token_secret": "vault-token"},
        }),
    )
    .await
    .expect(201);
    api.post(
        &format!("{base}/secrets"),
        json!({
            "name": "db-url",
            "provider_id": "vault-prod",
            "remote_path": "kv/data/prod/db",
            "remote_key": "url",
        }),
    )
    .await
    .expect(201);
    api.post(
        &format!("{base}/image-pull-secrets"),
        json!({
            "name": "ghcr",
            "registry": "ghcr.io",
            "username": "deploy-bot",
            "password_secret": "vault-token",
        }),
    )
    .await
    .expect(201);
    api.put(
        &format!("/v1/namespaces/{NAMESPACE}"),
        json!({"organization": ORG}),
    )
    .await
    .expect(201);
    org
}

const PROVIDER_TF: &str = r##"
terraform {
  backend "local" {
    path = "#STATE#"
  }

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
"##;

/// The seeded objects as a configuration would usually write them: every
/// `organization_id` refers to `agyn_organization.example.id`.
const ADOPTED_TF: &str = r#"
resource "agyn_organization" "example" {
  name = "example-org"
}

resource "agyn_secret_provider" "vault_prod" {
  organization_id = agyn_organization.example.id
  name            = "vault-prod"
  address         = "http://127.0.0.1:8200"

  auth {
    method       = "token"
    token_secret = "vault-token"
  }
}

resource "agyn_secret" "db_url" {
  organization_id = agyn_organization.example.id
  name            = "db-url"
  provider_id     = agyn_secret_provider.vault_prod.id
  remote_path     = "kv/data/prod/db"
  remote_key      = "url"
}

resource "agyn_image_pull_secret" "ghcr" {
  organization_id = agyn_organization.example.id
  name            = "ghcr"
  registry        = "ghcr.io"
  username        = "deploy-bot"
  password_secret = "vault-token"
}

resource "agyn_namespace_binding" "example_apps" {
  namespace       = "example-apps"
  organization_id = agyn_organization.example.id
}
"#;

/// The seeded objects again, each naming its organization by the id in
/// `var.organization_id`, so that Terraform creates them all at once rather
/// than after the organization.
const DUPLICATES_TF: &str = r#"
variable "organization_id" {
  type = string
}

resource "agyn_organization" "example" {
  name = "example-org"
}

resource "agyn_secret" "vault_token" {
  organization_id = var.organization_id
  name            = "vault-token"
  value           = "s.example"
}

resource "agyn_secret_provider" "vault_prod" {
  organization_id = var.organization_id
  name            = "vault-prod"
  address         = "http://127.0.0.1:8200"

  auth {
    method       = "token"
    token_secret = "vault-token"
  }
}

resource "agyn_image_pull_secret" "ghcr" {
  organization_id = var.organization_id
  name            = "ghcr"
  registry        = "ghcr.io"
  username        = "deploy-bot"
  password_secret = "vault-token"
}

resource "agyn_namespace_binding" "example_apps" {
  namespace       = "example-apps"
  organization_id = var.organization_id
}
"#;

/// The attributes of `address` in a Terraform state file.
fn attributes<'a>(state: &'a Value, address: &str) -> &'a Value {
    let (kind, name) = address.split_once('.').unwrap();
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == kind && r["name"] == name)
        .map(|r| &r["instances"][0]["attributes"])
        .unwrap_or_else(|| panic!("{address} is not in the state:\n{state:#}"))
}

/// `terraform init` with a `backend "local"` block installs the provider
/// from the mirror (no registry is reachable); the organization imported
/// by name, and the objects in it by `<organization name>/<name>`, end up
/// in the state under their ids, so the next plan finds nothing to change.
#[needs(terraform)]
#[tokio::test(flavor = "multi_thread")]
async fn terraform_init_installs_from_a_mirror_and_imports_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    if common::tool("terraform").is_none() {
        skip("terraform is not on PATH; the Terraform acceptance test was not run");
        return;
    }
    let server = Server::start(&sqlite()).await;
    let api = server.client();
    let org = seed(&api).await;
    let tf = Terraform::new(
        tmp.path(),
        &[
            ("AGYN_TOKEN", server.admin_token.as_str()),
            ("TF_VAR_endpoint", server.api.as_str()),
        ],
    )
    .expect("terraform is on PATH");
    let state_file = tmp.path().join("state/agyn.tfstate");
    let provider_tf = PROVIDER_TF.replace("#STATE#", &state_file.display().to_string());
    tf.write("main.tf", &format!("{provider_tf}{ADOPTED_TF}"));

    // The backend block makes init necessary.
    let run = tf.run(&["plan", "-no-color"]);
    assert_eq!(run.code, Some(1), "plan ran before init:\n{}", run.output);
    assert!(
        run.output.contains("Backend initialization required"),
        "{}",
        run.output
    );

    let output = tf.init();
    assert!(
        output.contains("Successfully configured the backend \"local\""),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "Installed agyn/agyn v{PROVIDER_VERSION} (unauthenticated)"
        )),
        "{output}"
    );
    let lock = std::fs::read_to_string(tf.dir.join(".terraform.lock.hcl")).unwrap();
    assert!(
        lock.contains("provider \"registry.terraform.io/agyn/agyn\"")
            && lock.contains(&format!("version = \"{PROVIDER_VERSION}\"")),
        "{lock}"
    );

    let scoped = |name: &str| format!("{ORG}/{name}");
    for (address, id) in [
        ("agyn_organization.example", ORG.to_owned()),
        ("agyn_secret_provider.vault_prod", scoped("vault-prod")),
        ("agyn_secret.db_url", scoped("db-url")),
        ("agyn_image_pull_secret.ghcr", scoped("ghcr")),
        ("agyn_namespace_binding.example_apps", NAMESPACE.to_owned()),
    ] {
        let output = tf.ok(&["import", "-no-color", address, &id]);
        assert!(output.contains("Import successful"), "{output}");
    }
    tf.assert_no_changes();

    // The state is where the backend says, and names the organization by
    // its id.
    assert!(!tf.dir.join("terraform.tfstate").exists());
    let state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(
        attributes(&state, "agyn_organization.example")["id"],
        org["id"]
    );
    for address in [
        "agyn_secret_provider.vault_prod",
        "agyn_secret.db_url",
        "agyn_image_pull_secret.ghcr",
        "agyn_namespace_binding.example_apps",
    ] {
        assert_eq!(
            attributes(&state, address)["organization_id"],
            org["id"],
            "{address}"
        );
    }
    drop(server);
}

/// Creating what already exists fails, and each error names the import
/// command, with the import id of that kind of resource, the organization
/// by its name although the configuration gives its id; nothing in the API
/// changes.
#[needs(terraform)]
#[tokio::test(flavor = "multi_thread")]
async fn terraform_says_how_to_import_what_already_exists() {
    let tmp = tempfile::tempdir().unwrap();
    if common::tool("terraform").is_none() {
        skip("terraform is not on PATH; the Terraform acceptance test was not run");
        return;
    }
    let server = Server::start(&sqlite()).await;
    let api = server.client();
    let org = seed(&api).await;
    let tf = Terraform::new(
        tmp.path(),
        &[
            ("AGYN_TOKEN", server.admin_token.as_str()),
            ("TF_VAR_endpoint", server.api.as_str()),
            ("TF_VAR_organization_id", org["id"].as_str().unwrap()),
        ],
    )
    .expect("terraform is on PATH");
    let state_file = tmp.path().join("state/agyn.tfstate");
    let provider_tf = PROVIDER_TF.replace("#STATE#", &state_file.display().to_string());
    tf.write("main.tf", &format!("{provider_tf}{DUPLICATES_TF}"));
    tf.init();

    let run = tf.run(&["apply", "-auto-approve", "-no-color"]);
    assert_eq!(run.code, Some(1), "apply succeeded:\n{}", run.output);
    for (error, address, id) in [
        (
            "organization \"example-org\" already exists",
            "agyn_organization.example",
            "example-org",
        ),
        (
            "secret \"vault-token\" already exists in this organization",
            "agyn_secret.vault_token",
            "example-org/vault-token",
        ),
        (
            "provider \"vault-prod\" already exists in this organization",
            "agyn_secret_provider.vault_prod",
            "example-org/vault-prod",
        ),
        (
            "image pull secret \"ghcr\" already exists in this organization",
            "agyn_image_pull_secret.ghcr",
            "example-org/ghcr",
        ),
        (
            "Namespace \"example-apps\" is already bound",
            "agyn_namespace_binding.example_apps",
            "example-apps",
        ),
    ] {
        // Terraform prints each diagnostic as one block: the summary, the
        // resource it is about, then the detail.
        let block = run
            .output
            .split("Error: ")
            .find(|block| block.starts_with(error))
            .unwrap_or_else(|| panic!("no error {error:?}:\n{}", run.output));
        assert!(block.contains(&format!("with {address},")), "{block}");
        assert!(
            block.contains(&format!("\n  terraform import <address> {id}\n")),
            "{block}"
        );
    }

    // Nothing was created, changed or moved.
    let secret = api
        .get(&format!("/v1/organizations/{ORG}/secrets/vault-token"))
        .await
        .expect(200);
    assert_eq!(secret["version"], 1);
    let binding = api
        .get(&format!("/v1/namespaces/{NAMESPACE}"))
        .await
        .expect(200);
    assert_eq!(binding["organization_id"], org["id"]);
    let state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(state["resources"], json!([]), "{state:#}");
    drop(server);
}
