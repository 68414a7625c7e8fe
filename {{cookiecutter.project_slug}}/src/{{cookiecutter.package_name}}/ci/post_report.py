"""Post ``report.md`` as one merge-request comment through the GitLab Notes API.

The fallback for ``cml comment create`` (used when the CML image is unavailable, e.g. a runner
that cannot pull from ghcr.io): local images referenced by the report (``![..](plots/x.png)``)
are uploaded to the project first and their links rewritten, then the note is created with
``POST /projects/:id/merge_requests/:iid/notes``. The note carries a hidden marker, so a re-run
of the pipeline edits the existing report comment (``PUT``) instead of adding another.

Usage in CI: ``<project> post-report ci-report/report.md`` (reads ``CI_API_V4_URL``,
``CI_PROJECT_ID``, ``CI_MERGE_REQUEST_IID`` and ``REPO_TOKEN``/``GITLAB_TOKEN``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .gitlab import GitLab, GitLabError, project_ref

MARKER = "<!-- mlops-template:mr-report -->"
LOCAL_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<path>(?!https?://|/)[^)\s]+)\)")


def upload_images(client: GitLab, project: str, text: str, base: Path) -> str:
    """Upload every local image the markdown references; return the text with GitLab links."""

    def replace(match: re.Match[str]) -> str:
        path = (base / match["path"]).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"the report references {match['path']}, which does not exist")
        uploaded = client.upload(project, path.name, path.read_bytes())
        return f"![{match['alt']}]({uploaded['url']})"

    return LOCAL_IMAGE.sub(replace, text)


def find_report_note(client: GitLab, project: str, mr: str) -> int | None:
    notes = client.request(
        "GET", f"projects/{project_ref(project)}/merge_requests/{mr}/notes?sort=desc&per_page=100"
    )
    for note in notes or []:
        if MARKER in note.get("body", ""):
            return int(note["id"])
    return None


def post_report(client: GitLab, project: str, mr: str, report: Path, update: bool = True) -> dict:
    text = report.read_text()
    notes = f"projects/{project_ref(project)}/merge_requests/{mr}/notes"
    # Reading the notes first also proves the token and the merge request before any upload.
    existing = find_report_note(client, project, mr) if update else None
    body = f"{MARKER}\n{upload_images(client, project, text, report.parent)}"
    if existing is not None:
        return client.request("PUT", f"{notes}/{existing}", {"body": body})
    return client.request("POST", notes, {"body": body})


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description="post report.md as a merge-request comment")
    parser.add_argument("report", type=Path, help="the markdown report (images relative to it)")
    parser.add_argument("--project", default=os.environ.get("CI_PROJECT_ID"), help="id or path")
    parser.add_argument("--mr", default=os.environ.get("CI_MERGE_REQUEST_IID"), help="MR iid")
    parser.add_argument(
        "--api-url", default=None, help="default: $GITLAB_API_URL or $CI_API_V4_URL"
    )
    parser.add_argument("--new", action="store_true", help="always add a new comment")
    args = parser.parse_args(list(argv))
    if not args.project or not args.mr:
        parser.error(
            "no project/merge request: run in a merge-request pipeline or pass --project/--mr"
        )
    try:
        client = GitLab.from_env(api_url=args.api_url)
        note = post_report(client, args.project, args.mr, args.report, update=not args.new)
    except (GitLabError, FileNotFoundError, ValueError) as exc:
        print(f"post-report: {exc}", file=sys.stderr)
        return 1
    print(f"posted the report as note {note.get('id')} on merge request !{args.mr}")
    return 0
