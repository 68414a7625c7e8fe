"""Shape the rendered project: prune whole files, place the config repo, make git repos.

Whole files vary here, from the declarative ``PRUNE_RULES`` table; lines vary with Jinja in the
files themselves. Nothing is caught and ignored: a failure stops cookiecutter, which deletes the
dev repo it rendered, and ``main()`` removes the sibling config repo it may have created, so a
failed run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# (option, values for which the paths are removed, paths relative to the dev repo).
# Every file that only one option value needs is listed here; lines inside a kept file vary
# with Jinja in the file itself.
PRUNE_RULES: list[tuple[str, frozenset[str], tuple[str, ...]]] = [
    (
        # The checks every SQL engine passes, run by the engine's test file below.
        "data_source",
        frozenset({"csv"}),
        ("tests/sql_source_support.py",),
    ),
    (
        # The PostgreSQL server for the test and training CI jobs, and its integration test.
        "data_source",
        frozenset({"csv", "mysql"}),
        ("ci/services-postgres.gitlab-ci.yml", "tests/integration/test_sql_source_postgres.py"),
    ),
    (
        "data_source",
        frozenset({"csv", "postgres"}),
        ("ci/services-mysql.gitlab-ci.yml", "tests/integration/test_sql_source_mysql.py"),
    ),
    (
        "dvc_remote",
        frozenset({"local"}),
        (
            "tests/s3_support.py",
            "tests/integration/test_dvc_s3_remote.py",
            "tests/integration/test_parquet_s3.py",
        ),
    ),
]

CONFIG_DIR = "deploy"
# Context keys cookiecutter adds for one run only (cruft records neither).
NOT_RECORDED = {"_output_dir", "_repo_dir"}
INITIAL_COMMIT = "Initial commit from the mlops template"
# Used only when the machine has no git identity, so the first commit never fails on a
# fresh CI runner; a configured identity always wins.
FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "mlops template",
    "GIT_AUTHOR_EMAIL": "mlops-template@localhost",
}


def paths_to_prune(answers: dict) -> list[str]:
    """The files the answers make irrelevant, in table order."""
    return [
        path
        for option, values, paths in PRUNE_RULES
        if str(answers[option]) in values
        for path in paths
    ]


def prune(project: Path, paths: list[str]) -> None:
    for rel in paths:
        target = project / rel
        if target.is_dir():
            shutil.rmtree(target)
        else:
            # A missing file means the table and the template disagree: fail loudly.
            target.unlink()


def git_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("name", "email"):
        configured = subprocess.run(
            ["git", "config", "--get", f"user.{key}"], capture_output=True, text=True
        ).stdout.strip()
        if not configured:
            author = FALLBACK_IDENTITY[f"GIT_AUTHOR_{key.upper()}"]
            env.setdefault(f"GIT_AUTHOR_{key.upper()}", author)
            env.setdefault(f"GIT_COMMITTER_{key.upper()}", author)
    return env


def git_init_and_commit(repo: Path) -> None:
    env = git_env()
    for args in (
        ["init", "--quiet", "--initial-branch=main"],
        ["add", "--all"],
        ["-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify", "-m", INITIAL_COMMIT],
    ):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)


def place_config_repo(project: Path, answers: dict) -> Path | None:
    """Move deploy/ to a sibling repo when asked; return the sibling's path.

    deploy/ is the config template's tree (config/ renders the same files), so the sibling is
    what ``cookiecutter --directory config`` would make.
    """
    if answers["config_repo"] != "separate":
        return None
    sibling = project.parent / answers["__config_repo_name"]
    shutil.move(str(project / CONFIG_DIR), str(sibling))
    return sibling


def config_cruft_state(answers: dict) -> dict | None:
    """The config repo's ``.cruft.json`` when cruft renders (it adds ``_commit``), else None.

    cruft writes the dev repo's own after this hook; the config repo is the config/ part of
    the same template at the same commit, so ``cruft update`` works in it on its own.
    """
    if "_commit" not in answers:
        return None
    context = {k: v for k, v in answers.items() if k not in NOT_RECORDED}
    return {
        "template": answers["_template"],
        "commit": answers["_commit"],
        "checkout": answers.get("_checkout"),
        "context": {"cookiecutter": {**context, "__template_part": "config"}},
        "directory": "config",
        # Every render is made a git repository (this hook): never diff .git.
        "skip": [".git"],
    }


def main() -> int:
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    project = Path.cwd()
    sibling = None
    if answers["__template_part"] == "config":
        git_init_and_commit(project)  # the config repo rendered on its own (config/)
        return 0
    try:
        prune(project, paths_to_prune(answers))
        sibling = place_config_repo(project, answers)
        git_init_and_commit(project)
        if sibling is not None:
            state = config_cruft_state(answers)
            if state is not None:
                (sibling / ".cruft.json").write_text(json.dumps(state, indent=2) + "\n")
            git_init_and_commit(sibling)
    except BaseException:
        # Cookiecutter removes the dev repo on failure; the sibling is ours to remove.
        if sibling is not None and sibling.exists():
            shutil.rmtree(sibling)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
