"""Where the pipeline's files are and how its stages read params.yaml: the bottom layer.

``data/``, ``pipeline/`` and ``monitoring/`` import this module; it imports none of them.

Every path the pipeline reads or writes is declared once, in params.yaml: the raw data at
``data.path``, everything else under ``paths:``. ``dvc.yaml`` names them as ``${data.path}`` and
``${paths.<name>}``; the code asks ``Params.path("<name>")``.

Stages read params.yaml only through ``Params.read("<dotted.key>")`` and ``Params.path("<name>")``,
with literal keys, so that ``tests/unit/test_dvc_graph.py`` can find every key a stage reads and
check it against the stage's ``params`` and ``${...}`` in dvc.yaml: DVC re-runs a stage only
when something it declares changes. ``Params`` has no mapping interface on purpose.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

PARAMS_FILE = "params.yaml"


class UserError(Exception):
    """A mistake in the data or the settings that the user fixes, not a bug in the code.

    Its message is one sentence naming what is wrong and how to fix it: the CLI prints it and
    exits non-zero, without a traceback. Every error a stage raises on bad input derives from it.
    """


class ParamsError(UserError, ValueError):
    """params.yaml is not a mapping, or lacks a key a stage reads."""


class Params:
    """params.yaml as read from a project root."""

    __slots__ = ("_values", "root")

    def __init__(self, values: Mapping[str, Any], root: str | Path = Path()):
        if not isinstance(values, Mapping):
            raise ParamsError(f"{PARAMS_FILE}: expected a mapping of parameter sections")
        self._values = copy.deepcopy(dict(values))
        self.root = Path(root)

    @classmethod
    def load(cls, root: str | Path = Path()) -> Params:
        path = Path(root) / PARAMS_FILE
        if not path.is_file():
            raise ParamsError(f"{path} not found: run the command at the project root (or --root)")
        try:
            with open(path) as handle:
                values = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise ParamsError(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from None
        if not isinstance(values, dict):
            raise ParamsError(f"{path}: expected a mapping of parameter sections")
        return cls(values, root)

    def _lookup(self, key: str) -> Any:
        value: Any = self._values
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(value, Mapping) or part not in value:
                missing = ".".join(parts[: depth + 1])
                raise ParamsError(f"{self.root / PARAMS_FILE} has no {missing!r} (read as {key!r})")
            value = value[part]
        return value

    def read(self, key: str) -> Any:
        """The value at a dotted key, e.g. ``read("export.parity_rows")`` or a whole block.

        A copy: a stage that changes what it read cannot change what the next read sees.
        """
        return copy.deepcopy(self._lookup(key))

    def path(self, name: str) -> Path:
        """The file or folder ``paths.<name>`` of params.yaml, under the project root."""
        return self.root / str(self._lookup(f"paths.{name}"))


def stage_args(argv: Sequence[str], description: str) -> argparse.Namespace:
    """The options every stage accepts: where the project root is (default: here)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", type=Path, default=Path(), help="project root (default: .)")
    return parser.parse_args(list(argv))


def read_split(path: Path, text_columns: Iterable[str]) -> pd.DataFrame:
    """Read a prepared split back with the dtypes ``prepare`` wrote: a Parquet file (the local
    engine) or a folder of Parquet files read in name order (the ``dask`` engine, one per
    partition).

    ``text_columns`` (categories and the group) come back as Python strings (missing: NaN),
    as the encoder takes them, whatever string type this pandas makes by default.
    """
    import pyarrow.parquet as pq

    frame = pq.read_table(path).to_pandas()
    for column in text_columns:
        if column in frame:
            frame[column] = frame[column].astype("object")
    return frame


def write_json(data: Any, path: Path) -> None:
    """Sorted keys and a trailing newline: the same data give the same bytes (and dvc.lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
