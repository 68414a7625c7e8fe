"""The drift job's GitLab trigger against a local server that records each request."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from drift_support import DRIFT_SETTINGS, SCHEMA, records, samples, scores_for
from {{ cookiecutter.package_name }}.features import Encoder
from {{ cookiecutter.package_name }}.monitoring.drift import main
from {{ cookiecutter.package_name }}.monitoring.profile import ReferenceProfile

TOKEN = "glptt-test-trigger-token"


class GitLabStandIn(BaseHTTPRequestHandler):
    """Answers the pipeline-trigger API like GitLab; ``behaviour`` picks the answer."""

    requests: ClassVar[list[dict]] = []
    behaviour = "ok"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        type(self).requests.append({"path": self.path, "form": {k: v[0] for k, v in form.items()}})
        if self.behaviour == "slow":
            threading.Event().wait(3)
        status, body = (
            (201, {"id": 4242})
            if self.behaviour == "ok"
            else (401, {"message": "401 Unauthorized"})
        )
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def gitlab(monkeypatch):
    GitLabStandIn.requests = []
    GitLabStandIn.behaviour = "ok"
    server = ThreadingHTTPServer(("127.0.0.1", 0), GitLabStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("GITLAB_API_URL", f"http://127.0.0.1:{server.server_port}/api/v4")
    monkeypatch.setenv("GITLAB_PROJECT_ID", "data-science/fraud-model")
    monkeypatch.setenv("GITLAB_TRIGGER_TOKEN", TOKEN)
    monkeypatch.setenv("GITLAB_TIMEOUT_S", "1")
    monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)
    yield GitLabStandIn
    server.shutdown()
    server.server_close()


@pytest.fixture
def job(tmp_path):
    """Model folder + two record files (drifted and not) + the job's CLI arguments."""
    models = tmp_path / "models"
    models.mkdir()
    matrix = Encoder(SCHEMA).encode_records(records(np.random.default_rng(0), 5000))
    SCHEMA.save(models / "features.json")
    ReferenceProfile.build(SCHEMA, matrix, scores_for(matrix), DRIFT_SETTINGS).save(
        models / "reference_profile.json"
    )

    def write(name, shift):
        path = tmp_path / f"{name}.jsonl"
        rows = samples(records(np.random.default_rng(7), 1000, shift=shift))
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    drifted, steady = write("drifted", 1.5), write("steady", 0.0)

    def args(path):
        return [
            "--records",
            str(path),
            "--models",
            str(models),
            "--report",
            str(tmp_path / "report.json"),
            "--state",
            str(tmp_path / "state.json"),
            "--metrics-file",
            str(tmp_path / "drift.prom"),
        ]

    return drifted, steady, args


@pytest.mark.integration
def test_drift_triggers_once_per_episode(gitlab, job):
    drifted, steady, args = job
    assert main(args(drifted)) == 0
    assert len(gitlab.requests) == 1
    sent = gitlab.requests[0]
    assert sent["path"] == "/api/v4/projects/data-science%2Ffraud-model/trigger/pipeline"
    assert sent["form"]["token"] == TOKEN
    assert sent["form"]["ref"] == "main"
    assert sent["form"]["variables[RETRAIN]"] == "true"
    assert "PSI above 0.2" in sent["form"]["variables[DRIFT_REASON]"]
    assert sent["form"]["variables[DRIFT_MODEL_VERSION]"] == "v1"

    assert main(args(drifted)) == 0  # same episode: no second pipeline
    assert len(gitlab.requests) == 1
    assert main(args(steady)) == 0  # drift gone: the episode closes
    assert main(args(drifted)) == 0  # a new episode triggers again
    assert len(gitlab.requests) == 2


@pytest.mark.integration
def test_no_drift_never_calls_gitlab(gitlab, job):
    _, steady, args = job
    assert main(args(steady)) == 0
    assert gitlab.requests == []


@pytest.mark.integration
@pytest.mark.parametrize(
    ("behaviour", "message"), [("unauthorized", "GitLab answered 401"), ("slow", "did not answer")]
)
def test_trigger_errors_fail_loudly_and_keep_the_episode_open(
    gitlab, job, capsys, behaviour, message
):
    drifted, _, args = job
    gitlab.behaviour = behaviour
    assert main(args(drifted)) == 1
    err = capsys.readouterr().err
    assert message in err and TOKEN not in err
    gitlab.behaviour = "ok"
    assert main(args(drifted)) == 0  # nothing was recorded as triggered: the next run retries
    assert gitlab.requests[-1]["form"]["variables[RETRAIN]"] == "true"
