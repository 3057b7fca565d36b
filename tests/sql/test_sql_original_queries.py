"""The original design's three analytics queries, verbatim, on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.factories import make_record
from tests.sql.sql_helpers import UTC
from vividly_trace.sinks.sql import SQLSink

pytestmark = pytest.mark.postgres

# Copied character for character from design.md ("SQL store").
DAILY_COST_BY_TEMPLATE = """SELECT DATE(executed_at), template_name, SUM(cost_usd), COUNT(*) FROM prompt_executions e
JOIN prompt_templates t ON e.template_id = t.id WHERE executed_at > NOW() - INTERVAL '30 days'
GROUP BY DATE(executed_at), template_name ORDER BY SUM(cost_usd) DESC;"""  # noqa: E501
P95_LATENCY_BY_TEMPLATE = """SELECT name, PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY response_time_ms) as p95_ms
FROM prompt_templates t JOIN prompt_executions e ON t.id = e.template_id
WHERE e.executed_at > NOW() - INTERVAL '24 hours' GROUP BY name ORDER BY p95_ms DESC;"""  # noqa: E501
AB_COMPARISON = """SELECT version, ab_test_group, AVG(CASE WHEN success THEN 1.0 ELSE 0.0 END) as success_rate,
AVG(response_time_ms) as avg_latency, AVG(cost_usd) as avg_cost FROM prompt_templates t
JOIN prompt_executions e ON t.id = e.template_id WHERE t.name = 'nlu_extraction_gemini_25'
GROUP BY version, ab_test_group;"""  # noqa: E501

NLU = "nlu_extraction_gemini_25"


@pytest.fixture(name="loaded")
def _loaded(postgres_url: str) -> tuple[sa.Engine, dict[str, dt.date]]:
    """A store holding a small, hand-countable workload."""
    now = dt.datetime.now(UTC)
    three_days_ago = dt.datetime.combine(now.date() - dt.timedelta(days=3), dt.time(12), tzinfo=UTC)
    one_hour_ago = now - dt.timedelta(hours=1)
    two_hours_ago = now - dt.timedelta(hours=2)
    thirty_hours_ago = now - dt.timedelta(hours=30)
    forty_days_ago = now - dt.timedelta(days=40)
    records = []
    # nlu_extraction_gemini_25, three days ago: (version, group, success, latency, cost)
    for version, group, success, latency, cost in [
        ("v1", "A", True, 100, "0.001"),
        ("v1", "A", True, 200, "0.002"),
        ("v1", "A", True, 300, "0.003"),
        ("v1", "A", False, 400, "0.004"),
        ("v1", "B", True, 500, "0.010"),
        ("v1", "B", False, 700, "0.020"),
        ("v2", "A", True, 50, "0.0005"),
        ("v2", "A", True, 60, "0.0005"),
        ("v2", "A", True, 70, "0.0005"),
        ("v2", None, False, 1000, None),
    ]:
        records.append(
            make_record(
                NLU,
                template_version=version,
                ab_test_group=group,
                success=success,
                response_time_ms=latency,
                cost_usd=None if cost is None else Decimal(cost),
                started_at=three_days_ago,
            )
        )
    for i in range(1, 11):  # clarification, an hour ago: 100, 200, ..., 1000 ms
        records.append(
            make_record(
                "clarification",
                response_time_ms=100.0 * i,
                cost_usd=Decimal("0.0001"),
                started_at=one_hour_ago,
            )
        )
    records += [
        make_record(
            "script_generation",
            response_time_ms=10,
            cost_usd=Decimal("0.05"),
            started_at=two_hours_ago,
        ),
        make_record(
            "script_generation",
            response_time_ms=20,
            cost_usd=Decimal("0.05"),
            started_at=two_hours_ago,
        ),
        make_record(
            "script_generation",
            response_time_ms=99999,
            cost_usd=Decimal("0.5"),
            started_at=thirty_hours_ago,
        ),
        make_record(
            "script_generation",
            response_time_ms=5,
            cost_usd=Decimal("9.99"),
            started_at=forty_days_ago,
        ),
    ]
    sink = SQLSink(postgres_url)
    sink.write_batch(records[:7])
    sink.write_batch(records[7:])
    sink.close()
    dates = {
        "nlu": three_days_ago.date(),
        "clarification": one_hour_ago.date(),
        "script_recent": two_hours_ago.date(),
        "script_old": thirty_hours_ago.date(),
    }
    return sa.create_engine(postgres_url), dates


def _run(engine: sa.Engine, query: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TIME ZONE 'UTC'")
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            cursor.execute(query)  # exactly the text above, no parameters, no rewriting
            return [tuple(row) for row in cursor.fetchall()]


def test_daily_cost_by_template(loaded: tuple[sa.Engine, dict[str, dt.date]]) -> None:
    """Query 1: cost and count per day and template over 30 days, most expensive first."""
    engine, dates = loaded
    assert _run(engine, DAILY_COST_BY_TEMPLATE) == [
        (dates["script_old"], "script_generation", Decimal("0.5"), 1),
        (dates["script_recent"], "script_generation", Decimal("0.10"), 2),
        (dates["nlu"], NLU, Decimal("0.0415"), 10),
        (dates["clarification"], "clarification", Decimal("0.0010"), 10),
    ]


def test_p95_latency_by_template(loaded: tuple[sa.Engine, dict[str, dt.date]]) -> None:
    """Query 2: p95 latency per template over 24 hours (linear interpolation)."""
    engine, _ = loaded
    # clarification: 0.95 * 9 = 8.55 -> 900 + 0.55 * 100; script: 10 + 0.95 * 10.
    rows = _run(engine, P95_LATENCY_BY_TEMPLATE)
    assert [name for name, _ in rows] == ["clarification", "script_generation"]
    assert rows[0][1] == pytest.approx(955.0)
    assert rows[1][1] == pytest.approx(19.5)


def test_ab_comparison(loaded: tuple[sa.Engine, dict[str, dt.date]]) -> None:
    """Query 3: success rate, mean latency and mean cost per version and A/B group."""
    engine, _ = loaded
    rows = {(r[0], r[1]): r[2:] for r in _run(engine, AB_COMPARISON)}
    assert set(rows) == {("v1", "A"), ("v1", "B"), ("v2", "A"), ("v2", None)}
    expected = {
        ("v1", "A"): (Decimal("0.75"), 250.0, Decimal("0.0025")),
        ("v1", "B"): (Decimal("0.5"), 600.0, Decimal("0.015")),
        ("v2", "A"): (Decimal("1"), 60.0, Decimal("0.0005")),
        ("v2", None): (Decimal("0"), 1000.0, None),
    }
    for key, (rate, latency, cost) in expected.items():
        got_rate, got_latency, got_cost = rows[key]
        assert got_rate == rate, key
        assert got_latency == pytest.approx(latency), key
        assert got_cost == cost, key
