"""The synthetic generator: deterministic, shaped like the seed data, and inside the contract."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.data.cleaning import clean_frame
from {{ cookiecutter.package_name }}.data.contract import Contract, validate
from {{ cookiecutter.package_name }}.data.contract_init import infer
from {{ cookiecutter.package_name }}.data.synthetic import (
    GROUPS,
    MONTHS,
    REGIONS,
    WEEKDAYS,
    generate,
    main,
    write,
)

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
ROWS = 3000


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(ROWS, seed=PARAMS["data"]["seed"])


def test_same_seed_same_bytes(frame: pd.DataFrame, tmp_path: Path) -> None:
    write(frame, tmp_path / "a.csv")
    write(generate(ROWS, seed=PARAMS["data"]["seed"]), tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert not generate(ROWS, seed=PARAMS["data"]["seed"] + 1).equals(frame)


def test_columns(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ["id", *[f"x{i}" for i in range(100)], "group", "y"]
    assert frame["id"].is_unique


def test_money_and_percent_strings_like_the_seed(frame: pd.DataFrame) -> None:
    money = frame["x12"].dropna()
    assert money.str.fullmatch(r"\(?\$\d{1,3}(,\d{3})*(\.\d\d)?\)?").all()
    assert money.str.startswith("($").mean() > 0.03  # accounting negatives (refunds)
    assert money.str.fullmatch(r"\(?\$\d{1,3}(,\d{3})*\)?").any()  # whole amounts: "$12,000"
    assert money.str.contains(",").any()
    assert frame["x62"].dropna().str.fullmatch(r"\d{1,3}%").all()


def test_target_has_a_realistic_rate(frame: pd.DataFrame) -> None:
    assert set(frame["y"].unique()) == {0, 1}
    assert 0.15 <= frame["y"].mean() <= 0.25


def test_missing_values_in_some_columns(frame: pd.DataFrame) -> None:
    missing = frame.isna().mean()
    holes = missing[missing > 0]
    assert {"x12", "x62", "x31"} <= set(holes.index)
    assert ((holes >= 0.01) & (holes <= 0.07)).all(), holes
    assert missing[["id", "y", "group"]].sum() == 0


def test_contract_init_infers_the_synthetic_contract(frame: pd.DataFrame) -> None:
    """The contract the synthetic data come with (the default params.yaml's, which a team's
    own replaces) is what `contract init` infers from them."""
    inferred = infer([frame], "y", "id", "group").block
    assert inferred["money"] == ["x12"] and inferred["percent"] == ["x62"]
    assert inferred["categorical"] == {
        "x5": sorted(WEEKDAYS), "x31": sorted(REGIONS), "x81": sorted(MONTHS)
    }  # fmt: skip
    assert inferred["groups"] == list(GROUPS) and inferred["features"] == [
        f"x{i}" for i in range(100)
    ]
    contract = Contract.from_params(inferred)
    validate(clean_frame(frame, contract), contract)  # raises SchemaError on any violation


def test_signal_is_not_only_linear(frame: pd.DataFrame) -> None:
    # x20 enters the logit squared: both tails carry more positives than the middle.
    x20 = frame["x20"].to_numpy()
    low, high = np.quantile(x20, [0.1, 0.9])
    tails = frame["y"][(x20 < low) | (x20 > high)].mean()
    middle = frame["y"][(x20 > np.quantile(x20, 0.4)) & (x20 < np.quantile(x20, 0.6))].mean()
    assert tails > middle + 0.05


def test_cli_writes_the_configured_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = {**PARAMS, "data": {**PARAMS["data"], "n_rows": 500, "path": "raw/t.csv"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["--root", str(tmp_path)]) == 0
    assert len(pd.read_csv(tmp_path / "raw" / "t.csv")) == 500
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 5 and re.search(r"500 rows", lines[-1])
