"""Shared fixtures for the template's own tests.

Fast tier: render every supported option combination and inspect the files.
Slow tier (``-m slow``, on by default in ``make test``): install a rendered project and run its
own README commands. ``--keep-baked`` keeps rendered projects under ``.baked/`` for debugging.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

from .answers import TEMPLATE, answers

# Supported combinations with readable ids. Options that interact are coupled (data source x
# remote x config layout); independent ones are cycled so every value appears at least once.
SUPPORTED: dict[str, dict[str, str]] = {
    "default": {},
    "postgres-lightgbm-s3-embedded": {
        "data_source": "postgres",
        "model_family": "lightgbm",
        "dvc_remote": "s3",
        "config_repo": "embedded",
    },
    "mysql-gbm-py312": {
        "data_source": "mysql",
        "model_family": "gradient_boosting",
        "python_version": "3.12",
    },
    "csv-xgboost-s3-py313": {
        "model_family": "xgboost",
        "dvc_remote": "s3",
        "python_version": "3.13",
    },
    # A name with an underscore: the slug and package are derived as cookiecutter.json does.
    "custom-names": {
        "project_name": "Credit_Risk Scoring",
        "author_name": "Ana O'Neil",
        "author_email": "ana@bank.example",
        "gitlab_host": "gitlab.bank.example",
        "gitlab_namespace": "risk/models",
        "aws_region": "us-east-2",
        "config_repo": "embedded",
        "model_family": "catboost",
    },
}

# Answers the pre-generation hook must refuse, with a fragment of its message.
UNSUPPORTED: dict[str, tuple[dict[str, str], str]] = {
    "slug-uppercase": ({"project_slug": "Bad_Slug"}, "is not a DNS label"),
    "slug-trailing-hyphen": ({"project_slug": "model-"}, "is not a DNS label"),
    "slug-double-hyphen": ({"project_slug": "my--model"}, "is not a DNS label"),
    "package-hyphen": ({"package_name": "my-model"}, "is not an importable Python module name"),
    "package-keyword": ({"package_name": "class"}, "is not an importable Python module name"),
    "package-stdlib": ({"package_name": "json"}, "shadows the standard library"),
    "email": ({"author_email": "not-an-email"}, "is not an e-mail address"),
    "region": ({"aws_region": "europe"}, "is not an AWS region name"),
    "gitlab-host-url": ({"gitlab_host": "https://gitlab.com"}, "is not a host name"),
    "namespace-space": ({"gitlab_namespace": "ml team"}, "is not a GitLab group path"),
    "empty-name": ({"project_name": " ", "project_slug": "x-model"}, "project_name is empty"),
}


@dataclass
class Rendered:
    answers: dict  # every answer, as cookiecutter derived it from the given ones
    dev: Path
    config: Path  # the sibling config repo, or deploy/ inside the dev repo

    @property
    def separate(self) -> bool:
        return self.answers["config_repo"] == "separate"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--keep-baked",
        action="store_true",
        help="render into .baked/ and keep the projects for inspection",
    )


@pytest.fixture(scope="session")
def bake_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if request.config.getoption("--keep-baked"):
        # One folder per xdist worker ("main" without xdist), so workers never share one.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        root = TEMPLATE / ".baked" / worker
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        return root
    return tmp_path_factory.mktemp("baked")


def render_into(output_dir: Path, **context: str) -> Rendered:
    """Render the template non-interactively, like the README's command does.

    ``default_config`` keeps a developer's ~/.cookiecutterrc out of the tests' renders.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    derived = answers(**context)
    dev = Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            extra_context=context,
            output_dir=str(output_dir),
            default_config=True,
        )
    )
    separate = derived["config_repo"] == "separate"
    config = dev.parent / derived["__config_repo_name"] if separate else dev / "deploy"
    return Rendered(answers=derived, dev=dev, config=config)


@pytest.fixture(scope="session")
def render(bake_root: Path):
    """``render(name, **context)`` renders once per name and session."""
    cache: dict[str, Rendered] = {}

    def _render(name: str, **context: str) -> Rendered:
        if name not in cache:
            cache[name] = render_into(bake_root / name, **context)
        return cache[name]

    return _render


@pytest.fixture(scope="session", params=list(SUPPORTED), ids=list(SUPPORTED))
def scenario(request: pytest.FixtureRequest, render) -> Rendered:
    return render(request.param, **SUPPORTED[request.param])


@pytest.fixture(scope="session")
def git_identity_env() -> dict[str, str]:
    """A fresh CI machine may have no git identity; tests that commit set their own."""
    env = dict(os.environ)
    # The tools installed next to this interpreter (cookiecutter, cruft, uv) come first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        GIT_AUTHOR_NAME="Template Tests",
        GIT_AUTHOR_EMAIL="tests@example.com",
        GIT_COMMITTER_NAME="Template Tests",
        GIT_COMMITTER_EMAIL="tests@example.com",
    )
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 900) -> str:
    """Run a generated project's command; on failure show its output in the assertion."""
    import subprocess

    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed in {cwd} (exit {proc.returncode})\n"
        f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
    )
    return proc.stdout


@pytest.fixture(scope="session")
def installed_default(render, git_identity_env) -> Rendered:
    """The default scenario, rendered and installed with its own ``make setup`` (once)."""
    project = render("installed-default")
    run(["make", "setup"], cwd=project.dev, env=git_identity_env)
    return project


def readme_bash_block(readme: str, section: str) -> str:
    """The first shell block of a generated README's ``## <section>`` (what a team runs)."""
    parts = readme.split(f"\n## {section}\n", 1)
    assert len(parts) == 2, f"the generated README has no '## {section}' section"
    block = re.search(r"```bash\n(.*?)```", parts[1].split("\n## ", 1)[0], re.S)
    assert block, f"the README's {section} section has no bash block"
    return block[1]
