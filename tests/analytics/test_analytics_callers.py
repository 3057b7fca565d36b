"""Who called, in the store and the reports: cost per user, top users, sessions (exact
costs, unknown never $0), on SQLite and PostgreSQL; the report's users table (terminal and
HTML); a store older than the caller columns."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tests.factories import make_record
from tests.sql.sql_helpers import write_records
from vividly_trace import PromptExecution
from vividly_trace.analytics import (
    StoreSchemaError,
    build_report,
    cost_by_user,
    render_html,
    sessions,
    top_users,
)
from vividly_trace.exceptions import ConfigurationError
from vividly_trace.sinks.sql import migrate

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


def call(
    template: str,
    minutes: float,
    cost: str | None,
    *,
    user: str | None,
    session: str | None,
    success: bool = True,
    request: str | None = None,
) -> PromptExecution:
    return make_record(
        template,
        started_at=T0 + dt.timedelta(minutes=minutes),
        cost_usd=None if cost is None else Decimal(cost),
        input_token_count=10,
        output_token_count=2,
        model="gemini-2.5-flash" if cost is not None else "gemini-unknown",
        success=success,
        user_id=user,
        session_id=session,
        request_id=request,
    )


def traffic() -> list[PromptExecution]:
    """alice: two sessions, costs with 10+ decimals; bob: every call unpriced; carol: one
    cheap call; two calls outside any context."""
    return [
        call("nlu", 0, "0.000012345678", user="alice", session="s1", request="r1"),
        call("story", 3, "0.000100000001", user="alice", session="s1", request="r2"),
        call("nlu", 7.5, "0.000012345678", user="alice", session="s1", success=False),
        call("nlu", 60, "0.0000001", user="alice", session="s2"),
        call("nlu", 1, None, user="bob", session="s3"),
        call("story", 2, None, user="bob", session="s3"),
        call("nlu", 4, "0.00000001", user="carol", session=None),
        call("nlu", 5, "0.5", user=None, session=None),
        call("nlu", 6, None, user=None, session=None),
    ]


@pytest.fixture(name="store_url")
def _store_url(fresh_url: str) -> str:
    write_records(fresh_url, traffic())
    return fresh_url


def test_each_row_keeps_its_caller(store_url: str) -> None:
    """The caller columns hold what the records carried (NULL outside any context)."""
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT user_id, session_id, request_id FROM prompt_executions "
                "WHERE user_id = 'alice' ORDER BY executed_at"
            )
        ).all()
        nulls = conn.execute(
            sa.text("SELECT COUNT(*) FROM prompt_executions WHERE user_id IS NULL")
        ).scalar()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("alice", "s1", "r1"),
        ("alice", "s1", "r2"),
        ("alice", "s1", None),
        ("alice", "s2", None),
    ]
    assert nulls == 2


def test_cost_by_user_is_exact_and_unknown_stays_unknown(store_url: str) -> None:
    """Per user: calls, sessions, failures, an exact Decimal cost; bob's cost is unknown
    (no priced call), not $0; the calls without a user are one row; the sum is the bill."""
    rows = cost_by_user(store_url)
    by_user = {u.user_id: u for u in rows}
    alice = by_user["alice"]
    assert alice.cost_usd == Decimal("0.000124791357")
    assert (alice.calls, alice.priced_calls, alice.failed_calls, alice.sessions) == (4, 4, 1, 2)
    assert (alice.input_tokens, alice.output_tokens) == (40, 8)
    assert alice.first_seen == T0 and alice.last_seen == T0 + dt.timedelta(minutes=60)
    bob = by_user["bob"]
    assert (bob.calls, bob.priced_calls, bob.unpriced_calls) == (2, 0, 2)
    assert bob.known_cost_usd is None and bob.to_dict()["cost_usd"] is None
    nobody = by_user[None]
    assert (nobody.calls, nobody.unpriced_calls, nobody.cost_usd) == (2, 1, Decimal("0.5"))
    assert by_user["carol"].sessions == 0
    # Highest cost first, then the most calls; the rows add up to the bill.
    assert [u.user_id for u in rows] == [None, "alice", "carol", "bob"]
    assert sum((u.cost_usd for u in rows), Decimal(0)) == Decimal("0.500124801357")
    frame = rows.to_dataframe()
    assert list(frame["user_id"])[1:] == ["alice", "carol", "bob"]
    assert frame.loc[frame["user_id"] == "bob", "cost_usd"].isna().all()


def test_filters(store_url: str) -> None:
    """The time window and the template filter apply."""
    story = {u.user_id: u for u in cost_by_user(store_url, template="story")}
    assert set(story) == {"alice", "bob"}
    assert story["alice"].cost_usd == Decimal("0.000100000001")
    early = cost_by_user(store_url, until=T0 + dt.timedelta(minutes=2))
    assert {u.user_id: u.calls for u in early} == {"alice": 1, "bob": 1}


def test_top_users(store_url: str) -> None:
    """top_users leaves the calls without a user out and keeps the n highest."""
    assert [u.user_id for u in top_users(store_url)] == ["alice", "carol", "bob"]
    assert [u.user_id for u in top_users(store_url, 2)] == ["alice", "carol"]
    with pytest.raises(ConfigurationError, match="positive int"):
        top_users(store_url, 0)


def test_sessions(store_url: str) -> None:
    """Per session: calls, cost, first and last call, duration, templates; by user."""
    rows = sessions(store_url)
    assert [s.session_id for s in rows] == ["s2", "s1", "s3"]  # latest call first
    s1 = {s.session_id: s for s in rows}["s1"]
    assert (s1.user_id, s1.calls, s1.failed_calls) == ("alice", 3, 1)
    assert s1.cost_usd == Decimal("0.000124691357")
    assert s1.duration == dt.timedelta(minutes=7.5)
    assert s1.templates == ("nlu", "story")
    s3 = {s.session_id: s for s in rows}["s3"]
    assert s3.known_cost_usd is None and s3.unpriced_calls == 2
    mine = sessions(store_url, user_id="alice")
    assert [s.session_id for s in mine] == ["s2", "s1"]
    assert mine[0].duration == dt.timedelta(0)
    frame = mine.to_dataframe()
    assert list(frame["duration_s"]) == [0.0, 450.0]
    assert list(frame["templates"]) == ["nlu", "nlu, story"]
    assert sessions(store_url, user_id="nobody") == []
    with pytest.raises(ConfigurationError, match="user_id"):
        sessions(store_url, user_id="")


def test_the_reports_show_users(store_url: str) -> None:
    """The HTML report has a users section; `report --users` prints the users table,
    with bob's cost unknown (never $0)."""
    from click.testing import CliRunner

    from vividly_trace.cli import _build

    report = build_report(store_url, since=None)
    assert report.has_callers and report.known_users[0].user_id == "alice"
    page = render_html(report)
    users = page[page.index("<section id='users'>") :]
    users = users[: users.index("</section>")]
    assert "alice" in users and "(no user)" in users
    bob = users[users.index("<td>bob</td>") :]
    bob = bob[: bob.index("</tr>")]
    assert "unknown" in bob and "$0" not in bob
    result = CliRunner().invoke(_build(), ["report", "--url", store_url, "--since", "all"])
    assert result.exit_code == 0, result.output
    assert "Cost by user" not in result.output
    result = CliRunner().invoke(
        _build(), ["report", "--url", store_url, "--since", "all", "--users"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if "Cost by user" in line)
    table: dict[str, Any] = {}
    for line in lines[start + 3 :]:  # title, header, rule
        if not line.strip():
            break
        table[line.split()[0]] = line
    assert list(table) == ["alice", "carol", "bob", "(no"]
    assert table["bob"].split()[-2:] == ["unknown", "unknown"]
    assert "$0.000125" in table["alice"]  # 0.000124791357, shown rounded


def test_a_store_before_the_caller_columns(fresh_url: str) -> None:
    """A store at revision 0003 (no caller columns): the queries name the upgrade, the
    report still builds and says so."""
    write_records(fresh_url, traffic()[:2])
    engine = sa.create_engine(fresh_url)
    try:
        migrate.downgrade(engine, "0003")
        with pytest.raises(StoreSchemaError, match="db upgrade"):
            cost_by_user(engine)
        with pytest.raises(StoreSchemaError, match="revision 0005"):
            sessions(engine)
        report = build_report(engine, since=None)
        assert not report.has_callers and report.executions == 2
        assert "predates the caller columns" in render_html(report)
    finally:
        engine.dispose()
