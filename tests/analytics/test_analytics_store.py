"""Opening the store: URLs, engines, and the errors a person can act on."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from vividly_trace.analytics import (
    StoreError,
    StoreSchemaError,
    StoreUnavailableError,
    StoreURLError,
    cost_by_day,
    hide_password,
    success_rates,
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestStoreErrors:
    @pytest.mark.parametrize(
        ("url", "match"),
        [
            ("not a url", "not a database URL"),
            ("foo://x", "not 'foo'"),
            ("mysql://u:s3cr3t-pw@h/d", "SQLite or PostgreSQL"),
            ("postgresql+nodriver://u:s3cr3t-pw@h/d", "unknown database driver"),
        ],
    )
    def test_bad_urls(self, url: str, match: str) -> None:
        """A malformed URL or an unsupported database: StoreURLError, password hidden."""
        with pytest.raises(StoreURLError, match=match) as info:
            cost_by_day(url)
        assert "s3cr3t-pw" not in str(info.value)
        assert "\n" not in str(info.value)

    def test_missing_sqlite_file_is_not_created(self, tmp_path: Path) -> None:
        """Reading a SQLite file that does not exist fails and creates nothing."""
        path = tmp_path / "nope.db"
        with pytest.raises(StoreUnavailableError, match="no SQLite database"):
            cost_by_day(f"sqlite:///{path}")
        assert not path.exists()

    def test_empty_sqlite_file(self, tmp_path: Path) -> None:
        """A database without the tables says how to create them."""
        path = tmp_path / "empty.db"
        path.touch()
        with pytest.raises(StoreSchemaError, match="vividly-trace db upgrade"):
            success_rates(f"sqlite:///{path}")

    def test_unreachable_postgres_hides_the_password(self) -> None:
        """A refused connection: StoreUnavailableError, one line, no password."""
        url = f"postgresql+psycopg://bob:s3cr3t-pw@127.0.0.1:{closed_port()}/app"
        with pytest.raises(StoreUnavailableError, match="cannot connect") as info:
            cost_by_day(url)
        assert "s3cr3t-pw" not in str(info.value) and "bob:***@" in str(info.value)
        assert "\n" not in str(info.value)

    @pytest.mark.postgres
    def test_empty_postgres_database(self, postgres_url: str) -> None:
        """A PostgreSQL database without the tables."""
        with pytest.raises(StoreSchemaError, match="no 'prompt_templates'"):
            cost_by_day(postgres_url)

    def test_all_are_store_errors(self) -> None:
        """One base class to catch."""
        for cls in (StoreURLError, StoreUnavailableError, StoreSchemaError):
            assert issubclass(cls, StoreError)

    def test_hide_password(self) -> None:
        """Parsed or not, the password never shows."""
        assert hide_password("postgresql://u:pw@h/d") == "postgresql://u:***@h/d"
        assert "pw" not in hide_password("weird://u:pw@h:notaport/d")


class TestEngines:
    def test_an_engine_is_used_and_left_open(self, sqlite_store: str) -> None:
        """An Engine works as the source and is not disposed of."""
        engine = sa.create_engine(sqlite_store)
        try:
            first = success_rates(engine)
            assert first == success_rates(engine)
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        finally:
            engine.dispose()

    def test_postgres_urls_without_driver(self) -> None:
        """postgres:// and postgresql:// mean psycopg 3 (the one installed)."""
        url = f"postgres://u@127.0.0.1:{closed_port()}/x"
        with pytest.raises(StoreUnavailableError, match=r"postgresql\+psycopg://"):
            cost_by_day(url)
