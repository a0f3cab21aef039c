terraform {
  required_version = ">= 1.5"

  required_providers {
    agyn = {
      # Resolved by the dev_overrides entry in dev.tfrc to a local build.
      source = "agyn/agyn"
    }
  }
}

provider "agyn" {
  endpoint = var.endpoint
  # token: set AGYN_TOKEN (or `token = ...`); ca_cert_pem: the API's CA when
  # it is served with a private certificate authority.
}
