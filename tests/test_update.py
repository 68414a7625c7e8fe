"""Template updates reach both generated repos, through cruft and through copier.

One journey per module: the template is committed as v1; cruft and copier each create the dev
repo and, beside it, the config repo (and a dev repo with config_repo=embedded, deploy/
inside); the team commits its own edits in each; the template moves to v2
(tests/template_repo.py: a new option with a default, new files, a clean and a conflicting
edit in each tree, a renamed file, a copier migration that moves the team's runbook); each
repo is updated on its own by its scheduled job's program, with the tool that made it,
against the GitLab stand-in and a bare remote. Each result must equal a fresh v2 render plus
the team's edits, with the conflict marked the tool's way and nothing else lost.
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
        for layout in ("separate", "embedded"):
            work = root / f"{tool}-{layout}"
            work.mkdir()
            if tool == "cruft":
                context = json.dumps({"config_repo": layout})
                create = ["cruft", "create", "--no-input", "--extra-context", context]
                run([*create, str(template)], cwd=work, env=env)
                run(["git", "add", ".cruft.json"], cwd=work / SLUG, env=env)
                run(["git", "commit", "-qm", "Record the template"], cwd=work / SLUG, env=env)
            else:
                create = ["copier", "copy", "--trust", "--defaults", "-d", f"config_repo={layout}"]
                run([*create, str(template), SLUG], cwd=work, env=env)
            if layout == "separate":
                made[tool, "dev"], made[tool, "config"] = work / SLUG, work / CONFIG
                team_edits(work / SLUG, work / CONFIG, env)
            else:
                made[tool, "embedded"] = work / SLUG
                team_edits(work / SLUG, work / SLUG / "deploy", env)

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

    fresh = {}
    for layout in ("separate", "embedded"):
        fresh_dir = root / f"fresh-{layout}"
        fresh_dir.mkdir()
        render = ["cookiecutter", "--no-input", str(template), f"config_repo={layout}"]
        run(render, cwd=fresh_dir, env=env)
        if layout == "separate":
            fresh["dev"], fresh["config"] = fresh_dir / SLUG, fresh_dir / CONFIG
        else:
            fresh["embedded"] = fresh_dir / SLUG
    return Journey(template, made, fresh, requests, remotes)


REPOS = ("dev", "config", "embedded")  # embedded: the dev repo with deploy/ inside
CASES = [(tool, repo) for tool in ("cruft", "copier") for repo in REPOS]
# Where each repo has the config tree's files (and so the team's edits of them), and which
# of the template's clean edits lands in each of its READMEs.
TREES = {
    "dev": {"": "README.md"},
    "config": {"": "deploy/README.md"},
    "embedded": {"": "README.md", "deploy/": "deploy/README.md"},
}


def team_only_files(tool: str, repo: str) -> set[str]:
    """Files of the team's own, which no render has: where each tool leaves the runbook."""
    if repo == "config":
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
    trees = TREES[repo]
    assert differing == sorted(f"{p}{name}" for p in trees for name in ("README.md", CONFLICTING))
    if repo != "config":
        assert RENAMED[1] in got and RENAMED[0] not in got  # the template's rename, followed
    # The conflict, marked inline (copier merges; cruft's `git apply -3` does too where the
    # repo holds the old file, and writes a .rej only when it has to fall back).
    assert rejects == []
    conflict = (
        r"<<<<<<< [^\n]*\n"
        + re.escape(TEAM_LINE_1)
        + r"=======\n"
        + re.escape(TEMPLATE_LINE_1)
        + r">>>>>>> [^\n]*\n"
    )

    for prefix, edit in trees.items():
        # The clean merge: the template's edit and the team's both land.
        readme = project.joinpath(f"{prefix}README.md").read_text()
        assert readme == fresh.joinpath(f"{prefix}README.md").read_text() + TEAM_TAIL
        assert CLEAN_EDITS[edit][1] in readme
        # The new option's default reached the new file.
        assert f"Ask in {NEW_DEFAULT}." in project.joinpath(f"{prefix}SUPPORT.md").read_text()
        # The conflict; everything else in the file is the fresh render's.
        makefile = project.joinpath(f"{prefix}{CONFLICTING}").read_text()
        fresh_lines = fresh.joinpath(f"{prefix}{CONFLICTING}").read_text().splitlines(True)
        marked = re.match(conflict, makefile)
        assert marked, makefile[:400]
        assert makefile[marked.end() :] == "".join(fresh_lines[1:])

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
        assert state["context"]["cookiecutter"]["config_repo"] == (
            "embedded" if repo == "embedded" else "separate"
        )
        assert state["context"]["cookiecutter"][NEW_OPTION] == NEW_DEFAULT
        version = head[:12]
    else:
        state = yaml.safe_load(project.joinpath(".copier-answers.yml").read_text())
        version = state["_commit"]
        assert version == V2
        assert state["_src_path"] == str(journey.template)
        assert state["template_part"] == ("config" if repo == "config" else "dev")
        assert state[NEW_OPTION] == NEW_DEFAULT
    # The job pushed the update as a branch and asked for a merge request naming the conflict.
    branch = f"template-update/{version}"
    mr = journey.merge_requests[tool, repo]
    assert (mr["source_branch"], mr["target_branch"]) == (branch, "main")
    assert f"`{tool} update`" in mr["description"]
    assert "Conflicts to resolve" in mr["description"]
    for prefix in TREES[repo]:
        assert f"`{prefix}{CONFLICTING}`" in mr["description"]
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
