"""Slow tier: a team switches the default project's model to XGBoost with the generated README's
"Use your own model" commands, verbatim, and the pipeline and the project's whole suite stay green.

LightGBM takes the other route (the `model_family=lightgbm` answer) in test_generated_project.py.
CatBoost's converter test runs here too, with its group added for that one command, so each
library's converter test runs at least once per template run.
"""

from __future__ import annotations

import json
import time

import pytest

from .conftest import readme_bash_block, run

pytestmark = pytest.mark.slow


def test_readme_switches_the_default_project_to_xgboost(render, git_identity_env) -> None:
    project = render("own-model-xgboost")
    dev = project.dev
    block = readme_bash_block((dev / "README.md").read_text(), "Use your own model")
    assert "xgboost" in block and "make repro && make test" in block

    started = time.perf_counter()
    run(["bash", "-euo", "pipefail", "-c", block], cwd=dev, env=git_identity_env, timeout=1800)
    elapsed = time.perf_counter() - started
    print(f"the README's own-model block (lock, setup, repro, test): {elapsed:.0f}s")

    schema = json.loads((dev / "models" / "features.json").read_text())
    assert schema["model"]["estimator"] == "SimpleImputer → XGBClassifier"
    assert (
        "- Estimator: `SimpleImputer → XGBClassifier`"
        in (dev / "reports" / "MODEL_CARD.md").read_text()
    )
    parity = json.loads((dev / "reports" / "parity.json").read_text())
    assert parity["passed"] and parity["max_abs_diff"] <= parity["atol"] and parity["rows"] >= 1000
    # uv.lock pins the CPU build: no CUDA wheel (NCCL) on this CPU machine.
    lock = (dev / "uv.lock").read_text()
    assert 'name = "xgboost-cpu"' in lock and "nvidia-nccl" not in lock
    # CI installs exactly the locked default groups: the lock agrees with pyproject.toml.
    run(["uv", "lock", "--check"], cwd=dev, env=git_identity_env)

    # XGBoost's converter test, and CatBoost's with its group added for this one command.
    out = run(
        [
            *("uv", "run", "--frozen", "--group", "catboost", "pytest"),
            *("tests/unit/test_converters.py", "-k", "xgboost or catboost", "-q", "-rs"),
        ],
        cwd=dev,
        env=git_identity_env,
    )
    # Every selected test ran (none skipped for a missing library); run() checked they passed.
    assert " passed" in out and "skipped" not in out, out
