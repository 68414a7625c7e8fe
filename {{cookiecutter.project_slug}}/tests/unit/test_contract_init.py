"""`contract init`: the contract inferred from a team's own data, and params.yaml rewritten with
every other line kept; bad data get one sentence naming the column, and nothing is written."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.data.contract_init import infer
from {{ cookiecutter.package_name }}.data.sources import iter_csv

REPO = Path(__file__).resolve().parents[2]
ROWS = 240


def churn_table(rows: int = ROWS) -> pd.DataFrame:
    """Nothing like the synthetic data: names with spaces and mixed case, text ids, other kinds."""
    rng = np.random.default_rng(0)
    fee = rng.gamma(2.0, 40.0, rows)
    frame = pd.DataFrame(
        {
            "Customer ID": [f"C{i:05d}" for i in range(rows)],
            "Tenure Months": rng.integers(1, 72, rows),
            "Monthly Fee": [
                f"(${v:,.2f})" if i % 17 == 0 else f"${v:,.2f}" for i, v in enumerate(fee)
            ],
            "discountRate": [f"{v:.1f}%" for v in rng.uniform(0, 30, rows)],
            "Plan Type": rng.choice(["Basic", "Plus", "yes"], rows),  # "yes": YAML would misread
            "Has Router": rng.integers(0, 2, rows),
            "Region Segment": rng.choice(["North", "South"], rows),
            "Churned": (rng.uniform(size=rows) < 0.1).astype(int),
        }
    )
    frame.loc[:11, "Tenure Months"] = None
    frame.loc[[0, 1], "Churned"] = [1, 0]
    return frame


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of this project's params.yaml and dvc.yaml, with the team's table in data/raw."""
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    churn_table().to_csv(tmp_path / "data" / "raw" / "churn.csv", index=False)
    return tmp_path


def init(root: Path, *extra: str, data: str = "data/raw/churn.csv") -> int:
    return cli.main(["contract", "init", "--data", data, "--root", str(root), *extra])


ARGS = ("--target", "Churned", "--id", "Customer ID", "--group", "Region Segment")


def test_infers_kinds_levels_ranges_and_row_count(project: Path, capsys) -> None:
    before = (project / "params.yaml").read_text()
    assert init(project, *ARGS) == 0
    out = capsys.readouterr().out
    contract = yaml.safe_load((project / "params.yaml").read_text())["contract"]
    assert contract["features"] == [
        "Tenure Months",
        "Monthly Fee",
        "discountRate",
        "Plan Type",
        "Has Router",
    ]
    assert contract["money"] == ["Monthly Fee"] and contract["percent"] == ["discountRate"]
    assert contract["categorical"] == {"Plan Type": ["Basic", "Plus", "yes"]}
    assert contract["groups"] == ["North", "South"]
    assert contract["ranges"]["Tenure Months"][0] >= 1
    assert contract["ranges"]["Monthly Fee"][0] < 0  # the accounting negatives
    assert contract["min_rows"] == ROWS // 2
    assert (contract["id"], contract["target"]) == ("Customer ID", "Churned")
    # The summary: the row count, the missing share, what it could not decide, min_rows.
    assert f"{ROWS} rows" in out and "5.0% missing" in out
    assert "'Has Router': numeric with only 2 distinct value(s)" in out
    assert f"min_rows set to {ROWS // 2}" in out
    assert "Traceback" not in out and before != (project / "params.yaml").read_text()


def test_every_other_line_of_params_yaml_is_kept(project: Path) -> None:
    before = (project / "params.yaml").read_text().splitlines(keepends=True)
    assert init(project, *ARGS) == 0
    after = (project / "params.yaml").read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(before) if line.startswith("contract:"))
    while before[start - 1].startswith("#"):
        start -= 1
    end = next(i for i, line in enumerate(before) if line.startswith("split:")) - 1
    tail = len(before) - end
    set_by_init = {"  path:": "  path: data/raw/churn.csv\n", "  source:": "  source: csv\n"}
    assert after[:start] == [
        set_by_init.get(line[: line.find(":") + 1], line) for line in before[:start]
    ]
    assert after[-tail:] == before[-tail:]  # every block after contract, comments and all
    assert after[-tail] == "\n"  # the blank line between the blocks
    assert Contract.from_params(yaml.safe_load("".join(after))["contract"]).target == "Churned"


def test_the_synthetic_generate_stage_is_removed(project: Path, capsys) -> None:
    before = (project / "dvc.yaml").read_text()
    assert init(project, *ARGS) == 0
    after = (project / "dvc.yaml").read_text()
    stages = yaml.safe_load(after)["stages"]
    if "generate:" in before:
        assert "generate" not in stages and "dvc add data/raw/churn.csv" in capsys.readouterr().out
    assert set(stages) == set(yaml.safe_load(before)["stages"]) - {"generate"}
    assert after.splitlines()[:4] == before.splitlines()[:4]


def test_fixture_rows_and_prepare_follow_the_new_contract(project: Path) -> None:
    assert init(project, *ARGS) == 0
    assert cli.main(["prepare", "--root", str(project)]) == 0  # the team's own rows
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["path"] = "data/raw/sample.csv"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["sample-data", "--root", str(project)]) == 0
    assert cli.main(["prepare", "--root", str(project)]) == 0  # rows made from the contract


def test_chunked_reading_infers_what_one_chunk_does(project: Path) -> None:
    path = project / "data" / "raw" / "churn.csv"
    whole = infer(iter_csv(path), "Churned", "Customer ID")
    chunked = infer(iter_csv(path, chunk_rows=7), "Churned", "Customer ID")
    assert chunked.block == whole.block and chunked.rows == ROWS


def test_parquet_files_are_read_in_batches(project: Path, capsys) -> None:
    pytest.importorskip("pyarrow")
    churn_table().to_parquet(project / "data" / "raw" / "churn.parquet")
    assert init(project, *ARGS, "--chunk-rows", "50", data="data/raw/churn.parquet") == 0
    contract = yaml.safe_load((project / "params.yaml").read_text())["contract"]
    assert contract["money"] == ["Monthly Fee"] and f"{ROWS} rows" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        (None, ("--target", "churned"), "no target column 'churned'"),
        (lambda f: f.assign(Churned=np.arange(len(f))), ARGS, "'Churned' is not binary"),
        (lambda f: f.assign(Churned=1), ARGS, "single class"),
        (
            lambda f: f.assign(Churned=f["Churned"].astype(float).mask(f.index == 3)),
            ARGS,
            "'Churned' has 1 missing",
        ),
        (
            lambda f: f.assign(Notes=[f"free text {i}" for i in range(len(f))]),
            ARGS,
            "column 'Notes' is neither numeric nor a small set of categories",
        ),
        (lambda f: f.assign(Empty=None), ARGS, "column 'Empty' is empty in every row"),
        (lambda f: f.head(0), ARGS, "no rows"),
        (None, ("--target", "Churned", "--group", "region"), "no group column 'region'"),
        (
            lambda f: f.assign(**{"Region Segment": f["Region Segment"].mask(f.index == 5)}),
            ARGS,
            "group column 'Region Segment' has 1 missing",
        ),
    ],
)
def test_bad_data_are_one_sentence_and_nothing_is_written(
    project: Path, capsys, change, args, message
) -> None:
    path = project / "data" / "raw" / "churn.csv"
    if change is not None:
        change(churn_table()).to_csv(path, index=False)
    before = {name: (project / name).read_bytes() for name in ("params.yaml", "dvc.yaml")}
    assert init(project, *args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert {name: (project / name).read_bytes() for name in before} == before


def test_an_empty_or_missing_file_is_named(project: Path, capsys) -> None:
    (project / "data" / "raw" / "empty.csv").write_text("")
    assert init(project, "--target", "y", data="data/raw/empty.csv") == 1
    assert "data/raw/empty.csv is empty" in capsys.readouterr().err
    assert init(project, "--target", "y", data="data/raw/nope.csv") == 1
    assert "nope.csv does not exist" in capsys.readouterr().err


def test_data_files_anywhere_under_data_are_ignored_by_git(tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    shutil.copy(REPO / "data" / ".gitignore", tmp_path / ".gitignore-data")
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "other" / "deep").mkdir(parents=True)
    shutil.move(tmp_path / ".gitignore-data", tmp_path / "data" / ".gitignore")
    for rel in ("raw/churn.csv", "other/deep/mine.parquet", "other/export.csv"):
        (tmp_path / "data" / rel).write_text("a,b\n1,2\n")
    (tmp_path / "data" / "raw" / "churn.csv.dvc").write_text("outs:\n- path: churn.csv\n")
    subprocess.run([git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([git, "add", "."], cwd=tmp_path, check=True)
    staged = subprocess.run(
        [git, "diff", "--cached", "--name-only"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert sorted(staged) == ["data/.gitignore", "data/raw/churn.csv.dvc"]
