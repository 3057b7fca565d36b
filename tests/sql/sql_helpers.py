"""Helpers shared by the SQL store tests, and by the CLI and analytics tests that write a
store (records: ``tests.factories``)."""

from __future__ import annotations

import datetime as dt
import math
import socket
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from vividly_trace import PromptExecution
from vividly_trace.sinks.sql import migrate

UTC = dt.timezone.utc


def write_records(url: str, records: Sequence[PromptExecution], batch_size: int = 100) -> None:
    """Write ``records`` through the real SQL sink (migrations, statistics triggers), in
    batches of ``batch_size``, and close it."""
    from vividly_trace.sinks.sql import SQLSink

    sink = SQLSink(url)
    try:
        for i in range(0, len(records), batch_size):
            sink.write_batch(list(records[i : i + batch_size]))
    finally:
        sink.close()


def count_rows(engine: sa.Engine, table: str = "prompt_executions") -> int:
    """Rows in ``table``."""
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (float, Decimal)) or isinstance(b, (float, Decimal)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def statistics_mismatches(engine: sa.Engine) -> list[str]:
    """Differences between the trigger-kept statistics and the raw aggregates (empty = equal).

    Counts and token sums must be equal; money is compared exactly (on SQLite before
    revision 0012 as floats); the response-time sum and average within 1e-9 relative.
    """
    stat_cols = (
        "total_executions",
        "successful_executions",
        "failed_executions",
        "total_input_tokens",
        "total_output_tokens",
        "total_tokens",
        "total_cost_usd",
        "total_response_time_ms",
        "avg_response_time_ms",
        "first_executed_at",
        "last_executed_at",
    )
    with engine.connect() as conn:
        stats = {
            row[0]: row[1:]
            for row in conn.execute(
                sa.text(f"SELECT id, {', '.join(stat_cols)} FROM prompt_templates")
            )
        }
        aggregates = {
            row[0]: row[1:]
            for row in conn.execute(
                sa.text(
                    """
                    SELECT template_id, count(*),
                           sum(CASE WHEN success THEN 1 ELSE 0 END),
                           sum(CASE WHEN success THEN 0 ELSE 1 END),
                           coalesce(sum(input_token_count), 0),
                           coalesce(sum(output_token_count), 0),
                           coalesce(sum(total_token_count), 0),
                           coalesce(sum(cost_usd), 0),
                           sum(response_time_ms), avg(response_time_ms),
                           min(executed_at), max(executed_at)
                      FROM prompt_executions GROUP BY template_id
                    """
                )
            )
        }
        # SQLite: integer pico-dollars from revision 0012 on, doubles before.
        exact_money = (
            conn.dialect.name == "postgresql"
            or migrate.current_revision(conn) == migrate.SCHEMA_REVISION
        )
    problems = []
    for tid, values in stats.items():
        expected = aggregates.get(tid, (0, 0, 0, 0, 0, 0, 0, 0, None, None, None))
        for name, got, want in zip(stat_cols, values, expected, strict=True):
            if name == "total_cost_usd" and exact_money:
                ok = Decimal(got) == Decimal(want)
            else:
                ok = _same(got, want)
            if not ok:
                problems.append(f"template {tid}: {name} = {got!r}, aggregates say {want!r}")
    for tid in set(aggregates) - set(stats):
        problems.append(f"executions point to missing template {tid}")
    return problems


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TEMPLATE_KEYS = ("nlu_extraction", "clarification", "script_generation")


def load_process(url: str, proc: int, threads: int, per_thread: int, out_path: str) -> None:
    """Body of one writer process: configure a SQLSink, log from ``threads`` threads in the
    three public ways, flush, and write the ids and this process's stats to ``out_path``."""
    import json as _json
    import threading

    import vividly_trace
    from vividly_trace import log_prompt_execution, logged_prompt
    from vividly_trace.sinks.sql import SQLSink

    vividly_trace.configure(sinks=[SQLSink(url)], batch_size=200, flush_interval=0.2)

    @logged_prompt("decorated_task", version="v1", ab_group="B", model="gemini-2.5-flash")
    def decorated(i: int) -> str:
        call = vividly_trace.get_current_call()
        assert call is not None
        call.set_usage(input_tokens=10 + i % 50, output_tokens=i % 20)
        if i % 11 == 0:
            raise ValueError(f"failure {i} {call.execution_id}")
        return call.execution_id

    ids: list[list[str]] = [[] for _ in range(threads)]

    def worker(t: int) -> None:
        mine = ids[t]
        for i in range(per_thread):
            n = (proc * threads + t) * per_thread + i
            key = TEMPLATE_KEYS[n % 3]
            version, group = f"v{n % 2 + 1}", "AB"[n // 2 % 2]
            form = i % 3
            if form == 0:
                got = log_prompt_execution(
                    key,
                    n % 9 != 0,
                    5.0 + n % 400,
                    100 + n % 1000,
                    n % 300,
                    Decimal(n % 1000) / Decimal(10**6),
                    None if n % 9 else "boom",
                    {"n": n, "proc": proc},
                    template_version=version,
                    ab_test_group=group,
                )
                assert got is not None
                mine.append(got)
            elif form == 1:
                with logged_prompt(
                    key, version=version, ab_group=group, model="gemini-2.5-flash"
                ) as call:
                    call.set_usage(input_tokens=n % 700, output_tokens=n % 90)
                    call.metadata["n"] = n
                mine.append(call.execution_id)
            else:
                try:
                    mine.append(decorated(n))
                except ValueError as exc:
                    mine.append(str(exc).rsplit(" ", 1)[1])

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    flushed = vividly_trace.flush(timeout=120)
    stats = vividly_trace.stats()
    vividly_trace.shutdown()
    with open(out_path, "w") as fh:
        _json.dump(
            {"ids": [i for chunk in ids for i in chunk], "flushed": flushed, "stats": stats}, fh
        )


def forked_child(out_path: str, n: int) -> None:
    """In a child forked from a configured parent: log ``n`` records, flush, report."""
    import json as _json

    import vividly_trace
    from vividly_trace import log_prompt_execution

    ids = [log_prompt_execution("forked", True, 1.0, 1, 1) for _ in range(n)]
    flushed = vividly_trace.flush(timeout=60)
    stats = vividly_trace.stats()
    vividly_trace.shutdown()
    with open(out_path, "w") as fh:
        _json.dump({"ids": ids, "flushed": flushed, "stats": stats}, fh)
