"""The scheduled template-update job (the dev and the config repo run the same file): with the
tool that made the repo, check, update on a branch, one merge request; conflicts listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.ci import template_update

from gitlab_standin import StandIn

CRUFT = str(Path(sys.executable).parent / "cruft")
COPIER = str(Path(sys.executable).parent / "copier")
# A one-file cookiecutter template, spelled so that this file itself is not a template.
SLUG = "cookiecutter" + ".project_slug"
SLUG_DIR = "{" * 2 + SLUG + "}" * 2
MRS = "/api/v4/projects/ml%2Fdemo/merge_requests"
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True
    ).stdout


def commit_all(repo: Path, message: str) -> None:
    git("add", "-A", cwd=repo)
    git("-c", "commit.gpgsign=false", "commit", "-qm", message, cwd=repo)


@pytest.fixture
def linked(tmp_path):
    """(template repo, project made from it with cruft and pushed to a bare remote, remote)."""
    template = tmp_path / "template"
    (template / SLUG_DIR).mkdir(parents=True)
    (template / ("cookiecutter" + ".json")).write_text(json.dumps({"project_slug": "demo"}))
    readme = template / SLUG_DIR / "README.md"
    readme.write_text("# " + SLUG_DIR + "\n\nversion 1\n")
    git("init", "-q", "--initial-branch=main", cwd=template)
    commit_all(template, "template v1")
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run([CRUFT, "create", "--no-input", str(template)], cwd=work, env=ENV, check=True)
    project = work / "demo"
    git("init", "-q", "--initial-branch=main", cwd=project)
    commit_all(project, "project from the template")
    remote = tmp_path / "demo.git"
    git("clone", "-q", "--bare", str(project), str(remote), cwd=tmp_path)
    return template, project, remote


def run(project: Path, remote: Path, api: StandIn, monkeypatch) -> int:
    monkeypatch.chdir(project)
    args = ["--project", "ml/demo", "--repo-url", remote.as_uri(), "--api-url", api.url,
            "--target-branch", "main", "--cruft", CRUFT, "--copier", COPIER]  # fmt: skip
    return template_update.main(args, env={**ENV, "REPO_TOKEN": "glpat-template"})


def test_up_to_date_project_opens_nothing(linked, monkeypatch, capsys):
    _, project, remote = linked
    with StandIn() as api:
        assert run(project, remote, api, monkeypatch) == 0
    assert api.requests == []
    assert "on the latest template" in capsys.readouterr().out


def test_outdated_project_gets_a_branch_and_a_merge_request(linked, monkeypatch, capsys):
    template, project, remote = linked
    readme = template / SLUG_DIR / "README.md"
    readme.write_text(readme.read_text().replace("version 1", "version 2"))
    commit_all(template, "template v2")
    commit = git("rev-parse", "HEAD", cwd=template).strip()[:12]
    with StandIn(routes={("POST", MRS): (201, {"iid": 7, "web_url": "https://gl/mr/7"})}) as api:
        assert run(project, remote, api, monkeypatch) == 0
    branch = f"template-update/{commit}"
    assert "version 2" in git("show", f"{branch}:README.md", cwd=remote)
    (request,) = api.requests
    assert request.headers["private-token"] == "glpat-template"
    body = request.json()
    assert (body["source_branch"], body["target_branch"]) == (branch, "main")
    assert "applied cleanly" in body["description"]
    assert "https://gl/mr/7" in capsys.readouterr().out


def test_unlinked_project_is_a_clear_error(tmp_path, monkeypatch, capsys):
    with StandIn() as api:
        assert run(tmp_path, tmp_path / "none.git", api, monkeypatch) == 2
    assert "cruft link" in capsys.readouterr().err


@pytest.fixture
def copied(tmp_path):
    """(template repo tagged 1.0.0, project made from it with copier and pushed, remote)."""
    template = tmp_path / "template"
    template.mkdir()
    (template / "copier.yml").write_text("name:\n  type: str\n  default: demo\n")
    # copier's answers file, spelled so that this file itself is not a template.
    (template / ("{" * 2 + " _copier_conf.answers_file " + "}" * 2 + ".jinja")).write_text(
        "{" * 2 + " _copier_answers | to_nice_yaml " + "}" * 2
    )
    (template / "README.md").write_text("# demo\n\nversion 1\n\nthe team's line\n")
    git("init", "-q", "--initial-branch=main", cwd=template)
    commit_all(template, "template v1")
    git("tag", "1.0.0", cwd=template)
    project = tmp_path / "work" / "demo"
    subprocess.run(
        [COPIER, "copy", "--defaults", "--quiet", str(template), str(project)], env=ENV, check=True
    )
    git("init", "-q", "--initial-branch=main", cwd=project)
    commit_all(project, "project from the template")
    remote = tmp_path / "demo.git"
    git("clone", "-q", "--bare", str(project), str(remote), cwd=tmp_path)
    return template, project, remote


def release(template: Path, readme: str, tag: str) -> None:
    (template / "README.md").write_text(readme)
    commit_all(template, f"template {tag}")
    git("tag", tag, cwd=template)


def test_copier_project_up_to_date_opens_nothing(copied, monkeypatch, capsys):
    _, project, remote = copied
    with StandIn() as api:
        assert run(project, remote, api, monkeypatch) == 0
    assert api.requests == []
    assert "on the latest template (1.0.0)" in capsys.readouterr().out


def test_copier_conflict_is_pushed_and_listed_in_the_merge_request(copied, monkeypatch):
    template, project, remote = copied
    (project / "README.md").write_text("# demo\n\nversion 1\n\nOUR line\n")
    commit_all(project, "our own line")
    release(template, "# demo\n\nversion 2\n\nTHEIR line\n", "2.0.0")
    with StandIn(routes={("POST", MRS): (201, {"iid": 8, "web_url": "https://gl/mr/8"})}) as api:
        assert run(project, remote, api, monkeypatch) == 0
    readme = git("show", "template-update/2.0.0:README.md", cwd=remote)
    assert "version 2" in readme
    assert "<<<<<<< " in readme and "OUR line" in readme and "THEIR line" in readme
    (request,) = api.requests
    body = request.json()
    assert body["source_branch"] == "template-update/2.0.0"
    assert "Conflicts to resolve" in body["description"] and "`README.md`" in body["description"]
