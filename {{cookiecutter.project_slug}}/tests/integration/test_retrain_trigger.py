"""The drift job's GitLab trigger against a local server that records each request."""

from __future__ import annotations

import json
import urllib.parse

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.features import Encoder
from {{ cookiecutter.package_name }}.monitoring.drift import main
from {{ cookiecutter.package_name }}.monitoring.profile import ReferenceProfile

from drift_support import DRIFT_SETTINGS, SCHEMA, records, samples, scores_for
from gitlab_standin import StandIn

TOKEN = "glptt-test-trigger-token"


TRIGGER = "/api/v4/projects/data-science%2Ffraud-model/trigger/pipeline"


def form(request) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode()).items()}


@pytest.fixture
def gitlab(monkeypatch):
    with StandIn(routes={("POST", TRIGGER): (201, {"id": 4242})}) as api:
        monkeypatch.setenv("GITLAB_API_URL", api.url)
        monkeypatch.setenv("GITLAB_PROJECT_ID", "data-science/fraud-model")
        monkeypatch.setenv("GITLAB_TRIGGER_TOKEN", TOKEN)
        monkeypatch.setenv("GITLAB_TIMEOUT_S", "1")
        monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)
        yield api


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
    assert (sent.method, sent.path) == ("POST", TRIGGER)
    fields = form(sent)
    assert fields["token"] == TOKEN
    assert fields["ref"] == "main"
    assert fields["variables[RETRAIN]"] == "true"
    assert "PSI above 0.2" in fields["variables[DRIFT_REASON]"]
    assert fields["variables[DRIFT_MODEL_VERSION]"] == "v1"

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


UNAUTHORIZED = {("POST", TRIGGER): (401, {"message": "401 Unauthorized"})}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("failure", "message"),
    [({"routes": UNAUTHORIZED}, "GitLab answered 401"), ({"delay_s": 3.0}, "did not answer")],
    ids=["unauthorized", "timeout"],
)
def test_trigger_errors_fail_loudly_and_keep_the_episode_open(
    gitlab, job, capsys, failure, message
):
    drifted, _, args = job
    working = (gitlab.routes, gitlab.delay_s)
    for name, value in failure.items():
        setattr(gitlab, name, value)
    assert main(args(drifted)) == 1
    err = capsys.readouterr().err
    assert message in err and TOKEN not in err
    gitlab.routes, gitlab.delay_s = working
    assert main(args(drifted)) == 0  # nothing was recorded as triggered: the next run retries
    assert form(gitlab.requests[-1])["variables[RETRAIN]"] == "true"
