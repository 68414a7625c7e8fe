"""The whole pipeline (prepare → train → evaluate → export) on rows made from the contract."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.ci.promotion_gate import Rule, judge
from {{ cookiecutter.package_name }}.config import Params, read_split
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.data.sample import feature_names
from {{ cookiecutter.package_name }}.data.sources import read_csv
from {{ cookiecutter.package_name }}.features import Encoder, FeatureSchema
from {{ cookiecutter.package_name }}.pipeline import export
from {{ cookiecutter.package_name }}.pipeline.matrix import encode
from {{ cookiecutter.package_name }}.pipeline.threshold import policy_from_params
from {{ cookiecutter.package_name }}.pipeline.trained import TrainedModel

from dvc_support import REPO, entry_path, outputs, pipeline

DVC = pipeline()


def test_every_declared_output_is_written(trained_project: Path) -> None:
    for name, stage in DVC["stages"].items():
        for out in outputs(stage):
            assert (trained_project / out).exists(), (
                f"stage {name} declares {out} but did not write it"
            )


def test_stage_outputs_cover_what_later_stages_read(trained_project: Path) -> None:
    produced = {out for stage in DVC["stages"].values() for out in outputs(stage)}
    for name, stage in DVC["stages"].items():
        for dep in map(entry_path, stage.get("deps", [])):
            assert dep in produced or (REPO / dep).exists(), (
                f"stage {name}: dep {dep} comes from nowhere"
            )


def no_skill_margins(metrics: dict) -> tuple[float, float]:
    """How far above a constant predictor (ROC AUC 0.5, average precision = the positive rate)
    a model must score on these test rows to show signal: three standard errors of a no-skill
    ranking, so a model without signal passes by chance about once in 700 runs.

    ROC AUC: Hanley & McNeil's standard error at AUC 0.5, sqrt((n+1) / (12 n_pos n_neg)).
    Average precision: that of a proportion over the positive rows, sqrt(p (1-p) / n_pos), which
    matches the spread of random rankings' average precision when simulated.
    """
    n, p = metrics["n"], metrics["positive_rate"]
    positives, negatives = n * p, n * (1 - p)
    auc = 3 * math.sqrt((n + 1) / (12 * positives * negatives))
    average_precision = 3 * math.sqrt(p * (1 - p) / positives)
    return auc, average_precision


# What the gate's metrics are for a constant predictor at positive rate p (the baseline a
# trained model must beat on the same split).
CONSTANT_PREDICTOR = {
    "roc_auc": lambda p: 0.5,
    "pr_auc": lambda p: p,
    "brier": lambda p: p * (1 - p),
    "log_loss": lambda p: -(p * math.log(p) + (1 - p) * math.log(1 - p)),
}


def assert_beats_a_constant_predictor(params: Params, metrics: dict) -> None:
    """Better than predicting the positive rate for every row, on the same test split; and the
    project's own promotion gate (its primary metric and tolerance) agrees."""
    auc_margin, ap_margin = no_skill_margins(metrics)
    assert metrics["roc_auc"] > 0.5 + auc_margin, (metrics["roc_auc"], auc_margin)
    assert metrics["pr_auc"] > metrics["positive_rate"] + ap_margin, (metrics, ap_margin)
    rule = Rule.from_params({"gate": params.read("gate")})
    if rule.metric in CONSTANT_PREDICTOR:
        baseline = CONSTANT_PREDICTOR[rule.metric](metrics["positive_rate"])
        verdict = judge(rule, old=baseline, new=metrics[rule.metric])
        assert verdict.passed, verdict.message


def test_metrics_show_real_signal(trained_project: Path) -> None:
    params = Params.load(trained_project)
    metrics = json.loads(params.path("metrics").read_text())
    assert_beats_a_constant_predictor(params, metrics)
    assert 0.15 <= metrics["positive_rate"] <= 0.25
    # max_f_beta's threshold (beta 1) is worth more than flagging every row, whose F1 is
    # 2p / (1 + p); how many rows it flags depends on the model (a weak one on 2,000 rows may
    # flag half of them), so no fixed share is asserted.
    assert 0 < metrics["flag_rate"] < 1
    p = metrics["positive_rate"]
    assert metrics["f1"] > 2 * p / (1 + p), metrics
    for key in ("log_loss", "brier", "precision", "recall", "f1", "threshold"):
        assert np.isfinite(metrics[key]), key


def test_fairness_report_and_model_card(trained_project: Path) -> None:
    params = Params.load(trained_project)
    report = json.loads(params.path("fairness").read_text())
    groups = Contract.from_params(params.read("contract")).groups
    assert set(report["groups"]) == set(groups)
    for group in report["groups"].values():
        assert (
            0 <= group["selection_rate"] <= 1 and 0 <= group["tpr"] <= 1 and 0 <= group["fpr"] <= 1
        )
    assert set(report["gaps"]) == {"selection_rate", "tpr", "fpr"}
    card = params.path("model_card").read_text()
    assert "| Group | Rows | Positive rate | Selection rate | TPR | FPR |" in card
    assert all(f"| {group} |" in card for group in groups)
    assert "- [ ] SME review" in card and "Ethics review" in card
    for figure in ("roc", "pr", "calibration", "confusion"):
        assert (params.path("figures") / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_feature_schema_round_trip(trained_project: Path) -> None:
    params = Params.load(trained_project)
    path = params.path("models") / "features.json"
    schema = FeatureSchema.load(path)
    assert FeatureSchema.from_dict(schema.to_dict()).to_dict() == schema.to_dict()
    assert json.loads(path.read_text()) == schema.to_dict()
    trained = TrainedModel.load(params.path("model_pickle"))
    # export adds only the metadata to the schema train built: the deciding fields are train's.
    assert replace(schema, model={}, metrics={}) == trained.schema
    assert schema.threshold_policy == policy_from_params(params.read("threshold"))
    onnx = (params.path("models") / "model.onnx").read_bytes()
    assert schema.model["sha256"] == hashlib.sha256(onnx).hexdigest()
    code_version = schema.model["version"].rpartition("+")[0]
    assert schema.model["version"] == trained.schema.model_version(
        schema.model["sha256"], code_version
    )
    assert schema.metrics == json.loads(params.path("metrics").read_text())
    # The estimator train built (the checksum covers it like every other field).
    assert schema.model["estimator"] == trained.estimator
    contract = Contract.from_params(params.read("contract"))
    kinds = {feature.name: feature.kind for feature in schema.features}
    assert kinds == {name: contract.kind(name) for name in feature_names(contract)}
    assert not set(contract.reserved) & set(kinds)


def test_onnx_serves_raw_records_like_sklearn(trained_project: Path) -> None:
    """The service path (raw JSON-like records → Encoder → ONNX) matches sklearn on the same
    held-out rows cleaned by the pipeline."""
    params = Params.load(trained_project)
    contract = Contract.from_params(params.read("contract"))
    schema = FeatureSchema.load(params.path("models") / "features.json")
    model = TrainedModel.load(params.path("model_pickle")).pipeline
    test = read_split(params.path("test_split"), contract.label_columns())
    held_out = set(test[contract.id].head(200))
    raw = read_csv(params.root / params.read("data.path"), contract)
    raw = raw[raw[contract.id].isin(held_out)].reset_index(drop=True)
    records = [
        {k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))}
        for row in raw.drop(columns=[contract.target]).to_dict(orient="records")
    ]
    # Raw money ("($1,234.00)") and percent ("67%") strings go straight to the encoder.
    for column in contract.money:
        assert any(isinstance(r.get(column), str) and r[column].startswith("(") for r in records)
    for column in contract.percent:
        assert any(isinstance(r.get(column), str) and r[column].endswith("%") for r in records)
    matrix = Encoder(schema).encode_records(records)
    session = ort.InferenceSession(
        (params.path("models") / "model.onnx").read_bytes(), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == [schema.onnx_input]
    assert session.get_inputs()[0].shape[1] == schema.n_inputs
    onnx_scores = session.run(["probabilities"], {schema.onnx_input: matrix})[0][:, 1]
    from {{ cookiecutter.package_name }}.data.cleaning import clean_frame

    sklearn_scores = model.predict_proba(encode(clean_frame(raw, contract), schema))[:, 1]
    np.testing.assert_allclose(onnx_scores, sklearn_scores, atol=params.read("export.parity_atol"))


def test_parity_check_fails_on_a_different_model(trained_project: Path, project_factory) -> None:
    params = Params.load(trained_project)
    trained = TrainedModel.load(params.path("model_pickle"))
    other = project_factory("other-model", stages=("sample-data", "prepare", "train"), data__seed=1)
    other_trained = TrainedModel.load(Params.load(other).path("model_pickle"))
    other_onnx = export.to_onnx(other_trained.pipeline, other_trained.schema, 17)
    contract = Contract.from_params(params.read("contract"))
    test = read_split(params.path("test_split"), contract.label_columns())
    matrix = encode(test.head(200), trained.schema)
    with pytest.raises(export.ParityError, match="parity_atol"):
        export.parity(trained.pipeline, other_onnx, trained.schema, matrix, atol=1e-4)


def test_reruns_give_identical_bytes(trained_project: Path, project_factory) -> None:
    again = project_factory("again")
    for rel in (
        Params.load(again).read("data.path"),
        "data/prepared/train.parquet",
        "models/model.pkl",
        "models/model.onnx",
        "models/features.json",
        "reports/metrics.json",
        "reports/MODEL_CARD.md",
        "reports/figures/roc.png",
    ):
        assert (again / rel).read_bytes() == (trained_project / rel).read_bytes(), rel


def test_gradient_boosting_option(project_factory) -> None:
    root = project_factory(
        "gbm", train__model="gradient_boosting", train__gradient_boosting__max_iter=20
    )
    params = Params.load(root)
    metrics = json.loads(params.path("metrics").read_text())
    parity = json.loads(params.path("parity").read_text())
    assert_beats_a_constant_predictor(params, metrics)
    assert parity["passed"] and parity["max_abs_diff"] <= parity["atol"]
    # The estimator actually built, by class names, wherever the model is described.
    built = "SimpleImputer → HistGradientBoostingClassifier"
    schema = FeatureSchema.load(params.path("models") / "features.json")
    assert schema.model["estimator"] == built
    assert f"- Estimator: `{built}`" in params.path("model_card").read_text()


def test_prepare_rejects_data_that_break_the_contract(project_factory, capsys) -> None:
    root = project_factory("broken", stages=("sample-data",))
    params = Params.load(root)
    contract = Contract.from_params(params.read("contract"))
    path = root / params.read("data.path")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if contract.categorical:
        column, bad, why = next(iter(contract.categorical)), "atlantis", "categories outside"
    else:  # a team whose data have no categoricals: a numeric column holding text
        column = next(c for c in feature_names(contract) if contract.kind(c) == "numeric")
        bad, why = "atlantis", "cannot clean"
    frame.loc[3, column] = bad
    frame.to_csv(path, index=False)
    from {{ cookiecutter.package_name }} import cli

    assert cli.main(["prepare", "--root", str(root)]) == 1
    message = capsys.readouterr().err
    assert why in message and repr(column) in message and "'atlantis'" in message
    assert "Traceback" not in message
    assert not params.path("train_split").exists()
