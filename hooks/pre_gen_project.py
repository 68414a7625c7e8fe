"""Validate the answers before anything is written.

Each check returns one sentence the user can act on. The checks are plain functions so the
template's tests import and exercise them directly; ``main()`` is the only part that reads the
rendered answers. Cookiecutter deletes the (still empty) project directory when this hook exits
non-zero, so a rejected answer leaves nothing behind.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from pathlib import Path

# A DNS-1123 label is the strictest of the names the slug becomes: Kubernetes object and
# namespace names, Docker image path components, Terraform names and S3 bucket prefixes all
# accept it. 40 leaves room for suffixes such as "-config", "-staging" and "-dvc-<account>".
SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
PACKAGE_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
AWS_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$")
NAMESPACE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*(/[a-zA-Z0-9][a-zA-Z0-9_.-]*)*$")

CHOICES = {
    "python_version": ("3.11", "3.12", "3.13"),
    "data_source": ("csv", "postgres", "mysql"),
    "model_family": ("logistic_regression", "gradient_boosting"),
    "dvc_remote": ("local", "s3"),
    "config_repo": ("separate", "embedded"),
}


def check_project_name(value: str) -> str | None:
    if not value.strip():
        return "project_name is empty: give the project a human-readable name."
    if any(ch in value for ch in '"\\\n'):
        return f"project_name {value!r} contains a quote, backslash or newline: use plain words."
    return None


def check_slug(value: str) -> str | None:
    if "--" in value or not SLUG_RE.match(value):
        return (
            f"project_slug {value!r} is not a DNS label: use 2-40 lowercase letters, digits and "
            "single hyphens, starting with a letter and not ending with a hyphen "
            "(it names the Kubernetes objects, the image and the Terraform resources)."
        )
    return None


def check_package(value: str) -> str | None:
    if not PACKAGE_RE.match(value) or not value.isidentifier() or keyword.iskeyword(value):
        return (
            f"package_name {value!r} is not an importable Python module name: use lowercase "
            "letters, digits and underscores, starting with a letter "
            "(e.g. 'transaction_classifier')."
        )
    if value in sys.stdlib_module_names:
        return (
            f"package_name {value!r} shadows the standard library module of that name: "
            "pick another."
        )
    return None


def check_email(value: str) -> str | None:
    if not EMAIL_RE.match(value):
        return f"author_email {value!r} is not an e-mail address like 'team@example.com'."
    return None


def check_aws_region(value: str) -> str | None:
    if not AWS_REGION_RE.match(value):
        return (
            f"aws_region {value!r} is not an AWS region name like 'eu-west-1' or 'us-gov-west-1'."
        )
    return None


def check_gitlab_host(value: str) -> str | None:
    if not HOST_RE.match(value):
        return f"gitlab_host {value!r} is not a host name like 'gitlab.com' (no scheme, no path)."
    return None


def check_gitlab_namespace(value: str) -> str | None:
    if not NAMESPACE_RE.match(value) or value.endswith((".git", ".atom")):
        return (
            f"gitlab_namespace {value!r} is not a GitLab group path like 'ml-team' or "
            "'acme/ml-team' (letters, digits, '_', '-', '.', groups separated by '/')."
        )
    return None


def check_choice(option: str, value: str) -> str | None:
    allowed = CHOICES[option]
    if value not in allowed:
        return f"{option} {value!r} is not one of {', '.join(allowed)}."
    return None


def check_config_target(slug: str, config_repo: str, output_dir: Path) -> str | None:
    """The separate config repo is written next to the dev repo: never over existing files."""
    target = output_dir / f"{slug}-config"
    if config_repo == "separate" and target.exists():
        return f"{target} already exists: move it away or choose config_repo=embedded."
    return None


FIELD_CHECKS = {
    "project_name": check_project_name,
    "project_slug": check_slug,
    "package_name": check_package,
    "author_email": check_email,
    "aws_region": check_aws_region,
    "gitlab_host": check_gitlab_host,
    "gitlab_namespace": check_gitlab_namespace,
}


def validate(answers: dict, output_dir: Path) -> list[str]:
    """Return every problem with the answers, one actionable sentence each."""
    problems = [check(str(answers[field])) for field, check in FIELD_CHECKS.items()]
    problems += [check_choice(option, str(answers[option])) for option in CHOICES]
    problems.append(
        check_config_target(answers["project_slug"], answers["config_repo"], output_dir)
    )
    return [p for p in problems if p]


def main() -> int:
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    # The hook runs inside the freshly created (empty) project directory.
    problems = validate(answers, Path.cwd().parent)
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
