"""A team's own model that skl2onnx cannot convert: `export` stops with one sentence and keeps
the served model as it was."""

from __future__ import annotations

from pathlib import Path

from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.config import Params, read_split
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.model_files import ONNX_FILE, PROFILE_FILE, SCHEMA_FILE
from {{ cookiecutter.package_name }}.pipeline.matrix import encode
from {{ cookiecutter.package_name }}.pipeline.trained import TrainedModel

from model_support import Unconvertible


def served(folder: Path) -> dict[str, bytes]:
    """The files the service loads (the folder also holds model.pkl, which the test replaces)."""
    return {name: (folder / name).read_bytes() for name in (ONNX_FILE, SCHEMA_FILE, PROFILE_FILE)}


def test_export_of_an_unconvertible_model_names_the_step_and_changes_nothing(
    project_factory, capsys
) -> None:
    root = project_factory("own-model")
    params = Params.load(root)
    before, parity = served(params.path("models")), params.path("parity").read_bytes()
    trained = TrainedModel.load(params.path("model_pickle"))
    contract = Contract.from_params(params.read("contract"))
    train = read_split(params.path("train_split"), contract.label_columns())
    own = Pipeline(
        [("impute", SimpleImputer()), ("scale", StandardScaler()), ("model", Unconvertible())]
    )
    own.fit(encode(train, trained.schema), train[contract.target].to_numpy())
    TrainedModel(own, trained.schema, trained.rows).save(params.path("model_pickle"))
    capsys.readouterr()

    assert cli.main(["export", "--root", str(root)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("export: error: no ONNX converter for Unconvertible (in SimpleImputer → ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert served(params.path("models")) == before
    assert params.path("parity").read_bytes() == parity
