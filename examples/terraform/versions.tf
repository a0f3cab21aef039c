terraform {
  required_version = ">= 1.5"

  # The state holds every local secret's value: keep it in a backend that
  # encrypts at rest and restricts access, for example
  #
  #   backend "s3" {
  #     bucket  = "example-terraform-state"
  #     key     = "agyn/terraform.tfstate"
  #     region  = "eu-west-1"
  #     encrypt = true
  #   }
  #
  # Without a backend block the state is terraform.tfstate in this directory.

  required_providers {
    agyn = {
      # Installed by `terraform init` from the filesystem mirror that
      # install-provider.sh fills (see mirror.tfrc).
      source = "agyn/agyn"
    }
  }
}

provider "agyn" {
  endpoint = var.endpoint
  # token: set AGYN_TOKEN (or `token = ...`); ca_cert_pem: the API's CA when
  # it is served with a private certificate authority.
}
