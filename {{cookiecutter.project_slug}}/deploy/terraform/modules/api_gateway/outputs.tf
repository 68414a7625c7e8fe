output "api_endpoint" {
  description = "Public URL of the HTTP API."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "api_id" {
  description = "ID of the HTTP API."
  value       = aws_apigatewayv2_api.this.id
}

output "target_group_arn" {
  description = "Target group of the internal NLB: bind the ingress controller's pods to it with a TargetGroupBinding."
  value       = aws_lb_target_group.ingress.arn
}

output "nlb_dns_name" {
  description = "DNS name of the internal NLB."
  value       = aws_lb.internal.dns_name
}

output "nlb_security_group_id" {
  description = "Security group of the NLB; allow it on the ingress controller's pods/nodes on upstream_port."
  value       = aws_security_group.nlb.id
}
