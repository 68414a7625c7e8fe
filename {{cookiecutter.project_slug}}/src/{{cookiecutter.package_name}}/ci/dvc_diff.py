"""Run ``dvc`` diff commands against a base revision and return their output."""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404
import sys
from pathlib import Path
from typing import Any


def dvc(args: list[str], cwd: Path = Path()) -> str:
    """``dvc <args>`` from this environment's interpreter; raise with stderr on failure."""
    cmd = [sys.executable, "-m", "dvc", *args]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)  # noqa: S603  # nosec B603
    if proc.returncode != 0:
        raise RuntimeError(
            f"dvc {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr.strip()}"
        )
    return proc.stdout


def metrics_diff(rev: str, cwd: Path = Path()) -> dict[str, dict[str, dict[str, Any]]]:
    """``{file: {metric: {"old", "new", "diff"}}}`` for every metric, changed or not."""
    out = dvc(["metrics", "diff", "--json", "--all", rev], cwd)
    return json.loads(out) if out.strip() else {}
