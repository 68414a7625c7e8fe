# The platform module's outputs, under the names the docs use (terraform output irsa_role_arns).

output "cluster_name" {
  description = "EKS cluster (aws eks update-kubeconfig --name <cluster_name>)."
  value       = module.platform.cluster_name
}

output "irsa_role_arns" {
  description = "Role ARN per Kubernetes environment: the eks.amazonaws.com/role-arn annotation in k8s/overlays/<env>/patches.yaml."
  value       = module.platform.irsa_role_arns
}

output "retrain_role_arns" {
  description = "Role ARN of the retrain job per Kubernetes environment that runs it: the annotation of the ServiceAccount <project>-retrain in k8s/overlays/<env>/patches.yaml."
  value       = module.platform.retrain_role_arns
}

output "ecr_repository_url" {
  description = "ECR repository for the service image."
  value       = module.platform.ecr_repository_url
}

output "dvc_remote_bucket" {
  description = "DVC remote bucket (dvc remote add -d storage s3://<bucket>/dvc)."
  value       = module.platform.dvc_remote_bucket
}

output "dvc_read_write_policy_json" {
  description = "Policy to attach to the CI role that runs dvc push."
  value       = module.platform.dvc_read_write_policy_json
}

output "api_endpoint" {
  description = "Public URL of the API gateway."
  value       = module.platform.api_endpoint
}

output "api_target_group_arn" {
  description = "Target group to bind the ingress controller to (TargetGroupBinding)."
  value       = module.platform.api_target_group_arn
}
