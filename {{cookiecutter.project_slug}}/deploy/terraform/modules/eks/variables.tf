variable "name" {
  description = "Cluster name."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane and nodes (>= 1.30 for the preStop sleep action)."
  type        = string
  default     = "1.33"
}

variable "vpc_id" {
  description = "VPC of the cluster (network module)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the control plane ENIs and the nodes."
  type        = list(string)
}

variable "endpoint_public_access" {
  description = "Expose the API server endpoint publicly as well (the private endpoint is always on)."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the public endpoint when it is enabled."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Retention of the control-plane logs."
  type        = number
  default     = 365
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
  default     = ["m6i.large"]
}

variable "node_min_size" {
  description = "Minimum nodes."
  type        = number
  default     = 2
}

variable "node_desired_size" {
  description = "Desired nodes at creation (the cluster autoscaler changes it later)."
  type        = number
  default     = 3
}

variable "node_max_size" {
  description = "Maximum nodes."
  type        = number
  default     = 6
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
