"""The checks every SQL data source passes, against a real server on localhost.

Seeds a table with rows made from params.yaml's contract (loaded as `seed-db` loads a frame),
reads it back through the loader with DATA_URL, and checks it cleans to exactly what the CSV
source gives; then runs `prepare` on it, streamed in chunks smaller than the table.
``tests/integration/test_sql_source_<engine>.py`` runs them for the project's engine by
subclassing ``SqlSourceChecks`` with the server's name and URL. Skipped, with the reason, only
when no server answers at the URL (`TEST_DATABASE_URL` overrides it; the tests never read
DATA_URL, so they never touch a real data source).
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.config import read_split
from {{ cookiecutter.package_name }}.data.cleaning import clean_frame
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.data.sample import sample
from {{ cookiecutter.package_name }}.data.seed_db import seed
from {{ cookiecutter.package_name }}.data.sources import DataSourceError, iter_raw, load_raw, read_csv
from {{ cookiecutter.package_name }}.pipeline.splits import SPLITS

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
CONTRACT = Contract.from_params({**PARAMS["contract"], "min_rows": 100})
ROWS = 600
CHUNK = 64  # rows per chunk when the table is streamed: ROWS is several chunks


class SqlSourceChecks:
    """Subclass with ``server`` (a name for messages) and ``url`` (the test database)."""

    server: str
    url: str

    @pytest.fixture(scope="class")
    @classmethod
    def table(cls) -> Iterator[str]:
        """A freshly seeded table, shared by the class's tests and dropped after them."""
        engine = sa.create_engine(cls.url)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            pytest.skip(f"no {cls.server} server answers at {cls.url}: {exc.orig}")
        name = f"transactions_{uuid.uuid4().hex[:8]}"
        seed(sample(CONTRACT, ROWS, seed=5), name, cls.url)
        yield name
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()

    def test_sql_source_cleans_like_the_csv_source(
        self, table: str, tmp_path: Path, monkeypatch
    ) -> None:
        monkeypatch.setenv("DATA_URL", self.url)
        from_sql = load_raw("sql", CONTRACT, table=table)
        sample(CONTRACT, ROWS, seed=5).to_csv(tmp_path / "t.csv", index=False)
        from_csv = read_csv(tmp_path / "t.csv", CONTRACT)
        assert len(from_sql) == ROWS
        if CONTRACT.id:
            assert from_sql[CONTRACT.id].tolist() == from_csv[CONTRACT.id].tolist()
        pd.testing.assert_frame_equal(
            clean_frame(from_sql, CONTRACT), clean_frame(from_csv, CONTRACT), check_dtype=False
        )

    def test_prepare_streams_the_table_in_chunks_to_the_same_splits(
        self, table: str, tmp_path: Path, monkeypatch
    ) -> None:
        """A table larger than a chunk streams through the server-side cursor, CHUNK rows at a
        time, and gives byte for byte the splits of reading it in one chunk."""
        monkeypatch.setenv("DATA_URL", self.url)
        chunks = list(iter_raw("sql", CONTRACT, table=table, chunk_rows=CHUNK))
        assert [len(chunk) for chunk in chunks] == [CHUNK] * (ROWS // CHUNK) + [ROWS % CHUNK]
        splits = {}
        for chunk_rows in (CHUNK, 10 * ROWS):
            root = tmp_path / str(chunk_rows)
            data = {**PARAMS["data"], "source": "sql", "table": table, "chunk_rows": chunk_rows}
            params = {**PARAMS, "data": data, "contract": {**PARAMS["contract"], "min_rows": 100}}
            root.mkdir()
            (root / "params.yaml").write_text(yaml.safe_dump(params))
            assert cli.main(["prepare", "--root", str(root)]) == 0
            splits[chunk_rows] = [
                (root / params["paths"][f"{name}_split"]).read_bytes() for name in SPLITS
            ]
            labels = CONTRACT.label_columns()
            sizes = [len(read_split(root / params["paths"][f"{n}_split"], labels)) for n in SPLITS]
            assert sum(sizes) == ROWS
        assert splits[CHUNK] == splits[10 * ROWS]

    @pytest.mark.skipif(
        importlib.util.find_spec("distributed") is None, reason="the dask group is not installed"
    )
    def test_the_dask_engine_reads_the_table_in_id_ranges_to_the_same_splits(
        self, table: str, tmp_path: Path, monkeypatch
    ) -> None:
        from distributed import LocalCluster

        if not CONTRACT.id:
            pytest.skip("engine: dask reads a table in ranges of its id, and the contract has none")
        monkeypatch.setenv("DATA_URL", self.url)
        data = {**PARAMS["data"], "source": "sql", "table": table}
        params = {**PARAMS, "data": data, "contract": {**PARAMS["contract"], "min_rows": 100}}
        splits = {}
        in_process = {"processes": False, "dashboard_address": ":0"}
        with LocalCluster(n_workers=2, threads_per_worker=1, **in_process) as cluster:
            dask = {**PARAMS["dask"], "scheduler": cluster.scheduler_address, "partition_rows": 200}
            for engine in ("local", "dask"):
                root = tmp_path / engine
                root.mkdir()
                run = {**params, "engine": engine, "dask": dask}
                (root / "params.yaml").write_text(yaml.safe_dump(run))
                assert cli.main(["prepare", "--root", str(root)]) == 0
                labels = CONTRACT.label_columns()
                splits[engine] = {
                    n: read_split(root / params["paths"][f"{n}_split"], labels) for n in SPLITS
                }
        for name in SPLITS:
            frame = splits["dask"][name].sort_values(CONTRACT.id).reset_index(drop=True)
            pd.testing.assert_frame_equal(frame, splits["local"][name])

    def test_missing_table_and_missing_url_are_clear_errors(self, table: str, monkeypatch) -> None:
        monkeypatch.setenv("DATA_URL", self.url)
        with pytest.raises(DataSourceError, match="table 'no_such_table' not found"):
            load_raw("sql", CONTRACT, table="no_such_table")
        monkeypatch.delenv("DATA_URL")
        with pytest.raises(DataSourceError, match="DATA_URL is not set"):
            load_raw("sql", CONTRACT, table=table)
