output "repository_url" {
  description = "URL to push and pull images (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_arn" {
  description = "ARN of the repository."
  value       = aws_ecr_repository.this.arn
}

output "kms_key_arn" {
  description = "KMS key encrypting the images."
  value       = aws_kms_key.this.arn
}
