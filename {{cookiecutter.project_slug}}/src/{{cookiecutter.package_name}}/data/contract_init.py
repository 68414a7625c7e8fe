"""``contract init``: infer the ``contract`` block of params.yaml from a team's own data.

    <project> contract init --data data/raw/mine.csv --target churned [--id "Customer ID"]
    <project> contract init --table customers --target churned      # the SQL table at DATA_URL

The data are read in chunks (``data/sources.py``), so a table larger than memory works. Each
text value is classified with the same parsers ``prepare`` cleans with (``features.py``), so a
column inferred as money is one that cleaning reads as money. The summary says what was
inferred and what could not be decided; params.yaml gets the new ``contract`` block (and
``data.path``/``data.table``), every other line stays byte for byte as it was. Bad input
(no such column, a target that is not 0/1, a column that is neither numbers nor a small set of
categories, no rows) is one sentence naming the column and the fix, and nothing is written.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..config import PARAMS_FILE, UserError
from ..features import is_blank, parse_money, parse_number, parse_percent
from .contract import Contract
from .sources import CHUNK_ROWS, PARQUET_SUFFIXES, iter_chunks

# A text column with at most this many distinct values is a categorical.
MAX_LEVELS = 50
# min_rows is this share of the rows seen now: a much smaller table later is a broken export.
MIN_ROWS_SHARE = 0.5
# Spellings of a 0/1 label (as cleaning reads them).
LABELS = {"0": 0, "1": 1, "false": 0, "true": 1, "0.0": 0, "1.0": 1}


class InitError(UserError):
    """The data cannot give a contract; the message names the column and the fix."""


@dataclass
class ColumnStats:
    """What one column holds, accumulated chunk by chunk."""

    missing: int = 0
    number: int = 0  # plain numbers (from a numeric dtype, or text parse_number reads)
    money: int = 0  # text only parse_money reads ("$1,234", "($5)")
    percent: int = 0  # text parse_percent reads ("67%")
    other: int = 0  # text none of them reads
    low: float = math.inf
    high: float = -math.inf
    levels: Counter = field(default_factory=Counter)  # distinct texts, up to MAX_LEVELS + 1
    too_many: bool = False
    example: str | None = None  # a value no parser reads

    def values(self) -> int:
        return self.number + self.money + self.percent + self.other

    def add_numbers(self, numbers: Iterable[float]) -> None:
        for value in numbers:
            self.low, self.high = min(self.low, value), max(self.high, value)

    def add_level(self, text: str, count: int) -> None:
        if self.too_many:
            return
        self.levels[text] += count
        if len(self.levels) > MAX_LEVELS:
            self.too_many = True
            self.levels.clear()


def _parsed(parse: Any, text: str) -> float | None:
    try:
        return parse(text)
    except ValueError:
        return None


def observe(stats: ColumnStats, values: pd.Series) -> None:
    """Add one chunk of a column to its statistics (numbers vectorised, text per distinct value)."""
    present = values.dropna()
    stats.missing += len(values) - len(present)
    if pd.api.types.is_bool_dtype(present):
        present = present.astype("int64")
    if pd.api.types.is_numeric_dtype(present):
        numbers = present.astype("float64")
        stats.number += len(numbers)
        if len(numbers):
            stats.low = min(stats.low, float(numbers.min()))
            stats.high = max(stats.high, float(numbers.max()))
        for value, count in numbers.value_counts().head(MAX_LEVELS + 1).items():
            stats.add_level(f"{value:g}", int(count))
        return
    for value, count in present.astype(str).value_counts().items():
        count = int(count)
        if is_blank(value):
            stats.missing += count
            continue
        stats.add_level(value.strip(), count)
        for kind, parse in (
            ("number", parse_number),
            ("percent", parse_percent),
            ("money", parse_money),
        ):
            number = _parsed(parse, value)
            if number is not None:
                setattr(stats, kind, getattr(stats, kind) + count)
                stats.add_numbers([number])
                break
        else:
            stats.other += count
            stats.example = stats.example or value


@dataclass
class Inferred:
    """The inferred contract block, and what the summary tells the user."""

    block: dict[str, Any]
    rows: int
    kinds: dict[str, str]
    notes: list[str]
    missing: dict[str, float]


def _target_check(name: str, stats: ColumnStats) -> None:
    if stats.missing:
        raise InitError(
            f"target column {name!r} has {stats.missing} missing value(s): label or drop those "
            "rows, the target must be 0 or 1 in every row"
        )
    labels = {LABELS.get(level.lower()) for level in stats.levels}
    if stats.too_many or None in labels or len(stats.levels) == 0:
        shown = sorted(stats.levels)[:5] if not stats.too_many else f"more than {MAX_LEVELS}"
        raise InitError(
            f"target column {name!r} is not binary (values: {shown}): give a column holding "
            "0/1 (or true/false), e.g. derived from it"
        )
    if labels != {0, 1}:
        raise InitError(
            f"target column {name!r} holds a single class ({sorted(stats.levels)}): "
            "a classifier needs both 0 and 1"
        )


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 6)


def infer(
    chunks: Iterable[pd.DataFrame],
    target: str,
    id_column: str | None = None,
    group: str | None = None,
    max_missing: float = 0.1,
) -> Inferred:
    """The contract block for the data in ``chunks`` (raises ``InitError`` on bad input)."""
    stats: dict[str, ColumnStats] = {}
    rows = 0
    for chunk in chunks:
        if not stats:
            stats = {str(c): ColumnStats() for c in chunk.columns}
        rows += len(chunk)
        for column in chunk.columns:
            observe(stats[str(column)], chunk[column])
    if not stats:
        raise InitError("the data have no columns: check the file or table")
    if rows == 0:
        raise InitError(f"the data have a header ({list(stats)[:5]}...) but no rows")
    for role, name in (("target", target), ("id", id_column), ("group", group)):
        if name is not None and name not in stats:
            raise InitError(
                f"no {role} column {name!r} in the data (columns: {list(stats)}): "
                f"check --{role}'s spelling and case"
            )
    _target_check(target, stats[target])
    notes: list[str] = []
    if id_column is not None and stats[id_column].missing:
        raise InitError(f"id column {id_column!r} has missing values: every row needs an id")
    block: dict[str, Any] = {"id": id_column, "target": target, "group": group}
    if group is not None:
        if stats[group].missing:
            raise InitError(
                f"group column {group!r} has {stats[group].missing} missing value(s): the "
                "fairness check needs a group in every row; fill them or choose another column"
            )
        if stats[group].too_many:
            raise InitError(
                f"group column {group!r} has more than {MAX_LEVELS} values: the fairness check "
                "compares a few groups, choose a coarser column"
            )
        block["groups"] = sorted(stats[group].levels)
    reserved = {target, id_column, group}
    kinds: dict[str, str] = {}
    categorical: dict[str, list[str]] = {}
    ranges: dict[str, list[float | int]] = {}
    missing: dict[str, float] = {}
    for name, column in stats.items():
        if name in reserved:
            continue
        missing[name] = column.missing / rows
        if column.values() == 0:
            raise InitError(
                f"column {name!r} is empty in every row: drop it from the data (or fill it)"
            )
        text_kinds = [k for k in ("money", "percent") if getattr(column, k)]
        if column.other == 0 and not text_kinds:
            kind = "numeric"
            distinct = len(column.levels)
            if not column.too_many and distinct <= 2:
                notes.append(
                    f"{name!r}: numeric with only {distinct} distinct value(s) - a flag? "
                    "kept numeric; move it to `categorical` if the numbers are codes"
                )
        elif column.other == 0 and len(text_kinds) == 1:
            kind = text_kinds[0]
            if column.number:
                notes.append(
                    f"{name!r}: {kind} strings mixed with {column.number} plain number(s); "
                    f"read as {kind} (plain numbers are amounts as they are)"
                    if kind == "money"
                    else f"{name!r}: {column.number} value(s) without '%' - cleaning will refuse "
                    "them; fix them upstream"
                )
        elif not column.too_many:
            kind = "categorical"
            categorical[name] = sorted(column.levels)
            if column.number or column.money or column.percent:
                notes.append(
                    f"{name!r}: categories that look partly numeric "
                    f"({sorted(column.levels)[:4]}...); read as categories"
                )
        else:
            raise InitError(
                f"column {name!r} is neither numeric nor a small set of categories (more than "
                f"{MAX_LEVELS} distinct texts, e.g. {column.example!r}): drop it, or clean it "
                "into numbers or a few categories upstream"
            )
        kinds[name] = kind
        if kind != "categorical" and column.low <= column.high:
            ranges[name] = [_number(column.low), _number(column.high)]
    worst = max(missing.values(), default=0.0)
    if worst > max_missing:
        new = math.ceil(worst * 20) / 20  # up to the next 5 %
        notes.append(
            f"max_missing raised from {max_missing:.0%} to {new:.0%}: "
            f"{max(missing, key=missing.__getitem__)!r} is {worst:.1%} missing"
        )
        max_missing = new
    min_rows = max(1, int(rows * MIN_ROWS_SHARE))
    notes.append(
        f"min_rows set to {min_rows} ({MIN_ROWS_SHARE:.0%} of the {rows} rows read): prepare "
        "refuses a much smaller table; lower it if your data legitimately shrink"
    )
    notes.append(
        "ranges are the observed minimum and maximum: widen them where new data may go further"
    )
    block.update(
        features=list(kinds),
        money=[n for n, k in kinds.items() if k == "money"],
        percent=[n for n, k in kinds.items() if k == "percent"],
        categorical=categorical,
        ranges=ranges,
        max_missing=max_missing,
        min_rows=min_rows,
    )
    if not kinds:
        raise InitError("the data have no feature columns besides target, id and group")
    return Inferred(block=block, rows=rows, kinds=kinds, notes=notes, missing=missing)


# --- writing params.yaml -----------------------------------------------------------------------


def _scalar(value: Any) -> str:
    """One YAML flow scalar, quoted where YAML would misread it ('yes', '1', 'a: b')."""
    return yaml.safe_dump([value], default_flow_style=True, width=math.inf).strip()[1:-1]


def _flow(values: Iterable[Any]) -> str:
    return "[" + ", ".join(_scalar(v) for v in values) + "]"


def _commented(line: str, comment: str) -> str:
    return f"{line:<23} # {comment}"


def render_block(block: dict[str, Any], source: str) -> str:
    """The ``contract:`` block as params.yaml text, with the comments a reader needs."""
    key = _scalar
    lines = [
        "# The data contract, checked by `prepare`: the stage fails with a list of violations.",
        f"# Inferred by `contract init` from {source}; edit it freely: the tests build their",
        "# rows from it. `features` lists the model inputs; numeric unless listed below.",
        "contract:",
        _commented(f"  id: {_scalar(block['id'])}", "unique row key; also the sort order"),
        _commented(f"  target: {_scalar(block['target'])}", "binary 0/1"),
        _commented(f"  group: {_scalar(block['group'])}", "fairness check only, never an input"),
    ]
    if block.get("groups"):
        lines.append(f"  groups: {_flow(block['groups'])}")
    lines.append("  features:")
    lines += [f"    - {key(name)}" for name in block["features"]]
    lines.append(
        _commented(f"  money: {_flow(block['money'])}", '"$1,234.56", "($12,000)" → float')
    )
    lines.append(_commented(f"  percent: {_flow(block['percent'])}", '"67%" → 67.0'))
    if block["categorical"]:
        lines.append("  categorical:")
        lines += [f"    {key(n)}: {_flow(levels)}" for n, levels in block["categorical"].items()]
    else:
        lines.append("  categorical: {}")
    if block["ranges"]:
        lines.append("  ranges:               # inclusive bounds after cleaning; null = unbounded")
        lines += [f"    {key(n)}: {_flow(bounds)}" for n, bounds in block["ranges"].items()]
    else:
        lines.append("  ranges: {}")
    lines.append(
        _commented(f"  max_missing: {block['max_missing']:g}", "largest missing share of a feature")
    )
    lines.append(f"  min_rows: {block['min_rows']}")
    return "\n".join(lines) + "\n"


_TOP_KEY = re.compile(r"^[^\s#][^:]*:")


def _block_span(lines: list[str], name: str) -> tuple[int, int]:
    """Lines [start, end) of top-level block ``name`` with the comment lines just above it;
    the blank and comment lines before the next top-level key belong to that key."""
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
    except StopIteration:
        raise InitError(f"{PARAMS_FILE} has no top-level `{name}:` block to replace") from None
    end = next((i for i in range(start + 1, len(lines)) if _TOP_KEY.match(lines[i])), len(lines))
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    return start, end


def _set_data_key(lines: list[str], key: str, value: str) -> None:
    """Set ``data.<key>`` in place, keeping its line's comment."""
    start, end = _block_span(lines, "data")
    pattern = re.compile(rf"^(  {key}:)(\s*)([^#\n]*?)(\s+#.*)?$")
    for i in range(start, end):
        match = pattern.match(lines[i].rstrip("\n"))
        if match:
            lines[i] = f"{match[1]} {_scalar(value)}{match[4] or ''}\n"
            return
    raise InitError(f"{PARAMS_FILE} has no `data.{key}` line to set")


def without_generate_stage(text: str) -> str | None:
    """dvc.yaml ``text`` without the synthetic ``generate`` stage (and its comment), or ``None``
    when there is none: it writes ``data.path``, so it would overwrite the team's file."""
    lines = text.splitlines(keepends=True)
    try:
        start = lines.index("  generate:\n")
    except ValueError:
        return None
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"^ {0,2}\S", lines[i])), len(lines)
    )
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("  #")):
        end -= 1
    while start > 0 and lines[start - 1].startswith("  #"):
        start -= 1
    while end < len(lines) and not lines[end].strip():
        end += 1  # the blank line after it
    return "".join([*lines[:start], *lines[end:]])


def updated_params(text: str, block: str, data: dict[str, str]) -> str:
    """params.yaml ``text`` with the contract block replaced and ``data`` keys set."""
    lines = text.splitlines(keepends=True)
    for key, value in data.items():
        _set_data_key(lines, key, value)
    start, end = _block_span(lines, "contract")
    return "".join([*lines[:start], block, *lines[end:]])


def write_params(root: Path, block: dict[str, Any], data: dict[str, str], source: str) -> Path:
    """Rewrite params.yaml atomically, after checking the result parses to this contract."""
    path = root / PARAMS_FILE
    new = updated_params(path.read_text(), render_block(block, source), data)
    parsed = yaml.safe_load(new)
    Contract.from_params(parsed["contract"])  # what prepare will read
    if parsed["contract"] != block or any(parsed["data"][k] != v for k, v in data.items()):
        raise RuntimeError("contract init wrote a block that does not read back as inferred")
    _replace_file(path, new)
    return path


def _replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder + rename)."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.replace(temp, path)


# --- the command -------------------------------------------------------------------------------


def summary(inferred: Inferred, source: str) -> str:
    block = inferred.block
    width = max(len(n) for n in inferred.kinds)
    lines = [
        f"contract init: {inferred.rows} rows, {len(inferred.kinds)} features from {source}",
        f"  target {block['target']!r}, id {block['id']!r}, group {block['group']!r}",
    ]
    for name, kind in inferred.kinds.items():
        detail = ""
        if kind == "categorical":
            levels = block["categorical"][name]
            detail = (
                f"{len(levels)} levels: {', '.join(levels[:6])}{' ...' if len(levels) > 6 else ''}"
            )
        elif name in block["ranges"]:
            low, high = block["ranges"][name]
            detail = f"[{low}, {high}]"
        lines.append(
            f"  {name:<{width}}  {kind:<11}  {detail}  ({inferred.missing[name]:.1%} missing)"
        )
    lines.append("Could not decide / set from the data (check them):")
    lines += [f"  - {note}" for note in inferred.notes]
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="contract", description="infer params.yaml's contract block from your data"
    )
    sub = parser.add_subparsers(dest="action", required=True)
    init = sub.add_parser("init", help="read the data, print a summary, write the contract")
    where = init.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", type=Path, help="a CSV or Parquet file (relative to --root)")
    where.add_argument("--table", help="a table of the SQL database at $DATA_URL")
    init.add_argument("--target", required=True, help="the 0/1 label column")
    init.add_argument("--id", dest="id_column", help="the unique row key column")
    init.add_argument("--group", help="a column for the fairness check (never an input)")
    init.add_argument("--root", type=Path, default=Path(), help="project root (default: .)")
    init.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, help=argparse.SUPPRESS)
    init.add_argument(
        "--dry-run", action="store_true", help="print the summary, do not write params.yaml"
    )
    return parser.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    params_path = args.root / PARAMS_FILE
    if not params_path.is_file():
        raise InitError(f"{params_path} not found: run the command at the project root")
    current = yaml.safe_load(params_path.read_text()).get("contract") or {}
    if args.table is not None:
        source, data = f"table {args.table!r}", {"source": "sql", "table": args.table}
        chunks = iter_chunks(table=args.table, chunk_rows=args.chunk_rows, order_by=args.id_column)
    else:
        path = args.data if args.data.is_absolute() else args.root / args.data
        kind = "parquet" if path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES else "csv"
        source, data = f"`{args.data}`", {"source": kind, "path": str(args.data)}
        chunks = iter_chunks(path=path, chunk_rows=args.chunk_rows)
    inferred = infer(
        chunks,
        args.target,
        args.id_column,
        args.group,
        max_missing=float(current.get("max_missing", 0.1)),
    )
    print(summary(inferred, source))
    if args.dry_run:
        print("(dry run: params.yaml unchanged)")
        return 0
    write_params(args.root, inferred.block, data, source)
    print(f"wrote the contract block and data.{'table' if args.table else 'path'} of {params_path}")
    dvc_yaml = args.root / "dvc.yaml"
    pruned = without_generate_stage(dvc_yaml.read_text()) if dvc_yaml.is_file() else None
    if pruned is not None:
        _replace_file(dvc_yaml, pruned)
        print(
            "removed the synthetic `generate` stage from dvc.yaml (it writes data.path): "
            f"track your file with `dvc add {args.data if args.data else ''}`".rstrip()
        )
    return 0
