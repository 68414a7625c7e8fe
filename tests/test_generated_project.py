"""Slow tier: a rendered project installs and passes its own README commands.

The non-default scenario is also a team's first week: its own table, unlike the synthetic data,
swapped in with the README's "Use your own data" commands, then `make repro`, `make test`,
`make lint`, `make serve` and a prediction on one of its rows.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import uuid
from pathlib import Path

import pytest

from .conftest import Rendered, readme_bash_block, run
from .test_service import http, make_serve

pytestmark = pytest.mark.slow


def assert_clean(repo) -> None:
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
    )
    assert status.stdout == "", f"the command changed tracked files:\n{status.stdout}"


def check_formatted(project: Rendered, env: dict[str, str]) -> None:
    run(["make", "lint"], cwd=project.dev, env=env)
    # Formatting the project changes nothing: the template ships formatted code.
    run(["uv", "run", "--frozen", "ruff", "format", "."], cwd=project.dev, env=env)
    run(["uv", "run", "--frozen", "ruff", "check", "--fix", "."], cwd=project.dev, env=env)


def check_readme_commands(project: Rendered, env: dict[str, str]) -> None:
    readme = (project.dev / "README.md").read_text()
    assert "make setup" in readme and "make test" in readme
    run(["make", "test"], cwd=project.dev, env=env)
    check_formatted(project, env)
    run(["git", "add", "uv.lock"], cwd=project.dev, env=env)
    run(["git", "commit", "-qm", "Lock dependencies"], cwd=project.dev, env=env)
    assert_clean(project.dev)


# --- a team's own data -------------------------------------------------------------------------

MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
TARGET, ID, GROUP = "Churned", "Customer ID", "Region Segment"


def churn_rows(n: int = 3000, seed: int = 14) -> list[dict]:
    """A churn table nothing like the synthetic one: 3,000 rows, ~10 % positives, names with
    spaces and capitals, a money and a percent column under other names, other categoricals,
    a text id and another group column, missing values."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        tenure, fee, discount = rng.randint(1, 72), rng.gammavariate(2.0, 40.0), rng.uniform(0, 30)
        plan = rng.choices(["Basic", "Plus", "Premium"], [5, 3, 2])[0]
        logit = -2.4 - 0.04 * (tenure - 36) + 0.012 * (fee - 80) - 0.05 * (discount - 15)
        logit += 0.9 if plan == "Basic" else -0.4
        rows.append(
            {
                ID: f"C-{100000 + i}",
                "Tenure Months": "" if rng.random() < 0.02 else tenure,
                "monthlyFee": f"(${fee:,.2f})" if rng.random() < 0.03 else f"${fee:,.2f}",
                "Discount Rate": f"{discount:.1f}%",
                "Plan Type": plan,
                "Sales Channel": rng.choice(["web", "store", "phone", "partner"]),
                GROUP: rng.choice(["North", "South", "West"]),
                TARGET: int(rng.random() < 1 / (1 + pow(2.718281828, -logit))),
            }
        )
    return rows


def load_table(project: Path, rows: list[dict], table: str, env: dict[str, str]) -> None:
    """Put the team's table into MariaDB with the project's own pandas and SQLAlchemy."""
    path = project.parent / f"{table}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    script = (
        "import sys, pandas as pd, sqlalchemy as sa\n"
        "engine = sa.create_engine(sys.argv[1])\n"
        "pd.read_csv(sys.argv[2]).to_sql(sys.argv[3], engine, index=False, if_exists='replace')\n"
    )
    run(["uv", "run", "--frozen", "python", "-c", script, MARIADB_URL, str(path), table],
        cwd=project, env=env)  # fmt: skip


def readme_own_data_commands(project: Path) -> list[str]:
    block = readme_bash_block((project / "README.md").read_text(), "Use your own data")
    return [line for line in block.splitlines() if line and not line.startswith("export ")]


def serve_and_predict(project: Path, record: dict, env: dict[str, str], log: Path) -> dict:
    """`make serve` on free loopback ports, one prediction, then stop (bounded in time)."""
    with make_serve(project, env, log) as (base, _, _):
        status, answer = http(f"{base}/v1/predict", record)
        assert status == 200, answer
        return answer


def swap_in_own_data(project: Rendered, env: dict[str, str], tmp_path: Path) -> None:
    dev, slug = project.dev, project.answers["project_slug"]
    rows = churn_rows()
    table = f"churn_{uuid.uuid4().hex[:8]}"
    env = {**env, "DATA_URL": MARIADB_URL}
    load_table(dev, rows, table, env)
    try:
        # The README's commands, with this table's names in the placeholders.
        init, *make = readme_own_data_commands(dev)
        assert init.startswith(f"uv run {slug} contract init --table") and make == [
            "make repro", "make test", "make serve"
        ]  # fmt: skip
        run(["uv", "run", slug, "contract", "init", "--table", table, "--target", TARGET,
             "--id", ID, "--group", GROUP], cwd=dev, env=env)  # fmt: skip
        params = (dev / "params.yaml").read_text()
        assert "Customer ID" in params and "x12" not in params
        run(["make", "repro"], cwd=dev, env=env, timeout=1800)
        metrics = json.loads((dev / "reports" / "metrics.json").read_text())
        assert 0.05 < metrics["positive_rate"] < 0.2 and metrics["roc_auc"] > 0.6, metrics
        run(["make", "test"], cwd=dev, env=env, timeout=1800)
        check_formatted(project, env)
        record = {k: v for k, v in rows[7].items() if k not in {TARGET, ID, GROUP} and v != ""}
        answer = serve_and_predict(dev, record, env, tmp_path / "serve.log")
        assert 0.0 <= answer["p_hat"] <= 1.0 and answer["business_outcome"] in (0, 1)
    finally:
        script = (
            "import sys, sqlalchemy as sa\n"
            "with sa.create_engine(sys.argv[1]).begin() as conn:\n"
            "    conn.execute(sa.text(f'DROP TABLE IF EXISTS {sys.argv[2]}'))\n"
        )
        subprocess.run(
            ["uv", "run", "--frozen", "python", "-c", script, MARIADB_URL, table], cwd=dev, env=env
        )


# Each test renders its own copy: other slow tests run the pipeline in `installed_default`,
# and this one asserts that the README's commands leave the work tree clean.
SCENARIOS = {
    "default": {},
    # Non-default on every axis that changes code paths; the Python this machine has. Its data
    # are a team's own MySQL table (MariaDB on localhost), swapped in with `contract init`.
    # model_family=lightgbm: its dependency group is a default group, so `make test` runs
    # LightGBM through the pipeline, the parity check and its converter test.
    "mysql-lightgbm-s3-embedded": {
        "data_source": "mysql",
        "model_family": "lightgbm",
        "dvc_remote": "s3",
        "config_repo": "embedded",
    },
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_project_installs_and_passes_its_own_commands(name, render, git_identity_env, tmp_path):
    project = render(f"readme-{name}", **SCENARIOS[name])
    run(["make", "setup"], cwd=project.dev, env=git_identity_env)
    if SCENARIOS[name].get("data_source") == "mysql":
        swap_in_own_data(project, git_identity_env, tmp_path)
    else:
        check_readme_commands(project, git_identity_env)
