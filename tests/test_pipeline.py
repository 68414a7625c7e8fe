"""The generated DVC pipeline.

Fast tier (every scenario): dvc.yaml, params.yaml, .dvc/config, the CLI table and the shipped
.gitignore files agree with each other. Slow tier (default scenario, installed): a real
`make repro` on the default 40,000 rows, then the reproducibility and remote round trips.
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import json
import re
import shutil
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from .conftest import TEMPLATE, Rendered, run

ROC_AUC_FLOOR = 0.80  # the default data give ~0.85 with logistic regression
# dvc.yaml names every path as ${key} into params.yaml (DVC's templating).
REFERENCE = re.compile(r"\$\{\s*([A-Za-z0-9_.-]+)\s*\}")


def cli_commands(dev: Path, package: str) -> set[str]:
    tree = ast.parse((dev / "src" / package / "cli.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "COMMANDS":
            return {key.value for key in node.value.keys}
    raise AssertionError("cli.py has no COMMANDS table")


def resolve(value, params: dict):
    """dvc.yaml as DVC reads it: every ${key} replaced by its params.yaml value."""
    if isinstance(value, str):

        def lookup(match: re.Match) -> str:
            found = params
            for part in match[1].split("."):
                assert isinstance(found, dict) and part in found, f"dvc.yaml: no param {match[1]}"
                found = found[part]
            return str(found)

        return REFERENCE.sub(lookup, value)
    if isinstance(value, list):
        return [resolve(item, params) for item in value]
    if isinstance(value, dict):
        return {resolve(k, params): resolve(v, params) for k, v in value.items()}
    return value


def out_path(entry: str | dict) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


def out_cached(entry: str | dict) -> bool:
    return isinstance(entry, str) or next(iter(entry.values())).get("cache", True)


def param_keys(entries: list) -> list[str]:
    keys = []
    for entry in entries:
        if isinstance(entry, str):
            keys.append(entry)
        else:  # {file: [keys]}
            for file, names in entry.items():
                assert file == "params.yaml", file
                keys.extend(names)
    return keys


def test_dvc_yaml_params_and_config_are_consistent(scenario: Rendered) -> None:
    dev = scenario.dev
    package = next(p.name for p in (dev / "src").iterdir() if (p / "cli.py").exists())
    params = yaml.safe_load((dev / "params.yaml").read_text())
    pipeline = resolve(yaml.safe_load((dev / "dvc.yaml").read_text()), params)
    stages = pipeline["stages"]
    data_source = scenario.answers["data_source"]

    expected_stages = ["prepare", "train", "evaluate", "export"]
    if data_source == "csv":
        expected_stages.insert(0, "generate")
    assert list(stages) == expected_stages
    assert params["data"]["source"] == ("csv" if data_source == "csv" else "sql")
    assert params["train"]["model"] == scenario.answers["model_family"]
    assert ("always_changed" in stages["prepare"]) == (data_source != "csv")

    commands = cli_commands(dev, package)
    produced: dict[str, str] = {}
    for name, stage in stages.items():
        program, command = stage["cmd"].split()
        assert program == dev.name, stage["cmd"]  # the project's console script
        assert command in commands, f"stage {name}: {command} is not a CLI command"
        for key in param_keys(stage.get("params", [])):
            block = params
            for part in key.split("."):
                assert isinstance(block, dict) and part in block, f"stage {name}: no param {key}"
                block = block[part]
        for dep in stage["deps"]:
            assert dep in produced or (dev / dep).is_file(), (
                f"stage {name}: dep {dep} comes from nowhere"
            )
        entries = [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]
        for entry in entries:
            out = out_path(entry)
            assert out not in produced, f"{out} is written by {produced.get(out)} and {name}"
            assert out not in stage["deps"]
            produced[out] = name
            if out_cached(entry):
                # DVC-cached outputs are kept out of git by the shipped per-directory .gitignore.
                ignore = dev / Path(out).parent / ".gitignore"
                assert f"/{Path(out).name}" in ignore.read_text().split(), f"{out} not in {ignore}"
    for plot in pipeline["plots"]:
        (definition,) = plot.values()
        for file in definition["y"]:
            assert produced.get(file) == "evaluate", f"plot file {file} is not an evaluate output"

    config = configparser.ConfigParser()
    config.read_string((dev / ".dvc" / "config").read_text())
    default = config["core"]["remote"]
    assert config.has_section(f"'remote \"{default}\"'"), default
    assert config[f"'remote \"{default}\"'"]["url"] == f"../../{dev.name}-dvc-storage"
    assert (dev / ".dvc" / ".gitignore").read_text().split() == ["/config.local", "/tmp", "/cache"]
    assert "__pycache__/" in (dev / ".dvcignore").read_text().split()
    makefile = (dev / "Makefile").read_text()
    pyproject = (dev / "pyproject.toml").read_text()
    if scenario.answers["dvc_remote"] == "s3":
        region = scenario.answers["aws_region"]
        assert "dvc remote add --force --default storage s3://$(BUCKET)/dvc" in makefile
        assert f"dvc remote modify storage region {region}" in makefile
        assert '"dvc-s3' in pyproject and '"moto[server]' in pyproject
        assert (dev / "tests" / "integration" / "test_dvc_s3_remote.py").is_file()
    else:
        assert "dvc-remote:" not in makefile and '"dvc-s3' not in pyproject
        assert not (dev / "tests" / "integration" / "test_dvc_s3_remote.py").exists()


# model_family → the optional dependency group its build_model() branch imports (none: sklearn).
MODEL_GROUPS = {"lightgbm": "lightgbm", "xgboost": "xgboost", "catboost": "catboost"}


def test_every_model_family_has_its_options_branch_and_group(scenario: Rendered) -> None:
    """Each model_family choice is a build_model() branch with a params block; the chosen one's
    library group is installed by default, the others stay optional; no CUDA build."""
    dev = scenario.dev
    choices = json.loads((TEMPLATE / "cookiecutter.json").read_text())["model_family"]
    params = yaml.safe_load((dev / "params.yaml").read_text())
    package = next(p.name for p in (dev / "src").iterdir() if (p / "cli.py").exists())
    train_py = (dev / "src" / package / "pipeline" / "train.py").read_text()
    for family in choices:
        assert isinstance(params["train"].get(family), dict), f"params.yaml train.{family}"
        assert f'if family == "{family}":' in train_py, f"build_model() has no {family} branch"
    pyproject = tomllib.loads((dev / "pyproject.toml").read_text())
    groups = pyproject["dependency-groups"]
    assert set(MODEL_GROUPS.values()) <= set(groups)
    family = scenario.answers["model_family"]
    expected = ["train", "dev", *([MODEL_GROUPS[family]] if family in MODEL_GROUPS else [])]
    # The families with a native Dask estimator also get the dask group (params.yaml engine).
    expected += ["dask"] if family in {"lightgbm", "xgboost"} else []
    assert pyproject["tool"]["uv"]["default-groups"] == expected
    dask_packages = {re.split(r"[<>=]", dep)[0] for dep in groups["dask"]}
    assert {"dask[dataframe]", "distributed"} <= dask_packages
    assert any(dep.startswith("xgboost-cpu") for dep in groups["xgboost"])
    every = [dep for deps in groups.values() for dep in deps if isinstance(dep, str)]
    assert not [dep for dep in every if re.match(r"(xgboost|lightgbm-gpu|nvidia-)[<>=\[ ]", dep)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_repro_is_fast_good_and_reproducible(installed_default: Rendered, git_identity_env) -> None:
    dev = installed_default.dev
    env = {**git_identity_env, "DVC_NO_ANALYTICS": "1"}
    dvc = ["uv", "run", "--frozen", "dvc"]

    started = time.perf_counter()
    run(["make", "repro"], cwd=dev, env=env)
    elapsed = time.perf_counter() - started
    print(f"make repro on the default data: {elapsed:.1f}s")

    metrics = json.loads((dev / "reports" / "metrics.json").read_text())
    assert metrics["roc_auc"] > ROC_AUC_FLOOR, metrics
    assert 0.15 <= metrics["positive_rate"] <= 0.25
    parity = json.loads((dev / "reports" / "parity.json").read_text())
    assert parity["passed"] and parity["max_abs_diff"] <= parity["atol"] and parity["rows"] >= 1000
    card = (dev / "reports" / "MODEL_CARD.md").read_text()
    assert "| Group | Rows | Positive rate | Selection rate | TPR | FPR |" in card
    schema = json.loads((dev / "models" / "features.json").read_text())
    assert schema["model"]["sha256"] == sha256(dev / "models" / "model.onnx")
    assert schema["metrics"] == metrics

    # Nothing changed: DVC runs nothing.
    assert "Data and pipelines are up to date" in run([*dvc, "repro"], cwd=dev, env=env)

    # Really re-run train, evaluate and export (forced, each stage alone): the same bytes come
    # out, so every file and dvc.lock stay byte-identical.
    lock = (dev / "dvc.lock").read_text()
    outputs = (
        "models/model.pkl",
        "models/model.onnx",
        "models/features.json",
        "reports/metrics.json",
        "reports/MODEL_CARD.md",
        "reports/figures/roc.png",
    )
    hashes = {rel: sha256(dev / rel) for rel in outputs}
    stages = ("train", "evaluate", "export")
    out = run([*dvc, "repro", "--force", "--single-item", *stages], cwd=dev, env=env)
    assert all(f"Running stage '{stage}'" in out for stage in stages), out
    assert {rel: sha256(dev / rel) for rel in outputs} == hashes
    assert (dev / "dvc.lock").read_text() == lock

    # Push to the default local remote, lose every local copy, pull it all back.
    run([*dvc, "push"], cwd=dev, env=env)
    storage = dev.parent / f"{dev.name}-dvc-storage"
    assert any(storage.rglob("*")), "nothing was pushed to the local remote"
    shutil.rmtree(dev / ".dvc" / "cache")
    models = ("models/model.pkl", "models/model.onnx")
    for rel in ("data/raw/transactions.csv", "data/prepared/train.parquet", *models):
        (dev / rel).unlink()
    run([*dvc, "pull"], cwd=dev, env=env)
    assert {rel: sha256(dev / rel) for rel in models} == {rel: hashes[rel] for rel in models}
    assert (dev / "data" / "prepared" / "train.parquet").is_file()
    assert "Data and pipelines are up to date" in run([*dvc, "status"], cwd=dev, env=env)
    # The shipped per-directory .gitignore files already list every output: what is new for git
    # is what a team commits after a run (dvc.lock and reports/; uv.lock comes from `make setup`).
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=dev, env=env)
    changed = sorted(line[3:] for line in status.splitlines())
    assert "dvc.lock" in changed and "reports/metrics.json" in changed
    unexpected = [
        p for p in changed if p not in {"dvc.lock", "uv.lock"} and not p.startswith("reports/")
    ]
    assert not unexpected, unexpected


def dvc_status(dev: Path, env: dict[str, str]) -> dict:
    out = run(["uv", "run", "--frozen", "dvc", "status", "--json"], cwd=dev, env=env)
    return json.loads(out)


def changed_deps(status: dict) -> dict[str, set[str]]:
    """{stage: the paths of its changed deps} from ``dvc status --json``."""
    changed: dict[str, set[str]] = {}
    for stage, entries in status.items():
        for entry in entries:
            if isinstance(entry, dict) and "changed deps" in entry:
                changed.setdefault(stage, set()).update(entry["changed deps"])
    return changed


@pytest.mark.slow
def test_dvc_sees_an_edit_to_a_module_a_stage_imports_only_indirectly(
    installed_default: Rendered, git_identity_env
) -> None:
    """`prepare` imports features.py only through data/cleaning.py and data/contract.py, and
    `train` builds its matrix with pipeline/matrix.py (the old bug: DVC did not know it)."""
    dev = installed_default.dev
    env = {**git_identity_env, "DVC_NO_ANALYTICS": "1"}
    package = next(p.name for p in (dev / "src").iterdir() if (p / "cli.py").exists())
    run(["make", "repro"], cwd=dev, env=env)  # nothing to do if the repro test ran first
    assert dvc_status(dev, env) == {}
    prepare_py = (dev / "src" / package / "pipeline" / "prepare.py").read_text()
    assert "features" not in prepare_py  # the premise: no direct import
    edits = {
        f"src/{package}/features.py": {"prepare", "train", "evaluate", "export"},
        f"src/{package}/pipeline/matrix.py": {"train", "evaluate", "export"},
    }
    for rel, stages in edits.items():
        path = dev / rel
        original = path.read_bytes()
        try:
            path.write_bytes(original + b"\n# an edit DVC must see\n")
            changed = changed_deps(dvc_status(dev, env))
            assert set(changed) == stages, (rel, changed)
            assert all(changed[stage] == {rel} for stage in stages), (rel, changed)
        finally:
            path.write_bytes(original)
    assert dvc_status(dev, env) == {}
