"""The SQL data source against the real PostgreSQL server on localhost.

The checks are in tests/sql_source_support.py, shared by every SQL engine.
"""

from __future__ import annotations

import os

import pytest

from sql_source_support import SqlSourceChecks

pytestmark = pytest.mark.integration


class TestPostgresSource(SqlSourceChecks):
    server = "PostgreSQL"
    url = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
