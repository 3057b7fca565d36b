"""Exact money in both stores: stored costs, the templates' ``total_cost_usd`` and every
analytics sum equal the ``Decimal`` sums of the records, on SQLite (integer pico-dollars,
revision 0012) as on PostgreSQL (``NUMERIC``), where a floating-point sum would not."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.factories import make_record, record_with_requests, usd
from tests.sql.sql_helpers import UTC, statistics_mismatches, write_records
from tests.sql.test_sql_original_queries import DAILY_COST_BY_TEMPLATE
from vividly_trace import PromptExecution, RequestRecord
from vividly_trace.alerts import CostRule, check_once
from vividly_trace.analytics import (
    build_report,
    compare_ab,
    cost_by_day,
    cost_by_model,
    cost_by_user,
)
from vividly_trace.dashboard._views import overview
from vividly_trace.sinks.sql.schema import (
    SQLITE_MONEY_SCALE,
    from_sqlite_money,
    prompt_executions,
    prompt_requests,
    prompt_templates,
    to_sqlite_money,
)

ZERO = Decimal(0)
# Three days that end yesterday: within the original design's "last 30 days".
DAY0 = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
    days=3
)
SINCE = DAY0 - dt.timedelta(days=1)


def flash(inp: int, out: int, cached: int) -> Decimal:
    """gemini-2.5-flash by hand: input 0.30, cached input 0.03, output 2.50 per 1M tokens."""
    return usd((inp - cached, "0.30"), (cached, "0.03"), (out, "2.50"))


def tuned(inp: int, out: int, cached: int) -> Decimal:
    """A tuned model priced with six decimals per 1M tokens (costs with 12 decimals)."""
    del cached
    return usd((inp, "1.234567"), (out, "9.876543"))


MODELS = (("gemini-2.5-flash", flash), ("tuned-model", tuned))


def money_records(n: int = 240) -> list[PromptExecution]:
    """``n`` calls over three days, two templates (one an A/B test of two versions) and
    three users, each of two Gemini requests (gemini-2.5-flash, then a tuned model); the
    costs have up to 12 decimals, and their floating-point sums are not exact."""
    out = []
    for i in range(n):
        requests = []
        for seq, (model, price) in enumerate(MODELS):
            inp, out_tokens = 100_003 + 3_701 * i + seq, (1_709 * i + 3 * seq) % 5_000 + 3
            cached = (i * 977) % 90_000
            requests.append(
                RequestRecord(
                    "generate_content",
                    True,
                    10.0,
                    offset_ms=20.0 * seq,
                    model=model,
                    response_model=model,
                    input_token_count=inp,
                    output_token_count=out_tokens,
                    total_token_count=inp + out_tokens,
                    cached_token_count=cached,
                    cost_usd=price(inp, out_tokens, cached),
                )
            )
        template = "nlu" if i % 3 else "summary"
        out.append(
            make_record(
                template,
                template_version=f"v{i % 2 + 1}" if template == "nlu" else None,
                model="gemini-2.5-flash",
                started_at=DAY0 + dt.timedelta(hours=(7 * i) % 72, minutes=i % 60),
                input_token_count=sum(r.input_token_count or 0 for r in requests),
                output_token_count=sum(r.output_token_count or 0 for r in requests),
                cost_usd=sum((r.cost_usd or ZERO for r in requests), ZERO),
                requests=tuple(requests),
                user_id=f"u{i % 3}",
                success=i % 11 != 0,
            )
        )
    return out


def exact_sums(records: list[PromptExecution], key: object) -> dict[object, Decimal]:
    sums: dict[object, Decimal] = defaultdict(Decimal)
    for r in records:
        sums[key(r)] += r.cost_usd or ZERO  # type: ignore[operator]
    return dict(sums)


@pytest.fixture(name="stored")
def _stored(db_url: str) -> tuple[str, list[PromptExecution]]:
    records = money_records()
    for group in (lambda r: r.template_key, lambda r: (r.template_key, r.template_version)):
        for key, total in exact_sums(records, group).items():
            floats = 0.0
            for r in records:
                if group(r) == key:
                    floats += float(r.cost_usd or 0)
            assert Decimal(repr(floats)) != total, f"{key}: floats must get this sum wrong"
    write_records(db_url, records, batch_size=37)
    return db_url, records


def template_totals(engine: sa.Engine) -> dict[tuple[str, str | None], Decimal]:
    t = prompt_templates.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.name, t.version, t.total_cost_usd)).all()
    for row in rows:
        assert type(row[2]) is Decimal
    return {(r[0], r[1]): r[2] for r in rows}


def test_costs_and_totals_are_exact(stored: tuple[str, list[PromptExecution]]) -> None:
    """Each stored cost reads back as its Decimal; each template's trigger-kept total is the
    exact sum, also after UPDATEs and DELETEs (the other two triggers)."""
    url, records = stored
    engine = sa.create_engine(url)
    e, q = prompt_executions.c, prompt_requests.c
    with engine.connect() as conn:
        costs = dict(conn.execute(sa.select(e.id, e.cost_usd)).all())
        request_costs = dict(
            ((row[0], row[1]), row[2])
            for row in conn.execute(sa.select(q.execution_id, q.seq, q.cost_usd))
        )
    assert costs == {r.execution_id: r.cost_usd for r in records}
    assert all(type(c) is Decimal for c in costs.values())
    assert request_costs == {
        (r.execution_id, seq): q.cost_usd for r in records for seq, q in enumerate(r.requests)
    }
    assert template_totals(engine) == exact_sums(
        records, lambda r: (r.template_key, r.template_version)
    )
    assert statistics_mismatches(engine) == []

    changed = {r.execution_id: (r.cost_usd or ZERO) + Decimal("0.0000001") for r in records[::4]}
    gone = {r.execution_id for r in records[1::5]}
    with engine.begin() as conn:
        for execution_id, cost in changed.items():
            conn.execute(
                sa.update(prompt_executions).where(e.id == execution_id), {"cost_usd": cost}
            )
        conn.execute(sa.delete(prompt_executions).where(e.id.in_(gone)))
    after = [
        dataclasses.replace(r, cost_usd=changed.get(r.execution_id, r.cost_usd))
        for r in records
        if r.execution_id not in gone
    ]
    assert template_totals(engine) == exact_sums(
        after, lambda r: (r.template_key, r.template_version)
    )
    assert statistics_mismatches(engine) == []
    engine.dispose()


def test_analytics_sums_are_exact(stored: tuple[str, list[PromptExecution]]) -> None:
    """Daily cost, cost by model and by user, the A/B cost figures, the report, the
    dashboard's overview and a budget alert give the exact Decimal sums."""
    url, records = stored
    by_day = exact_sums(records, lambda r: (r.started_at.date(), r.template_key))
    assert {(row.day, row.template): row.cost_usd for row in cost_by_day(url, since=SINCE)} == (
        by_day
    )
    assert all(type(row.cost_usd) is Decimal for row in cost_by_day(url, since=SINCE))
    model_day: dict[tuple[dt.date, str | None], Decimal] = defaultdict(Decimal)
    for r in records:
        for q in r.requests:
            model_day[(r.started_at.date(), q.model)] += q.cost_usd or ZERO
    by_model = {(row.day, row.model): row.cost_usd for row in cost_by_model(url, since=SINCE)}
    assert by_model == model_day
    by_user = exact_sums(records, lambda r: r.user_id)
    assert {u.user_id: u.cost_usd for u in cost_by_user(url, since=SINCE)} == by_user

    ab = compare_ab(url, "nlu", since=SINCE)
    nlu = [r for r in records if r.template_key == "nlu"]
    by_version = exact_sums(nlu, lambda r: r.template_version)
    assert {v.version: v.total_cost_usd for v in ab.variants} == by_version
    for v in ab.variants:
        assert v.mean_cost_usd == by_version[v.version] / v.priced_executions
    means = {k: s / sum(r.template_version == k for r in nlu) for k, s in by_version.items()}
    assert {v.version: v.mean_cost_usd for v in ab.variants} == means
    # The cost metric's statistics are in USD (floating point) on both engines.
    cost_ab = compare_ab(url, "nlu", since=SINCE, metric="cost")
    base, challenger = cost_ab.variants
    assert challenger.difference == pytest.approx(
        float(means[challenger.version] - means[base.version]), rel=1e-9
    )

    report = build_report(url, since=SINCE)
    by_template = exact_sums(records, lambda r: r.template_key)
    assert {s.template: s.cost_usd for s in report.summaries} == by_template
    assert report.cost_usd == sum(by_template.values(), ZERO)

    engine = sa.create_engine(url)
    view = overview(engine, since=SINCE.isoformat())
    assert view["totals"]["cost_usd"] == sum(by_template.values(), ZERO)
    assert {row["template"]: row["cost_usd"] for row in view["templates"]} == by_template
    engine.dispose()

    day = DAY0 + dt.timedelta(days=1)
    budget = exact_sums(records, lambda r: r.started_at.date())[day.date()]
    at = day + dt.timedelta(hours=23, minutes=59)
    over = check_once(url, [CostRule("exact budget", budget, window="day")], now=at)
    assert [f.value for f in over] == [budget]
    assert f"known cost ${budget} reached" in over[0].message
    above = budget + Decimal("0.000000000001")
    assert check_once(url, [CostRule("a pico-dollar more", above, window="day")], now=at) == []


def test_what_a_hand_written_query_sees(stored: tuple[str, list[PromptExecution]]) -> None:
    """SQLite: integer pico-dollars, whose SUM is exact (and the printf of the README shows
    them as exact decimal text); PostgreSQL: the original design's query, verbatim, gives the
    exact NUMERIC sums."""
    url, records = stored
    engine = sa.create_engine(url)
    by_day = exact_sums(records, lambda r: (r.started_at.date(), r.template_key))
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(
                sa.text(
                    "SELECT DATE(executed_at), template_name, SUM(cost_usd), "
                    "printf('%d.%012d', SUM(cost_usd) / 1000000000000, "
                    "SUM(cost_usd) % 1000000000000) FROM prompt_executions "
                    "GROUP BY 1, 2"
                )
            ).all()
            for day, template, pico, text in rows:
                assert type(pico) is int
                exact = by_day[(dt.date.fromisoformat(day), template)]
                assert Decimal(pico).scaleb(-SQLITE_MONEY_SCALE) == exact == Decimal(text)
            total = conn.execute(sa.text("SELECT typeof(total_cost_usd) FROM prompt_templates"))
            assert set(total.scalars()) == {"integer"}
        else:
            rows = conn.execute(sa.text(DAILY_COST_BY_TEMPLATE)).all()
            assert {(r[0], r[1]): r[2] for r in rows} == by_day
    engine.dispose()


@pytest.mark.parametrize(
    ("usd_text", "pico"),
    [
        ("0", 0),
        ("0.0108407", 10_840_700_000),
        ("30", 30 * 10**12),
        ("0.0000000000005", 0),  # half-even to the pico-dollar
        ("0.0000000000015", 2),
        ("-0.25", -250_000_000_000),
    ],
)
def test_pico_dollar_conversion(usd_text: str, pico: int) -> None:
    """Dollars to SQLite's integer and back, exactly; whole dollars read in plain notation."""
    assert to_sqlite_money(Decimal(usd_text)) == pico
    back = from_sqlite_money(pico)
    assert back == Decimal(usd_text).quantize(Decimal(1).scaleb(-SQLITE_MONEY_SCALE))
    assert "E+" not in str(back)


def test_beyond_64_bit_integers_money_is_approximate_not_lost(sqlite_url: str) -> None:
    """A cost above about 9.2 million USD does not fit SQLite's integers: it is stored as a
    double of pico-dollars (as SQLite's own overflow does) and reads back approximately."""
    huge = Decimal("12345678.9")
    stored = to_sqlite_money(huge)
    assert isinstance(stored, float) and from_sqlite_money(stored) == pytest.approx(huge)
    record = make_record("huge", cost_usd=huge)
    write_records(sqlite_url, [record])
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        cost = conn.execute(sa.select(prompt_executions.c.cost_usd)).scalar_one()
    assert template_totals(engine) == {("huge", None): pytest.approx(huge)}
    assert cost == pytest.approx(huge, rel=Decimal("1e-15"))
    engine.dispose()


def test_sqlite_refuses_a_dollar_amount_in_a_money_column(sqlite_url: str) -> None:
    """A fraction in cost_usd can only be dollars (a writer older than revision 0012, a
    hand-written statement): refused, so it never mixes units into the sums; integers
    (pico-dollars) and NULL pass, and the totals stay exact."""
    record = record_with_requests("guarded", 1)
    write_records(sqlite_url, [record])
    engine = sa.create_engine(sqlite_url)
    refusal = "integer number of pico-dollars"
    for statement in (
        "UPDATE prompt_executions SET cost_usd = 0.0025",
        "UPDATE prompt_requests SET cost_usd = 0.5",
        "INSERT INTO prompt_executions (id, template_id, template_name, executed_at, success, "
        "response_time_ms, cost_usd) SELECT 'hand', template_id, template_name, executed_at, "
        "1, 1.0, 0.0025 FROM prompt_executions",
    ):
        with pytest.raises(sa.exc.IntegrityError, match=refusal), engine.begin() as conn:
            conn.execute(sa.text(statement))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE prompt_executions SET cost_usd = 2500000001"))
    assert template_totals(engine) == {("guarded", None): Decimal("0.002500000001")}
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE prompt_executions SET cost_usd = NULL"))
    assert template_totals(engine) == {("guarded", None): ZERO}
    engine.dispose()
