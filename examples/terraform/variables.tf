variable "endpoint" {
  description = "Base URL of the agyn-secrets API, without /v1."
  type        = string
  default     = "http://127.0.0.1:8080"
}

variable "stripe_api_key" {
  description = "The Stripe key to store as a local secret."
  type        = string
  sensitive   = true
}

variable "vault_token" {
  description = "Token the platform uses to read remote secrets from Vault."
  type        = string
  sensitive   = true
}

variable "vault_address" {
  description = "Vault or OpenBao base URL."
  type        = string
  default     = "https://vault.example.com:8200"
}

variable "aws_region" {
  description = "The AWS region of the Secrets Manager secrets."
  type        = string
  default     = "eu-west-1"
}

variable "aws_access_key_id" {
  description = "The access key id agyn-secrets signs its Secrets Manager requests with."
  type        = string
}

variable "aws_secret_access_key" {
  description = "The secret access key of that access key."
  type        = string
  sensitive   = true
}
