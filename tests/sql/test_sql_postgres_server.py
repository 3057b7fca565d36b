"""The throwaway PostgreSQL server the SQL tests (and others) run against."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vividly_trace.testing.postgres import PostgresServer

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg")


def _select_one(url: str, timeout: int = 5) -> int:
    with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=timeout) as conn:
        return int(conn.execute("SELECT 1").fetchone()[0])


def test_lifecycle_pause_kill_and_adoption(tmp_path: Path) -> None:
    """start, create_database, pause/resume, kill + start (same port, data kept), and a
    second object on the same directory that finds and stops the running server."""
    server = PostgresServer(tmp_path / "pg").start()
    try:
        url = server.create_database("lifecycle_db")
        assert url == f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/lifecycle_db"
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        assert (server.data_dir / "PG_VERSION").exists()
        if os.geteuid() == 0:
            assert server.data_dir.owner() == "postgres"
        server.pause()
        with pytest.raises(psycopg.OperationalError):
            _select_one(url, timeout=1)
        server.resume()
        assert _select_one(url) == 1
        port = server.port
        server.kill()
        assert not server.is_running()
        with pytest.raises(psycopg.OperationalError):
            _select_one(url)
        server.start()
        assert server.port == port
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
        other = PostgresServer(tmp_path / "pg", port=port)
        assert other.data_dir == server.data_dir and other.is_running()
        other.stop()
        assert not server.is_running()
    finally:
        server.remove()
    assert not server.data_dir.exists()
