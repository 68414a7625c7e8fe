"""CI: keep this repository on its template, with the tool that made it (cruft or copier).

Check; when the template moved on, update on a branch and open a merge request with the
result. One file for both repositories: the dev repo runs it as ``<slug> template-update``
(its package's ``ci/template_update.py`` is this file), the config repo as
``python scripts/template_update.py``. Standard library only, so the config repo's job needs
nothing but the two tools.

- cruft (``.cruft.json``): ``cruft check``, then ``cruft update``; the config repo's record
  names ``"directory": "config"``, the config repo's part of the template.
- copier (``.copier-answers.yml``): ``copier check-update``, then ``copier update`` (a
  three-way merge; the answers file's ``template_part`` picks the part).

Conflicts are committed as the tool leaves them (inline ``<<<<<<<`` markers; ``*.rej`` files
where cruft could not merge) so the merge request shows them, and its description lists
them. Needs a ``REPO_TOKEN`` (or ``GITLAB_TOKEN``) allowed to push branches and open merge
requests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess  # nosec B404
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

RECORDS = {"cruft": ".cruft.json", "copier": ".copier-answers.yml"}
BOT = {"GIT_AUTHOR_NAME": "template-bot", "GIT_AUTHOR_EMAIL": "template-bot@noreply.invalid"}
CONFLICT_MARKER = re.compile(r"^<{7} ", re.M)


def run(cmd: Sequence[str], cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess:
    # The tools from PATH (or the options), with an argument list (no shell).
    return subprocess.run(list(cmd), cwd=cwd, env=dict(env), capture_output=True, text=True)  # noqa: S603  # nosec B603


def git(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> str:
    proc = run(["git", *args], cwd, env)
    if proc.returncode != 0:
        # Never echo the remote URL: it may carry the token.
        raise RuntimeError(f"git {args[0]} failed (exit {proc.returncode}): {proc.stderr[-300:]}")
    return proc.stdout


def tool_of(project: Path) -> str | None:
    made = [tool for tool, record in RECORDS.items() if (project / record).is_file()]
    return made[0] if len(made) == 1 else None


def version(project: Path, tool: str) -> str:
    """The template version the record names: cruft's commit, copier's tag or commit."""
    text = (project / RECORDS[tool]).read_text()
    if tool == "cruft":
        return json.loads(text)["commit"][:12]
    found = re.search(r"^_commit: *['\"]?([^'\"\s]+)", text, re.M)
    return found.group(1) if found else "unknown"


def outdated(project: Path, tool: str, exe: str, env: Mapping[str, str]) -> bool:
    if tool == "cruft":
        proc = run([exe, "check"], project, env)
        codes = {0: False, 1: True}
    else:
        proc = run([exe, "check-update", "--quiet"], project, env)
        codes = {0: False, 2: True}  # --quiet: exit 2 when a newer version exists
    if proc.returncode not in codes:
        raise RuntimeError(f"{tool} could not check the template: {proc.stderr.strip()[-500:]}")
    return codes[proc.returncode]


def update(project: Path, tool: str, exe: str, env: Mapping[str, str]) -> None:
    if tool == "cruft":
        cmd = [exe, "update", "--skip-apply-ask", "-y"]
    else:
        # --trust: the template's own Jinja extensions and tasks; --defaults: new questions
        # take their defaults, answered ones keep the recorded answers.
        cmd = [exe, "update", "--trust", "--defaults", "--conflict", "inline"]
    proc = run(cmd, project, env)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} update failed: {(proc.stderr or proc.stdout).strip()[-500:]}")


def conflicts(project: Path, env: Mapping[str, str]) -> list[str]:
    """Files left with conflict markers or as ``.rej`` files, relative to the project."""
    changed = git(["ls-files", "--modified", "--others", "--exclude-standard"], project, env)
    found = set()
    for rel in changed.splitlines():
        path = project / rel
        if rel.endswith(".rej"):
            found.add(rel)
        elif path.is_file():
            try:
                if CONFLICT_MARKER.search(path.read_text()):
                    found.add(rel)
            except UnicodeDecodeError:
                continue
    return sorted(found)


def authenticated_url(url: str, token: str) -> str:
    """``https://host/group/repo.git`` with ``oauth2:<token>@``; other schemes unchanged."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https":
        return url
    netloc = f"oauth2:{urllib.parse.quote(token, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def open_merge_request(api_url: str, token: str, project: str, body: dict) -> str:
    ref = urllib.parse.quote(str(project), safe="")
    url = f"{api_url.rstrip('/')}/projects/{ref}/merge_requests"
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"refusing a non-HTTP API URL: {url}")
    req = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"PRIVATE-TOKEN": token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310  # nosec B310
            made = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code == 409:  # one is already open for this branch: the push updated it
            return f"(already open for {body['source_branch']}; the push updated it)"
        detail = exc.read().decode(errors="replace")[:300] or exc.reason
        message = f"GitLab API POST {url} failed with HTTP {exc.code}: {detail}"
        raise RuntimeError(message) from None
    return str(made.get("web_url") or made.get("iid"))


def main(argv: Sequence[str] = (), env: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    parser = argparse.ArgumentParser(prog="template-update", description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", default=env.get("GITLAB_API_URL") or env.get("CI_API_V4_URL"))
    parser.add_argument("--target-branch", default=env.get("CI_DEFAULT_BRANCH", "main"))
    parser.add_argument("--project", default=env.get("CI_PROJECT_ID"))
    parser.add_argument("--repo-url", default=env.get("TEMPLATE_UPDATE_PUSH_URL"))
    parser.add_argument("--branch-prefix", default="template-update")
    parser.add_argument("--cruft", default=env.get("CRUFT", "cruft"), help="the cruft executable")
    parser.add_argument("--copier", default=env.get("COPIER", "copier"), help="copier executable")
    args = parser.parse_args(list(argv))
    if not args.project or not args.repo_url or not args.api_url:
        parser.error("set CI_PROJECT_ID, TEMPLATE_UPDATE_PUSH_URL and CI_API_V4_URL (or options)")
    project = Path.cwd()
    tool = tool_of(project)
    if tool is None:
        print(
            "template-update: neither .cruft.json nor .copier-answers.yml (or both): record the "
            "template first (`cruft link <template-url>`, or create the repo with copier).",
            file=sys.stderr,
        )
        return 2
    exe = getattr(args, tool)
    try:
        if not outdated(project, tool, exe, env):
            print(f"the repository is on the latest template ({version(project, tool)})")
            return 0
        token = next((env[k].strip() for k in ("REPO_TOKEN", "GITLAB_TOKEN") if env.get(k)), "")
        if not token:
            raise RuntimeError("set REPO_TOKEN (api scope) to push the branch and open the MR")
        update(project, tool, exe, env)
        new = version(project, tool)
        found = conflicts(project, env)
        branch, title = f"{args.branch_prefix}/{new}", f"Update to template {new}"
        bot = {**env, **{k: env.get(k, v) for k, v in BOT.items()}}
        bot.update({k.replace("AUTHOR", "COMMITTER"): bot[k] for k in BOT})
        git(["add", "--all", "."], project, bot)
        if not git(["diff", "--cached", "--name-only"], project, bot).strip():
            print(f"{tool} update changed nothing: no merge request")
            return 0
        git(["checkout", "-q", "-B", branch], project, bot)
        commit = ["-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", title]
        git(commit, project, bot)
        url = authenticated_url(args.repo_url, token)
        git(["push", "-q", "--force", url, f"HEAD:refs/heads/{branch}"], project, bot)
        description = (
            f"`{tool} update` to template `{new}`, opened by "
            f"{env.get('CI_PIPELINE_URL', 'a local run')}.\n\n"
            + (
                "**Conflicts to resolve** (marked inline, or `.rej` files): "
                + ", ".join(f"`{c}`" for c in found)
                if found
                else "Every change applied cleanly; review the diff and the pipeline, then merge."
            )
        )
        where = open_merge_request(
            args.api_url,
            token,
            args.project,
            {
                "source_branch": branch,
                "target_branch": args.target_branch,
                "title": title,
                "description": description,
                "remove_source_branch": True,
            },
        )
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"template-update: {exc}", file=sys.stderr)
        return 1
    print(f"merge request for template {new}: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
