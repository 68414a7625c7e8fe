"""GitOps hand-off: propose a change on a branch and open a merge request for it.

``gitops release``: clone the config repo, set the image tag (and digest) in one overlay's
kustomization.yaml, push ``release/<env>-<tag>`` and open a merge request on the config repo.
Argo CD deploys once a human merges it. With the embedded layout the "config repo" is this
repository and the overlay lives under ``deploy/k8s/overlays``.

``gitops retrain-mr``: commit files of the current checkout (the retrained ``dvc.lock``) to a
branch of this repository and open a merge request, so a retrained model goes through the same
report, promotion gate and review as any change.

Both push over HTTPS with the token in ``REPO_TOKEN``/``GITLAB_TOKEN`` (user ``oauth2``) and call
``POST /projects/:id/merge_requests``. An already open merge request for the branch (HTTP 409)
is fine: the push updated it. Any other API error fails the job loudly.
"""

from __future__ import annotations

import argparse
import os
import subprocess  # nosec B404
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .gitlab import GitLab, GitLabError, project_ref, token_from_env
from .kustomize_image import BumpError, bump_file
from .template_update import authenticated_url  # the config repo's job program has it too

BOT = {"GIT_AUTHOR_NAME": "release-bot", "GIT_AUTHOR_EMAIL": "release-bot@noreply.invalid"}


def git(args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> str:
    cmd = ["git", *args]
    # git from PATH, with an argument list (no shell): the runner image provides it.
    proc = subprocess.run(cmd, cwd=cwd, env=dict(env or os.environ), capture_output=True, text=True)  # noqa: S603  # nosec B603 B607
    if proc.returncode != 0:
        # Never echo the remote URL: it may carry the token.
        raise RuntimeError(f"git {args[0]} failed (exit {proc.returncode}): {_redact(proc.stderr)}")
    return proc.stdout


def _redact(text: str) -> str:
    for name in ("REPO_TOKEN", "GITLAB_TOKEN"):
        secret = os.environ.get(name)
        if secret:
            text = text.replace(secret, "[MASKED]")
    return text.strip()


def bot_env() -> dict[str, str]:
    env = dict(os.environ)
    for key, value in BOT.items():
        env.setdefault(key, value)
        env.setdefault(key.replace("AUTHOR", "COMMITTER"), env[key])
    return env


def open_merge_request(
    client: GitLab, project: str, source: str, target: str, title: str, description: str
) -> str:
    try:
        mr = client.request(
            "POST",
            f"projects/{project_ref(project)}/merge_requests",
            {
                "source_branch": source,
                "target_branch": target,
                "title": title,
                "description": description,
                "remove_source_branch": True,
            },
        )
    except GitLabError as exc:
        if exc.status == 409:  # "Another open merge request already exists for this source branch"
            return f"(already open for {source}; the push updated it)"
        raise
    return str(mr.get("web_url") or mr.get("iid"))


def push_branch(
    repo: Path, remote_url: str, branch: str, message: str, paths: Sequence[str]
) -> bool:
    """Commit ``paths`` onto a new branch and force-push it; False when nothing changed."""
    env = bot_env()
    git(["add", "--", *paths], repo, env)
    if not git(["diff", "--cached", "--name-only"], repo, env).strip():
        return False
    git(["checkout", "-q", "-B", branch], repo, env)
    git(["-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", message], repo, env)
    git(["push", "-q", "--force", remote_url, f"HEAD:refs/heads/{branch}"], repo, env)
    return True


def release(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    token = token_from_env(env)
    client = GitLab.from_env(env, api_url=args.api_url)
    branch = f"release/{args.env}-{args.tag}"
    with tempfile.TemporaryDirectory(prefix="config-repo-") as tmp:
        repo = Path(tmp) / "repo"
        url = authenticated_url(args.config_repo_url, token)
        git(
            ["clone", "-q", "--depth", "1", "--branch", args.target_branch, url, str(repo)],
            Path(tmp),
        )
        rel = f"{args.overlays.strip('/')}/{args.env}/kustomization.yaml"
        if not (repo / rel).is_file():
            raise BumpError(f"{rel} does not exist in {args.config_project}")
        bump_file(repo / rel, args.tag, args.digest, args.image)
        title = f"Deploy {args.tag} to {args.env}"
        description = (
            f"Sets the image of `{args.env}` to `{args.tag}`"
            + (f" (`{args.digest}`)" if args.digest else "")
            + f".\n\nOpened by the release job of {env.get('CI_PROJECT_PATH', 'the dev repo')}"
            + (f", pipeline {env['CI_PIPELINE_URL']}" if env.get("CI_PIPELINE_URL") else "")
            + ". Argo CD rolls it out once merged."
        )
        if not push_branch(repo, url, branch, title, [rel]):
            print(f"{rel} already deploys {args.tag}: nothing to propose")
            return 0
    where = open_merge_request(
        client, args.config_project, branch, args.target_branch, title, description
    )
    print(f"merge request for {args.env} → {args.tag}: {where}")
    return 0


def retrain_mr(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    token = token_from_env(env)
    client = GitLab.from_env(env, api_url=args.api_url)
    url = authenticated_url(args.repo_url, token)
    reason = env.get("DRIFT_REASON", "").strip() or "scheduled retraining"
    title = f"Retrain: {reason}"[:200]
    description = (
        f"Retrained by pipeline {env.get('CI_PIPELINE_URL', '(local run)')} "
        f"(source: {env.get('CI_PIPELINE_SOURCE', 'unknown')}).\n\nReason: {reason}\n\n"
        "The merge-request pipeline reports metrics against the target branch and runs the "
        "promotion gate; merge only if both are green."
    )
    if not push_branch(Path.cwd(), url, args.branch, title, args.paths):
        print("retraining changed nothing tracked: no merge request")
        return 0
    where = open_merge_request(
        client, args.project, args.branch, args.target_branch, title, description
    )
    print(f"merge request for the retrained model: {where}")
    return 0


def _common(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    parser.add_argument(
        "--api-url", default=None, help="default: $GITLAB_API_URL or $CI_API_V4_URL"
    )
    parser.add_argument("--target-branch", default=env.get("CI_DEFAULT_BRANCH", "main"))


def main(argv: Sequence[str] = (), env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(description="GitOps: push a branch and open a merge request")
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="bump an overlay's image in the config repo")
    _common(rel, env)
    rel.add_argument("--env", required=True, help="overlay name: dev, staging or prod")
    rel.add_argument("--tag", required=True)
    rel.add_argument("--digest", default=env.get("IMAGE_DIGEST") or None)
    rel.add_argument("--image", default=None, help="images: entry name (when several)")
    rel.add_argument("--config-project", default=env.get("CONFIG_REPO_PATH"), help="group/name")
    rel.add_argument("--config-repo-url", default=env.get("CONFIG_REPO_URL"))
    rel.add_argument("--overlays", default=env.get("CONFIG_OVERLAYS_DIR", "k8s/overlays"))
    ret = sub.add_parser("retrain-mr", help="commit retrained files to a branch and open an MR")
    _common(ret, env)
    ret.add_argument("paths", nargs="+", help="files to commit, e.g. dvc.lock")
    ret.add_argument("--branch", required=True)
    ret.add_argument("--project", default=env.get("CI_PROJECT_ID"))
    ret.add_argument(
        "--repo-url", default=env.get("RETRAIN_PUSH_URL"), help="https URL of this repo"
    )
    args = parser.parse_args(list(argv))
    try:
        if args.command == "release":
            if not args.config_project or not args.config_repo_url:
                parser.error("set CONFIG_REPO_PATH and CONFIG_REPO_URL (or pass the options)")
            return release(args, env)
        if not args.project or not args.repo_url:
            parser.error("set CI_PROJECT_ID and RETRAIN_PUSH_URL (or pass the options)")
        return retrain_mr(args, env)
    except (GitLabError, BumpError, RuntimeError, ValueError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1
