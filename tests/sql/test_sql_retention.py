"""Retention: ``db prune`` on SQLite and PostgreSQL, monthly partitions on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tests.factories import make_record, record_with_requests
from tests.sql.sql_helpers import UTC, count_rows, statistics_mismatches
from tests.sql.test_sql_original_queries import (
    AB_COMPARISON,
    DAILY_COST_BY_TEMPLATE,
    NLU,
    P95_LATENCY_BY_TEMPLATE,
)
from vividly_trace import PromptExecution
from vividly_trace.sinks.sql import SQLSink, retention
from vividly_trace.sinks.sql.schema import from_sqlite_money, prompt_templates, to_sqlite_money

NOW = dt.datetime.now(UTC)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIVIDLY_TRACE_DATABASE")}
    return subprocess.run(
        [sys.executable, "-m", "vividly_trace.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _workload() -> list[PromptExecution]:
    """Executions every 5 days back to 200 days ago, three templates, exact odd costs, every
    third one with two Gemini requests, every seventh one failed."""
    records = []
    for i in range(41):
        started = NOW - dt.timedelta(days=5 * i, minutes=i)
        fields: dict[str, Any] = {
            "started_at": started,
            "success": i % 7 != 0,
            "response_time_ms": 100.0 + i * 1.25,
            "template_version": "v1" if i % 2 else "v2",
        }
        key = ("nlu", "clarify", "script")[i % 3]
        if i % 3 == 0:
            records.append(record_with_requests(key, 2, **fields))
        else:
            records.append(
                make_record(
                    key,
                    input_token_count=100 + i,
                    output_token_count=10 + i,
                    cost_usd=Decimal("0.000000123456789") * (i + 1),
                    **fields,
                )
            )
    return records


def _write(url: str, records: list[PromptExecution], **options: Any) -> None:
    sink = SQLSink(url, **options)
    try:
        for i in range(0, len(records), 7):
            sink.write_batch(records[i : i + 7])
    finally:
        sink.close()


def _ids(engine: sa.Engine, table: str = "prompt_executions", column: str = "id") -> set[str]:
    with engine.connect() as conn:
        return {str(r[0]) for r in conn.execute(sa.text(f"SELECT {column} FROM {table}"))}


def _total_cost(engine: sa.Engine) -> Decimal:
    with engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.sum(prompt_templates.c.total_cost_usd))).scalar()
    assert isinstance(value, Decimal)
    return value


class TestParseAge:
    """Durations for ``--older-than``."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("90d", dt.timedelta(days=90)),
            ("12h", dt.timedelta(hours=12)),
            ("6w", dt.timedelta(weeks=6)),
            ("30m", dt.timedelta(minutes=30)),
            (" 45s ", dt.timedelta(seconds=45)),
        ],
    )
    def test_units(self, text: str, expected: dt.timedelta) -> None:
        """Each unit gives its timedelta."""
        assert retention.parse_age(text) == expected

    @pytest.mark.parametrize("text", ["", "90", "d", "0d", "-3d", "1.5d", "3y", "90 days"])
    def test_bad_values(self, text: str) -> None:
        """Anything else is refused with a message naming the units."""
        with pytest.raises(ValueError, match="90d, 12h, 6w"):
            retention.parse_age(text)

    def test_cli_rejects_a_bad_age(self, sqlite_url: str) -> None:
        """``db prune --older-than 90x``: click's usage error, exit 2, nothing created."""
        result = _cli("db", "prune", "--older-than", "90x", "--url", sqlite_url)
        assert result.returncode == 2
        assert "Invalid value for '--older-than'" in result.stderr
        assert "not an age: '90x'" in result.stderr


class TestPrune:
    """Deleting old executions on both engines."""

    def test_prune_keeps_recent_rows_and_statistics(self, db_url: str) -> None:
        """Executions older than 90 days go with their requests, in batches; the statistics
        equal the aggregates of what remains; money stays exact."""
        records = _workload()
        _write(db_url, records)
        engine = sa.create_engine(db_url)
        cutoff = NOW - dt.timedelta(days=90)
        keep = {r.execution_id for r in records if r.started_at >= cutoff}
        gone = {r.execution_id for r in records} - keep
        requests_before = count_rows(engine, "prompt_requests")
        kept_requests = sum(len(r.requests) for r in records if r.execution_id in keep)

        dry = retention.prune(engine, dt.timedelta(days=90), now=NOW, dry_run=True)
        assert dry.dry_run and dry.executions == len(gone)
        assert count_rows(engine) == len(records)
        assert count_rows(engine, "prompt_requests") == requests_before

        result = retention.prune(engine, dt.timedelta(days=90), now=NOW, batch_size=4)
        assert result.executions == len(gone)
        assert result.requests == dry.requests == requests_before - kept_requests > 0
        assert result.batches == -(-len(gone) // 4)
        assert _ids(engine) == keep
        assert _ids(engine, "prompt_requests", "execution_id") == {
            r.execution_id for r in records if r.execution_id in keep and r.requests
        }
        assert count_rows(engine, "prompt_requests") == kept_requests
        assert statistics_mismatches(engine) == []
        # Exact on both engines; SQLite stores each cost to the pico-dollar (these have 15
        # decimals).
        sqlite = engine.dialect.name == "sqlite"
        expected_cost = sum(
            (
                from_sqlite_money(to_sqlite_money(r.cost_usd)) if sqlite else r.cost_usd
                for r in records
                if r.execution_id in keep and r.cost_usd is not None
            ),
            Decimal(0),
        )
        assert _total_cost(engine) == expected_cost

        again = retention.prune(engine, dt.timedelta(days=90), now=NOW)
        assert again.executions == 0 and again.batches == 0
        engine.dispose()

    def test_prune_everything_empties_the_statistics(self, db_url: str) -> None:
        """A template left without rows has zero counts and no first/last time."""
        _write(db_url, [make_record("old", started_at=NOW - dt.timedelta(days=400))])
        engine = sa.create_engine(db_url)
        assert retention.prune(engine, dt.timedelta(days=1), now=NOW).executions == 1
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT total_executions, total_cost_usd, avg_response_time_ms, "
                    "last_executed_at FROM prompt_templates WHERE name = 'old'"
                )
            ).one()
        assert (row[0], Decimal(str(row[1])), row[2], row[3]) == (0, Decimal(0), None, None)
        assert statistics_mismatches(engine) == []
        engine.dispose()

    def test_cli(self, db_url: str) -> None:
        """``db prune`` prints what it did; ``--dry-run`` what it would do (13 weeks = 91
        days: the executions 95 to 200 days old go)."""
        _write(db_url, _workload())
        dry = _cli("db", "prune", "--older-than", "13w", "--url", db_url, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would delete 22 executions" in dry.stdout
        done = _cli("db", "prune", "--older-than", "13w", "--url", db_url, "--batch-size", "5")
        assert done.returncode == 0, done.stderr
        assert "deleted 22 executions" in done.stdout
        engine = sa.create_engine(db_url)
        assert count_rows(engine) == 41 - 22
        assert statistics_mismatches(engine) == []
        engine.dispose()

    def test_partitions_refused_on_sqlite(self, sqlite_url: str) -> None:
        """``db partitions`` on SQLite: exit 2 and one line."""
        result = _cli("db", "partitions", "--url", sqlite_url)
        assert result.returncode == 2
        assert "partitions need PostgreSQL" in result.stderr


def _original_results(engine: sa.Engine) -> list[list[tuple[Any, ...]]]:
    """The three queries' rows (sorted: rows tied on the ORDER BY may come in any order)."""
    with engine.connect() as conn:
        return [
            sorted((tuple(r) for r in conn.exec_driver_sql(sql)), key=repr)
            for sql in (DAILY_COST_BY_TEMPLATE, P95_LATENCY_BY_TEMPLATE, AB_COMPARISON)
        ]


def _kind(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT relkind FROM pg_class WHERE oid = 'prompt_executions'::regclass")
            ).scalar_one()
        )


@pytest.mark.postgres
class TestPartitions:
    """Monthly partitions of ``prompt_executions`` on PostgreSQL."""

    def test_convert_keeps_rows_statistics_and_the_original_queries(
        self, postgres_url: str
    ) -> None:
        """Converting copies every row, leaves the statistics and the original design's
        queries' answers unchanged, and creates the months ahead and a default."""
        latest = make_record(
            NLU, template_version="v1", ab_test_group="A", started_at=NOW, cost_usd=Decimal("1e-3")
        )
        records = [*_workload(), latest]
        _write(postgres_url, records)
        engine = sa.create_engine(postgres_url)
        before = _original_results(engine)
        with engine.connect() as conn:
            stats_before = conn.execute(sa.text("SELECT * FROM prompt_templates ORDER BY id")).all()
        result = retention.partition(engine, months_ahead=2, now=NOW)
        assert result.converted and result.rows_copied == len(records)
        assert _kind(engine) == "p"
        names = [p[0] for p in retention.partitions(engine.connect())]
        month = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        oldest = min(r.started_at for r in records)
        assert names[0] == f"prompt_executions_p{oldest.year:04d}_{oldest.month:02d}"
        assert f"prompt_executions_p{month.year:04d}_{month.month:02d}" in names
        assert names[-1] == retention.DEFAULT_PARTITION
        assert len(names) == len(set(result.created))
        assert count_rows(engine) == len(records)
        assert _original_results(engine) == before
        with engine.connect() as conn:
            assert (
                conn.execute(sa.text("SELECT * FROM prompt_templates ORDER BY id")).all()
                == stats_before
            )
        assert statistics_mismatches(engine) == []

        again = retention.partition(engine, months_ahead=4, now=NOW)
        assert not again.converted and len(again.created) == 2
        assert retention.partition(engine, months_ahead=4, now=NOW).created == ()
        engine.dispose()

    @pytest.mark.parametrize("use_copy", [True, False])
    def test_the_sink_keeps_writing(self, postgres_url: str, use_copy: bool) -> None:
        """After conversion the sink writes (COPY or INSERT), with requests; a replay counts
        nothing twice; a row with no month partition goes to the default one and moves into
        its month when that is created; deleting through the table deletes the requests."""
        _write(postgres_url, _workload()[:5])
        engine = sa.create_engine(postgres_url)
        retention.partition(engine, months_ahead=1, now=NOW)
        fresh = [record_with_requests("nlu", 3, started_at=NOW) for _ in range(6)]
        far = make_record("nlu", started_at=NOW + dt.timedelta(days=400), cost_usd=Decimal("1.5"))
        _write(postgres_url, [*fresh, far], use_copy=use_copy)
        _write(postgres_url, [fresh[0], far, fresh[3]], use_copy=use_copy)
        assert count_rows(engine) == 5 + 6 + 1
        assert count_rows(engine, "prompt_requests") == 2 * 2 + 6 * 3
        assert statistics_mismatches(engine) == []
        with engine.connect() as conn:
            where = conn.execute(
                sa.text("SELECT tableoid::regclass::text FROM prompt_executions WHERE id = :id"),
                {"id": far.execution_id},
            ).scalar_one()
        assert where == retention.DEFAULT_PARTITION

        result = retention.partition(engine, months_ahead=14, now=NOW)
        assert result.moved_from_default == 1
        with engine.connect() as conn:
            where = conn.execute(
                sa.text("SELECT tableoid::regclass::text FROM prompt_executions WHERE id = :id"),
                {"id": far.execution_id},
            ).scalar_one()
        assert where.startswith("prompt_executions_p")
        assert statistics_mismatches(engine) == []

        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE prompt_executions SET cost_usd = cost_usd * 3 WHERE id = :id"),
                {"id": fresh[1].execution_id},
            )
            conn.execute(
                sa.text("DELETE FROM prompt_executions WHERE id = :id"),
                {"id": fresh[2].execution_id},
            )
        assert statistics_mismatches(engine) == []
        assert fresh[2].execution_id not in _ids(engine, "prompt_requests", "execution_id")
        assert count_rows(engine, "prompt_requests") == 2 * 2 + 5 * 3
        engine.dispose()

    def test_prune_drops_whole_months(self, postgres_url: str) -> None:
        """Months entirely before the cutoff are dropped as partitions (their requests
        deleted first); the boundary month loses only its old rows; statistics and money
        equal the raw aggregates."""
        records = _workload()
        _write(postgres_url, records)
        engine = sa.create_engine(postgres_url)
        retention.partition(engine, months_ahead=1, now=NOW)
        cutoff = NOW - dt.timedelta(days=90)
        whole = {n for n, _, end in retention.partitions(engine.connect()) if end and end <= cutoff}
        assert whole
        keep = {r.execution_id for r in records if r.started_at >= cutoff}
        dry = retention.prune(engine, dt.timedelta(days=90), now=NOW, dry_run=True)
        assert set(dry.dropped_partitions) == whole
        result = retention.prune(engine, dt.timedelta(days=90), now=NOW, batch_size=3)
        assert set(result.dropped_partitions) == whole
        assert result.requests == dry.requests > 0
        assert result.executions == len(records) - len(keep)
        assert result.batches >= 1  # the boundary month's old rows
        remaining = {p[0] for p in retention.partitions(engine.connect())}
        assert not remaining & whole
        assert _ids(engine) == keep
        assert _ids(engine, "prompt_requests", "execution_id") == {
            r.execution_id for r in records if r.execution_id in keep and r.requests
        }
        assert statistics_mismatches(engine) == []
        assert _total_cost(engine) == sum(
            (r.cost_usd or Decimal(0) for r in records if r.execution_id in keep), Decimal(0)
        )
        engine.dispose()

    def test_cli(self, postgres_url: str) -> None:
        """``db partitions`` converts, then only adds months."""
        _write(postgres_url, _workload()[:3])
        first = _cli("db", "partitions", "--url", postgres_url, "--months-ahead", "2")
        assert first.returncode == 0, first.stderr
        assert "partitioned prompt_executions (3 rows copied)" in first.stdout
        second = _cli("db", "partitions", "--url", postgres_url, "--months-ahead", "2")
        assert second.returncode == 0, second.stderr
        assert "partitions created: none (all present)" in second.stdout
