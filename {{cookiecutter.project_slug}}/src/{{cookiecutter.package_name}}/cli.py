"""One entry point for every command of the project: ``<project> <command> [options]``.

Commands are imported lazily so that ``serve`` never pulls in the training stack (pandas,
scikit-learn) and every command starts fast. Each target module exposes ``main(argv) -> int``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

# command → (module relative to this package, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "generate-data": (".data.synthetic", "write the deterministic synthetic data set"),
    "seed-db": (".data.seed_db", "load the synthetic data into the SQL database at DATA_URL"),
    "contract": (".data.contract_init", "`contract init`: infer params.yaml's contract from data"),
    "sample-data": (".data.sample", "write rows made from the contract (test fixtures)"),
    "prepare": (".pipeline.prepare", "DVC stage: load, clean, validate and split the data"),
    "train": (".pipeline.train", "DVC stage: fit build_model(params) on the training split"),
    "evaluate": (".pipeline.evaluate", "DVC stage: metrics, plots, fairness and the model card"),
    "export": (".pipeline.export", "DVC stage: ONNX model + feature schema, with a parity check"),
    "serve": (".serving.server", "run the prediction service on $HOST:$PORT"),
    "bench": (".bench", "benchmark the pipeline and the service side by side"),
    "bench-train": (".bench_train", "prepare + train on N rows with each engine: time, memory"),
    "drift": (".monitoring.drift", "PSI drift report; triggers the retrain pipeline on drift"),
    "report": (".ci.report", "CI: merge-request report (metrics/params/plots diff, fairness)"),
    "promotion-gate": (
        ".ci.promotion_gate",
        "CI: fail if the model is worse than the target branch",
    ),
    "post-report": (".ci.post_report", "CI: post report.md as a merge-request note (no CML)"),
    "security-gate": (".ci.security_gate", "CI: fail on High/Critical findings in GitLab reports"),
    "bump-image": (".ci.kustomize_image", "set newTag/digest in a kustomization.yaml"),
    "gitops": (".ci.gitops", "CI: release MR on the config repo / retrain MR on this repo"),
    "template-update": (".ci.template_update", "CI: template update on a branch + merge request"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    prog = Path(sys.argv[0]).name
    return f"usage: {prog} <command> [options]\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        print(usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[command][0], __package__)
        return int(module.main(rest) or 0)
    except Exception as exc:
        # Imported here: config pulls in pandas, which `serve` never loads.
        from .config import UserError

        if not isinstance(exc, UserError):
            raise
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
