"""The merge-request report: what this change does to the model, against a base revision.

Writes ``<out>/report.md`` with

- the promotion gate's verdict (the same rule as ``promotion-gate``, shown, not enforced here),
- ``dvc metrics diff --md --all`` and ``dvc params diff --md`` against the base revision,
- every DVC plot of both revisions, from ``dvc plots diff --json`` rendered to PNG with
  vl-convert (no browser, no CDN) into ``<out>/plots/``,
- the fairness table of the candidate's model card.

CI posts it as one comment with ``cml comment create`` (or ``post-report`` without CML). Run it
locally after ``dvc repro``: ``<project> report --rev main``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .dvc_diff import dvc
from .promotion_gate import evaluate as gate_verdict

SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def fairness_section(model_card: Path) -> str:
    """The model card's ``## Fairness ...`` section (heading excluded), or a note if absent."""
    if not model_card.is_file():
        return f"_No model card at `{model_card}`._"
    lines = model_card.read_text().splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.lower().startswith("## fairness")), None
    )
    if start is None:
        return f"_The model card `{model_card}` has no Fairness section._"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start + 1 : end]).strip()


def render_plots(plots_json: dict[str, Any], out_dir: Path) -> list[tuple[str, Path]]:
    """PNG files for the vega(-lite) plots of ``dvc plots diff --json``; image plots are copied."""
    import vl_convert  # the report job's dependency only: imported when plots are rendered

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, Path]] = []
    for plot_id, entries in plots_json.get("data", {}).items():
        for index, entry in enumerate(entries):
            stem = SAFE_NAME.sub("_", plot_id).strip("_") or "plot"
            if len(entries) > 1:
                stem += f"_{index}"
            target = out_dir / f"{stem}.png"
            if entry.get("type") == "vega":
                target.write_bytes(vl_convert.vegalite_to_png(entry["content"], scale=1.5))
            elif entry.get("type") == "image" and Path(entry.get("url", "")).is_file():
                target.write_bytes(Path(entry["url"]).read_bytes())
            else:
                continue
            title = entry.get("content", {}).get("title") if entry.get("type") == "vega" else None
            if isinstance(title, dict):
                title = title.get("text")
            written.append((str(title or plot_id), target))
    return written


def build_report(
    rev: str, out: Path, root: Path = Path(), model_card: str = "reports/MODEL_CARD.md"
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    verdict = gate_verdict(rev, cwd=root)
    metrics = dvc(["metrics", "diff", "--md", "--all", rev], root).strip()
    params = dvc(["params", "diff", "--md", rev], root).strip()
    plots = render_plots(json.loads(dvc(["plots", "diff", "--json", rev], root)), out / "plots")

    parts = [
        f"# Model report: this change vs `{rev}`",
        "",
        f"**Promotion gate: {'passed ✅' if verdict.passed else 'FAILED ❌'}** — {verdict.message}",
        "",
        "## Metrics",
        "",
        metrics or "_No metrics found._",
        "",
        "## Parameters",
        "",
        params or f"_No parameter differs from `{rev}`._",
        "",
        "## Plots",
        "",
        f"Each plot overlays this change (`workspace`) and `{rev}`.",
        "",
    ]
    for title, png in plots:
        parts += [f"### {title}", "", f"![{title}]({png.relative_to(out).as_posix()})", ""]
    if not plots:
        parts += ["_No DVC plots defined._", ""]
    parts += ["## Fairness", "", fairness_section(root / model_card), ""]
    report = out / "report.md"
    report.write_text("\n".join(parts))
    return report


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description="write the merge-request report (report.md)")
    parser.add_argument("--rev", required=True, help="base revision, e.g. origin/main")
    parser.add_argument("--out", type=Path, default=Path("ci-report"), help="output directory")
    args = parser.parse_args(list(argv))
    try:
        report = build_report(args.rev, args.out)
    except (RuntimeError, ValueError, KeyError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {report} ({len(list((args.out / 'plots').glob('*.png')))} plots)")
    return 0
