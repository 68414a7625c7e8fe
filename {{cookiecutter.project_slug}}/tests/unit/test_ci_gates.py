"""The promotion gate's rule and the security gate over GitLab security reports."""

from __future__ import annotations

import json

import pytest

from {{ cookiecutter.package_name }}.ci import security_gate
from {{ cookiecutter.package_name }}.ci.promotion_gate import Rule, judge

RULE = Rule("reports/metrics.json", "roc_auc", higher_is_better=True, tolerance=0.01)


@pytest.mark.parametrize(
    ("old", "new", "passed"),
    [
        (0.90, 0.95, True),
        (0.90, 0.891, True),
        (0.90, 0.89, True),
        (0.90, 0.8899, False),
        (None, 0.5, True),
    ],
)
def test_promotion_gate_higher_is_better(old, new, passed):
    assert judge(RULE, old, new).passed is passed


def test_promotion_gate_lower_is_better_and_missing_candidate():
    loss = Rule("m.json", "log_loss", higher_is_better=False, tolerance=0.0)
    assert judge(loss, 0.30, 0.29).passed and not judge(loss, 0.30, 0.31).passed
    verdict = judge(RULE, 0.9, None)
    assert not verdict.passed and "missing" in verdict.message


def test_promotion_rule_comes_from_params():
    rule = Rule.from_params({"gate": {"primary_metric": "pr_auc", "tolerance": 0.002}})
    assert (rule.metric, rule.tolerance, rule.higher_is_better) == ("pr_auc", 0.002, True)
    with pytest.raises(ValueError, match="no `gate:`"):
        Rule.from_params({})
    with pytest.raises(ValueError, match="tolerance"):
        Rule.from_params({"gate": {"primary_metric": "x", "tolerance": -1}})


def report(path, *severities):
    vulns = [
        {
            "id": str(i),
            "name": f"finding {i}",
            "severity": s,
            "identifiers": [{"type": "cve", "name": "CVE", "value": f"CVE-2024-{i}"}],
            "location": {"file": "src/app.py", "start_line": i},
        }
        for i, s in enumerate(severities)
    ]
    path.write_text(json.dumps({"version": "15.0.7", "vulnerabilities": vulns}))
    return path


def test_security_gate_fails_on_high_and_critical(tmp_path, capsys):
    sast = report(tmp_path / "gl-sast-report.json", "Low", "Critical")
    deps = report(tmp_path / "gl-dependency-scanning-report.json", "Medium")
    assert security_gate.main([str(sast), str(deps), str(tmp_path / "absent.json")]) == 1
    out = capsys.readouterr().out
    assert "CRITICAL" in out and "src/app.py:1" in out and "CVE-2024-1" in out
    assert "absent.json: absent" in out


def test_security_gate_passes_below_the_threshold(tmp_path):
    sast = report(tmp_path / "gl-sast-report.json", "Low", "Medium", "Info", "Unknown")
    assert security_gate.main([str(sast)]) == 0
    assert security_gate.main([str(sast), "--fail-on", "medium"]) == 1


def test_security_gate_refuses_when_nothing_was_checked(tmp_path, capsys):
    assert security_gate.main([str(tmp_path / "none.json")]) == 1
    assert "nothing was checked" in capsys.readouterr().err


def test_security_gate_rejects_a_foreign_format(tmp_path):
    bad = tmp_path / "trivy.json"
    bad.write_text(json.dumps({"Results": []}))
    with pytest.raises(ValueError, match="not a GitLab security report"):
        security_gate.read_findings(bad)
