"""Report queries on a large PostgreSQL store with and without monthly partitions, and the
time to prune a month.

Run on demand (a benchmark, not a test)::

    .venv/bin/python benchmarks/retention.py                 # 10 million rows, ~15 minutes
    .venv/bin/python benchmarks/retention.py --rows 200000   # smoke run

In one run, on a PostgreSQL server started here (Debian's package; the throwaway
settings: no fsync, plus ``shared_buffers=256MB``, ``maintenance_work_mem=512MB``):

1. The schema comes from the migrations (statistics triggers included), 12 templates are
   registered, and ``--rows`` executions spread evenly over the 13 months before now are
   generated in the database with ``INSERT ... SELECT ... FROM generate_series`` (not
   through the SDK; 1 million rows per statement, so the insert trigger sees 1 million-row
   transition tables), with realistic tokens, exact ``NUMERIC`` costs, a failure every 17th
   row (five error messages), a small JSONB metadata; then ``ANALYZE``.
2. **Unpartitioned**: the report queries of ``vividly_trace.analytics`` over recent
   windows (``cost_by_day`` over 30 days, ``latency_percentiles`` over 7 days,
   ``error_patterns`` over 7 days) and the original design's daily-cost and p95 queries
   verbatim; the median of 3 warm runs each. Then ``prune`` of the oldest calendar month
   (batched ``DELETE`` of 100,000 rows per transaction, the statistics triggers firing).
3. ``partition``: the conversion into monthly partitions (a copy of every row, timed).
4. **Partitioned**: the same queries, then ``prune`` of the next month (a whole partition
   dropped).

The statistics are checked against the raw aggregates after each prune. Results are
printed as a Markdown table (not written to BENCHMARKS.md; paste them there).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from vividly_trace import analytics  # noqa: E402
from vividly_trace.sinks.sql import SQLSink, retention  # noqa: E402
from vividly_trace.testing.postgres import PostgresServer  # noqa: E402

UTC = dt.timezone.utc
CHUNK = 1_000_000
REPEATS = 3
TEMPLATES = [
    (k, v, g)
    for k in ("nlu_extraction", "clarification", "script_generation")
    for v in ("v1", "v2")
    for g in ("A", "B")
]
ERRORS = (
    "503 UNAVAILABLE: the model is overloaded",
    "429 RESOURCE_EXHAUSTED: quota exceeded for request 12345",
    "500 INTERNAL: an internal error occurred",
    "504 DEADLINE_EXCEEDED after 30000 ms",
    "400 INVALID_ARGUMENT: request 98765 contains an invalid argument",
)
DAILY_COST_VERBATIM = """SELECT DATE(executed_at), template_name, SUM(cost_usd), COUNT(*) FROM prompt_executions e
JOIN prompt_templates t ON e.template_id = t.id WHERE executed_at > NOW() - INTERVAL '30 days'
GROUP BY DATE(executed_at), template_name ORDER BY SUM(cost_usd) DESC;"""  # noqa: E501
P95_VERBATIM = """SELECT name, PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY response_time_ms) as p95_ms
FROM prompt_templates t JOIN prompt_executions e ON t.id = e.template_id
WHERE e.executed_at > NOW() - INTERVAL '24 hours' GROUP BY name ORDER BY p95_ms DESC;"""  # noqa: E501

_GENERATE = """
INSERT INTO prompt_executions (
    id, template_id, template_name, template_version, template_ab_test_group, executed_at,
    success, response_time_ms, provider, model, response_model, input_token_count,
    output_token_count, total_token_count, cached_token_count, thinking_token_count,
    cost_usd, pricing_version, error_type, error_message, http_status, finish_reason,
    metadata)
SELECT lpad(to_hex(g), 12, '0') || '-0000-7000-8000-000000000000',
       t.id, t.name, t.version, t.ab_test_group,
       CAST(:end AS timestamptz) - (:total - g) * CAST(:step AS interval),
       g % 17 <> 0,
       120 + (g * 7919) % 900 + (g % 97) * 0.5,
       'gemini', 'gemini-2.5-flash', 'gemini-2.5-flash-001',
       200 + g % 5000, 50 + g % 700, 250 + g % 5000 + g % 700, (g % 3) * 100, g % 40,
       (200 + g % 5000) * 0.0000003 + (50 + g % 700) * 0.0000025,
       '2025-06',
       CASE WHEN g % 17 = 0 THEN 'ServerError' END,
       CASE WHEN g % 17 = 0 THEN (CAST(:errors AS text[]))[1 + g % 5] END,
       CASE WHEN g % 17 = 0 THEN 503 END,
       'STOP',
       jsonb_build_object('user_tier', CASE WHEN g % 2 = 0 THEN 'free' ELSE 'pro' END,
                          'request', g)
  FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g
  JOIN prompt_templates t ON t.id = (CAST(:ids AS int[]))[1 + g % 12]
"""


def _median_seconds(fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _queries(engine: sa.Engine) -> dict[str, float]:
    def verbatim(sql: str) -> Callable[[], Any]:
        def run() -> Any:
            with engine.connect() as conn:
                return conn.exec_driver_sql(sql).all()

        return run

    return {
        "cost_by_day (30 days)": _median_seconds(
            lambda: analytics.cost_by_day(engine, since="30d")
        ),
        "latency_percentiles (7 days)": _median_seconds(
            lambda: analytics.latency_percentiles(engine, since="7d")
        ),
        "error_patterns (7 days)": _median_seconds(
            lambda: analytics.error_patterns(engine, since="7d")
        ),
        "design: daily cost by template (30 days, verbatim)": _median_seconds(
            verbatim(DAILY_COST_VERBATIM)
        ),
        "design: p95 by template (24 hours, verbatim)": _median_seconds(verbatim(P95_VERBATIM)),
    }


def _mismatches(engine: sa.Engine) -> int:
    sys.path.insert(0, str(ROOT))
    from tests.sql.sql_helpers import statistics_mismatches

    return len(statistics_mismatches(engine))


def _count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM prompt_executions")).scalar_one())


def _month_start(moment: dt.datetime) -> dt.datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: dt.datetime) -> dt.datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def run(rows: int) -> str:
    load_before = os.getloadavg()
    started = time.perf_counter()
    settings = {"shared_buffers": "256MB", "maintenance_work_mem": "512MB", "max_wal_size": "8GB"}
    with tempfile.TemporaryDirectory() as tmp:
        server = PostgresServer(tmp, settings=settings)
        server.start()
        try:
            url = server.create_database()
            sink = SQLSink(url)
            ids = [sink.register_template(*t) for t in TEMPLATES]
            sink.close()
            engine = sa.create_engine(url)
            now = dt.datetime.now(UTC)
            first = _month_start(now - dt.timedelta(days=395))
            step = (now - first) / rows
            t0 = time.perf_counter()
            for lo in range(1, rows + 1, CHUNK):
                with engine.begin() as conn:
                    conn.execute(
                        sa.text(_GENERATE),
                        {
                            "end": now,
                            "total": rows,
                            "step": step,
                            "errors": list(ERRORS),
                            "ids": ids,
                            "lo": lo,
                            "hi": min(lo + CHUNK - 1, rows),
                        },
                    )
                print(f"  generated {min(lo + CHUNK - 1, rows):,} rows", flush=True)
            generate_s = time.perf_counter() - t0
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
            assert _mismatches(engine) == 0
            print("  unpartitioned queries", flush=True)
            plain = _queries(engine)

            oldest = _month_start(first)
            cutoff_1 = _next_month(oldest)
            before = _count(engine)
            t0 = time.perf_counter()
            pruned_1 = retention.prune(engine, now - cutoff_1, now=now, batch_size=100_000)
            prune_plain_s = time.perf_counter() - t0
            assert _count(engine) == before - pruned_1.executions
            assert _mismatches(engine) == 0
            print(f"  pruned {pruned_1.executions:,} rows unpartitioned", flush=True)

            t0 = time.perf_counter()
            converted = retention.partition(engine, months_ahead=3, now=now)
            convert_s = time.perf_counter() - t0
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
            print(f"  converted ({len(converted.created)} partitions)", flush=True)
            parted = _queries(engine)

            cutoff_2 = _next_month(cutoff_1)
            t0 = time.perf_counter()
            pruned_2 = retention.prune(engine, now - cutoff_2, now=now, batch_size=100_000)
            prune_part_s = time.perf_counter() - t0
            assert pruned_2.dropped_partitions, pruned_2
            assert _mismatches(engine) == 0
            remaining = _count(engine)
            engine.dispose()
        finally:
            server.stop()
    load_after = os.getloadavg()
    total_s = time.perf_counter() - started

    lines = [
        f"Retention benchmark, {dt.datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, PostgreSQL (throwaway server, fsync off), "
        f"{rows:,} executions over 13 months; load average before "
        f"{load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, after "
        f"{load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} (shared machine); "
        f"total {total_s / 60:.1f} min.",
        "",
        "| report query (median of 3, warm) | unpartitioned | partitioned |",
        "|---|---:|---:|",
    ]
    for name, seconds in plain.items():
        lines.append(f"| {name} | {seconds * 1000:,.0f} ms | {parted[name] * 1000:,.0f} ms |")
    lines += [
        "",
        "| operation | rows | time |",
        "|---|---:|---:|",
        f"| generate (INSERT ... SELECT generate_series, triggers on) | {rows:,} | "
        f"{generate_s:,.1f} s |",
        f"| prune a month, unpartitioned (batched DELETE, 100k per transaction) | "
        f"{pruned_1.executions:,} | {prune_plain_s:,.1f} s |",
        f"| convert to monthly partitions (copy + indexes + triggers) | "
        f"{converted.rows_copied:,} | {convert_s:,.1f} s |",
        f"| prune a month, partitioned (partition dropped: "
        f"{', '.join(pruned_2.dropped_partitions)}) | {pruned_2.executions:,} | "
        f"{prune_part_s:,.1f} s |",
        "",
        f"Statistics equal to the raw aggregates after each prune; {remaining:,} rows remain.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="executions to generate")
    args = parser.parse_args()
    print(run(args.rows))


if __name__ == "__main__":
    main()
