"""Slow tier: a rendered project installs and passes its own README commands."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import Rendered, run

pytestmark = pytest.mark.slow


def assert_clean(repo) -> None:
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
    )
    assert status.stdout == "", f"the command changed tracked files:\n{status.stdout}"


def check_readme_commands(project: Rendered, env: dict[str, str]) -> None:
    readme = (project.dev / "README.md").read_text()
    assert "make setup" in readme and "make test" in readme
    run(["make", "test"], cwd=project.dev, env=env)
    run(["make", "lint"], cwd=project.dev, env=env)
    # Formatting the fresh project changes nothing: the template ships formatted code.
    run(["uv", "run", "--frozen", "ruff", "format", "."], cwd=project.dev, env=env)
    run(["uv", "run", "--frozen", "ruff", "check", "--fix", "."], cwd=project.dev, env=env)
    run(["git", "add", "uv.lock"], cwd=project.dev, env=env)
    run(["git", "commit", "-qm", "Lock dependencies"], cwd=project.dev, env=env)
    assert_clean(project.dev)


# Each test renders its own copy: other slow tests run the pipeline in `installed_default`,
# and this one asserts that the README's commands leave the work tree clean.
SCENARIOS = {
    "default": {},
    # Non-default on every axis that changes code paths; the Python this machine has.
    # model_family=lightgbm: its dependency group is a default group, so `make test` runs
    # LightGBM through the pipeline, the parity check and its converter test.
    "mysql-lightgbm-s3-embedded": {
        "data_source": "mysql",
        "model_family": "lightgbm",
        "dvc_remote": "s3",
        "config_repo": "embedded",
    },
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_project_installs_and_passes_its_own_commands(name, render, git_identity_env):
    project = render(f"readme-{name}", **SCENARIOS[name])
    run(["make", "setup"], cwd=project.dev, env=git_identity_env)
    check_readme_commands(project, git_identity_env)
