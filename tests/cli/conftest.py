"""Fixtures of the command-line tests: a store with recent executions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.cli.cli_helpers import UTC, make_records
from tests.sql.sql_helpers import write_records


@pytest.fixture(name="store_url")
def _store_url(tmp_path: Path) -> str:
    """A SQLite store with 400 recent executions."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    write_records(url, make_records(400, dt.datetime.now(UTC) - dt.timedelta(minutes=5)))
    return url
