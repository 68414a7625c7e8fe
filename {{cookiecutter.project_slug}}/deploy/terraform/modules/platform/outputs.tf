output "cluster_name" {
  description = "EKS cluster (aws eks update-kubeconfig --name <cluster_name>)."
  value       = module.eks.cluster_name
}

output "irsa_role_arns" {
  description = "Role ARN per Kubernetes environment: the eks.amazonaws.com/role-arn annotation in k8s/overlays/<env>/patches.yaml."
  value       = { for env, role in module.irsa : env => role.role_arn }
}

output "retrain_role_arns" {
  description = "Role ARN of the retrain job per Kubernetes environment that runs it: the eks.amazonaws.com/role-arn annotation of the ServiceAccount <project>-retrain in k8s/overlays/<env>/patches.yaml."
  value       = { for env, role in module.irsa_retrain : env => role.role_arn }
}

output "ecr_repository_url" {
  description = "ECR repository for the service image."
  value       = module.ecr.repository_url
}

output "dvc_remote_bucket" {
  description = "DVC remote bucket (dvc remote add -d storage s3://<bucket>/dvc)."
  value       = module.dvc_remote.bucket_name
}

output "dvc_read_write_policy_json" {
  description = "Policy to attach to the CI role that runs dvc push."
  value       = module.dvc_remote.read_write_policy_json
}

output "api_endpoint" {
  description = "Public URL of the API gateway."
  value       = module.api_gateway.api_endpoint
}

output "api_target_group_arn" {
  description = "Target group to bind the ingress controller to (TargetGroupBinding)."
  value       = module.api_gateway.target_group_arn
}
