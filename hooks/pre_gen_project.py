"""Validate the answers before anything is written.

Each check returns one sentence the user can act on. The checks are plain functions so the
template's tests import and exercise them directly; ``main()`` is the only part that reads the
rendered answers. Cookiecutter deletes the (still empty) project directory when this hook exits
non-zero, so a rejected answer leaves nothing behind.

Choice variables need no check on the usual paths: cookiecutter refuses a value outside the
list (``--no-input key=value``, ``extra_context``) before any hook runs, and its prompt offers
only the list. A replay file (``--replay``/``--replay-file``) is not checked by cookiecutter,
so it can still bring a value this template version no longer offers; ``check_choice`` catches
that, against the lists in the template's own cookiecutter.json (one source of truth).
"""

from __future__ import annotations

import json
import keyword
import os
import re
import sys
from pathlib import Path

# The patterns are used with fullmatch: `$` alone would also accept a trailing newline.
# A DNS-1123 label is the strictest of the names the slug becomes: Kubernetes object and
# namespace names, Docker image path components, Terraform names and S3 bucket prefixes all
# accept it. 40 leaves room for suffixes such as "-config", "-staging" and "-dvc-<account>".
SLUG_RE = re.compile(r"[a-z][a-z0-9-]{0,38}[a-z0-9]")
# ASCII only, so every match is also a Python identifier.
PACKAGE_RE = re.compile(r"[a-z_][a-z0-9_]*")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
AWS_REGION_RE = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")
HOST_RE = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}")
NAMESPACE_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*(/[a-zA-Z0-9][a-zA-Z0-9_.-]*)*")


def check_project_name(value: str) -> str | None:
    if not value.strip():
        return "project_name is empty: give the project a human-readable name."
    if any(ch in value for ch in '"\\\n'):
        return f"project_name {value!r} contains a quote, backslash or newline: use plain words."
    return None


def check_slug(value: str) -> str | None:
    if "--" in value or not SLUG_RE.fullmatch(value):
        return (
            f"project_slug {value!r} is not a DNS label: use 2-40 lowercase letters, digits and "
            "single hyphens, starting with a letter and not ending with a hyphen "
            "(it names the Kubernetes objects, the image and the Terraform resources)."
        )
    return None


def check_package(value: str) -> str | None:
    if not PACKAGE_RE.fullmatch(value) or keyword.iskeyword(value):
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
    if not EMAIL_RE.fullmatch(value):
        return f"author_email {value!r} is not an e-mail address like 'team@example.com'."
    return None


def check_aws_region(value: str) -> str | None:
    if not AWS_REGION_RE.fullmatch(value):
        return (
            f"aws_region {value!r} is not an AWS region name like 'eu-west-1' or 'us-gov-west-1'."
        )
    return None


def check_gitlab_host(value: str) -> str | None:
    if not HOST_RE.fullmatch(value):
        return f"gitlab_host {value!r} is not a host name like 'gitlab.com' (no scheme, no path)."
    return None


def check_gitlab_namespace(value: str) -> str | None:
    if not NAMESPACE_RE.fullmatch(value) or value.endswith((".git", ".atom")):
        return (
            f"gitlab_namespace {value!r} is not a GitLab group path like 'ml-team' or "
            "'acme/ml-team' (letters, digits, '_', '-', '.', groups separated by '/')."
        )
    return None


def template_spec(repo_dir: str | None) -> Path | None:
    """The template's cookiecutter.json, or None where it cannot be found.

    Cookiecutter gives the template's path as the user typed it (``cookiecutter .``), and runs
    this hook inside the new project: a relative path is resolved from the shell's working
    directory (``PWD``). Cruft gives none; then cookiecutter has checked the choices itself.
    """
    if not repo_dir:
        return None
    path = Path(repo_dir)
    if not path.is_absolute():
        path = Path(os.environ.get("PWD", "/nonexistent")) / path
    spec = path / "cookiecutter.json"
    return spec if spec.is_file() else None


def template_choices(spec_file: Path) -> dict[str, list[str]]:
    """The choice variables and their values, from the template's cookiecutter.json."""
    spec = json.loads(spec_file.read_text())
    return {
        key: values
        for key, values in spec.items()
        if isinstance(values, list) and not key.startswith("_")
    }


def check_choice(option: str, value: str, allowed: list[str]) -> str | None:
    if value not in allowed:
        return (
            f"{option} {value!r} is not one of {', '.join(allowed)}: a replay file from another "
            "template version may hold it, so render again without --replay."
        )
    return None


def check_config_target(config_repo_name: str, config_repo: str, output_dir: Path) -> str | None:
    """The separate config repo is written next to the dev repo: never over existing files."""
    target = output_dir / config_repo_name
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
    """Return every problem with the answers, one actionable sentence each.

    ``answers`` is the rendered cookiecutter context. Cookiecutter sets ``_repo_dir`` (the
    template) on every run, replays included; cruft does not, but cruft has cookiecutter check
    the choices before it renders, so there is nothing left to check then.
    """
    problems = [check(str(answers[field])) for field, check in FIELD_CHECKS.items()]
    spec = template_spec(answers.get("_repo_dir"))
    if spec is not None:
        choices = template_choices(spec)
        problems += [
            check_choice(option, str(answers[option]), allowed)
            for option, allowed in choices.items()
        ]
    if answers.get("__template_part", "dev") == "dev":
        # Only the dev render writes a sibling; the config render is that repo itself.
        problems.append(
            check_config_target(answers["__config_repo_name"], answers["config_repo"], output_dir)
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
