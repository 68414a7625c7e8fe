"""A minimal GitLab REST client on ``urllib`` (no extra dependency, works on any runner image).

Settings come from the predefined CI variables: ``CI_API_V4_URL`` for the API and
``CI_PROJECT_ID`` / ``CI_MERGE_REQUEST_IID`` for the current project and merge request. The token
is a project (or group) access token with the ``api`` scope, stored as a masked and protected CI
variable named ``REPO_TOKEN`` (the name CML reads) or ``GITLAB_TOKEN``; it travels in the
``PRIVATE-TOKEN`` header and is never printed.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TOKEN_VARIABLES = ("REPO_TOKEN", "GITLAB_TOKEN")
HINTS = {
    401: "the token is missing, expired or revoked: set REPO_TOKEN (project access token, "
    "scope api) as a masked, protected CI/CD variable",
    403: "the token lacks permission: it needs the api scope and at least the Developer role "
    "(Maintainer to push to protected branches)",
    404: "project or merge request not found: check the project path/id and that the token's "
    "project can see it",
}


class GitLabError(RuntimeError):
    """An API call that did not succeed; the message names the call, status and a hint."""

    def __init__(self, method: str, url: str, status: int, detail: str) -> None:
        hint = HINTS.get(status, "")
        message = f"GitLab API {method} {url} failed with HTTP {status}: {detail}"
        super().__init__(message + (f"\n  hint: {hint}" if hint else ""))
        self.status = status


def token_from_env(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    for name in TOKEN_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value
    raise GitLabError("-", "-", 401, f"none of {', '.join(TOKEN_VARIABLES)} is set")


def project_ref(project: str | int) -> str:
    """A project id (``42``) or path (``group/sub/name``) as the ``:id`` path segment."""
    return urllib.parse.quote(str(project), safe="")


@dataclass(frozen=True)
class GitLab:
    api_url: str  # e.g. https://gitlab.com/api/v4
    token: str
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, api_url: str | None = None) -> GitLab:
        env = os.environ if env is None else env
        url = api_url or env.get("GITLAB_API_URL") or env.get("CI_API_V4_URL", "")
        if not url:
            raise ValueError("no GitLab API URL: set CI_API_V4_URL or GITLAB_API_URL")
        return cls(api_url=url.rstrip("/"), token=token_from_env(env))

    def request(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        *,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Any:
        url = f"{self.api_url}/{path.lstrip('/')}"
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"refusing a non-HTTP API URL: {url}")
        data = (
            body
            if body is not None
            else (json.dumps(payload).encode() if payload is not None else None)
        )
        headers = {"PRIVATE-TOKEN": self.token, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310  # nosec B310
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500] or exc.reason
            raise GitLabError(method, url, exc.code, str(detail)) from None
        return json.loads(raw) if raw else None

    def upload(self, project: str | int, filename: str, content: bytes) -> dict[str, Any]:
        """``POST /projects/:id/uploads`` (multipart): returns ``{"markdown": ..., "url": ...}``."""
        boundary = uuid.uuid4().hex
        body = b"".join(
            [
                f"--{boundary}\r\n".encode(),
                f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'.encode(),
                b"Content-Type: application/octet-stream\r\n\r\n",
                content,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        return self.request(
            "POST",
            f"projects/{project_ref(project)}/uploads",
            body=body,
            content_type=f"multipart/form-data; boundary={boundary}",
        )
