"""Throughput of ``SQLSink.write_batch`` against the raw drivers, and the caller's overhead
while the database stalls.

Run on demand (a benchmark, not a test)::

    .venv/bin/python benchmarks/sql_sink.py            # full run, ~2-3 minutes
    .venv/bin/python benchmarks/sql_sink.py --quick    # smoke run
    .venv/bin/python benchmarks/sql_sink.py --no-write # print only

In one run it measures:

1. **Sustained records/s** writing the same pre-generated records, in batches of 200
   (the dispatcher's default), one transaction per batch, into the same schema (tables,
   indexes and statistics triggers created by the migrations; template rows registered
   beforehand), on a fresh database per measurement:

   - SQLite (a file, WAL, ``synchronous=NORMAL`` for all): raw ``sqlite3``
     ``executemany`` of ready tuples, ``INSERT OR IGNORE``; ``SQLSink.write_batch``.
   - PostgreSQL (a server started here, Debian's package, default settings): raw psycopg
     ``executemany`` of ready tuples (``INSERT ... ON CONFLICT DO NOTHING``); raw psycopg
     ``COPY`` of ready tuples straight into ``prompt_executions`` (no conflict handling, so
     the sink's fastest possible bound); ``SQLSink.write_batch`` with ``COPY`` (the default),
     the same when every batch is a replay holding one already stored id (the batch's COPY
     fails and it goes through a temporary table and ``INSERT ... ON CONFLICT DO NOTHING``),
     and ``SQLSink(use_copy=False)`` (one multi-row ``INSERT ... ON CONFLICT DO NOTHING``).

   The raw variants get their rows already converted (outside the timing); the sink starts
   from ``PromptExecution`` objects. Repeats are interleaved; the median is reported.
2. **The decorated caller's overhead** (``@logged_prompt`` on a no-op function, default
   background mode, ``SQLSink`` on that PostgreSQL) while the database answers, while it is
   frozen (``SIGSTOP`` to every server process: connections hang), and while it is down
   (refusing connections: retries and spooling run in the worker), against the undecorated
   function. Per state: median and p99 of per-call times over many calls, and the records
   dropped (a hung sink fills its bounded queue, then records are dropped and counted; the
   caller never waits).

The results are printed and written to ``BENCHMARKS.md`` between
``<!-- sql-sink:start -->`` and ``<!-- sql-sink:end -->``.
Targets (issue 3): the sink at least 0.6x the raw batched rate on SQLite and 0.5x COPY on
PostgreSQL; the caller's overhead unchanged while the database stalls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import report  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from _stats import quantile  # noqa: E402

import vividly_trace  # noqa: E402
from vividly_trace import PromptExecution, logged_prompt  # noqa: E402
from vividly_trace._ids import new_execution_id  # noqa: E402
from vividly_trace.sinks.sql import SQLSink, migrate  # noqa: E402
from vividly_trace.sinks.sql._rows import POSTGRESQL, SQLITE  # noqa: E402
from vividly_trace.sinks.sql.schema import EXECUTION_COLUMNS  # noqa: E402
from vividly_trace.testing.postgres import PostgresServer  # noqa: E402

START_MARK = "<!-- sql-sink:start -->"
END_MARK = "<!-- sql-sink:end -->"
BATCH = 200
COLUMNS = ", ".join(EXECUTION_COLUMNS)
TEMPLATES = [
    (k, v, g)
    for k in ("nlu_extraction", "clarification", "script_generation")
    for v in ("v1", "v2")
    for g in ("A", "B")
]


def make_records(n: int) -> list[PromptExecution]:
    """Realistic records: 12 templates, tokens, costs, a little metadata, some failures."""
    now = dt.datetime.now(dt.timezone.utc)
    out = []
    for i in range(n):
        key, version, group = TEMPLATES[i % len(TEMPLATES)]
        inp, outp = 200 + i % 5000, 50 + i % 700
        out.append(
            PromptExecution(
                execution_id=new_execution_id(),
                template_key=key,
                template_version=version,
                ab_test_group=group,
                success=i % 17 != 0,
                response_time_ms=120.0 + i % 900,
                started_at=now - dt.timedelta(milliseconds=n - i),
                provider="gemini",
                model="gemini-2.5-flash",
                response_model="gemini-2.5-flash-001",
                input_token_count=inp,
                output_token_count=outp,
                total_token_count=inp + outp,
                cached_token_count=i % 3 * 100,
                thinking_token_count=i % 40,
                cost_usd=Decimal(inp) * Decimal("0.0000003") + Decimal(outp) * Decimal("0.0000025"),
                pricing_version="2025-06",
                finish_reason="STOP",
                error_type=None if i % 17 else "ServerError",
                error_message=None if i % 17 else "503 UNAVAILABLE: the model is overloaded",
                http_status=None if i % 17 else 503,
                metadata={"user_tier": "pro" if i % 2 else "free", "request": i, "region": "eu"},
            )
        )
    return out


def batches(items: Sequence[Any], size: int = BATCH) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def prepare(url: str) -> tuple[SQLSink, dict[tuple[str, str | None, str | None], int]]:
    """Create the schema and the template rows; return a warm sink and the template ids."""
    sink = SQLSink(url)
    ids = {t: sink.register_template(*t) for t in TEMPLATES}
    return sink, ids


def template_ids_rows(
    records: Sequence[PromptExecution], ids: dict[Any, int], row: Callable[..., tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    return [row(r, ids[SQLITE.template_key(r)]) for r in records]


def timed(fn: Callable[[], int]) -> float:
    """Records per second of ``fn`` (which returns how many it wrote)."""
    started = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - started)


# -- SQLite ------------------------------------------------------------------------------
def sqlite_raw(path: Path, rows: list[tuple[Any, ...]]) -> int:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    sql = SQLITE.insert_sql  # the sink's statement: the column order of its rows
    for chunk in batches(rows):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, chunk)
        conn.execute("COMMIT")
    conn.close()
    return len(rows)


def sqlite_sink(sink: SQLSink, records: list[PromptExecution]) -> int:
    for chunk in batches(records):
        sink.write_batch(chunk)
    return len(records)


def bench_sqlite(records: list[PromptExecution], repeats: int, work: Path) -> dict[str, Any]:
    results: dict[str, list[float]] = {"raw": [], "sink": []}
    prints: set[tuple[Any, ...]] = set()
    for rep in range(repeats):
        order = ["raw", "sink"] if rep % 2 == 0 else ["sink", "raw"]
        for variant in order:
            path = work / f"bench_{variant}_{rep}.db"
            sink, ids = prepare(f"sqlite:///{path}")
            if variant == "raw":
                rows = template_ids_rows(records, ids, SQLITE.row)
                sink.close()
                results["raw"].append(timed(lambda rows=rows, p=path: sqlite_raw(p, rows)))
            else:
                results["sink"].append(timed(lambda s=sink: sqlite_sink(s, records)))
            check = SQLSink(f"sqlite:///{path}")
            prints.add(fingerprint(check.engine))
            check.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert len(prints) == 1 and next(iter(prints))[0] == len(records), prints
    return {k: statistics.median(v) for k, v in results.items()}


def fingerprint(engine: sa.Engine) -> tuple[Any, ...]:
    """What was stored, summed up: every variant of one engine must store the same."""
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                sa.text(
                    "SELECT count(*), count(DISTINCT id), sum(input_token_count), "
                    "sum(CASE WHEN success THEN 1 ELSE 0 END), round(sum(cost_usd), 6), "
                    "count(DISTINCT template_id), min(executed_at), max(executed_at), "
                    "sum(length(CAST(metadata AS TEXT))), "
                    "(SELECT sum(total_executions) FROM prompt_templates) FROM prompt_executions"
                )
            ).one()
        )


def count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM prompt_executions")).scalar_one())


# -- PostgreSQL --------------------------------------------------------------------------
def pg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))


def pg_raw_executemany(url: str, rows: list[tuple[Any, ...]]) -> int:
    sql = (
        f"INSERT INTO prompt_executions ({COLUMNS}) VALUES "
        f"({', '.join(['%s'] * len(EXECUTION_COLUMNS))}) ON CONFLICT (id) DO NOTHING"
    )
    with pg_connect(url) as conn:
        for chunk in batches(rows):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(sql, chunk)
    return len(rows)


def pg_raw_copy(url: str, rows: list[tuple[Any, ...]]) -> int:
    with pg_connect(url) as conn:
        for chunk in batches(rows):
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY prompt_executions ({COLUMNS}) FROM STDIN") as copy,
            ):
                for row in chunk:
                    copy.write_row(row)
    return len(rows)


def bench_postgres(
    server: PostgresServer, records: list[PromptExecution], repeats: int
) -> dict[str, Any]:
    variants = ["raw_executemany", "raw_copy", "sink_copy", "sink_replay", "sink_insert"]
    results: dict[str, list[float]] = {v: [] for v in variants}
    prints: set[tuple[Any, ...]] = set()
    for rep in range(repeats):
        order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
        for variant in order:
            url = server.create_database()
            sink, ids = prepare(url)
            if variant.startswith("raw"):
                rows = template_ids_rows(records, ids, POSTGRESQL.row)
                fn = pg_raw_copy if variant == "raw_copy" else pg_raw_executemany
                results[variant].append(timed(lambda f=fn, u=url, r=rows: f(u, r)))
                prints.add(fingerprint(sink.engine))
                sink.close()
            else:
                sink.close()
                writer = SQLSink(url, use_copy=variant != "sink_insert")
                writer.write_batch(records[:1])  # schema check and template ids: warm
                rest = records[1:]
                if variant == "sink_replay":
                    # Every batch then holds one record already stored, as a replay would.
                    writer.write_batch(rest[BATCH - 1 :: BATCH])
                results[variant].append(timed(lambda w=writer, r=rest: sqlite_sink(w, r)))
                prints.add(fingerprint(writer.engine))
                writer.close()
            drop_database(server, url)
    assert len(prints) == 1 and next(iter(prints))[0] == len(records), prints
    return {k: statistics.median(v) for k, v in results.items()}


def drop_database(server: PostgresServer, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with pg_connect(server.url) as conn:
        conn.autocommit = True
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# -- caller overhead ---------------------------------------------------------------------
def per_call_ns(fn: Callable[[], Any], calls: int, pause: float) -> list[int]:
    """Time each call; with ``pause``, sleep that long between calls (outside the timing)."""
    clock = time.perf_counter_ns
    sleep = time.sleep
    samples = []
    for _ in range(calls):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
        if pause:
            sleep(pause)
    return samples


def summarize(samples: list[int]) -> tuple[float, float, float]:
    """Median, p99 and mean."""
    return statistics.median(samples), quantile(samples, 0.99), statistics.fmean(samples)


def bench_caller(
    server: PostgresServer, calls: int, rounds: int, pause: float, work: Path
) -> dict[str, Any]:
    url = server.create_database()
    SQLSink(url).write_batch(make_records(1))  # schema ready before timing

    def plain() -> None:
        return None

    decorated = logged_prompt("caller_bench", version="v1", ab_group="A")(plain)
    out: dict[str, Any] = {}
    acc: dict[str, list[tuple[float, float, float]]] = {}
    drops: dict[str, int] = {}

    def dropped_total() -> int:
        return sum(vividly_trace.stats()["dropped"].values())

    def run_state(state: str, fn: Callable[[], Any]) -> None:
        before = dropped_total()
        for _ in range(rounds):
            acc.setdefault(state, []).append(summarize(per_call_ns(fn, calls, pause)))
        drops[state] = dropped_total() - before

    vividly_trace.configure(
        sinks=[SQLSink(url, connect_timeout=2)],
        spool_dir=work / f"spool-{pause}",
        max_retries=1,
        retry_backoff=0.05,
    )
    try:
        run_state("undecorated", plain)
        run_state("database answering", decorated)
        vividly_trace.flush(timeout=60)
        server.pause()
        try:
            run_state("database frozen (SIGSTOP)", decorated)
        finally:
            server.resume()
        vividly_trace.flush(timeout=120)
        server.stop()
        try:
            run_state("database down (refused)", decorated)
            vividly_trace.flush(timeout=120)
        finally:
            server.start()
        vividly_trace.flush(timeout=120)
        out["spooled"] = vividly_trace.stats()["sinks"]["sql"]["spooled"]
    finally:
        vividly_trace.shutdown(timeout=30)
    for state, values in acc.items():
        out[state] = tuple(statistics.median(v[i] for v in values) for i in range(3))
    out["drops"] = drops
    out["calls"] = calls
    out["rounds"] = rounds
    out["pause"] = pause
    return out


# -- report ------------------------------------------------------------------------------
def environment() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    import psycopg

    return (
        f"- Python {platform.python_version()} ({platform.python_implementation()}, "
        f"{sys.platform}); CPU: {report.cpu_model()} ({os.cpu_count()} logical CPUs, shared; load "
        f"{load[0]:.2f} at the end)\n"
        f"- Versions: vividly_trace {vividly_trace.__version__} (commit {report.git_head()}, "
        f"working tree as found), SQLAlchemy {sa.__version__}, psycopg {psycopg.__version__}, "
        f"SQLite {sqlite3.sqlite_version}, PostgreSQL 15 (Debian package, default settings, "
        "fsync on)"
    )


def ratio_line(name: str, value: float, target: float) -> str:
    verdict = "met" if value >= target else "NOT met"
    return f"{name}: **{value:.2f}x** (target >= {target}x: {verdict})"


def render(
    args: argparse.Namespace,
    lite: dict[str, float],
    pg: dict[str, float],
    callers: list[dict[str, Any]],
    n: int,
    repeats: int,
) -> str:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "benchmarks/sql_sink.py" + (" --quick" if args.quick else "")
    lines = [
        "## SQL sink throughput and caller overhead (`benchmarks/sql_sink.py`)",
        "",
        f"- Date: {when}",
        f"- Command: `.venv/bin/python {cmd}`",
        environment(),
        "",
        "### Sustained write rate",
        "",
        f"{n:,} records per measurement, batches of {BATCH}, one transaction per batch, into "
        "the full schema (3 indexes on `prompt_executions`, statistics triggers, foreign key), "
        f"a fresh database each time; median of {repeats} interleaved repeats. Raw variants "
        "get ready tuples; the sink starts from `PromptExecution` objects (conversion, "
        "NUL/JSON handling, template lookup and transaction handling included).",
        "",
        "| engine | writer | records/s | vs raw baseline |",
        "|---|---|---:|---:|",
        f"| SQLite (WAL, synchronous=NORMAL) | raw `sqlite3` executemany (baseline) | "
        f"{lite['raw']:,.0f} | 1.00x |",
        f"| SQLite | `SQLSink.write_batch` | {lite['sink']:,.0f} | "
        f"**{lite['sink'] / lite['raw']:.2f}x** |",
        f"| PostgreSQL 15 | raw psycopg `executemany` (ON CONFLICT DO NOTHING) | "
        f"{pg['raw_executemany']:,.0f} | {pg['raw_executemany'] / pg['raw_copy']:.2f}x of COPY |",
        f"| PostgreSQL 15 | raw psycopg `COPY` into the table (baseline) | "
        f"{pg['raw_copy']:,.0f} | 1.00x |",
        f"| PostgreSQL 15 | `SQLSink.write_batch` (default: COPY into the table) | "
        f"{pg['sink_copy']:,.0f} | **{pg['sink_copy'] / pg['raw_copy']:.2f}x** |",
        f"| PostgreSQL 15 | `SQLSink.write_batch`, every batch a replay holding one stored id "
        f"(COPY fails, then COPY to a temp table + INSERT SELECT ON CONFLICT DO NOTHING) | "
        f"{pg['sink_replay']:,.0f} | {pg['sink_replay'] / pg['raw_copy']:.2f}x |",
        f"| PostgreSQL 15 | `SQLSink(use_copy=False)`, one multi-row INSERT ON CONFLICT | "
        f"{pg['sink_insert']:,.0f} | {pg['sink_insert'] / pg['raw_copy']:.2f}x |",
        "",
        "- " + ratio_line("SQLite, sink / raw executemany", lite["sink"] / lite["raw"], 0.6),
        "- " + ratio_line("PostgreSQL, sink / raw COPY", pg["sink_copy"] / pg["raw_copy"], 0.5),
        f"- PostgreSQL, sink / raw executemany: {pg['sink_copy'] / pg['raw_executemany']:.2f}x "
        "(psycopg's executemany runs one statement per row, so the statement-level trigger "
        "runs once per row too; the sink's one INSERT per batch runs it once per batch).",
        "",
        "### Decorated caller while the database stalls",
        "",
        "`@logged_prompt` on a no-op function, default background mode (queue 10,000, "
        "batch 200), `SQLSink` on the PostgreSQL above. Frozen: `SIGSTOP` to the postmaster "
        "and every backend (the worker's write hangs on its socket). Down: server stopped "
        "(connections refused; the worker retries, then spools to disk). Two callers: a "
        "tight loop (calls back to back, far more than any database takes, so the bounded "
        "queue fills in every state and the excess is dropped and counted, "
        "`stats()['dropped']['queue_full']`) and a paced one (a 0.2 ms sleep between calls, "
        "outside the timing: an application waiting on I/O).",
        "",
    ]
    for caller in callers:
        lines += [
            f"**{'Tight loop' if not caller['pause'] else 'Paced caller'}**: "
            f"{caller['calls']:,} calls per round, median of {caller['rounds']} round(s).",
            "",
            "| state | median ns/call | p99 ns/call | mean ns/call | records dropped |",
            "|---|---:|---:|---:|---:|",
        ]
        for state in (
            "undecorated",
            "database answering",
            "database frozen (SIGSTOP)",
            "database down (refused)",
        ):
            med, p99, mean = caller[state]
            dropped = caller["drops"].get(state, 0)
            lines.append(f"| {state} | {med:,.0f} | {p99:,.0f} | {mean:,.0f} | {dropped:,} |")
        base = caller["database answering"]
        frozen = caller["database frozen (SIGSTOP)"]
        down = caller["database down (refused)"]
        lines += [
            "",
            f"Frozen / answering: median {frozen[0] / base[0]:.2f}, p99 "
            f"{frozen[1] / base[1]:.2f}; down / answering: median {down[0] / base[0]:.2f}, "
            f"p99 {down[1] / base[1]:.2f}. Records spooled while down (replayed once the "
            f"server was back): {caller['spooled']:,}.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    n = 5_000 if args.quick else 40_000
    repeats = 1 if args.quick else 3
    calls = 20_000 if args.quick else 200_000
    work = Path(tempfile.mkdtemp(prefix="vividly_sql_bench_"))
    server = PostgresServer(work / "pg", settings={"fsync": "on", "full_page_writes": "on"})
    try:
        records = make_records(n)
        print(f"SQLite: {n:,} records x {repeats} repeats...", flush=True)
        lite = bench_sqlite(records, repeats, work)
        print(f"  {lite}", flush=True)
        server.start()
        print(f"PostgreSQL on port {server.port}: {n:,} records x {repeats} repeats...", flush=True)
        pg = bench_postgres(server, records, repeats)
        print(f"  {pg}", flush=True)
        callers = []
        for calls_, rounds, pause in ((calls, 3, 0.0), (calls // 20, 1, 0.0002)):
            print(f"Caller overhead: {calls_:,} calls per round, pause {pause}...", flush=True)
            callers.append(bench_caller(server, calls_, rounds, pause, work))
            print(f"  {callers[-1]}", flush=True)
    finally:
        server.remove()
        shutil.rmtree(work, ignore_errors=True)
    text = render(args, lite, pg, callers, n, repeats)
    print()
    print(text)
    if not args.no_write:
        path = ROOT / "BENCHMARKS.md"
        report.write_section(path, text + "\n", START_MARK, END_MARK)
        print(f"written to {path}")


if __name__ == "__main__":
    assert migrate.SCHEMA_REVISION
    main()
