"""Schema revisions: the head schema, upgrading a store with data from 0001, downgrading."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.factories import make_record, record_with_requests
from tests.sql.sql_helpers import UTC, count_rows, statistics_mismatches
from vividly_trace.sinks.sql import SQLSink, SQLSinkError, migrate, triggers
from vividly_trace.sinks.sql.schema import (
    metadata,
    prompt_executions,
    prompt_requests,
    prompt_templates,
    to_sqlite_money,
)
from vividly_trace.testing.postgres import create_database

SCRIPT = Path(sys.executable).with_name("vividly-trace")
STATS_TRIGGERS = {
    "trg_prompt_executions_stats_delete",
    "trg_prompt_executions_stats_insert",
    "trg_prompt_executions_stats_update",
}
# SQLite only (PostgreSQL's foreign key cascades): revision 0003's trigger deleting an
# execution's requests with it.
REQUESTS_TRIGGER = "trg_prompt_executions_delete_requests"
# SQLite only: revision 0012's triggers refusing a dollar amount in a money column.
MONEY_TRIGGERS = {
    f"trg_{table}_money_{event}"
    for table in ("prompt_executions", "prompt_requests")
    for event in ("insert", "update")
}


def head_triggers(engine: sa.Engine) -> set[str]:
    """The triggers a store at the head revision has on ``engine``'s database."""
    if engine.dialect.name == "sqlite":
        return STATS_TRIGGERS | {REQUESTS_TRIGGER} | MONEY_TRIGGERS
    return STATS_TRIGGERS


@pytest.fixture(name="other_url")
def _other_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second fresh database of the same kind as ``db_url``."""
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'other.db'}"
    return create_database(request.getfixturevalue("postgres_server"), "other")


def schema_snapshot(engine: sa.Engine) -> dict[str, Any]:
    """The layout of the store: columns in order (type, null, default), keys, indexes,
    triggers and trigger functions, as the database reports them."""
    inspector = sa.inspect(engine)
    out: dict[str, Any] = {}
    for table in (
        "prompt_templates",
        "prompt_executions",
        "prompt_requests",
        "prompt_scores",
        "alert_state",
    ):
        if not inspector.has_table(table):
            continue
        out[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"), c.get("comment"))
                for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table),
            "fks": inspector.get_foreign_keys(table),
        }
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            queries = {
                "indexes": "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE tablename LIKE 'prompt_%' ORDER BY indexname",
                "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE tgrelid = 'prompt_executions'::regclass "
                "AND NOT tgisinternal ORDER BY tgname",
                "functions": "SELECT proname, prosrc FROM pg_proc "
                "WHERE proname LIKE 'vividly_trace%' ORDER BY proname",
            }
        else:
            queries = {
                "indexes": "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name LIKE 'prompt_%' ORDER BY name",
                "triggers": "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "ORDER BY name",
            }
        for key, query in queries.items():
            out[key] = [tuple(row) for row in conn.execute(sa.text(query))]
    return out


def trigger_names(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return set(
                conn.execute(
                    sa.text(
                        "SELECT tgname FROM pg_trigger "
                        "WHERE tgrelid = 'prompt_executions'::regclass AND NOT tgisinternal"
                    )
                ).scalars()
            )
        return set(
            conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars()
        )


def column_names(engine: sa.Engine) -> list[str]:
    return [c["name"] for c in sa.inspect(engine).get_columns("prompt_executions")]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIVIDLY_TRACE_DATABASE")}
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def dollar_table(table: sa.Table) -> sa.Table:
    """``table`` as revisions before 0012 bind a cost: dollars (a double on SQLite)."""
    return sa.Table(
        table.name,
        sa.MetaData(),
        *(
            sa.Column(c.name, sa.Double() if c.name.endswith("cost_usd") else c.type)
            for c in table.columns
        ),
    )


_DOLLAR_EXECUTIONS = dollar_table(prompt_executions)


def insert_at_0001(engine: sa.Engine, n: int) -> None:
    """Executions as a revision-0001 store holds them (no cached audio column, costs in
    dollars)."""
    keys = ("old_a", "old_b")
    with engine.begin() as conn:
        for key in keys:
            if (
                conn.execute(
                    sa.select(prompt_templates.c.id).where(prompt_templates.c.name == key)
                ).first()
                is None
            ):
                conn.execute(sa.insert(prompt_templates).values(name=key))
        ids = dict(conn.execute(sa.select(prompt_templates.c.name, prompt_templates.c.id)).all())
        conn.execute(
            sa.insert(_DOLLAR_EXECUTIONS),
            [
                {
                    "id": f"old-{uuid.uuid4()}",
                    "template_id": ids[keys[i % 2]],
                    "template_name": keys[i % 2],
                    "executed_at": dt.datetime(2025, 1, 1, tzinfo=UTC) + dt.timedelta(hours=i),
                    "success": i % 3 != 0,
                    "response_time_ms": 10.0 + i,
                    "input_token_count": 100 + i,
                    "output_token_count": i,
                    "total_token_count": 100 + 2 * i,
                    "cost_usd": Decimal(i) / 10**4,
                }
                for i in range(n)
            ],
        )


def test_the_head_schema_equals_what_db_upgrade_builds(db_url: str, other_url: str) -> None:
    """schema.py + the head triggers build the same store as the migrations do: same
    columns in the same order, keys, indexes, triggers and trigger functions."""
    upgraded = sa.create_engine(db_url)
    built = sa.create_engine(other_url)
    try:
        assert migrate.upgrade(upgraded) == (None, migrate.SCHEMA_REVISION)
        metadata.create_all(built)
        with built.begin() as conn:
            for statement in triggers.head_create_statements(built.dialect.name):
                conn.exec_driver_sql(statement)
        expected = schema_snapshot(upgraded)
        assert schema_snapshot(built) == expected
        assert [c[:3] for c in expected["prompt_executions"]["columns"][-13:]] == [
            ("cached_audio_token_count", "BIGINT", True),
            ("prompt_text", "TEXT", True),
            ("response_text", "TEXT", True),
            ("user_id", "TEXT", True),
            ("session_id", "TEXT", True),
            ("request_id", "TEXT", True),
            ("service_tier", "TEXT", True),
            ("image_input_token_count", "BIGINT", True),
            ("video_input_token_count", "BIGINT", True),
            ("image_output_token_count", "BIGINT", True),
            ("audio_output_token_count", "BIGINT", True),
            ("grounded_prompt_count", "BIGINT", True),
            ("search_query_count", "BIGINT", True),
        ]
        assert [c[0] for c in expected["prompt_requests"]["columns"]][-7:] == [
            "streamed",
            "image_input_token_count",
            "video_input_token_count",
            "image_output_token_count",
            "audio_output_token_count",
            "grounded_prompt_count",
            "search_query_count",
        ]
        requests = expected["prompt_requests"]
        assert [c[0] for c in requests["columns"]][:4] == [
            "execution_id",
            "seq",
            "started_at",
            "operation",
        ]
        assert requests["pk"]["constrained_columns"] == ["execution_id", "seq"]
        (fk,) = requests["fks"]
        assert (fk["referred_table"], fk["constrained_columns"], fk["options"]) == (
            "prompt_executions",
            ["execution_id"],
            {"ondelete": "CASCADE"},
        )
        index_names = {i[0] for i in expected["indexes"]}
        assert {
            "ix_prompt_requests_started_at_model",
            "ix_prompt_executions_parent_execution_id",
        } <= index_names
        assert {t[0] for t in expected["triggers"]} == head_triggers(upgraded)
    finally:
        upgraded.dispose()
        built.dispose()


def test_db_upgrade_from_0001_with_data(db_url: str) -> None:
    """A revision-0001 store with data, whose statistics an UPDATE made wrong (0001 has no
    UPDATE trigger): `db upgrade` adds the column, keeps every row, and fixes the
    statistics; from then on UPDATEs keep them right and the sink writes cached audio."""
    engine = sa.create_engine(db_url)
    assert migrate.upgrade(engine, "0001") == (None, "0001")
    assert "cached_audio_token_count" not in column_names(engine)
    insert_at_0001(engine, 40)
    assert statistics_mismatches(engine) == []
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE prompt_executions SET cost_usd = 1, success = NOT success "
                "WHERE output_token_count < 10"
            )
        )
    assert statistics_mismatches(engine) != []
    with pytest.raises(SQLSinkError, match="at revision 0001"):
        SQLSink(db_url, auto_migrate=False).write_batch([make_record()])
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT * FROM prompt_executions ORDER BY id")).all()

    result = cli("db", "upgrade", db_url)
    assert result.returncode == 0, result.stderr
    assert f"upgraded from 0001 to {migrate.SCHEMA_REVISION}" in result.stdout
    assert column_names(engine)[-13:] == [
        "cached_audio_token_count",
        "prompt_text",
        "response_text",
        "user_id",
        "session_id",
        "request_id",
        "service_tier",
        "image_input_token_count",
        "video_input_token_count",
        "image_output_token_count",
        "audio_output_token_count",
        "grounded_prompt_count",
        "search_query_count",
    ]
    assert trigger_names(engine) == head_triggers(engine)
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.SCHEMA_REVISION
        after = conn.execute(sa.text("SELECT * FROM prompt_executions ORDER BY id")).all()
    if engine.dialect.name == "sqlite":  # revision 0012: dollars become pico-dollars
        cost = list(prompt_executions.c.keys()).index("cost_usd")
        before = [
            (*r[:cost], None if r[cost] is None else to_sqlite_money(r[cost]), *r[cost + 1 :])
            for r in before
        ]
    assert [(*row, *[None] * 13) for row in before] == [tuple(row) for row in after]
    assert count_rows(engine, "prompt_requests") == 0  # old executions get no request rows
    assert statistics_mismatches(engine) == []

    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE prompt_executions SET response_time_ms = 1.5, "
                "template_name = 'moved', template_id = "
                "(SELECT min(id) FROM prompt_templates) WHERE success"
            )
        )
    assert statistics_mismatches(engine) == []
    record = make_record("old_a", cached_audio_token_count=9)
    assert SQLSink(db_url, auto_migrate=False).write_batch([record]) is None
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(prompt_executions.c.cached_audio_token_count).where(
                    prompt_executions.c.id == record.execution_id
                )
            ).scalar_one()
            == 9
        )
    assert count_rows(engine) == 41
    engine.dispose()


def test_downgrade_to_0001_and_back(db_url: str) -> None:
    """Downgrading to 0001 drops the column and the UPDATE trigger (and its function) and
    keeps the rows and the 0001 triggers working; upgrading again restores them."""
    sink = SQLSink(db_url)
    records = [
        make_record(
            f"d{i % 3}",
            input_token_count=100,
            output_token_count=i,
            cost_usd=Decimal(i) / 1000,
            cached_audio_token_count=i,
        )
        for i in range(12)
    ]
    assert sink.write_batch(records) is None
    engine = sink.engine
    head = schema_snapshot(engine)

    assert migrate.downgrade(engine, "0001") == (migrate.SCHEMA_REVISION, "0001")
    assert "cached_audio_token_count" not in column_names(engine)
    assert not sa.inspect(engine).has_table("prompt_requests")
    assert trigger_names(engine) == STATS_TRIGGERS - {"trg_prompt_executions_stats_update"}
    snapshot = schema_snapshot(engine)
    if engine.dialect.name == "postgresql":
        assert [f[0] for f in snapshot["functions"]] == [
            "vividly_trace_stats_after_delete",
            "vividly_trace_stats_after_insert",
        ]
    assert count_rows(engine) == 12
    assert statistics_mismatches(engine) == []
    insert_at_0001(engine, 5)  # the 0001 triggers still count inserts and deletes
    with engine.begin() as conn:
        conn.execute(sa.delete(prompt_executions).where(prompt_executions.c.template_name == "d0"))
    assert statistics_mismatches(engine) == []
    assert migrate.downgrade(engine, "0001") == ("0001", "0001")

    assert migrate.upgrade(engine) == ("0001", migrate.SCHEMA_REVISION)
    assert schema_snapshot(engine) == head
    with engine.connect() as conn:
        audio = conn.execute(sa.select(prompt_executions.c.cached_audio_token_count)).scalars()
        assert set(audio) == {None}  # the values went with the column
    assert statistics_mismatches(engine) == []

    assert migrate.downgrade(engine, "base") == (migrate.SCHEMA_REVISION, None)
    assert not sa.inspect(engine).has_table("prompt_executions")
    sink.close()


def test_downgrade_to_0002_and_back_with_requests(db_url: str, other_url: str) -> None:
    """Downgrading a store holding request rows to 0002 drops prompt_requests, the content
    columns, the parent index and (SQLite) the cascade trigger, keeping every execution and
    leaving exactly a 0002 store; reports still work on it (each execution under its own
    model); upgrading again restores the head schema and the sink writes requests."""
    from vividly_trace.analytics import cost_by_model

    sink = SQLSink(db_url)
    records = [
        record_with_requests("r", 2, prompt_text="q", response_text="a"),
        record_with_requests("r", 1),
        make_record("plain", model="gemini-2.5-pro", input_token_count=1, output_token_count=1),
    ]
    assert sink.write_batch(records) is None
    engine = sink.engine
    head = schema_snapshot(engine)
    assert count_rows(engine, "prompt_requests") == 3
    e = prompt_executions.c
    # Read as Decimal: 0012's downgrade turns SQLite's pico-dollars back into dollars.
    money_columns = sa.select(e.id, e.template_name, e.cost_usd, e.input_token_count).order_by(e.id)
    with engine.connect() as conn:
        before = conn.execute(money_columns).all()

    assert migrate.downgrade(engine, "0002") == (migrate.SCHEMA_REVISION, "0002")
    assert not sa.inspect(engine).has_table("prompt_requests")
    assert column_names(engine)[-1] == "cached_audio_token_count"
    assert trigger_names(engine) == STATS_TRIGGERS
    plain_0002 = sa.create_engine(other_url)
    assert migrate.upgrade(plain_0002, "0002") == (None, "0002")
    assert schema_snapshot(engine) == schema_snapshot(plain_0002)
    plain_0002.dispose()
    with engine.connect() as conn:
        after = conn.execute(money_columns).all()
    assert after == before
    assert statistics_mismatches(engine) == []
    # Without the table, every execution is one call of its own model.
    by_model = {(m.model, m.calls) for m in cost_by_model(engine)}
    assert by_model == {("gemini-2.5-flash", 2), ("gemini-2.5-pro", 1)}
    with pytest.raises(SQLSinkError, match="at revision 0002"):
        SQLSink(db_url, auto_migrate=False).write_batch([record_with_requests("r", 1)])

    assert migrate.upgrade(engine) == ("0002", migrate.SCHEMA_REVISION)
    assert schema_snapshot(engine) == head
    assert count_rows(engine, "prompt_requests") == 0  # the rows went with the table
    again = record_with_requests("r", 2)
    assert SQLSink(db_url, auto_migrate=False).write_batch([again]) is None
    assert count_rows(engine, "prompt_requests") == 2
    assert statistics_mismatches(engine) == []
    sink.close()


def sqlite_kinds(engine: sa.Engine) -> set[str]:
    """The storage classes of the executions' costs on SQLite."""
    with engine.connect() as conn:
        kinds = conn.execute(sa.text("SELECT DISTINCT typeof(cost_usd) FROM prompt_executions"))
        return set(kinds.scalars())


def dollars(value: object) -> Decimal:
    """A cost as a store before revision 0012 gave it back."""
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))  # type: ignore[arg-type]


def test_0012_makes_sqlite_money_exact_and_downgrades(db_url: str) -> None:
    """A 0009 store written in dollars (SQLite: doubles, and a total_cost_usd the triggers
    added in floating point, off in the last digits): upgrading converts every cost of the
    executions and their requests to pico-dollars and recomputes the totals, which then equal
    the exact Decimal sums; the downgrade gives back dollars (the nearest doubles), and a new
    upgrade is exact again. PostgreSQL's NUMERIC is exact throughout and left as it is."""
    engine = sa.create_engine(db_url)
    assert migrate.upgrade(engine, "0009") == (None, "0009")
    sqlite = engine.dialect.name == "sqlite"
    costs = [Decimal("0.0108407") * (i % 7 + 1) + Decimal(i) / 10**9 for i in range(60)]
    whole = Decimal(2)  # a whole-dollar double SQLite's NUMERIC keeps as the integer 2
    costs[5] = whole
    expected = sum(costs, Decimal(0))
    with engine.begin() as conn:
        conn.execute(sa.insert(prompt_templates).values(name="old"))
        template_id = conn.execute(sa.select(prompt_templates.c.id)).scalar_one()
        conn.execute(
            sa.insert(_DOLLAR_EXECUTIONS),
            [
                {
                    "id": f"old-{i:03d}",
                    "template_id": template_id,
                    "template_name": "old",
                    "executed_at": dt.datetime(2026, 11, 1, tzinfo=UTC) + dt.timedelta(hours=i),
                    "success": True,
                    "response_time_ms": 10.0,
                    "cost_usd": cost,
                }
                for i, cost in enumerate(costs)
            ],
        )
        conn.execute(
            sa.insert(dollar_table(prompt_requests)),
            [
                {
                    "execution_id": f"old-{i:03d}",
                    "seq": 0,
                    "started_at": dt.datetime(2026, 11, 1, tzinfo=UTC) + dt.timedelta(hours=i),
                    "operation": "generate_content",
                    "response_time_ms": 10.0,
                    "success": True,
                    "cost_usd": cost,
                }
                for i, cost in enumerate(costs)
            ],
        )
        raw_total = conn.execute(sa.text("SELECT total_cost_usd FROM prompt_templates")).scalar()
    if sqlite:
        kinds = sqlite_kinds(
            engine
        )  # the drift this revision removes, and the stored doubles it converts
        assert isinstance(raw_total, float) and Decimal(repr(raw_total)) != expected
        assert kinds == {"real", "integer"}
    else:
        assert raw_total == expected

    def read() -> tuple[list[Decimal], list[Decimal], Decimal]:
        e, q = prompt_executions.c, prompt_requests.c
        with engine.connect() as conn:
            ex = list(conn.execute(sa.select(e.cost_usd).order_by(e.id)).scalars())
            rq = list(conn.execute(sa.select(q.cost_usd).order_by(q.execution_id)).scalars())
            total = conn.execute(sa.select(prompt_templates.c.total_cost_usd)).scalar_one()
        return ex, rq, total

    assert migrate.upgrade(engine) == ("0009", migrate.SCHEMA_REVISION)
    assert read() == (costs, costs, expected)
    assert type(read()[2]) is Decimal
    assert statistics_mismatches(engine) == []
    with engine.connect() as conn:
        pico = conn.execute(sa.text("SELECT cost_usd FROM prompt_executions ORDER BY id")).all()
        raw_total = conn.execute(sa.text("SELECT total_cost_usd FROM prompt_templates")).scalar()
    if sqlite:
        assert [r[0] for r in pico] == [to_sqlite_money(c) for c in costs]
        assert raw_total == to_sqlite_money(expected)
    # The triggers go on adding exactly after the upgrade.
    with engine.begin() as conn:
        conn.execute(
            sa.update(prompt_executions).where(prompt_executions.c.id == "old-000"),
            {"cost_usd": costs[0] + Decimal("0.000000000001")},
        )
    assert read()[2] == expected + Decimal("0.000000000001")

    assert migrate.downgrade(engine, "0009") == (migrate.SCHEMA_REVISION, "0009")
    # Read as code before 0012 did (SQLite: doubles through their shortest repr).
    with engine.connect() as conn:
        ex = conn.execute(sa.text("SELECT cost_usd FROM prompt_executions ORDER BY id")).scalars()
        rq = conn.execute(
            sa.text("SELECT cost_usd FROM prompt_requests ORDER BY execution_id")
        ).scalars()
        total = conn.execute(sa.text("SELECT total_cost_usd FROM prompt_templates")).scalar()
    assert [dollars(c) for c in ex][1:] == [dollars(c) for c in rq][1:] == costs[1:]
    assert float(total) == pytest.approx(float(expected + Decimal("0.000000000001")), rel=1e-15)
    if sqlite:
        assert sqlite_kinds(engine) == {"real", "integer"}  # the whole $2 is an integer again

    assert migrate.upgrade(engine) == ("0009", migrate.SCHEMA_REVISION)
    assert read()[2] == expected + Decimal("0.000000000001")
    assert statistics_mismatches(engine) == []
    engine.dispose()
