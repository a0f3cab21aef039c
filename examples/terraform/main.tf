# One organization, a Vault provider, a local and a remote secret, registry
# credentials, and the namespace whose pods may use them.

resource "agyn_organization" "acme" {
  name = "acme"
}

# Provider credentials are local secrets themselves.
resource "agyn_secret" "vault_token" {
  organization_id = agyn_organization.acme.id
  name            = "vault-token"
  value           = var.vault_token
}

resource "agyn_secret_provider" "vault_prod" {
  organization_id = agyn_organization.acme.id
  name            = "vault-prod"
  address         = var.vault_address
  # namespace     = "admin/team-a"   # Vault Enterprise / OpenBao namespace
  # ca_pem        = file("vault-ca.pem")

  auth {
    method       = "token"
    token_secret = agyn_secret.vault_token.name
  }
}

# Inside a cluster, the platform can log in with its service account instead.
resource "agyn_secret_provider" "vault_cluster" {
  organization_id = agyn_organization.acme.id
  name            = "vault-cluster"
  address         = var.vault_address

  auth {
    method = "kubernetes"
    role   = "agyn-secrets"
    # mount    = "kubernetes"                                            (default)
    # jwt_path = "/var/run/secrets/kubernetes.io/serviceaccount/token"  (default)
  }
}

# A local secret: the value is encrypted at rest by agyn-secrets.
resource "agyn_secret" "stripe_api_key" {
  organization_id = agyn_organization.acme.id
  name            = "stripe-api-key"
  value           = var.stripe_api_key
}

# A remote secret: only the reference is stored; the value is read from Vault
# whenever a pod that uses it starts.
resource "agyn_secret" "stripe_api_key_remote" {
  organization_id = agyn_organization.acme.id
  name            = "stripe-api-key-remote"
  provider_id     = agyn_secret_provider.vault_prod.id
  remote_path     = "kv/data/prod/stripe-api-key"
  remote_key      = "value"
}

resource "agyn_secret" "ghcr_token" {
  organization_id = agyn_organization.acme.id
  name            = "ghcr-token"
  value           = "ghp_replace_me"
}

resource "agyn_image_pull_secret" "ghcr" {
  organization_id = agyn_organization.acme.id
  name            = "ghcr"
  registry        = "ghcr.io"
  username        = "deploy-bot"
  password_secret = agyn_secret.ghcr_token.name
}

# Pods in team-a may use acme's secrets:
#   metadata.labels:      secrets.agyn.io/inject: "true"
#   metadata.annotations: secrets.agyn.io/env: "STRIPE_KEY=stripe-api-key"
#                         secrets.agyn.io/image-pull-secrets: "ghcr"
resource "agyn_namespace_binding" "team_a" {
  namespace       = "team-a"
  organization_id = agyn_organization.acme.id
}

# Metadata only: the API never returns a value.
data "agyn_secret" "stripe" {
  organization_id = agyn_organization.acme.id
  name            = agyn_secret.stripe_api_key.name
}
