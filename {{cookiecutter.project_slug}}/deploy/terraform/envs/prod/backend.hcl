# terraform init -backend-config=backend.hcl -backend-config="bucket=<state bucket>"
key          = "{{ cookiecutter.project_slug }}/prod/terraform.tfstate"
region       = "{{ cookiecutter.aws_region }}"
encrypt      = true
use_lockfile = true
