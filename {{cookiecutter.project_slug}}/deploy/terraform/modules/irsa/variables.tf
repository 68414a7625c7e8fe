variable "role_name" {
  description = "Name of the IAM role (the overlay's ServiceAccount annotation points at it)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (eks module output)."
  type        = string
}

variable "oidc_issuer_url" {
  description = "Issuer URL of the cluster (eks module output), with or without https://."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the service account."
  type        = string
}

variable "service_account" {
  description = "Name of the Kubernetes service account allowed to assume the role."
  type        = string
}

variable "statements" {
  description = "The role's permissions: explicit actions on explicit resources. Wildcard actions are rejected."
  type = list(object({
    sid       = string
    actions   = list(string)
    resources = list(string)
  }))

  validation {
    condition     = can(var.statements[0])
    error_message = "Give the role at least one statement (or do not create it)."
  }

  validation {
    condition = alltrue(flatten([
      for s in var.statements : [for a in s.actions : can(regex("^[a-z0-9-]+:[A-Za-z0-9]+$", a))]
    ]))
    error_message = "Actions must be explicit service:Action names: no \"*\" or wildcards."
  }

  validation {
    condition     = alltrue(flatten([for s in var.statements : [for r in s.resources : can(regex("^arn:[a-z-]+:[a-z0-9-]+:", r))]]))
    error_message = "Resources must be explicit ARNs, not \"*\"."
  }
}

variable "max_session_duration" {
  description = "Maximum session duration in seconds."
  type        = number
  default     = 3600
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
