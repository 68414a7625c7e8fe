"""Template updates reach generated projects: render at v1, edit, update to v2 with cruft, and
the result equals a fresh v2 render plus the user's own edits."""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import TEMPLATE, run

SLUG = "transaction-classifier"
USER_EDIT = "\n# team-specific target kept across template updates\n"


def template_files() -> list[str]:
    """The template as it would be committed: tracked plus new, not ignored, files."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return [f for f in out if f and (TEMPLATE / f).is_file()]


def copy_template(dest: Path, env: dict[str, str]) -> Path:
    for rel in template_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE / rel, target)
    run(["git", "init", "-q", "-b", "main"], cwd=dest, env=env)
    commit_all(dest, "template v1", env)
    return dest


def commit_all(repo: Path, message: str, env: dict[str, str]) -> None:
    run(["git", "add", "-A"], cwd=repo, env=env)
    run(["git", "-c", "commit.gpgsign=false", "commit", "-qm", message], cwd=repo, env=env)


def change_template(template: Path, env: dict[str, str]) -> None:
    """v2: a new option with a default, a new file that uses it, and an edited file."""
    spec_path = template / "cookiecutter.json"
    spec = json.loads(spec_path.read_text())
    spec = {"team_channel": "#ml-team", **spec}
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    project = template / "{{cookiecutter.project_slug}}"
    (project / "SUPPORT.md").write_text(
        "# Support for {{ cookiecutter.project_name }}\n\nAsk in {{ cookiecutter.team_channel }}.\n"
    )
    readme = project / "README.md"
    readme.write_text(readme.read_text().replace("## Daily work", "## Daily work with the model"))
    commit_all(template, "template v2", env)


def tree(root: Path) -> dict[str, Path]:
    return {
        p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts and p.name != ".cruft.json"
    }


@pytest.fixture
def updated(tmp_path, git_identity_env):
    env = git_identity_env
    template = copy_template(tmp_path / "template", env)
    work = tmp_path / "work"
    work.mkdir()
    run(["cruft", "create", "--no-input", str(template)], cwd=work, env=env)
    project = work / SLUG
    run(["git", "add", ".cruft.json"], cwd=project, env=env)
    run(["git", "commit", "-qm", "Record the template version"], cwd=project, env=env)
    with (project / "Makefile").open("a") as makefile:
        makefile.write(USER_EDIT)
    commit_all(project, "Our own Makefile target", env)

    change_template(template, env)
    check = subprocess.run(["cruft", "check"], cwd=project, env=env, capture_output=True, text=True)
    assert check.returncode == 1, "cruft check must report the project as outdated"
    run(["cruft", "update", "--skip-apply-ask", "-y"], cwd=project, env=env)
    run(["cruft", "check"], cwd=project, env=env)

    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    run(["cookiecutter", "--no-input", str(template)], cwd=fresh_dir, env=env)
    return project, fresh_dir / SLUG


def test_update_equals_fresh_render_plus_user_edits(updated):
    project, fresh = updated
    got, want = tree(project), tree(fresh)
    assert sorted(got) == sorted(want)
    differing = [rel for rel in want if not filecmp.cmp(got[rel], want[rel], shallow=False)]
    assert differing == ["Makefile"]
    assert (
        project.joinpath("Makefile").read_text()
        == fresh.joinpath("Makefile").read_text() + USER_EDIT
    )
    assert "Ask in #ml-team." in project.joinpath("SUPPORT.md").read_text()
    assert "## Daily work with the model" in project.joinpath("README.md").read_text()
    state = json.loads(project.joinpath(".cruft.json").read_text())
    assert state["context"]["cookiecutter"]["team_channel"] == "#ml-team"


@pytest.mark.slow
def test_updated_project_passes_its_own_tests(updated, git_identity_env):
    """The updated project installs, lints and passes its unit tests. The whole suite is not
    run again: the test above proves the update equals a fresh render plus the user's edit,
    and a fresh default render passes its whole suite in test_generated_project.py."""
    project, _ = updated
    run(["make", "setup"], cwd=project, env=git_identity_env)
    run(["make", "lint"], cwd=project, env=git_identity_env)
    out = run(["make", "test-fast"], cwd=project, env=git_identity_env)
    assert re.search(r"\b[1-9]\d* passed", out) and "failed" not in out, out[-2000:]
