"""The database goes away in the middle of a load: nothing lost, nothing twice."""

from __future__ import annotations

import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import vividly_trace
from tests.sql.sql_helpers import statistics_mismatches
from vividly_trace import log_prompt_execution
from vividly_trace.sinks.sql import SQLSink


def _load(ids: list[str], stop: threading.Event, worker: int, pause: float) -> None:
    n = 0
    while not stop.is_set():
        got = log_prompt_execution(
            f"outage_{worker % 2}",
            n % 5 != 0,
            10.0 + n % 90,
            100 + n,
            n % 40,
            Decimal(n % 100) / Decimal(10**5),
            metadata={"worker": worker, "n": n},
        )
        assert got is not None
        ids.append(got)
        n += 1
        time.sleep(pause)


def _wait_until_stored(engine: sa.Engine, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        try:
            with engine.connect() as conn:
                count = int(
                    conn.execute(sa.text("SELECT count(*) FROM prompt_executions")).scalar_one()
                )
        except sa.exc.OperationalError:
            count = -1
        stats = vividly_trace.stats()["sinks"]["sql"]
        if count >= expected and not stats["spool_pending"]:
            break
        time.sleep(0.25)
    return count


def _check(engine: sa.Engine, ids: list[str]) -> None:
    with engine.connect() as conn:
        rows, distinct = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT id) FROM prompt_executions")
        ).one()
        stored = {r[0] for r in conn.execute(sa.text("SELECT id FROM prompt_executions"))}
    assert (rows, distinct) == (len(ids), len(ids))
    assert stored == set(ids)
    assert statistics_mismatches(engine) == []


@pytest.mark.postgres
def test_postgresql_killed_mid_load_and_restarted_10s_later(tmp_path: Path) -> None:
    """PostgreSQL crashes (pg_ctl -m immediate) during a load and comes back 10 s later:
    the failed batches go to the spool and are replayed; every record arrives exactly once."""
    from vividly_trace.testing.postgres import PostgresServer

    server = PostgresServer(tmp_path / "pg").start()
    try:
        url = server.create_database()
        vividly_trace.configure(
            sinks=[SQLSink(url, connect_timeout=2)],
            batch_size=200,
            flush_interval=0.1,
            max_retries=2,
            retry_backoff=0.05,
            spool_dir=tmp_path / "spool",
        )
        ids: list[list[str]] = [[] for _ in range(4)]
        stop = threading.Event()
        threads = [threading.Thread(target=_load, args=(ids[w], stop, w, 0.008)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        server.kill()
        time.sleep(10)
        server.start()
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join()
        all_ids = [i for chunk in ids for i in chunk]
        assert vividly_trace.flush(timeout=60)
        engine = sa.create_engine(url)
        _wait_until_stored(engine, len(all_ids), timeout=60)
        stats = vividly_trace.stats()["sinks"]["sql"]
        assert stats["failed_batches"] > 0
        assert stats["spooled"] > 0, "the outage should have sent batches to the spool"
        assert stats["replayed"] == stats["spooled"]
        assert stats["dropped"] == {}
        assert not stats["spool_pending"]
        assert stats["written"] == len(all_ids)
        _check(engine, all_ids)
        engine.dispose()
    finally:
        vividly_trace.shutdown(timeout=5)
        server.remove()


def test_locked_sqlite_file_spools_then_replays(tmp_path: Path) -> None:
    """SQLite locked by another writer longer than the busy timeout: batches are spooled,
    then replayed once the lock is gone; no record is lost or doubled."""
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}"
    vividly_trace.configure(
        sinks=[SQLSink(url, busy_timeout=0.05)],
        batch_size=50,
        flush_interval=0.05,
        max_retries=1,
        retry_backoff=0.01,
        spool_dir=tmp_path / "spool",
    )
    first = [log_prompt_execution("before", True, 1.0) for _ in range(20)]
    assert vividly_trace.flush(timeout=30)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    during = [log_prompt_execution("during", i % 2 == 0, 2.0, 10, 5) for i in range(120)]
    assert vividly_trace.flush(timeout=30)
    stats = vividly_trace.stats()["sinks"]["sql"]
    assert stats["spooled"] == 120 and stats["spool_pending"]
    blocker.execute("ROLLBACK")
    blocker.close()
    after = [log_prompt_execution("after", True, 3.0) for _ in range(10)]
    assert vividly_trace.flush(timeout=30)
    engine = sa.create_engine(url)
    _wait_until_stored(engine, 150, timeout=30)
    ids = [i for i in first + during + after if i is not None]
    assert len(ids) == 150
    _check(engine, ids)
    stats = vividly_trace.stats()["sinks"]["sql"]
    assert (stats["replayed"], stats["written"], stats["dropped"]) == (120, 150, {})
    engine.dispose()
