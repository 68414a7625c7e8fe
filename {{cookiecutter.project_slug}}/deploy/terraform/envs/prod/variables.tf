# Inputs of this account's root; the sizes are in main.tf.

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

variable "api_host" {
  description = "Ingress host the gateway forwards to (the host in k8s/overlays/prod/ingress-patch.yaml)."
  type        = string
  default     = "{{ cookiecutter.project_slug }}.prod.example.com"
}

variable "jwt_issuer" {
  description = "Issuer URL of the JWTs the API gateway accepts (set TF_VAR_jwt_issuer in CI)."
  type        = string
}

variable "jwt_audience" {
  description = "Accepted JWT audiences (set TF_VAR_jwt_audience in CI, e.g. [\"{{ cookiecutter.project_slug }}\"])."
  type        = list(string)
}
