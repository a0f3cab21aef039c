output "organization_id" {
  value = agyn_organization.example.id
}

output "stripe_api_key_version" {
  description = "Grows by one every time var.stripe_api_key changes and is applied."
  value       = data.agyn_secret.stripe.version
}

output "vault_prod_id" {
  value = agyn_secret_provider.vault_prod.id
}

output "aws_prod_id" {
  value = agyn_secret_provider.aws_prod.id
}
