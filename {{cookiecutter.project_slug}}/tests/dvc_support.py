"""dvc.yaml as written and as DVC runs it (every ``${key}`` replaced by its params.yaml value)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
# DVC's templating: ${key} with a dotted key into params.yaml.
REFERENCE = re.compile(r"\$\{\s*([A-Za-z0-9_.-]+)\s*\}")


def raw_pipeline(repo: Path = REPO) -> dict[str, Any]:
    return yaml.safe_load((repo / "dvc.yaml").read_text())


def lookup(params: dict[str, Any], key: str) -> Any:
    value: Any = params
    for part in key.split("."):
        value = value[part]
    return value


def resolve(value: Any, params: dict[str, Any]) -> Any:
    """``value`` with every ``${key}`` in its strings (mapping keys too) replaced."""
    if isinstance(value, str):
        return REFERENCE.sub(lambda match: str(lookup(params, match[1])), value)
    if isinstance(value, list):
        return [resolve(item, params) for item in value]
    if isinstance(value, dict):
        return {resolve(k, params): resolve(v, params) for k, v in value.items()}
    return value


def pipeline(repo: Path = REPO) -> dict[str, Any]:
    """dvc.yaml resolved against params.yaml, as DVC reads it."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    return resolve(raw_pipeline(repo), params)


def references(value: Any) -> set[str]:
    """Every params.yaml key a dvc.yaml fragment refers to with ``${...}``."""
    if isinstance(value, str):
        return set(REFERENCE.findall(value))
    if isinstance(value, list):
        return set().union(*map(references, value)) if value else set()
    if isinstance(value, dict):
        return references(list(value)) | references(list(value.values()))
    return set()


def entry_path(entry: str | dict) -> str:
    """The path of a deps/outs entry: ``path`` or ``{path: {options}}``."""
    return entry if isinstance(entry, str) else next(iter(entry))


def outputs(stage: dict[str, Any]) -> list[str]:
    entries = [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]
    return [entry_path(entry) for entry in entries]
