"""Fixtures of the SQL store tests: a database URL per engine (SQLite file, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(
    name="db_url",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def _db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a new database on the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(name="sqlite_url")
def _sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL in the test's directory (the file does not exist yet)."""
    return f"sqlite:///{tmp_path / 'store.db'}"
