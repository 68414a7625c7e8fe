"""The SQL data source against the real MySQL/MariaDB server on localhost.

The checks are in tests/sql_source_support.py, shared by every SQL engine.
"""

from __future__ import annotations

import os

import pytest

from sql_source_support import SqlSourceChecks

pytestmark = pytest.mark.integration


class TestMysqlSource(SqlSourceChecks):
    server = "MySQL/MariaDB"
    url = os.environ.get("TEST_DATABASE_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
