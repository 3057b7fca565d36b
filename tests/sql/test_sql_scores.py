"""Scores into the SQL store: kinds of value, the latest value winning, scores before their
execution's row, during a database outage and replayed from the spool, bad arguments."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import vividly_trace
from vividly_trace import get_current_call, log_prompt_execution, logged_prompt, score
from vividly_trace.sinks import JSONLinesSink, SQLSink


def stored_scores(url: str) -> list[tuple[Any, ...]]:
    """Every ``prompt_scores`` row, as (execution, name, source, number, text, type, comment)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    sa.text(
                        "SELECT execution_id, name, source, value_number, value_text, "
                        "data_type, comment FROM prompt_scores "
                        "ORDER BY execution_id, name, source"
                    )
                )
            ]
    finally:
        engine.dispose()


def execution_ids(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.text("SELECT id FROM prompt_executions"))}
    finally:
        engine.dispose()


def test_numbers_booleans_and_categories_are_stored(db_url: str) -> None:
    """One execution scored three ways, by two sources: each value in its column."""
    vividly_trace.configure(sinks=[SQLSink(db_url)], spool_dir=False)
    eid = log_prompt_execution("support_reply", True, 120.0)
    assert eid is not None
    assert score(eid, "helpfulness", 4) is True
    assert score(eid, "thumbs_up", False, comment="wrong order number") is True
    assert score(eid, "tone", "friendly", source="llm_judge") is True
    assert vividly_trace.flush(timeout=30)
    assert stored_scores(db_url) == [
        (eid, "helpfulness", "user", 4.0, None, "numeric", None),
        (eid, "thumbs_up", "user", 0.0, None, "boolean", "wrong order number"),
        (eid, "tone", "llm_judge", None, "friendly", "categorical", None),
    ]
    assert vividly_trace.stats()["scores"]["written"] == 3


def test_the_latest_value_wins_within_and_across_batches(db_url: str) -> None:
    """The same execution, name and source scored again: one row, the last value."""
    vividly_trace.configure(sinks=[SQLSink(db_url)], spool_dir=False)
    eid = log_prompt_execution("support_reply", True, 80.0)
    assert eid is not None
    for value in (1, 2, 3):  # one batch
        score(eid, "stars", value)
    score(eid, "stars", 5, source="reviewer")  # another source: a row of its own
    assert vividly_trace.flush(timeout=30)
    score(eid, "stars", 2, comment="changed my mind")  # a later batch
    assert vividly_trace.flush(timeout=30)
    assert stored_scores(db_url) == [
        (eid, "stars", "reviewer", 5.0, None, "numeric", None),
        (eid, "stars", "user", 2.0, None, "numeric", "changed my mind"),
    ]


def test_a_score_given_inside_the_call_arrives_before_its_execution(db_url: str) -> None:
    """``call.score`` while the call still runs: the score's row is written first (no
    execution row yet) and kept; the execution's row follows with the same id."""
    vividly_trace.configure(sinks=[SQLSink(db_url)], spool_dir=False)
    with logged_prompt("classifier") as call:
        assert call.score("confidence", 0.25) is True
        assert vividly_trace.flush(timeout=30)
        assert execution_ids(db_url) == set()
        assert [r[:4] for r in stored_scores(db_url)] == [
            (call.execution_id, "confidence", "user", 0.25)
        ]
        call.set_usage(input_tokens=10, output_tokens=2)
    assert vividly_trace.flush(timeout=30)
    assert execution_ids(db_url) == {call.execution_id}
    assert len(stored_scores(db_url)) == 1


def test_a_decorated_function_scores_its_own_execution(db_url: str) -> None:
    """Inside a decorated function, ``get_current_call()`` is the handle to score with."""
    vividly_trace.configure(sinks=[SQLSink(db_url)], spool_dir=False)

    @logged_prompt("script_generation")
    def generate(topic: str) -> tuple[str, str]:
        call = get_current_call()
        assert call is not None
        call.score("length_ok", len(topic) < 20, source="heuristic")
        return f"a script about {topic}", call.execution_id

    _, eid = generate("otters")
    assert vividly_trace.flush(timeout=30)
    assert execution_ids(db_url) == {eid}
    assert stored_scores(db_url) == [(eid, "length_ok", "heuristic", 1.0, None, "boolean", None)]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("", "stars", 3), {}),
        ((None, "stars", 3), {}),
        (("x" * 65, "stars", 3), {}),
        (("id-1", "", 3), {}),
        (("id-1", 7, 3), {}),
        (("id-1", "stars", float("nan")), {}),
        (("id-1", "stars", float("inf")), {}),
        (("id-1", "stars", None), {}),
        (("id-1", "stars", [1]), {}),
        (("id-1", "stars", "   "), {}),
        (("id-1", "stars", "c" * 201), {}),
        (("id-1", "stars", 3), {"comment": 5}),
        (("id-1", "stars", 3), {"source": ""}),
    ],
)
def test_a_bad_score_is_a_warning_and_a_counted_drop(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, args: tuple[Any, ...], kwargs: Any
) -> None:
    """Never an exception into the caller: False, a warning, ``score_invalid`` counted."""
    vividly_trace.configure(sinks=[SQLSink(sqlite_url)], spool_dir=False)
    with caplog.at_level(logging.WARNING, logger="vividly_trace"):
        assert score(*args, **kwargs) is False
    assert any("score dropped" in r.getMessage() for r in caplog.records)
    assert vividly_trace.flush(timeout=30)
    assert vividly_trace.stats()["dropped"] == {"score_invalid": 1}
    assert vividly_trace.stats()["scores"]["enqueued"] == 0


def test_sinks_without_scores_ignore_them(tmp_path: Path) -> None:
    """JSON lines stores no scores: ``score`` says so (False) and the file holds records only."""
    path = tmp_path / "records.jsonl"
    vividly_trace.configure(sinks=[JSONLinesSink(path)], spool_dir=False)
    eid = log_prompt_execution("t", True, 1.0)
    assert eid is not None
    assert score(eid, "stars", 3) is False
    assert vividly_trace.flush(timeout=30)
    assert len(path.read_text().splitlines()) == 1
    assert vividly_trace.stats()["dropped"] == {}


def test_before_configure_a_score_is_discarded_quietly() -> None:
    """Nothing configured (the environment sets nothing): False, nothing raised."""
    assert score("some-id", "stars", 3) is False
    assert vividly_trace.stats()["mode"] == "disabled"


def test_scores_during_a_locked_sqlite_file_are_spooled_then_replayed(tmp_path: Path) -> None:
    """SQLite locked by another writer: the scores go to their spool and arrive once after;
    an older value replayed after a newer one was written does not overwrite it."""
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    vividly_trace.configure(
        sinks=[SQLSink(url, busy_timeout=0.05)],
        flush_interval=0.05,
        max_retries=1,
        retry_backoff=0.01,
        spool_dir=tmp_path / "spool",
    )
    ids = [log_prompt_execution("t", True, 1.0) for _ in range(30)]
    assert vividly_trace.flush(timeout=30)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    for eid in ids:
        assert score(eid, "stars", 1) is True
    assert vividly_trace.flush(timeout=30)
    stats = vividly_trace.stats()["scores"]["sinks"]["sql.scores"]
    assert stats["spooled"] == 30 and stats["spool_pending"]
    blocker.execute("ROLLBACK")
    blocker.close()
    assert ids[0] is not None
    score(ids[0], "stars", 5)  # newer than the spooled value, written before the replay
    _wait_for_replay()
    rows = stored_scores(url)
    assert len(rows) == 30
    assert {r[0] for r in rows} == set(ids)
    assert dict((r[0], r[3]) for r in rows) == {eid: (5.0 if eid == ids[0] else 1.0) for eid in ids}
    stats = vividly_trace.stats()["scores"]["sinks"]["sql.scores"]
    assert (stats["replayed"], stats["dropped"]) == (30, {})


def _wait_for_replay(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert vividly_trace.flush(timeout=30)
        stats = vividly_trace.stats()["scores"]["sinks"]["sql.scores"]
        if not stats["spool_pending"]:
            return
        time.sleep(0.1)
    raise AssertionError("the spooled scores were not replayed")


@pytest.mark.postgres
def test_scores_survive_a_postgresql_crash_and_arrive_once(tmp_path: Path) -> None:
    """PostgreSQL killed (``-m immediate``) while scores are sent, before their executions
    are written: every score and execution arrives exactly once after the restart."""
    from vividly_trace.testing.postgres import PostgresServer

    server = PostgresServer(tmp_path / "pg").start()
    try:
        url = server.create_database()
        vividly_trace.configure(
            sinks=[SQLSink(url, connect_timeout=2)],
            flush_interval=0.05,
            max_retries=1,
            retry_backoff=0.01,
            spool_dir=tmp_path / "spool",
        )
        assert score("warm-up", "stars", 1) is True
        assert vividly_trace.flush(timeout=30)  # the schema exists now
        server.kill()
        ids = []
        for i in range(40):
            with logged_prompt("crash_test") as call:
                call.score("stars", i % 5)
                call.score("thumbs_up", i % 2 == 0)
            ids.append(call.execution_id)
        assert vividly_trace.flush(timeout=60)
        assert vividly_trace.stats()["scores"]["sinks"]["sql.scores"]["spooled"] == 80
        server.start()
        score("warm-up", "stars", 2)  # a live write: the spool is replayed after it
        _wait_for_replay()
        deadline = time.monotonic() + 60
        while vividly_trace.stats()["sinks"]["sql"]["spool_pending"]:
            assert time.monotonic() < deadline
            vividly_trace.flush(timeout=30)
            log_prompt_execution("nudge", True, 1.0)
            time.sleep(0.2)
        rows = [r for r in stored_scores(url) if r[0] != "warm-up"]
        assert len(rows) == 80
        assert {(r[0], r[1]) for r in rows} == {
            (eid, name) for eid in ids for name in ("stars", "thumbs_up")
        }
        assert execution_ids(url) >= set(ids)
        warm = [r for r in stored_scores(url) if r[0] == "warm-up"]
        assert [r[3] for r in warm] == [2.0]
    finally:
        vividly_trace.shutdown(timeout=5)
        server.remove()


def test_revision_0007_adds_and_drops_the_scores_table(db_url: str) -> None:
    """Upgrading from 0005 creates ``prompt_scores``; downgrading to 0005 drops it."""
    from vividly_trace.sinks.sql import migrate

    engine = sa.create_engine(db_url)
    try:
        assert migrate.upgrade(engine, "0005") == (None, "0005")
        assert not sa.inspect(engine).has_table("prompt_scores")
        assert migrate.upgrade(engine, "0007") == ("0005", "0007")
        assert sa.inspect(engine).has_table("prompt_scores")
        assert migrate.downgrade(engine, "0005") == ("0007", "0005")
        assert not sa.inspect(engine).has_table("prompt_scores")
    finally:
        engine.dispose()


def test_spool_replay_by_hand_sends_the_scores_too(db_url: str, tmp_path: Path) -> None:
    """Scores left in their spool (the process ended during an outage) are sent by
    ``vividly-trace spool replay``; a rerun changes nothing."""
    import datetime as dt
    import subprocess
    import sys

    from vividly_trace import Score
    from vividly_trace._dispatch import ScoreChannel
    from vividly_trace._spool import Spool, destination_key

    spool_dir = tmp_path / "spool"
    channel = ScoreChannel(SQLSink(db_url))
    spool = Spool(spool_dir, channel.name, 1 << 30, key=destination_key(channel))
    at = dt.datetime(2026, 12, 3, 7, 0, tzinfo=dt.timezone.utc)
    kept = [
        Score(f"e{i}", "stars", float(i), "numeric", scored_at=at + dt.timedelta(seconds=i))
        for i in range(5)
    ]
    assert spool.append(kept)
    cli = [sys.executable, "-m", "vividly_trace.cli", "spool", "replay", "--url", db_url]
    cli += ["--spool-dir", str(spool_dir)]
    result = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "replayed 0 records" in result.stdout and "replayed 5 scores" in result.stdout
    assert [(r[0], r[3]) for r in stored_scores(db_url)] == [(f"e{i}", float(i)) for i in range(5)]
    assert not spool.pending()
    again = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert "replayed 0 scores" in again.stdout
    assert len(stored_scores(db_url)) == 5


def test_the_memory_sink_keeps_scores_for_tests() -> None:
    """``MemorySink.scores``: what a user's own test asserts on, with typed values."""
    from vividly_trace.sinks import MemorySink

    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    with logged_prompt("nlu") as call:
        call.score("valid_json", True, source="parser")
    assert score(call.execution_id, "stars", 4, comment="ok") is True
    assert vividly_trace.flush(timeout=10)
    assert [(s.name, s.value, s.data_type, s.source, s.comment) for s in sink.scores] == [
        ("valid_json", True, "boolean", "parser", None),
        ("stars", 4.0, "numeric", "user", "ok"),
    ]
    assert {s.execution_id for s in sink.scores} == {r.execution_id for r in sink.records}
    sink.clear()
    assert sink.scores == []
