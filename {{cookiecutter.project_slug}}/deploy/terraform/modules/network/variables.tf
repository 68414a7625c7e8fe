variable "name" {
  description = "Prefix of every resource name (project and environment)."
  type        = string
}

variable "cidr_block" {
  description = "CIDR of the VPC."
  type        = string
  default     = "10.20.0.0/16"
}

variable "azs" {
  description = "Availability zones; one private and one public subnet in each."
  type        = list(string)
}

variable "private_subnet_cidrs" {
  description = "CIDRs of the private subnets (nodes, internal load balancers, VPC link), one per AZ."
  type        = list(string)
}

variable "public_subnet_cidrs" {
  description = "CIDRs of the public subnets (NAT gateways only), one per AZ."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (cheaper, for dev) instead of one per AZ."
  type        = bool
  default     = false
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow logs in CloudWatch."
  type        = number
  default     = 365
}

variable "cluster_name" {
  description = "EKS cluster name, tagged on subnets so load balancers find them."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
