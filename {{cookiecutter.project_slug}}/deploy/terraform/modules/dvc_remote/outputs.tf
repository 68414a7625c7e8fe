output "bucket_name" {
  description = "DVC remote bucket: `dvc remote add -d storage s3://<bucket_name>/dvc`."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "ARN of the DVC remote bucket."
  value       = aws_s3_bucket.this.arn
}

output "kms_key_arn" {
  description = "KMS key encrypting the objects (readers need kms:Decrypt on it)."
  value       = aws_kms_key.this.arn
}

output "log_bucket_name" {
  description = "Bucket holding the access logs."
  value       = aws_s3_bucket.logs.bucket
}

output "read_write_policy_json" {
  description = "IAM policy for `dvc push`/`dvc pull` users (CI role): list, get, put, KMS."
  value       = data.aws_iam_policy_document.read_write.json
}
