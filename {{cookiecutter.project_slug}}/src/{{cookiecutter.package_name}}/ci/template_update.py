"""CI: keep the project on its template. ``cruft check``; when the template moved on,
``cruft update`` on a branch and a merge request with the result.

Conflicting hunks land as ``*.rej`` files next to the file they belong to; they are committed
with the rest so the merge request shows them, and its description says so. Needs a
``.cruft.json`` (``cruft create``, or ``cruft link <template-url>`` for a project rendered with
plain cookiecutter) and a ``REPO_TOKEN`` allowed to push branches and open merge requests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess  # nosec B404
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .gitlab import GitLab, GitLabError, token_from_env
from .gitops import authenticated_url, open_merge_request, push_branch


def cruft(args: Sequence[str], cwd: Path, executable: str) -> subprocess.CompletedProcess:
    # cruft from PATH or $CRUFT, with an argument list (no shell).
    return subprocess.run([executable, *args], cwd=cwd, capture_output=True, text=True)  # noqa: S603  # nosec B603


def template_commit(project: Path) -> str:
    return json.loads((project / ".cruft.json").read_text())["commit"][:12]


def update(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    project = Path.cwd()
    if not (project / ".cruft.json").is_file():
        print(
            "no .cruft.json: link the project first (`cruft link <template-url>`)", file=sys.stderr
        )
        return 2
    if cruft(["check"], project, args.cruft).returncode == 0:
        print(f"the project is on the latest template ({template_commit(project)})")
        return 0
    client = GitLab.from_env(env, api_url=args.api_url)
    url = authenticated_url(args.repo_url, token_from_env(env))
    applied = cruft(["update", "--skip-apply-ask", "-y"], project, args.cruft)
    if applied.returncode != 0:
        raise RuntimeError(
            f"cruft update failed: {applied.stderr.strip() or applied.stdout.strip()}"
        )
    commit = template_commit(project)
    rejects = sorted(p.relative_to(project).as_posix() for p in project.rglob("*.rej"))
    branch = f"{args.branch_prefix}/{commit}"
    title = f"Update to template {commit}"
    description = (
        f"`cruft update` to template commit `{commit}`, opened by "
        f"{env.get('CI_PIPELINE_URL', 'a local run')}.\n\n"
        + (
            "**Conflicts to resolve** (hunks that did not apply, as `.rej` files): "
            + ", ".join(f"`{r}`" for r in rejects)
            if rejects
            else "Every hunk applied cleanly; review the diff and the pipeline before merging."
        )
    )
    if not push_branch(project, url, branch, title, ["."]):
        print("cruft update changed nothing: no merge request")
        return 0
    where = open_merge_request(client, args.project, branch, args.target_branch, title, description)
    print(f"merge request for template {commit}: {where}")
    return 0


def main(argv: Sequence[str] = (), env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(prog="template-update", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--api-url", default=None, help="default: $GITLAB_API_URL or $CI_API_V4_URL"
    )
    parser.add_argument("--target-branch", default=env.get("CI_DEFAULT_BRANCH", "main"))
    parser.add_argument("--project", default=env.get("CI_PROJECT_ID"))
    parser.add_argument("--repo-url", default=env.get("TEMPLATE_UPDATE_PUSH_URL"))
    parser.add_argument("--branch-prefix", default="template-update")
    parser.add_argument("--cruft", default=env.get("CRUFT", "cruft"), help="the cruft executable")
    args = parser.parse_args(list(argv))
    if not args.project or not args.repo_url:
        parser.error("set CI_PROJECT_ID and TEMPLATE_UPDATE_PUSH_URL (or pass the options)")
    try:
        return update(args, env)
    except (GitLabError, RuntimeError, ValueError) as exc:
        print(f"template-update: {exc}", file=sys.stderr)
        return 1
