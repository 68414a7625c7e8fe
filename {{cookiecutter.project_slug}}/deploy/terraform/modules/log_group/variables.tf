variable "name" {
  description = "Name of the log group, e.g. /aws/eks/<cluster>/cluster."
  type        = string
}

variable "kms_key_description" {
  description = "Description of the KMS key encrypting the log group."
  type        = string
}

variable "retention_in_days" {
  description = "Retention of the logs (a CloudWatch retention value; 0: never expire)."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
