"""Many threads in several processes writing into one database."""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import vividly_trace
from tests.factories import make_record
from tests.sql.sql_helpers import forked_child, load_process, statistics_mismatches
from vividly_trace import log_prompt_execution
from vividly_trace.sinks.sql import SQLSink


def _run_load(url: str, tmp_path: Path, processes: int, threads: int, total: int) -> list[str]:
    per_thread = total // (processes * threads)
    assert per_thread * processes * threads == total
    ctx = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"proc{p}.json" for p in range(processes)]
    procs = [
        ctx.Process(target=load_process, args=(url, p, threads, per_thread, str(outs[p])))
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(180)
    assert [proc.exitcode for proc in procs] == [0] * processes
    ids: list[str] = []
    for out in outs:
        result = json.loads(out.read_text())
        sink = result["stats"]["sinks"]["sql"]
        assert result["flushed"] is True
        assert result["stats"]["dropped"] == {}
        assert sink["written"] == total // processes
        ids.extend(result["ids"])
    return ids


def _check_store(url: str, ids: list[str], total: int, templates: int = 13) -> None:
    assert len(ids) == total and len(set(ids)) == total
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows, distinct = conn.execute(
                sa.text("SELECT count(*), count(DISTINCT id) FROM prompt_executions")
            ).one()
            stored = {r[0] for r in conn.execute(sa.text("SELECT id FROM prompt_executions"))}
            stored_templates = conn.execute(
                sa.text("SELECT count(*), sum(total_executions) FROM prompt_templates")
            ).one()
        assert (rows, distinct) == (total, total)
        assert stored == set(ids)
        # 3 keys x 2 versions x 2 groups, plus the decorated function's template.
        assert (stored_templates[0], int(stored_templates[1])) == (templates, total)
        assert statistics_mismatches(engine) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_8_threads_in_4_processes_write_20000_records_to_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    """4 processes x 8 threads, 20000 records into one PostgreSQL: 20000 rows, unique ids,
    statistics equal to the raw aggregates."""
    ids = _run_load(postgres_url, tmp_path, processes=4, threads=8, total=20_000)
    _check_store(postgres_url, ids, 20_000)


def test_concurrent_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    """4 processes x 4 threads on one SQLite file (WAL, busy timeout): nothing lost or
    doubled, statistics equal to the aggregates."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ids = _run_load(url, tmp_path, processes=4, threads=4, total=4_000)
    _check_store(url, ids, 4_000)


@pytest.mark.postgres
def test_forked_children_do_not_share_the_parents_connections(
    postgres_url: str, tmp_path: Path
) -> None:
    """A pre-fork server: the parent wrote (its pool holds a connection), then forks
    children that log at the same time as the parent; every record arrives once."""
    vividly_trace.configure(
        sinks=[SQLSink(postgres_url)], flush_interval=0.05, spool_dir=tmp_path / "spool"
    )
    parent_ids = [log_prompt_execution("parent", True, 1.0) for _ in range(20)]
    assert vividly_trace.flush(timeout=30)
    ctx = multiprocessing.get_context("fork")
    outs = [tmp_path / f"child{i}.json" for i in range(3)]
    children = [ctx.Process(target=forked_child, args=(str(out), 300)) for out in outs]
    for child in children:
        child.start()
    parent_ids += [log_prompt_execution("parent", True, 1.0) for _ in range(300)]
    for child in children:
        child.join(120)
    assert [c.exitcode for c in children] == [0, 0, 0]
    assert vividly_trace.flush(timeout=60)
    assert vividly_trace.stats()["sinks"]["sql"]["failed_batches"] == 0
    ids = list(parent_ids)
    for out in outs:
        result = json.loads(out.read_text())
        assert result["flushed"] is True
        assert result["stats"]["sinks"]["sql"]["failed_batches"] == 0
        ids += result["ids"]
    _check_store(postgres_url, ids, len(ids), templates=2)


@pytest.mark.postgres
def test_concurrent_updates_and_inserts_do_not_deadlock_on_postgresql(postgres_url: str) -> None:
    """UPDATE statements spanning every template (as reprice or a hand edit runs them) at the
    same time as sink batches: the statistics triggers lock template rows in id order, so
    nobody deadlocks, and the statistics still equal the aggregates."""
    keys = [f"c{i}" for i in range(8)]
    SQLSink(postgres_url).write_batch(
        [
            make_record(k, input_token_count=1, output_token_count=1, cost_usd=Decimal("0.001"))
            for k in keys
            for _ in range(20)
        ]
    )
    engine = sa.create_engine(postgres_url)
    errors: list[str] = []
    stop = time.monotonic() + 5

    def updater(part: int) -> None:
        # Disjoint rows per thread: only the template rows are contended.
        statement = sa.text(
            "UPDATE prompt_executions SET response_time_ms = response_time_ms + 1, "
            "cost_usd = cost_usd + 0.001 WHERE mod(abs(hashtext(id)), 4) = :part "
            "AND mod(abs(hashtext(id || :salt)), 3) = 0"
        )
        rnd = random.Random(part)
        while time.monotonic() < stop:
            try:
                with engine.begin() as conn:
                    conn.execute(statement, {"part": part, "salt": str(rnd.random())})
            except Exception as exc:
                errors.append(str(exc)[:200])

    def writer(seed: int) -> None:
        sink = SQLSink(postgres_url)
        rnd = random.Random(seed)
        while time.monotonic() < stop:
            order = rnd.sample(keys, len(keys))
            try:
                sink.write_batch(
                    [make_record(k, input_token_count=1, cost_usd=Decimal("0.002")) for k in order]
                )
            except Exception as exc:
                errors.append(str(exc)[:200])
        sink.close()

    threads = [threading.Thread(target=updater, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert statistics_mismatches(engine) == []
    engine.dispose()
