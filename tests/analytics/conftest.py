"""Fixtures of the analytics tests: the seeded data set in SQLite and in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.analytics.analytics_data import make_records
from tests.sql.sql_helpers import write_records
from vividly_trace import PromptExecution
from vividly_trace.testing.postgres import create_database


def new_pg_database(server: object) -> str:
    """A fresh database on the test PostgreSQL (a server fixture or a server URL)."""
    return create_database(server, "analytics")  # type: ignore[arg-type]


def far_timezone(url: str, zone: str = "Pacific/Auckland") -> None:
    """Make the database's sessions use a time zone far from UTC (UTC days must not move)."""
    import sqlalchemy as sa

    database = sa.engine.make_url(url).database
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"ALTER DATABASE \"{database}\" SET timezone TO '{zone}'")
    engine.dispose()


@pytest.fixture(name="dataset", scope="session")
def _dataset() -> list[PromptExecution]:
    """The seeded records."""
    return make_records()


@pytest.fixture(name="sqlite_store", scope="session")
def _sqlite_store(dataset: list[PromptExecution], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The data set in a SQLite file."""
    url = f"sqlite:///{tmp_path_factory.mktemp('analytics') / 'store.db'}"
    write_records(url, dataset)
    return url


@pytest.fixture(name="pg_store", scope="session")
def _pg_store(dataset: list[PromptExecution], request: pytest.FixtureRequest) -> str:
    """The data set in PostgreSQL, whose sessions run in Pacific/Auckland time."""
    url = new_pg_database(request.getfixturevalue("postgres_server"))
    far_timezone(url)
    write_records(url, dataset)
    return url


@pytest.fixture(
    name="store",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def _store(request: pytest.FixtureRequest) -> Iterator[str]:
    """The data set, once per engine."""
    yield str(request.getfixturevalue("sqlite_store" if request.param == "sqlite" else "pg_store"))


@pytest.fixture(
    name="fresh_url",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def _fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database per test (for tests that write)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return new_pg_database(request.getfixturevalue("postgres_server"))
