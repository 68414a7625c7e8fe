variable "aws_region" {
  description = "AWS region of every resource."
  type        = string
  default     = "{{ cookiecutter.aws_region }}"
}

variable "project" {
  description = "Project slug, prefix of every name."
  type        = string
  default     = "{{ cookiecutter.project_slug }}"
}

variable "azs" {
  description = "Three availability zones of the region, pinned so the subnet layout never changes by itself."
  type        = list(string)
  default     = ["{{ cookiecutter.aws_region }}a", "{{ cookiecutter.aws_region }}b", "{{ cookiecutter.aws_region }}c"]
}

variable "vpc_cidr" {
  description = "CIDR of the VPC (/16 split into /20 subnets)."
  type        = string
  default     = "10.30.0.0/16"
}

variable "eks_public_endpoint" {
  description = "Also expose the EKS API publicly (restricted to eks_public_access_cidrs)."
  type        = bool
  default     = false
}

variable "eks_public_access_cidrs" {
  description = "CIDRs allowed on the public EKS endpoint when it is enabled."
  type        = list(string)
  default     = []
}

variable "jwt_issuer" {
  description = "Issuer URL of the JWTs the API gateway accepts (set TF_VAR_jwt_issuer in CI)."
  type        = string
}

variable "jwt_audience" {
  description = "Accepted JWT audiences (set TF_VAR_jwt_audience in CI, e.g. [\"{{ cookiecutter.project_slug }}\"])."
  type        = list(string)
}

variable "throttling_rate_limit" {
  description = "API gateway steady-state requests per second."
  type        = number
  default     = 3000
}

variable "throttling_burst_limit" {
  description = "API gateway burst above the rate."
  type        = number
  default     = 6000
}

variable "api_host" {
  description = "Ingress host the gateway forwards to (k8s/overlays/prod/ingress.yaml)."
  type        = string
  default     = "{{ cookiecutter.project_slug }}.prod.example.com"
}
