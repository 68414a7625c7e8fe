"""Fail the pipeline on High/Critical findings in GitLab security reports.

GitLab's SAST, Secret Detection, Dependency Scanning and Container Scanning jobs upload their
findings (``gl-*-report.json``, the GitLab security report format) but never fail by themselves.
This gate reads those reports and exits 1 when any finding is at or above ``--fail-on``
(default ``high``: High and Critical). A report that is absent means its job did not run in
this pipeline (rules), and is listed; when no report at all is present the gate fails, since
nothing was checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SEVERITIES = ["info", "unknown", "low", "medium", "high", "critical"]


@dataclass(frozen=True)
class Finding:
    report: str
    severity: str
    name: str
    location: str
    identifier: str


def _location(vuln: dict) -> str:
    loc = vuln.get("location") or {}
    if "file" in loc:
        line = loc.get("start_line")
        return f"{loc['file']}:{line}" if line else str(loc["file"])
    if "image" in loc:
        package = (loc.get("dependency") or {}).get("package", {}).get("name", "")
        return f"{loc['image']} {package}".strip()
    return "-"


def read_findings(path: Path) -> list[Finding]:
    """Findings of one GitLab security report (schema 15.x: ``vulnerabilities[].severity``)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("vulnerabilities"), list):
        raise ValueError(f"{path}: not a GitLab security report (no 'vulnerabilities' list)")
    findings = []
    for vuln in data["vulnerabilities"]:
        severity = str(vuln.get("severity", "Unknown")).lower()
        if severity not in SEVERITIES:
            raise ValueError(f"{path}: unknown severity {vuln.get('severity')!r}")
        ids = [i.get("value", "") for i in vuln.get("identifiers", []) if i.get("value")]
        findings.append(
            Finding(
                report=path.name,
                severity=severity,
                name=str(vuln.get("name") or vuln.get("message") or vuln.get("id", "?")),
                location=_location(vuln),
                identifier=", ".join(ids[:3]),
            )
        )
    return findings


def blocking(findings: Iterable[Finding], fail_on: str) -> list[Finding]:
    floor = SEVERITIES.index(fail_on)
    return [f for f in findings if SEVERITIES.index(f.severity) >= floor]


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description="fail on High/Critical findings in GitLab reports")
    parser.add_argument("reports", nargs="+", type=Path, help="gl-*-report.json files")
    parser.add_argument(
        "--fail-on", default="high", choices=SEVERITIES, help="lowest blocking severity"
    )
    args = parser.parse_args(list(argv))

    present = [p for p in args.reports if p.is_file()]
    for path in args.reports:
        if not path.is_file():
            print(f"- {path}: absent (its job did not run in this pipeline)")
    if not present:
        print("security-gate: none of the reports exists, so nothing was checked", file=sys.stderr)
        return 1
    findings: list[Finding] = []
    for path in present:
        found = read_findings(path)
        counts = {s: sum(f.severity == s for f in found) for s in reversed(SEVERITIES)}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
        print(f"- {path}: {summary}")
        findings += found
    stop = blocking(findings, args.fail_on)
    for f in sorted(stop, key=lambda f: -SEVERITIES.index(f.severity)):
        print(f"  {f.severity.upper():8} {f.report}: {f.name} at {f.location} [{f.identifier}]")
    if stop:
        print(f"security-gate: {len(stop)} finding(s) at or above {args.fail_on}", file=sys.stderr)
        return 1
    print(f"security-gate: no finding at or above {args.fail_on}")
    return 0
