variable "name" {
  description = "Repository name (the image name)."
  type        = string
}

variable "keep_last_images" {
  description = "How many images the lifecycle policy keeps."
  type        = number
  default     = 50
}

variable "pull_principal_arns" {
  description = "IAM principals (e.g. EKS node roles) allowed to pull from the repository."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
