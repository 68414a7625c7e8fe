# The dev AWS account of {{ cookiecutter.project_slug }}: the dev and staging namespaces share this cluster.
# What it contains is modules/platform; this file only sets what differs per account.
locals {
  env = "dev"
}

module "platform" {
  source = "../../modules/platform"

  project  = var.project
  env      = local.env
  k8s_envs = ["dev", "staging"] # Kubernetes environments (overlays) in this cluster: one IRSA role each
  # The environments that retrain on Dask (k8s/components/retrain): a retrain role each.
  retrain_envs = ["dev"]
  # The training data's S3 buckets (a Parquet lake), read by the retrain job; e.g.
  # ["arn:aws:s3:::my-lake"]. Empty: the data come from the DVC pipeline or a database.
  training_data_bucket_arns = []

  # Three AZs of the region, pinned so the subnet layout never changes by itself; the /16 is
  # split into /20 subnets.
  azs                = ["{{ cookiecutter.aws_region }}a", "{{ cookiecutter.aws_region }}b", "{{ cookiecutter.aws_region }}c"]
  vpc_cidr           = "10.20.0.0/16"
  single_nat_gateway = true # one NAT gateway for every AZ (cheaper, less available)

  # The EKS API server is private; true also publishes it, restricted to eks_public_access_cidrs.
  eks_public_endpoint     = false
  eks_public_access_cidrs = []
  node_min_size           = 2
  node_desired_size       = 2
  node_max_size           = 4

  api_host               = var.api_host
  jwt_issuer             = var.jwt_issuer
  jwt_audience           = var.jwt_audience
  throttling_rate_limit  = 100 # requests per second, steady state
  throttling_burst_limit = 200

  log_retention_days = 365 # flow logs, EKS control-plane logs, API access logs
}
