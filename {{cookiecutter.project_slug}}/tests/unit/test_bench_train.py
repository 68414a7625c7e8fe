"""``bench-train``'s data set and verdicts (the benchmark itself is `make bench-train`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from {{ cookiecutter.package_name }}.bench_train import report, rss_mb, watch, write_lake

# A child that holds 300 MiB (touched, so resident), then waits: the watchdog must stop it.
HOLDS_300_MIB = "import time; b = bytearray(300 * 2**20); time.sleep(60)"
needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


def test_the_lake_is_hive_partitioned_with_ids_unique_across_partitions(tmp_path: Path) -> None:
    partitions = write_lake(tmp_path, rows=2500, partition_rows=1000, seed=1, id_column="id")
    assert partitions == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part=00000", "part=00001", "part=00002"]
    table = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    ids = table.column("id").to_pylist()
    assert len(ids) == 2500 and len(set(ids)) == 2500


def test_the_report_prints_both_targets_with_their_verdicts() -> None:
    def row(engine: str, stage: str, seconds: float, peak: int) -> dict:
        workers = [300, 310] if engine == "dask" else []
        return {"engine": engine, "stage": stage, "seconds": seconds, "rows_per_s": 1000,
                "stage_peak_mb": peak, "worker_peaks_mb": workers}  # fmt: skip

    results = [
        row("local", "prepare", 10, 7000),
        row("local", "train", 20, 6500),
        row("dask", "prepare", 25, 400),
        row("dask", "train", 40, 500),
    ]
    lines = "\n".join(report(results, rows=400_000, cap_mb=2000.0))
    assert "dask 65.0 s vs local 30.0 s = 2.17x (MISSES the <= 2x target" in lines
    assert "local peak 7,000 MiB = 3.5x one worker's cap of 2,000 MiB (meets" in lines
    assert "300, 310" in lines


def row(engine: str, stage: str, peak: int, stopped_at: int | None = None) -> dict:
    return {"engine": engine, "stage": stage, "seconds": 10.0, "rows_per_s": 1000,
            "stage_peak_mb": peak, "worker_peaks_mb": [], "stopped_at_mb": stopped_at}  # fmt: skip


def test_a_stage_stopped_at_the_ceiling_is_a_lower_bound_and_its_times_are_not_compared() -> None:
    results = [row("local", "prepare", 6300, stopped_at=6200), row("dask", "prepare", 900)]
    results.append(row("dask", "train", 1500))
    text = "\n".join(report(results, rows=5_000_000, cap_mb=1907.0))
    assert "local peak >= 6,300 MiB, stopped at the ceiling of 6,200 MiB = 3.3x" in text
    assert "(meets the >= 3x" in text
    assert "(stopped at the ceiling)" in text
    assert "time: not compared" in text and "time: dask" not in text


@needs_proc
def test_the_watchdog_stops_a_process_past_its_ceiling_and_reports_its_peak(
    tmp_path: Path,
) -> None:
    run = watch([sys.executable, "-c", HOLDS_300_MIB], tmp_path / "log", ceiling_mb=150)
    assert run.stopped
    assert run.peak_mb >= 150
    assert run.seconds < 30  # stopped, not waited for


@needs_proc
def test_the_watchdog_lets_a_process_under_its_ceiling_finish(tmp_path: Path) -> None:
    log = tmp_path / "log"
    run = watch([sys.executable, "-c", "print('done')"], log, ceiling_mb=10_000)
    assert not run.stopped and run.returncode == 0
    assert 0 < run.peak_mb < 10_000
    assert log.read_text() == "done\n"


@needs_proc
def test_rss_is_read_from_proc_and_zero_for_a_process_that_is_gone() -> None:
    import os

    assert rss_mb(os.getpid()) > 1
    assert rss_mb(2**22 + 7) == 0.0  # above Linux's pid_max default: no such process
