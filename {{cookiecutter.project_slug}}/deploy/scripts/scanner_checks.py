"""The policy scanners, checkov and trivy, on the rendered overlays and on terraform/.

Zero failed checks is the bar; a check may be skipped only with a reason written where it
applies (checkov: `checkov.io/skipN` annotations and `# checkov:skip=ID:reason` comments;
trivy: .trivyignore.yaml statements and `#trivy:ignore` comments). This repository's own
Kubernetes policies are checkov custom checks in policies/checkov/, run with the built-in ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import (
    BUILD,
    CHECKOV_POLICIES,
    RENDERED,
    ROOT,
    TERRAFORM,
    CheckFailed,
    dig,
    load_all,
    load_one,
    shown,
    tool,
)

MIN_REASON = 15  # characters: "ok" or a check name is not a reason


def custom_checkov_ids() -> set[str]:
    ids = set()
    for path in sorted(CHECKOV_POLICIES.glob("*.yaml")):
        policy = load_one(path)
        if not isinstance(policy, dict) or not dig(policy, "metadata.id"):
            raise CheckFailed(f"{shown(path)}: a checkov custom check needs metadata.id")
        ids.add(policy["metadata"]["id"])
    return ids


def _skip_reasons_in_files(framework: str) -> dict[str, set[str]]:
    """checkov's JSON report leaves out why a check was skipped: read it where it is written."""
    reasons: dict[str, set[str]] = {}
    if framework == "terraform":
        for tf in TERRAFORM.rglob("*.tf"):
            for cid, why in re.findall(r"checkov:skip=([A-Z0-9_]+):(.*)$", tf.read_text(), re.M):
                reasons.setdefault(cid, set()).add(why.strip())
        return reasons
    for path in RENDERED.glob("*.yaml"):
        for doc in load_all(path):
            for key, value in (dig(doc, "metadata.annotations") or {}).items():
                if key.startswith("checkov.io/skip") and "=" in str(value):
                    cid, _, why = str(value).partition("=")
                    reasons.setdefault(cid, set()).add(why.strip())
    return reasons


def _checkov(directory: Path, framework: str, external: Path | None = None) -> str:
    cmd = [tool("checkov"), "-d", str(directory), "--framework", framework, "--skip-download"]
    if external is not None:
        cmd += ["--external-checks-dir", str(external)]
    out = subprocess.run(  # noqa: S603 (fixed arguments)
        [*cmd, "--compact", "-o", "json"], cwd=ROOT, capture_output=True, text=True
    )
    try:
        data = json.loads(out.stdout)
    except json.JSONDecodeError as exc:
        raise CheckFailed(
            f"checkov {framework}: no JSON report\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        ) from exc
    passed = failed = skipped_total = 0
    skipped: dict[str, str] = {}
    failures, evaluated = [], set()
    for rep in data if isinstance(data, list) else [data]:
        summary = rep.get("summary", {})
        passed += summary.get("passed", 0)
        failed += summary.get("failed", 0)
        skipped_total += summary.get("skipped", 0)
        results = rep.get("results", {})
        for res in results.get("failed_checks", []):
            failures.append(
                f"{res['check_id']} {res['check_name']} — {res['resource']} ({res['file_path']})"
            )
        for kind in ("passed_checks", "failed_checks"):
            evaluated |= {res["check_id"] for res in results.get(kind, [])}
        for res in results.get("skipped_checks", []):
            why = (res.get("suppress_comment") or "").strip()
            skipped[res["check_id"]] = why or skipped.get(res["check_id"], "")
    reasons = _skip_reasons_in_files(framework)
    for cid in skipped:
        skipped[cid] = skipped[cid] or " | ".join(sorted(reasons.get(cid, ())))
    if failed:
        raise CheckFailed(f"checkov {framework}: {failed} failed\n" + "\n".join(failures))
    if passed == 0:
        raise CheckFailed(f"checkov {framework}: no check ran on {directory}: nothing was scanned")
    if external is not None:
        # A custom policy whose resource_types or attribute path matches nothing passes
        # silently forever: each must have judged at least one object.
        idle = sorted(custom_checkov_ids() - evaluated)
        if idle:
            raise CheckFailed(
                f"checkov {framework}: custom checks in {external.relative_to(ROOT)} matched no "
                f"object (wrong resource_types or attribute?): {idle}"
            )
    unexplained = [cid for cid, why in skipped.items() if len(why) < MIN_REASON]
    if unexplained:
        raise CheckFailed(f"checkov {framework}: skips without a reason: {unexplained}")
    listed = "".join(f"\n    skip {cid}: {why}" for cid, why in sorted(skipped.items()))
    return f"{framework}: {passed} passed, 0 failed, {skipped_total} skipped{listed}"


def check_checkov() -> str:
    # checkov skips git-ignored files, and build/ is ignored: scan a copy outside the repo.
    with tempfile.TemporaryDirectory(prefix="checkov-k8s-") as tmp:
        for path in RENDERED.glob("*.yaml"):
            shutil.copy(path, tmp)
        k8s = _checkov(Path(tmp), "kubernetes", external=CHECKOV_POLICIES)
    custom = f"\n    including {len(custom_checkov_ids())} custom checks from policies/checkov/"
    return "\n  ".join([k8s + custom, _checkov(TERRAFORM, "terraform")])


def _trivy(trivy: str, target: Path, env: dict[str, str]) -> str:
    report = BUILD / f"trivy-{target.name}.json"
    report.unlink(missing_ok=True)  # never read an earlier run's report
    cmd = [trivy, "config", "--quiet", "--skip-check-update", "--exit-code", "1"]
    cmd += ["--ignorefile", str(ROOT / ".trivyignore.yaml"), "--format", "json"]
    proc = subprocess.run(  # noqa: S603 (fixed arguments)
        [*cmd, "--output", str(report), str(target)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    results = json.loads(report.read_text()).get("Results", []) if report.exists() else []
    failures = [
        f"{m['ID']} ({m.get('AVDID', '')}) {m['Title']} — {r['Target']}: {m.get('Message', '')}"
        for r in results
        for m in r.get("Misconfigurations", [])
        if m.get("Status") == "FAIL"
    ]
    if proc.returncode != 0 or failures:
        detail = "\n".join(failures) or f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        raise CheckFailed(
            f"trivy config {target.relative_to(ROOT)}: exit {proc.returncode}\n{detail}"
        )
    ok = sum(r.get("MisconfSummary", {}).get("Successes", 0) for r in results)
    return f"{target.relative_to(ROOT)}: {ok} passed, 0 failed"


def check_trivy() -> str:
    trivy = tool("trivy")
    env = dict(os.environ)
    env.setdefault("TRIVY_CACHE_DIR", str(BUILD / "trivy-cache"))
    return "; ".join(_trivy(trivy, target, env) for target in (RENDERED, TERRAFORM))
