"""Drift: PSI, the reference profile, and the verdict on shifted vs unshifted data."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.features import Encoder
from {{ cookiecutter.package_name }}.monitoring.drift import (
    compute_drift,
    main,
    metrics_text,
    psi,
    read_samples,
)
from {{ cookiecutter.package_name }}.monitoring.profile import ReferenceProfile

from drift_support import DRIFT_SETTINGS, SCHEMA, records, samples, scores_for


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    matrix = Encoder(SCHEMA).encode_records(records(np.random.default_rng(0), 5000))
    return ReferenceProfile.build(SCHEMA, matrix, scores_for(matrix), DRIFT_SETTINGS)


def test_psi_is_zero_for_identical_and_grows_with_shift():
    assert psi([0.25] * 4, [0.25] * 4) == pytest.approx(0.0)
    small = psi([0.25] * 4, [0.3, 0.2, 0.25, 0.25])
    large = psi([0.25] * 4, [0.7, 0.1, 0.1, 0.1])
    assert 0 < small < 0.1 < 0.2 < large


def test_psi_is_finite_when_a_bin_is_empty():
    assert np.isfinite(psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))


def test_unshifted_data_does_not_drift(profile):
    report = compute_drift(profile, SCHEMA, samples(records(np.random.default_rng(1), 2000)))
    assert report.drifted == [] and not report.is_drift
    assert report.max_psi < DRIFT_SETTINGS["psi_threshold"]
    assert report.n_records == 2000 and report.n_skipped == 0


def test_shifted_data_crosses_the_threshold(profile):
    report = compute_drift(
        profile, SCHEMA, samples(records(np.random.default_rng(2), 2000, shift=1.5))
    )
    assert {"x0", "x12", "x5", "score"} <= set(report.drifted)
    assert "PSI above 0.2" in report.reason()


def test_malformed_samples_are_counted_not_fatal(profile):
    rows = samples(records(np.random.default_rng(3), 300))
    rows.append({"event": "prediction_sample", "features": {"x12": "$$$"}, "p_hat": 0.5})
    rows.append({"event": "prediction_sample", "features": {}})
    report = compute_drift(profile, SCHEMA, rows)
    assert (report.n_records, report.n_skipped) == (300, 2)


def test_profile_round_trips(profile, tmp_path):
    path = tmp_path / "reference_profile.json"
    profile.save(path)
    assert ReferenceProfile.load(path) == profile


def test_read_samples_skips_other_log_lines(tmp_path):
    log = tmp_path / "service.jsonl"
    log.write_text(
        "plain text line\n"
        + json.dumps({"event": "request", "status": 200})
        + "\n"
        + json.dumps({"event": "prediction_sample", "features": {"x0": 1}, "p_hat": 0.1})
        + "\n"
    )
    assert [s["p_hat"] for s in read_samples(log)] == [0.1]
    assert [s["p_hat"] for s in read_samples(tmp_path)] == [0.1]


def test_metrics_text_names_match_the_alerts(profile):
    report = compute_drift(profile, SCHEMA, samples(records(np.random.default_rng(4), 300)))
    text = metrics_text(report, now=1_700_000_000)
    assert 'feature_drift_psi{feature="x0"}' in text
    assert "score_drift_psi " in text
    assert "drift_last_run_timestamp_seconds 1700000000" in text


def test_too_few_records_gives_no_verdict(profile, tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    SCHEMA.save(models / "features.json")
    profile.save(models / "reference_profile.json")
    log = tmp_path / "few.jsonl"
    log.write_text(
        "".join(json.dumps(s) + "\n" for s in samples(records(np.random.default_rng(5), 10)))
    )
    assert (
        main(["--records", str(log), "--models", str(models), "--report", str(tmp_path / "r.json")])
        == 0
    )
    assert "fewer than min_records=200" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_a_profile_from_another_export_is_refused(profile, tmp_path, capsys):
    """An export stopped after the profile but before features.json: no verdict on a mix."""
    models = tmp_path / "models"
    models.mkdir()
    SCHEMA.save(models / "features.json")
    replace(profile, model_version="v0").save(models / "reference_profile.json")
    log = tmp_path / "many.jsonl"
    log.write_text(
        "".join(json.dumps(s) + "\n" for s in samples(records(np.random.default_rng(6), 300)))
    )
    report = tmp_path / "r.json"
    assert main(["--records", str(log), "--models", str(models), "--report", str(report)]) == 2
    assert "different exports" in capsys.readouterr().err
    assert not report.exists()
