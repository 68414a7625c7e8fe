"""The checks every SQL data source passes, against a real server on localhost.

Seeds a table with rows made from params.yaml's contract (loaded as `seed-db` loads a frame),
reads it back through the loader with DATA_URL, and checks it cleans to exactly what the CSV
source gives; then runs `prepare` on it.
``tests/integration/test_sql_source_<engine>.py`` runs them for the project's engine by
subclassing ``SqlSourceChecks`` with the server's name and URL. Skipped, with the reason, only
when no server answers at the URL (`TEST_DATABASE_URL` overrides it; the tests never read
DATA_URL, so they never touch a real data source).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.data.cleaning import clean_frame
from {{ cookiecutter.package_name }}.data.contract import Contract
from {{ cookiecutter.package_name }}.data.sample import sample
from {{ cookiecutter.package_name }}.data.seed_db import seed
from {{ cookiecutter.package_name }}.data.sources import DataSourceError, load_raw, read_csv

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
CONTRACT = Contract.from_params({**PARAMS["contract"], "min_rows": 100})
ROWS = 600


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

    def test_prepare_stage_reads_the_table(self, table: str, tmp_path: Path, monkeypatch) -> None:
        monkeypatch.setenv("DATA_URL", self.url)
        params = {**PARAMS, "data": {**PARAMS["data"], "source": "sql", "table": table}}
        params["contract"] = {**PARAMS["contract"], "min_rows": 100}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        assert cli.main(["prepare", "--root", str(tmp_path)]) == 0
        sizes = [
            len(pd.read_csv(tmp_path / "data" / "prepared" / f"{s}.csv"))
            for s in ("train", "valid", "test")
        ]
        assert sum(sizes) == ROWS

    def test_missing_table_and_missing_url_are_clear_errors(self, table: str, monkeypatch) -> None:
        monkeypatch.setenv("DATA_URL", self.url)
        with pytest.raises(DataSourceError, match="table 'no_such_table' not found"):
            load_raw("sql", CONTRACT, table="no_such_table")
        monkeypatch.delenv("DATA_URL")
        with pytest.raises(DataSourceError, match="DATA_URL is not set"):
            load_raw("sql", CONTRACT, table=table)
