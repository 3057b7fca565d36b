"""``reprice`` over stored rows of different dates and tiers, on SQLite and PostgreSQL: each
row priced at the period in force on its UTC day and at its service tier (costs by hand
from the pricing page's figures)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from tests.factories import make_record
from tests.sql.sql_helpers import write_records
from vividly_trace import PricingTable
from vividly_trace.analytics import reprice
from vividly_trace.sinks.sql.schema import prompt_executions

M = Decimal(1_000_000)
UTC = dt.timezone.utc
VERSION = PricingTable.default().version


def usd(*parts: tuple[int, str]) -> Decimal:
    """Sum of tokens x price per 1M tokens."""
    return sum((n * Decimal(price) for n, price in parts), Decimal(0)) / M


def test_reprice_by_day_and_tier(db_url: str) -> None:
    """reprice prices each stored row at the period of its day and at its tier."""
    rows = [
        ("gemini-4-argon", dt.datetime(2026, 11, 30, 23, 59, tzinfo=UTC), None),
        ("gemini-4-argon", dt.datetime(2026, 12, 1, 0, 0, tzinfo=UTC), None),
        ("gemini-3.7-flash", dt.datetime(2026, 12, 31, 23, 0, tzinfo=UTC), None),
        ("gemini-3.7-flash", dt.datetime(2027, 1, 1, 1, 0, tzinfo=UTC), None),
        ("gemini-3.7-flash", dt.datetime(2026, 12, 20, tzinfo=UTC), "flex"),
        ("gemini-3.7-flash", dt.datetime(2027, 1, 2, tzinfo=UTC), "priority"),
        ("gemini-3.7-flash", dt.datetime(2027, 1, 2, tzinfo=UTC), "provisioned"),
    ]
    records = [
        make_record(
            "dated",
            n=i + 1,
            model=model,
            started_at=when,
            input_token_count=10_000,
            output_token_count=1_000,
            service_tier=tier,
        )
        for i, (model, when, tier) in enumerate(rows)
    ]
    write_records(db_url, records)
    result = reprice(db_url)
    assert result.updated == 6 and result.unpriced == 1
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        t = prompt_executions  # through the Money column type: exact dollars on both engines
        stored = conn.execute(
            sa.select(t.c.cost_usd, t.c.pricing_version, t.c.service_tier).order_by(t.c.id)
        ).all()
    engine.dispose()
    expected = [
        (usd((10_000, "2"), (1_000, "10")), "until-2026-12-01"),
        (usd((10_000, "4"), (1_000, "20")), "from-2026-12-01"),
        (usd((10_000, "0.75"), (1_000, "3.75")), "until-2027-01-01"),
        (usd((10_000, "1.50"), (1_000, "7.50")), "from-2027-01-01"),
        (usd((10_000, "0.375"), (1_000, "1.875")), "until-2027-01-01"),
        (usd((10_000, "2.70"), (1_000, "13.50")), "from-2027-01-01"),
    ]
    for (cost, version, _), (want, period) in zip(stored, expected, strict=False):
        assert cost == want
        assert version == f"{VERSION}/{period}"
    assert stored[-1][0] is None and stored[-1][2] == "provisioned"
    assert [row[2] for row in stored] == [tier for _, _, tier in rows]
    assert reprice(db_url).updated == 0  # idempotent


def test_reprice_per_provider(db_url: str) -> None:
    """reprice prices a stored Vertex AI row at the table's ``vertex_ai/MODEL`` price and a
    Gemini API row of the same model at the plain one."""
    table = PricingTable.default().with_overrides(
        {"vertex_ai/gemini-2.5-flash": {"input": "1", "output": "4"}}, version="per-provider"
    )
    records = [
        make_record(
            "providers",
            n=i + 1,
            model="gemini-2.5-flash",
            provider=provider,
            input_token_count=10_000,
            output_token_count=1_000,
        )
        for i, provider in enumerate(("gemini", "vertex_ai"))
    ]
    write_records(db_url, records)
    assert reprice(db_url, pricing=table).updated == 2
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        t = prompt_executions
        stored = conn.execute(sa.select(t.c.provider, t.c.cost_usd).order_by(t.c.id)).all()
    engine.dispose()
    assert [(p, c) for p, c in stored] == [
        ("gemini", usd((10_000, "0.30"), (1_000, "2.50"))),
        ("vertex_ai", usd((10_000, "1"), (1_000, "4"))),
    ]


def test_reprice_modalities_and_grounding(db_url: str) -> None:
    """reprice bills the stored image output and grounding counts again (costs by hand from
    the pricing page: 2.5 Flash Image 0.30 / 2.50 / image output 30; 2.5 Flash grounding $35
    per 1,000 grounded prompts; Gemini 3 Flash 0.50 / 3.00, $14 per 1,000 search queries)."""
    records = [
        make_record(
            "modal",
            n=1,
            model="gemini-2.5-flash-image",
            input_token_count=100,
            output_token_count=1_300,
            image_output_token_count=1_290,
            cost_usd=Decimal(0),
        ),
        make_record(
            "modal",
            n=2,
            model="gemini-2.5-flash",
            input_token_count=1_000,
            output_token_count=200,
            grounded_prompt_count=1,
            search_query_count=3,
            cost_usd=Decimal(0),
        ),
        make_record(
            "modal",
            n=3,
            model="gemini-3-flash-preview",
            input_token_count=1_000,
            output_token_count=200,
            grounded_prompt_count=1,
            search_query_count=3,
            cost_usd=Decimal(0),
        ),
    ]
    write_records(db_url, records)
    assert reprice(db_url).updated == 3
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        t = prompt_executions
        stored = conn.execute(
            sa.select(t.c.cost_usd, t.c.image_output_token_count, t.c.search_query_count).order_by(
                t.c.id
            )
        ).all()
    engine.dispose()
    assert [row[0] for row in stored] == [
        usd((100, "0.30"), (10, "2.50"), (1_290, "30")),
        usd((1_000, "0.30"), (200, "2.50")) + Decimal("0.035"),
        usd((1_000, "0.50"), (200, "3.00")) + 3 * Decimal("0.014"),
    ]
    assert [(row[1], row[2]) for row in stored] == [(1_290, None), (None, 3), (None, 3)]
