"""Trigger the retrain pipeline through GitLab's pipeline-trigger API, once per drift episode.

A pipeline trigger token (Settings → CI/CD → Pipeline trigger tokens) can start pipelines and
nothing else, so it is the least privilege the drift job needs. It comes from the environment
(a Kubernetes Secret), never from a file in git.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path


class TriggerError(RuntimeError):
    """The trigger call failed; the message says why (never includes the token)."""


@dataclass(frozen=True)
class TriggerConfig:
    api_url: str  # e.g. https://gitlab.com/api/v4
    project: str  # numeric id or url-encoded path
    token: str
    ref: str = "main"
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls) -> TriggerConfig:
        names = ("GITLAB_API_URL", "GITLAB_PROJECT_ID", "GITLAB_TRIGGER_TOKEN")
        missing = [name for name in names if not os.environ.get(name)]
        if missing:
            raise TriggerError(f"missing environment variables: {', '.join(missing)}")
        return cls(
            api_url=os.environ["GITLAB_API_URL"],
            project=os.environ["GITLAB_PROJECT_ID"],
            token=os.environ["GITLAB_TRIGGER_TOKEN"],
            ref=os.environ.get("GITLAB_REF", "main"),
            timeout_s=float(os.environ.get("GITLAB_TIMEOUT_S", "10")),
        )


def trigger_retrain(config: TriggerConfig, reason: str, model_version: str) -> int:
    """Start the retrain pipeline; return its id. Raises ``TriggerError`` on any failure."""
    project = urllib.parse.quote(config.project, safe="")
    url = f"{config.api_url.rstrip('/')}/projects/{project}/trigger/pipeline"
    form = {
        "token": config.token,
        "ref": config.ref,
        "variables[RETRAIN]": "true",
        "variables[DRIFT_REASON]": reason,
        "variables[DRIFT_MODEL_VERSION]": model_version,
    }
    if not url.startswith(("http://", "https://")):
        raise TriggerError(f"GITLAB_API_URL must be an http(s) URL, got {config.api_url!r}")
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310 (scheme checked)
    try:
        # Scheme checked above: http(s) only.
        with urllib.request.urlopen(request, timeout=config.timeout_s) as response:  # noqa: S310  # nosec B310
            body = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        hint = " (check GITLAB_TRIGGER_TOKEN)" if exc.code in (401, 403, 404) else ""
        raise TriggerError(f"GitLab answered {exc.code} for {url}{hint}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        reason_text = getattr(exc, "reason", exc)
        raise TriggerError(f"GitLab at {url} did not answer: {reason_text}") from None
    if "id" not in body:
        raise TriggerError(f"GitLab's answer from {url} has no pipeline id")
    return int(body["id"])


@dataclass
class EpisodeState:
    """The open drift episode, if any: drift that already triggered one retrain."""

    model_version: str | None = None
    pipeline_id: int | None = None
    reason: str = ""
    started: float = 0.0

    @classmethod
    def load(cls, path: Path) -> EpisodeState:
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)) + "\n")
        tmp.replace(path)  # atomic: a crash never leaves half a state file

    def open_for(self, model_version: str) -> bool:
        return self.pipeline_id is not None and self.model_version == model_version

    def open(self, model_version: str, pipeline_id: int, reason: str) -> None:
        self.model_version, self.pipeline_id, self.reason = model_version, pipeline_id, reason
        self.started = time.time()

    def close(self) -> None:
        self.model_version, self.pipeline_id, self.reason, self.started = None, None, "", 0.0
