"""``bench``'s summary: medians over rounds, the ratios against each baseline, and what the raw
ASGI target leaves a prediction's own work."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.bench import BATCH_FORMS, SINGLE_ROW, TARGETS, report, summarise


def _round(**rps: float) -> dict[str, dict[str, float | int | None]]:
    names = (*SINGLE_ROW, *(name for name, _ in BATCH_FORMS))
    return {
        name: {"rps": rps.get(name, 10.0), "p50_ms": 1.0, "p99_ms": 2.0, "non_2xx": 0}
        for name in names
    }


def _results(*rounds: dict) -> dict:
    sizes = {name: 1_000_000 for name in ("row", *(name for name, _ in BATCH_FORMS))}
    return {
        "server_cpu": 1,
        "wrk_cpus": "0",
        "connections": 16,
        "duration_s": 3.0,
        "batch_rows": 10_000,
        "bytes": sizes,
        "rounds": list(rounds),
    }


def test_ratios_are_medians_of_each_rounds_own_ratio_and_the_work_budget_follows() -> None:
    results = _results(
        _round(raw=40_000, fastapi=10_000, noop=20_000, predict=12_000, naive=100),
        _round(raw=50_000, fastapi=10_000, noop=25_000, predict=13_000, naive=100),
        _round(raw=44_000, fastapi=11_000, noop=22_000, predict=12_100, naive=110),
    )
    summary = summarise(results)
    assert summary["predict_over_fastapi"] == pytest.approx(1.2)  # 1.2, 1.3, 1.1
    assert summary["noop_over_raw"] == pytest.approx(0.5)
    # Medians: raw 44,000 and noop 22,000 req/s. At 0.4x raw a request may take 1e6 / 17,600
    # = 56.8 us, of which the stack alone takes 1e6 / 22,000 = 45.5 us.
    expected = 1e6 / (TARGETS["predict_over_raw"] * 44_000) - 1e6 / 22_000
    assert summary["work_budget_us"] == pytest.approx(expected)
    assert 11 < expected < 12


def test_report_says_what_the_stack_leaves_and_nothing_when_it_leaves_nothing(capsys) -> None:
    roomy = _results(_round(raw=40_000, fastapi=10_000, noop=30_000, predict=12_000))
    report(roomy, summarise(roomy))
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("noop / raw"))
    assert "0.75x" in line and "gets 29.2 us a request" in line, line

    tight = _results(_round(raw=40_000, fastapi=10_000, noop=15_000, predict=12_000))
    report(tight, summarise(tight))
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("noop / raw"))
    assert "gets nothing a request" in line, line
