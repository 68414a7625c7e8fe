# Client → HTTP API (JWT authorizer on every route, throttling) → VPC link → internal NLB
# (TCP passthrough on 443) → ingress controller pods (registered by a TargetGroupBinding of the
# AWS Load Balancer Controller, see README) → Service → pods.

# --- Internal NLB in front of the ingress controller ---

resource "aws_security_group" "vpc_link" {
  name        = "${var.name}-apigw-vpc-link"
  description = "API Gateway VPC link ENIs of ${var.name}"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "vpc_link_to_nlb" {
  security_group_id            = aws_security_group.vpc_link.id
  description                  = "To the internal NLB"
  referenced_security_group_id = aws_security_group.nlb.id
  ip_protocol                  = "tcp"
  from_port                    = var.upstream_port
  to_port                      = var.upstream_port
}

resource "aws_security_group" "nlb" {
  name        = "${var.name}-internal-nlb"
  description = "Internal NLB of ${var.name}: reachable from the VPC link only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "nlb_from_vpc_link" {
  security_group_id            = aws_security_group.nlb.id
  description                  = "From the API Gateway VPC link"
  referenced_security_group_id = aws_security_group.vpc_link.id
  ip_protocol                  = "tcp"
  from_port                    = var.upstream_port
  to_port                      = var.upstream_port
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_targets" {
  security_group_id = aws_security_group.nlb.id
  description       = "To the ingress controller pods inside the VPC"
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = var.upstream_port
  to_port           = var.upstream_port
}

resource "aws_lb" "internal" {
  # checkov:skip=CKV_AWS_91:NLB access logs only cover TLS listeners; this one passes TLS through, and every request is logged by the API stage's access log.
  name                             = substr("${var.name}-int", 0, 32)
  internal                         = true
  load_balancer_type               = "network"
  subnets                          = var.private_subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = true
  tags                             = var.tags
}

resource "aws_lb_target_group" "ingress" {
  name                 = substr("${var.name}-ingress", 0, 32)
  vpc_id               = var.vpc_id
  target_type          = "ip"
  protocol             = "TCP"
  port                 = var.upstream_port
  deregistration_delay = 30

  health_check {
    protocol            = "TCP"
    healthy_threshold   = 3
    unhealthy_threshold = 3
    interval            = 10
  }

  tags = var.tags
}

resource "aws_lb_listener" "tls_passthrough" {
  # checkov:skip=CKV_AWS_2:TCP passthrough: TLS is terminated by the ingress controller with the cert-manager certificate, and verified by API Gateway (tls_config below).
  # checkov:skip=CKV_AWS_103:No TLS policy applies to a TCP passthrough listener; the ingress controller sets the TLS versions.
  load_balancer_arn = aws_lb.internal.arn
  protocol          = "TCP"
  port              = var.upstream_port

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.ingress.arn
  }

  tags = var.tags
}

# --- HTTP API ---

resource "aws_apigatewayv2_vpc_link" "this" {
  name               = "${var.name}-vpc-link"
  subnet_ids         = var.private_subnet_ids
  security_group_ids = [aws_security_group.vpc_link.id]
  tags               = var.tags
}

resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  protocol_type = "HTTP"
  description   = "Public entry to the ${var.name} model service"
  tags          = var.tags
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  api_id           = aws_apigatewayv2_api.this.id
  name             = "jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.jwt_issuer
    audience = var.jwt_audience
  }
}

resource "aws_apigatewayv2_integration" "service" {
  api_id               = aws_apigatewayv2_api.this.id
  integration_type     = "HTTP_PROXY"
  integration_method   = "ANY"
  connection_type      = "VPC_LINK"
  connection_id        = aws_apigatewayv2_vpc_link.this.id
  integration_uri      = aws_lb_listener.tls_passthrough.arn
  timeout_milliseconds = 10000

  tls_config {
    server_name_to_verify = var.upstream_host
  }

  # The ingress routes by host name; the caller's Host is the API's own domain.
  request_parameters = {
    "overwrite:header.host" = var.upstream_host
  }
}

resource "aws_apigatewayv2_route" "this" {
  for_each             = toset(var.routes)
  api_id               = aws_apigatewayv2_api.this.id
  route_key            = each.value
  target               = "integrations/${aws_apigatewayv2_integration.service.id}"
  authorization_type   = "JWT"
  authorizer_id        = aws_apigatewayv2_authorizer.jwt.id
  authorization_scopes = var.authorization_scopes
}

# --- Stage: throttling and JSON access logs (encrypted) ---

module "access_logs" {
  source              = "../log_group"
  name                = "/aws/apigateway/${var.name}"
  kms_key_description = "${var.name} API gateway access logs"
  retention_in_days   = var.log_retention_days
  tags                = var.tags
}

moved {
  from = aws_kms_key.logs
  to   = module.access_logs.aws_kms_key.this
}

moved {
  from = aws_cloudwatch_log_group.access
  to   = module.access_logs.aws_cloudwatch_log_group.this
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit    = var.throttling_rate_limit
    throttling_burst_limit   = var.throttling_burst_limit
    detailed_metrics_enabled = true
  }

  access_log_settings {
    destination_arn = module.access_logs.log_group_arn
    format = jsonencode({
      requestId          = "$context.requestId"
      ip                 = "$context.identity.sourceIp"
      requestTime        = "$context.requestTime"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      integrationLatency = "$context.integrationLatency"
      authorizerError    = "$context.authorizer.error"
      integrationError   = "$context.integrationErrorMessage"
    })
  }

  tags = var.tags
}
