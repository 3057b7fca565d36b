"""Fixtures of the dashboard tests: a filled store on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.analytics.conftest import new_pg_database
from tests.dashboard.dashboard_data import fill_store

pytest.importorskip("google.genai")
pytest.importorskip("starlette")


@pytest.fixture(
    name="store", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def _store(request: pytest.FixtureRequest, tmp_path: Path, gemini: Any, client: Any) -> str:
    """A fresh store filled by :func:`fill_store`."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = new_pg_database(request.getfixturevalue("postgres_server"))
    fill_store(url, gemini, client)
    return url
