variable "bucket_name" {
  description = "Name of the DVC remote bucket (globally unique)."
  type        = string
}

variable "log_bucket_name" {
  description = "Name of the bucket receiving the server access logs of the DVC bucket."
  type        = string
}

variable "noncurrent_version_retention_days" {
  description = "Days to keep overwritten/deleted object versions of the DVC bucket."
  type        = number
  default     = 365
}

variable "log_retention_days" {
  description = "Days to keep access logs."
  type        = number
  default     = 400
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
