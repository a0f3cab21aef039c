# One organization, a Vault and an AWS Secrets Manager provider, local and
# remote secrets, registry credentials, and the namespace whose pods may use
# them.

resource "agyn_organization" "example" {
  name = "example-org"
}

# Provider credentials are local secrets themselves.
resource "agyn_secret" "vault_token" {
  organization_id = agyn_organization.example.id
  name            = "vault-token"
  value           = var.vault_token
}

# No kind: "vault" (HashiCorp Vault or OpenBao) is the default.
resource "agyn_secret_provider" "vault_prod" {
  organization_id = agyn_organization.example.id
  name            = "vault-prod"
  address         = var.vault_address
  # namespace     = "admin/example"  # Vault Enterprise / OpenBao namespace
  # ca_pem        = file("vault-ca.pem")

  auth {
    method       = "token"
    token_secret = agyn_secret.vault_token.name
  }
}

# Inside a cluster, the platform can log in with its service account instead
# (a platform admin token is needed to configure this).
resource "agyn_secret_provider" "vault_cluster" {
  organization_id = agyn_organization.example.id
  name            = "vault-cluster"
  address         = var.vault_address

  auth {
    method = "kubernetes"
    role   = "agyn-secrets"
    # mount = "kubernetes"   (default)
    # The token file is not set here: the agyn-secrets server reads the one its
    # --service-account-token-file flag names (default
    # /var/run/secrets/kubernetes.io/serviceaccount/token).
  }
}

# AWS Secrets Manager, with an access key whose secret is a local secret.
resource "agyn_secret" "aws_secret_access_key" {
  organization_id = agyn_organization.example.id
  name            = "aws-secret-access-key"
  value           = var.aws_secret_access_key
}

resource "agyn_secret_provider" "aws_prod" {
  organization_id = agyn_organization.example.id
  name            = "aws-prod"
  kind            = "aws-secrets-manager"
  region          = var.aws_region
  # endpoint     = "https://vpce-0a1b2c3d-4e5f6a7b.secretsmanager.eu-west-1.vpce.amazonaws.com"
  # sts_endpoint = "https://sts.eu-west-1.amazonaws.com"

  auth {
    method                   = "static"
    access_key_id            = var.aws_access_key_id
    secret_access_key_secret = agyn_secret.aws_secret_access_key.name
  }

  # On EKS, a platform admin can let the server assume a role with its own
  # web identity token (IRSA) instead of a stored key:
  #   auth {
  #     method   = "web-identity"
  #     role_arn = "arn:aws:iam::123456789012:role/agyn-secrets"
  #   }
}

# A local secret: the value is encrypted at rest by agyn-secrets. Only pods
# in example-apps and the namespaces named example-apps-<something> may use
# it; without allowed_namespaces, every namespace bound to the organization
# may.
resource "agyn_secret" "stripe_api_key" {
  organization_id    = agyn_organization.example.id
  name               = "stripe-api-key"
  value              = var.stripe_api_key
  allowed_namespaces = ["example-apps", "example-apps-*"]
}

# A remote secret: only the reference is stored; the value is read from Vault
# whenever a pod that uses it starts.
resource "agyn_secret" "stripe_api_key_remote" {
  organization_id = agyn_organization.example.id
  name            = "stripe-api-key-remote"
  provider_id     = agyn_secret_provider.vault_prod.id
  remote_path     = "kv/data/prod/stripe-api-key"
  remote_key      = "value"
}

# A plain-string AWS secret, taken whole: no remote_key.
resource "agyn_secret" "database_url" {
  organization_id = agyn_organization.example.id
  name            = "database-url"
  provider_id     = agyn_secret_provider.aws_prod.id
  remote_path     = "prod/database-url"
}

# One key of a JSON AWS secret, e.g. {"username": "app", "password": "…"}.
resource "agyn_secret" "db_password" {
  organization_id = agyn_organization.example.id
  name            = "db-password"
  provider_id     = agyn_secret_provider.aws_prod.id
  remote_path     = "prod/db"
  remote_key      = "password"
}

resource "agyn_secret" "ghcr_token" {
  organization_id = agyn_organization.example.id
  name            = "ghcr-token"
  value           = "ghp_replace_me"
}

resource "agyn_image_pull_secret" "ghcr" {
  organization_id = agyn_organization.example.id
  name            = "ghcr"
  registry        = "ghcr.io"
  username        = "deploy-bot"
  password_secret = agyn_secret.ghcr_token.name
}

# Pods in example-apps may use example-org's secrets:
#   metadata.labels:      secrets.agyn.io/inject: "true"
#   metadata.annotations: secrets.agyn.io/env: "STRIPE_KEY=stripe-api-key"
#                         secrets.agyn.io/image-pull-secrets: "ghcr"
resource "agyn_namespace_binding" "example_apps" {
  namespace       = "example-apps"
  organization_id = agyn_organization.example.id
}

# Metadata only: the API never returns a value.
data "agyn_secret" "stripe" {
  organization_id = agyn_organization.example.id
  name            = agyn_secret.stripe_api_key.name
}
