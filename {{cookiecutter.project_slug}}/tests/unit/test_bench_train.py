"""``bench-train``'s data set and verdicts (the benchmark itself is `make bench-train`)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds

from {{ cookiecutter.package_name }}.bench_train import report, write_lake


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
