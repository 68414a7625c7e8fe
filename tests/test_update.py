"""Template updates reach both generated repos, through cruft and through copier.

One journey per module: the template is committed as v1; cruft and copier each create the dev
repo and, beside it, the config repo; the team commits its own edits in both; the template
moves to v2 (tests/template_repo.py: a new option with a default, new files, a clean and a
conflicting edit in each repo, a renamed file with a copier migration); each repo is updated
on its own with the tool that made it. Each result must equal a fresh v2 render plus the
team's edits, with the one conflict reported the tool's way and nothing else lost.
"""

from __future__ import annotations

import filecmp
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from .conftest import run
from .local_gitlab import load_standin
from .template_repo import (
    CLEAN_EDITS,
    CONFLICTING,
    NEW_DEFAULT,
    NEW_OPTION,
    RENAMED,
    RUNBOOK,
    TEAM_LINE_1,
    TEAM_RUNBOOK,
    TEAM_TAIL,
    TEMPLATE_LINE_1,
    V2,
    change_template,
    commit_all,
    copy_template,
    team_edits,
    tree,
)

SLUG = "transaction-classifier"
CONFIG = f"{SLUG}-config"


@dataclass
class Journey:
    template: Path
    updated: dict[tuple[str, str], Path]  # (tool, repo) -> the updated repository
    fresh: dict[str, Path]  # repo -> the fresh v2 render
    merge_requests: dict[tuple[str, str], dict]  # what each repo's job asked GitLab for
    remotes: dict[tuple[str, str], Path]


def job_script(repo: str, project: Path) -> Path:
    """The scheduled template-update job's program: the same file in both repos."""
    if repo == "config":
        return project / "scripts" / "template_update.py"
    return project / "src" / SLUG.replace("-", "_") / "ci" / "template_update.py"


@pytest.fixture(scope="module")
def journey(tmp_path_factory, git_identity_env) -> Journey:
    env = git_identity_env
    root = tmp_path_factory.mktemp("update")
    template = copy_template(root / "template", env)
    made: dict[tuple[str, str], Path] = {}
    for tool in ("cruft", "copier"):
        work = root / tool
        work.mkdir()
        if tool == "cruft":
            run(["cruft", "create", "--no-input", str(template)], cwd=work, env=env)
            run(["git", "add", ".cruft.json"], cwd=work / SLUG, env=env)
            run(["git", "commit", "-qm", "Record the template version"], cwd=work / SLUG, env=env)
        else:
            run(["copier", "copy", "--trust", "--defaults", str(template), SLUG], cwd=work, env=env)
        made[tool, "dev"], made[tool, "config"] = work / SLUG, work / CONFIG
        team_edits(work / SLUG, work / CONFIG, env)

    change_template(template, env)
    # Each repo's own scheduled job (its CI script, as the pipeline runs it) against the
    # GitLab stand-in and a bare remote: check, update on a branch, open the merge request.
    standin = load_standin(made["cruft", "dev"]).StandIn
    bin_dir = Path(sys.executable).parent
    requests, remotes = {}, {}
    for (tool, repo), path in made.items():
        remote = root / "remotes" / f"{tool}-{repo}.git"
        run(["git", "clone", "-q", "--bare", str(path), str(remote)], cwd=root, env=env)
        gitlab_project = f"ml-team/{path.name}"
        route = ("POST", f"/api/v4/projects/{quote(gitlab_project, safe='')}/merge_requests")
        with standin(routes={route: (201, {"iid": 1, "web_url": "https://gl/mr/1"})}) as api:
            run(
                [sys.executable, str(job_script(repo, path)), "--project", gitlab_project,
                 "--repo-url", remote.as_uri(), "--api-url", api.url, "--target-branch", "main",
                 "--cruft", str(bin_dir / "cruft"), "--copier", str(bin_dir / "copier")],
                cwd=path,
                env={**env, "REPO_TOKEN": "glpat-update-test"},
            )  # fmt: skip
        (request,) = api.requests
        requests[tool, repo], remotes[tool, repo] = request.json(), remote

    fresh_dir = root / "fresh"
    fresh_dir.mkdir()
    run(["cookiecutter", "--no-input", str(template)], cwd=fresh_dir, env=env)
    fresh = {"dev": fresh_dir / SLUG, "config": fresh_dir / CONFIG}
    return Journey(template, made, fresh, requests, remotes)


CASES = [(tool, repo) for tool in ("cruft", "copier") for repo in ("dev", "config")]


def team_only_files(tool: str, repo: str) -> set[str]:
    """Files of the team's own, which no render has: where each tool leaves the runbook."""
    if repo != "dev":
        return set()
    return {RUNBOOK[1] if tool == "copier" else RUNBOOK[0]}


@pytest.mark.slow
@pytest.mark.parametrize(("tool", "repo"), CASES, ids=[f"{t}-{r}" for t, r in CASES])
def test_update_equals_fresh_render_plus_team_edits(journey, tool, repo):
    project, fresh = journey.updated[tool, repo], journey.fresh[repo]
    got, want = tree(project), tree(fresh)
    rejects = sorted(rel for rel in got if rel.endswith(".rej"))
    assert sorted(set(got) - set(rejects)) == sorted(set(want) | team_only_files(tool, repo))
    differing = sorted(rel for rel in want if not filecmp.cmp(got[rel], want[rel], shallow=False))
    assert differing == sorted({"README.md", CONFLICTING})
    if repo == "dev":
        assert RENAMED[1] in got and RENAMED[0] not in got  # the template's rename, followed

    # The clean merge: the template's edit and the team's both land.
    readme = project.joinpath("README.md").read_text()
    assert readme == fresh.joinpath("README.md").read_text() + TEAM_TAIL
    new_heading = CLEAN_EDITS["README.md" if repo == "dev" else "deploy/README.md"][1]
    assert new_heading in readme
    # The new option's default reached the new file.
    assert f"Ask in {NEW_DEFAULT}." in project.joinpath("SUPPORT.md").read_text()

    # The conflict, marked inline (copier merges; cruft's `git apply -3` does too where the
    # repo holds the old file, and writes a .rej only when it has to fall back); everything
    # else in the file is the fresh render's.
    assert rejects == []
    makefile = project.joinpath(CONFLICTING).read_text()
    rest = "".join(fresh.joinpath(CONFLICTING).read_text().splitlines(keepends=True)[1:])
    conflict = (
        r"<<<<<<< [^\n]*\n"
        + re.escape(TEAM_LINE_1)
        + r"=======\n"
        + re.escape(TEMPLATE_LINE_1)
        + r">>>>>>> [^\n]*\n"
    )
    assert re.match(conflict, makefile), makefile[:400]
    assert makefile.endswith(rest)
    assert len(makefile) == len(re.match(conflict, makefile).group(0)) + len(rest)

    for rel in team_only_files(tool, repo):
        # copier's migration moved the team's runbook; cruft has none and leaves it.
        assert project.joinpath(rel).read_text() == TEAM_RUNBOOK


@pytest.mark.slow
@pytest.mark.parametrize(("tool", "repo"), CASES, ids=[f"{t}-{r}" for t, r in CASES])
def test_each_repo_records_its_own_part_and_gets_a_merge_request(journey, tool, repo):
    project = journey.updated[tool, repo]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=journey.template, capture_output=True, text=True
    ).stdout.strip()
    if tool == "cruft":
        state = json.loads(project.joinpath(".cruft.json").read_text())
        assert state["commit"] == head
        assert state["directory"] == ("config" if repo == "config" else None)
        assert state["context"]["cookiecutter"][NEW_OPTION] == NEW_DEFAULT
        version = head[:12]
    else:
        state = yaml.safe_load(project.joinpath(".copier-answers.yml").read_text())
        version = state["_commit"]
        assert version == V2
        assert state["_src_path"] == str(journey.template)
        assert state["template_part"] == repo
        assert state[NEW_OPTION] == NEW_DEFAULT
    # The job pushed the update as a branch and asked for a merge request naming the conflict.
    branch = f"template-update/{version}"
    mr = journey.merge_requests[tool, repo]
    assert (mr["source_branch"], mr["target_branch"]) == (branch, "main")
    assert f"`{tool} update`" in mr["description"]
    assert "Conflicts to resolve" in mr["description"] and f"`{CONFLICTING}`" in mr["description"]
    pushed = subprocess.run(
        ["git", "show", f"{branch}:SUPPORT.md"],
        cwd=journey.remotes[tool, repo],
        capture_output=True,
        text=True,
    )
    assert f"Ask in {NEW_DEFAULT}." in pushed.stdout, pushed.stderr


@pytest.mark.slow
def test_updated_project_passes_its_own_tests(journey, git_identity_env):
    """The updated dev repo installs, lints and passes its unit tests once its conflict is
    resolved the team's way. The whole suite is not run again: the tests above prove the
    update equals a fresh render plus the team's edits, and a fresh default render passes its
    whole suite in test_generated_project.py."""
    project = journey.updated["cruft", "dev"]
    makefile = project / CONFLICTING
    lines = makefile.read_text().splitlines(keepends=True)
    makefile.write_text(TEAM_LINE_1 + "".join(lines[5:]))  # the five lines of the conflict
    commit_all(project, "Our Makefile line kept", git_identity_env)
    run(["make", "setup"], cwd=project, env=git_identity_env)
    run(["make", "lint"], cwd=project, env=git_identity_env)
    out = run(["make", "test-fast"], cwd=project, env=git_identity_env)
    assert re.search(r"\b[1-9]\d* passed", out) and "failed" not in out, out[-2000:]
