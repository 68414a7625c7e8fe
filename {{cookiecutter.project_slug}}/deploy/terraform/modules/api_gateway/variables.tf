variable "name" {
  description = "Prefix of every resource name (project and environment)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster (network module)."
  type        = string
}

variable "vpc_cidr_block" {
  description = "CIDR of the VPC; the NLB accepts traffic from the VPC link only, inside it."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets of the internal NLB and the VPC link."
  type        = list(string)
}

variable "upstream_host" {
  description = "Host name the ingress routes to the service (the overlay's Ingress host, e.g. <slug>.prod.example.com). Sent as Host and verified as TLS server name."
  type        = string
}

variable "upstream_port" {
  description = "TLS port of the ingress controller behind the NLB."
  type        = number
  default     = 443
}

variable "routes" {
  description = "Routes published by the gateway (\"METHOD /path\"). Every route gets the JWT authorizer."
  type        = list(string)
  default = [
    "POST /v1/predict",
    "GET /v1/model",
    # The Open Inference Protocol (KServe V2) for the same model; {model} is its name.
    "POST /v2/models/{model}/infer",
    "POST /v2/models/{model}/versions/{version}/infer",
    "GET /v2/models/{model}",
    "GET /v2/models/{model}/ready",
  ]

  validation {
    condition     = alltrue([for r in var.routes : can(regex("^(GET|POST|PUT|PATCH|DELETE|ANY) /", r))])
    error_message = "Each route is \"METHOD /path\"; $default and catch-all routes are not allowed."
  }
}

variable "jwt_issuer" {
  description = "Issuer URL of the JWTs accepted by the authorizer (e.g. a Cognito user pool or your IdP)."
  type        = string
}

variable "jwt_audience" {
  description = "Accepted `aud` values of the JWTs."
  type        = list(string)
}

variable "authorization_scopes" {
  description = "OAuth scopes a token must carry on every route (empty: any valid token)."
  type        = list(string)
  default     = []
}

variable "throttling_rate_limit" {
  description = "Steady-state requests per second allowed on every route."
  type        = number
  default     = 1000
}

variable "throttling_burst_limit" {
  description = "Burst of requests allowed above the rate limit."
  type        = number
  default     = 2000
}

variable "log_retention_days" {
  description = "Retention of the gateway access logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
