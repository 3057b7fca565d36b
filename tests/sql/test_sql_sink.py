"""SQLSink on SQLite files and on the real PostgreSQL: rows, templates, statistics, limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sqlite3
import time
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
import sqlalchemy as sa

import vividly_trace
from tests.factories import make_record
from tests.sql.sql_helpers import UTC, closed_port, count_rows, statistics_mismatches
from vividly_trace import ConfigurationError, MissingExtraError, log_prompt_execution
from vividly_trace._jsonsafe import MAX_STRING_CHARS, sanitize_metadata
from vividly_trace.sinks.sql import SQLSink, SQLSinkError, register_template
from vividly_trace.sinks.sql.schema import Money, metadata, prompt_executions, prompt_templates

INJECTION = [
    "'; DROP TABLE prompt_executions; --",
    "Robert'); DELETE FROM prompt_templates WHERE ('1'='1",
    '" OR 1=1 --',
    "\\'; SELECT pg_sleep(10); --",
    "$$; DROP FUNCTION vividly_trace_stats_after_insert(); $$",
    "名前 ✓ \u202e emoji 🚀",
]


def _executions(engine: sa.Engine) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(prompt_executions).order_by(prompt_executions.c.id)))


def _templates(engine: sa.Engine) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(prompt_templates).order_by(prompt_templates.c.id)))


class TestRows:
    def test_every_field_lands_in_its_column(self, db_url: str) -> None:
        """All record fields are stored in their columns and read back unchanged."""
        sink = SQLSink(db_url)
        when = dt.datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
        record = make_record(
            "nlu_extraction",
            template_version="v3",
            ab_test_group="B",
            success=False,
            response_time_ms=123.25,
            input_token_count=1000,
            output_token_count=250,
            cost_usd=Decimal("0.000123456789"),
            started_at=when,
            metadata={"user_tier": "pro", "nested": {"list": [1, 2.5, None, True]}},
            provider="gemini",
            model="gemini-2.5-flash",
            response_model="gemini-2.5-flash-001",
            cached_token_count=100,
            thinking_token_count=50,
            tool_use_token_count=7,
            audio_input_token_count=3,
            cached_audio_token_count=2,
            pricing_version="2025-06-01",
            error_type="ServerError",
            error_message="503 overloaded",
            http_status=503,
            finish_reason="STOP",
            streamed=True,
            stream_closed_early=True,
            time_to_first_chunk_ms=12.5,
            parent_execution_id="0190b3c4-0000-7000-8000-000000000001",
        )
        assert sink.write_batch([record]) is None
        (row,) = _executions(sink.engine)
        (template,) = _templates(sink.engine)
        executed_at = (
            row.executed_at if row.executed_at.tzinfo else row.executed_at.replace(tzinfo=UTC)
        )
        assert executed_at == when
        assert row.id == record.execution_id
        assert row.template_id == template.id
        assert (row.template_name, row.template_version, row.template_ab_test_group) == (
            "nlu_extraction",
            "v3",
            "B",
        )
        assert row.success is False
        assert row.response_time_ms == 123.25
        assert row.cost_usd == Decimal("0.000123456789")
        assert isinstance(row.cost_usd, Decimal)
        assert row.metadata == record.metadata
        for name in (
            "provider",
            "model",
            "response_model",
            "input_token_count",
            "output_token_count",
            "total_token_count",
            "cached_token_count",
            "thinking_token_count",
            "tool_use_token_count",
            "audio_input_token_count",
            "cached_audio_token_count",
            "pricing_version",
            "error_type",
            "error_message",
            "http_status",
            "finish_reason",
            "streamed",
            "stream_closed_early",
            "time_to_first_chunk_ms",
            "parent_execution_id",
        ):
            assert getattr(row, name) == getattr(record, name), name
        assert (template.name, template.version, template.ab_test_group, template.model) == (
            "nlu_extraction",
            "v3",
            "B",
            "gemini-2.5-flash",
        )
        sink.close()

    def test_cached_audio_tokens_on_every_write_path(self, db_url: str) -> None:
        """cached_audio_token_count is stored by each way a batch is written: SQLite's
        INSERT; PostgreSQL's COPY, its replay through the staging table, and the multi-row
        INSERT of use_copy=False."""
        sinks = [SQLSink(db_url)]
        if sinks[0].dialect == "postgresql":
            assert sinks[0].use_copy
            sinks.append(SQLSink(db_url, use_copy=False))
        expected: dict[str, int | None] = {}
        for n, sink in enumerate(sinks):
            first = [make_record(cached_audio_token_count=10 * n + i) for i in range(3)]
            first.append(make_record(cached_audio_token_count=None))
            assert sink.write_batch(first) is None
            # A replay: one id already stored (PostgreSQL: COPY fails, the staging path runs).
            again = [first[0], make_record(cached_audio_token_count=10 * n + 7)]
            assert sink.write_batch(again) is None
            expected.update({r.execution_id: r.cached_audio_token_count for r in first + again})
        got = {r.id: r.cached_audio_token_count for r in _executions(sinks[0].engine)}
        assert got == expected

    def test_cost_round_trips_exactly(self, db_url: str) -> None:
        """Costs come back as the same Decimal (PostgreSQL: any precision; SQLite: 15 digits)."""
        sink = SQLSink(db_url)
        costs = [
            Decimal("0.00001875"),
            Decimal("0.000000075"),
            Decimal("123.456789012345"),
            Decimal("0"),
            Decimal("0.1") + Decimal("0.2"),
        ]
        if sink.dialect == "postgresql":
            costs.append(Decimal("0.000000000012345678901234567890"))
        records = [make_record(cost_usd=c) for c in costs]
        sink.write_batch(records)
        got = {r.id: r.cost_usd for r in _executions(sink.engine)}
        for record in records:
            assert got[record.execution_id] == record.cost_usd
            assert isinstance(got[record.execution_id], Decimal)
        with sink.engine.connect() as conn:
            total = conn.execute(sa.select(prompt_templates.c.total_cost_usd)).scalar_one()
        if sink.dialect == "postgresql":
            with localcontext() as ctx:
                ctx.prec = 60
                assert total == sum(costs)  # exact: NUMERIC keeps all 34 digits
        else:
            assert float(total) == pytest.approx(float(sum(costs)), rel=1e-12)

    def test_timestamps_are_stored_in_utc(self, db_url: str) -> None:
        """A started_at in another zone (or naive, taken as UTC) is stored as UTC."""
        sink = SQLSink(db_url)
        plus2 = dt.timezone(dt.timedelta(hours=2))
        a = make_record(started_at=dt.datetime(2025, 1, 1, 12, 0, tzinfo=plus2))
        b = make_record(started_at=dt.datetime(2025, 1, 1, 12, 0))
        sink.write_batch([a, b])
        got = {r.id: r.executed_at for r in _executions(sink.engine)}
        as_utc = {k: (v if v.tzinfo else v.replace(tzinfo=UTC)) for k, v in got.items()}
        assert as_utc[a.execution_id] == dt.datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
        assert as_utc[b.execution_id] == dt.datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def test_replay_never_duplicates(self, db_url: str) -> None:
        """The same records sent again (and twice inside one batch) are written once."""
        sink = SQLSink(db_url)
        records = [
            make_record(
                f"k{i % 3}",
                response_time_ms=10 + i,
                input_token_count=i,
                output_token_count=1,
                cost_usd=Decimal("0.001"),
            )
            for i in range(50)
        ]
        sink.write_batch(records[:30])
        sink.write_batch(records)  # 30 already there
        sink.write_batch(records + records[:10])  # duplicates inside the batch
        fresh = SQLSink(db_url)  # another process would have an empty template cache
        fresh.write_batch(records[::-1])
        rows = _executions(sink.engine)
        assert len(rows) == 50
        assert {r.id for r in rows} == {r.execution_id for r in records}
        assert statistics_mismatches(sink.engine) == []
        with sink.engine.connect() as conn:
            totals = conn.execute(
                sa.text(
                    "SELECT sum(total_executions), sum(total_input_tokens) FROM prompt_templates"
                )
            ).one()
        assert tuple(int(x) for x in totals) == (50, sum(range(50)))

    def test_sql_injection_strings_are_stored_verbatim(self, db_url: str) -> None:
        """Hostile keys, versions, groups, messages and metadata are data, never SQL."""
        sink = SQLSink(db_url)
        records = [
            make_record(
                text,
                template_version=text,
                ab_test_group=text[:5],
                success=False,
                error_message=text,
                metadata={text: text, "list": [text]},
            )
            for text in INJECTION
        ]
        assert sink.write_batch(records) is None
        rows = {r.id: r for r in _executions(sink.engine)}
        assert len(rows) == len(INJECTION)
        for record, text in zip(records, INJECTION, strict=True):
            row = rows[record.execution_id]
            assert row.template_name == text
            assert row.template_version == text
            assert row.error_message == text
            assert row.metadata == {text: text, "list": [text]}
        names = {t.name for t in _templates(sink.engine)}
        assert names == set(INJECTION)
        assert statistics_mismatches(sink.engine) == []

    def test_nul_characters(self, db_url: str) -> None:
        """NUL characters, which PostgreSQL text cannot hold, become U+FFFD there."""
        sink = SQLSink(db_url)
        record = make_record("key\x00nul", error_message="a\x00b", metadata={"k\x00": "v\x00"})
        assert sink.write_batch([record]) is None
        (row,) = _executions(sink.engine)
        if sink.dialect == "postgresql":
            assert row.template_name == "key\ufffdnul"
            assert row.error_message == "a\ufffdb"
            assert row.metadata == {"k\ufffd": "v\ufffd"}
        else:
            assert row.template_name == "key\x00nul"
            assert row.metadata == {"k\x00": "v\x00"}

    def test_a_refused_value_drops_only_its_record(self, db_url: str) -> None:
        """A value the database refuses (a 2**70 token count) costs only that record."""
        sink = SQLSink(db_url)
        good = [make_record(input_token_count=5, output_token_count=5) for _ in range(4)]
        bad = make_record(input_token_count=2**70, output_token_count=1)
        assert sink.write_batch([good[0], bad, *good[1:]]) == {"invalid_record": 1}
        assert {r.id for r in _executions(sink.engine)} == {r.execution_id for r in good}
        assert statistics_mismatches(sink.engine) == []


class TestTemplates:
    def test_versions_and_groups_select_their_template(self, db_url: str) -> None:
        """Key, version and A/B group pick (and auto-register) one template row each."""
        sink = SQLSink(db_url)
        combos = [
            ("k", None, None),
            ("k", "v1", None),
            ("k", "v1", "A"),
            ("k", "v1", "B"),
            ("k", "v2", "A"),
            ("other", "v1", "A"),
        ]
        records = [
            make_record(k, template_version=v, ab_test_group=g)
            for k, v, g in combos
            for _ in range(3)
        ]
        sink.write_batch(records)
        templates = {(t.name, t.version, t.ab_test_group): t for t in _templates(sink.engine)}
        assert set(templates) == set(combos)
        by_id = {t.id: key for key, t in templates.items()}
        for row in _executions(sink.engine):
            assert by_id[row.template_id] == (
                row.template_name,
                row.template_version,
                row.template_ab_test_group,
            )
        assert all(t.total_executions == 3 for t in templates.values())
        # An empty version or group is the same template as none.
        sink.write_batch([make_record("k", template_version="", ab_test_group="")])
        assert len(_templates(sink.engine)) == len(combos)
        assert templates[("k", None, None)].id in {
            r.template_id for r in _executions(sink.engine) if r.template_version == ""
        }

    def test_strict_mode_refuses_unknown_templates(
        self, db_url: str, internal_errors: pytest.LogCaptureFixture
    ) -> None:
        """Strict: unregistered (key, version, group) records are not written, counted, named."""
        sink = SQLSink(db_url, strict_templates=True)
        register_template("known", version="v1", sink=sink)
        records = [
            make_record("known", template_version="v1"),
            make_record("known", template_version="v2"),
            make_record("stranger"),
            make_record("stranger"),
        ]
        assert sink.write_batch(records) == {"unknown_template": 3}
        assert [r.template_name for r in _executions(sink.engine)] == ["known"]
        assert [(t.name, t.version) for t in _templates(sink.engine)] == [("known", "v1")]
        assert "'stranger'" in internal_errors.text
        assert "version='v2'" in internal_errors.text
        register_template("stranger", sink=sink)
        assert sink.write_batch(records[2:]) is None
        assert count_rows(sink.engine) == 3

    def test_strict_mode_through_configure_counts_drops(self, db_url: str) -> None:
        """The dispatcher counts records refused in strict mode as dropped."""
        sink = SQLSink(db_url, strict_templates=True)
        register_template("allowed", sink=sink)
        vividly_trace.configure(sinks=[sink], sync=True, spool_dir=False)
        assert log_prompt_execution("allowed", True, 10) is not None
        assert log_prompt_execution("forbidden", True, 10) is not None
        stats = vividly_trace.stats()
        assert stats["dropped"] == {"unknown_template": 1}
        assert stats["sinks"]["sql"]["written"] == 1
        assert count_rows(sink.engine) == 1

    def test_register_template_creates_and_updates(self, db_url: str) -> None:
        """register_template stores text and model, is idempotent and returns the id."""
        tid = register_template(
            "script_generation",
            version="v2",
            ab_group="A",
            text="Write a script about {topic}",
            model="gemini-2.5-pro",
            url=db_url,
        )
        again = register_template("script_generation", version="v2", ab_group="A", url=db_url)
        assert again == tid
        updated = register_template(
            "script_generation", version="v2", ab_group="A", text="v2 text", url=db_url
        )
        assert updated == tid
        sink = SQLSink(db_url)
        (template,) = _templates(sink.engine)
        assert (template.id, template.template_text, template.model, template.is_active) == (
            tid,
            "v2 text",
            "gemini-2.5-pro",
            True,
        )
        sink.write_batch(
            [make_record("script_generation", template_version="v2", ab_test_group="A")]
        )
        assert [r.template_id for r in _executions(sink.engine)] == [tid]

    def test_register_template_uses_the_configured_sink(self, db_url: str) -> None:
        """Without url= or sink=, the configured SQLSink is used; with none it is an error."""
        with pytest.raises(ConfigurationError):
            register_template("x")
        sink = SQLSink(db_url)
        vividly_trace.configure(sinks=[sink], sync=True, spool_dir=False)
        tid = register_template("clarification", text="Ask one question")
        assert [(t.id, t.name) for t in _templates(sink.engine)] == [(tid, "clarification")]
        with pytest.raises(ConfigurationError):
            register_template("", sink=sink)

    def test_register_template_reads_the_environment(
        self, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Configured only by ``VIVIDLY_TRACE_DATABASE_URL``, before any logged call, the
        store it names is used; after ``shutdown()`` there is none."""
        monkeypatch.setenv("VIVIDLY_TRACE_DATABASE_URL", db_url)
        tid = register_template("from_env", text="Hello")
        engine = sa.create_engine(db_url)
        try:
            assert [(t.id, t.name) for t in _templates(engine)] == [(tid, "from_env")]
        finally:
            engine.dispose()
        vividly_trace.shutdown()
        with pytest.raises(ConfigurationError):
            register_template("after_shutdown")


class TestStatistics:
    def test_triggers_keep_statistics_equal_to_aggregates(self, db_url: str) -> None:
        """A mixed workload (failures, missing tokens and costs, many batches) adds up."""
        sink = SQLSink(db_url)
        start = dt.datetime(2025, 5, 1, tzinfo=UTC)
        for batch in range(8):
            records = []
            for i in range(60):
                n = batch * 60 + i
                records.append(
                    make_record(
                        f"t{n % 4}",
                        template_version=f"v{n % 2}",
                        success=n % 7 != 0,
                        response_time_ms=0.1 + (n * 37 % 1000) / 3,
                        input_token_count=None if n % 5 == 0 else n,
                        output_token_count=None if n % 6 == 0 else 2 * n,
                        cost_usd=None if n % 9 == 0 else Decimal(n) / Decimal(10**7),
                        started_at=start + dt.timedelta(minutes=(n * 13) % 997),
                    )
                )
            sink.write_batch(records)
        assert count_rows(sink.engine) == 480
        assert statistics_mismatches(sink.engine) == []
        with sink.engine.connect() as conn:
            ok, failed = conn.execute(
                sa.text(
                    "SELECT sum(successful_executions), sum(failed_executions) "
                    "FROM prompt_templates"
                )
            ).one()
        assert (int(ok), int(failed)) == (480 - len(range(0, 480, 7)), len(range(0, 480, 7)))

    def test_statistics_after_deletes(self, db_url: str) -> None:
        """Deleting executions (retention) keeps the statistics equal to what is left."""
        sink = SQLSink(db_url)
        start = dt.datetime(2025, 1, 1, tzinfo=UTC)
        records = [
            make_record(
                f"k{i % 2}",
                input_token_count=i,
                output_token_count=i,
                cost_usd=Decimal("0.5"),
                response_time_ms=i + 1.0,
                started_at=start + dt.timedelta(days=i),
            )
            for i in range(40)
        ]
        sink.write_batch(records)
        with sink.engine.begin() as conn:
            conn.execute(
                sa.delete(prompt_executions).where(
                    prompt_executions.c.executed_at < start + dt.timedelta(days=10)
                )
            )
        assert count_rows(sink.engine) == 30
        assert statistics_mismatches(sink.engine) == []
        with sink.engine.begin() as conn:
            conn.execute(sa.delete(prompt_executions))
        assert statistics_mismatches(sink.engine) == []
        assert {
            (t.total_executions, t.avg_response_time_ms, t.last_executed_at)
            for t in _templates(sink.engine)
        } == {(0, None, None)}

    def test_statistics_after_updates(self, db_url: str) -> None:
        """UPDATEs of every counted column (success, tokens, cost, response time,
        executed_at, template, id), alone or together, on one row or many templates at
        once, keep the statistics equal to the aggregates."""
        sink = SQLSink(db_url)
        start = dt.datetime(2025, 6, 1, tzinfo=UTC)
        sink.write_batch(
            [
                make_record(
                    f"u{n % 4}",
                    template_version=f"v{n % 2}",
                    success=n % 5 != 0,
                    response_time_ms=0.5 + (n * 31 % 400) / 7,
                    input_token_count=None if n % 6 == 0 else 10 * n,
                    output_token_count=None if n % 7 == 0 else n + 3,
                    cost_usd=None if n % 8 == 0 else Decimal(n) / Decimal(10**6),
                    started_at=start + dt.timedelta(minutes=(n * 17) % 601),
                )
                for n in range(160)
            ]
        )
        engine = sink.engine
        assert statistics_mismatches(engine) == []
        e = prompt_executions

        def update(*statements: sa.Executable, **params: object) -> None:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(statement, params or None)
            assert statistics_mismatches(engine) == [], statements

        def ids_of(template_id: int) -> list[str]:
            with engine.connect() as conn:
                return list(
                    conn.execute(
                        sa.select(e.c.id)
                        .where(e.c.template_id == template_id)
                        .order_by(e.c.executed_at, e.c.id)
                    ).scalars()
                )

        update(
            sa.text(
                "UPDATE prompt_executions SET success = NOT success WHERE response_time_ms > 30"
            )
        )
        update(
            sa.text(
                "UPDATE prompt_executions SET input_token_count = input_token_count + 7,"
                " output_token_count = NULL WHERE total_token_count > 900"
            ),
            sa.text(
                "UPDATE prompt_executions SET input_token_count = 5, "
                "total_token_count = 8 WHERE input_token_count IS NULL"
            ),
        )
        money = Money()  # dollars in the column's unit (SQLite: pico-dollars)
        update(
            sa.text(
                "UPDATE prompt_executions SET cost_usd = cost_usd * 3 WHERE cost_usd > :low"
            ).bindparams(sa.bindparam("low", Decimal("0.00005"), type_=money)),
            sa.text(
                "UPDATE prompt_executions SET cost_usd = NULL WHERE success"
                " AND response_time_ms < 10"
            ),
            sa.text(
                "UPDATE prompt_executions SET cost_usd = :cost WHERE cost_usd IS NULL"
            ).bindparams(sa.bindparam("cost", Decimal("0.25"), type_=money)),
        )
        update(
            sa.text(
                "UPDATE prompt_executions SET response_time_ms = "
                "response_time_ms * 1.5 + 0.1 WHERE input_token_count > 500"
            )
        )
        templates = [t.id for t in _templates(engine)]
        first, *_, last = ids_of(templates[0])
        update(  # the first execution moves to the end, the last one before the start
            sa.update(e).where(e.c.id == first).values(executed_at=start + dt.timedelta(days=9)),
            sa.update(e).where(e.c.id == last).values(executed_at=start - dt.timedelta(days=9)),
        )
        update(
            sa.update(e)
            .where(e.c.id.in_(ids_of(templates[1])[::3]))
            .values(template_id=templates[0])
        )
        update(  # a template loses all its executions, in one statement with other changes
            sa.update(e)
            .where(e.c.template_id == templates[3])
            .values(
                template_id=templates[2],
                success=False,
                cost_usd=Decimal("0.5"),
                executed_at=start + dt.timedelta(days=3),
            )
        )
        update(
            sa.text(  # one statement moving rows across every template
                "UPDATE prompt_executions SET template_id = CASE template_id "
                "WHEN :a THEN :b WHEN :b THEN :c ELSE :a END, "
                "response_time_ms = response_time_ms + 1 WHERE output_token_count > 50"
            ),
            a=templates[0],
            b=templates[1],
            c=templates[2],
        )
        update(
            sa.update(e)
            .where(e.c.template_id == templates[1])
            .values(id=e.c.id + "-renamed", input_token_count=1)
        )
        with engine.connect() as conn:
            emptied = conn.execute(
                sa.select(
                    prompt_templates.c.total_executions,
                    prompt_templates.c.total_tokens,
                    prompt_templates.c.avg_response_time_ms,
                    prompt_templates.c.first_executed_at,
                ).where(prompt_templates.c.id == templates[3])
            ).one()
        assert tuple(emptied) == (0, 0, None, None)
        assert count_rows(engine) == 160

    def test_an_update_of_no_counted_column_writes_no_statistics(self, db_url: str) -> None:
        """An UPDATE that changes no counted column (metadata, pricing version, a value set
        to itself) leaves the template rows untouched."""
        sink = SQLSink(db_url)
        sink.write_batch(
            [
                make_record(
                    f"n{i % 3}",
                    input_token_count=i,
                    output_token_count=1,
                    cost_usd=Decimal(i) / 1000,
                )
                for i in range(30)
            ]
        )
        before = _templates(sink.engine)
        with sink.engine.begin() as conn:
            if sink.dialect == "postgresql":
                versions = conn.execute(
                    sa.text("SELECT id, xmin::text FROM prompt_templates ORDER BY id")
                ).all()
            else:
                changes = conn.execute(sa.text("SELECT total_changes()")).scalar_one()
            updated = conn.execute(
                sa.update(prompt_executions).values(
                    metadata={"edited": True},
                    pricing_version="hand-edit",
                    cost_usd=prompt_executions.c.cost_usd,
                    executed_at=prompt_executions.c.executed_at,
                    template_id=prompt_executions.c.template_id,
                )
            ).rowcount
            assert updated == 30
            if sink.dialect == "postgresql":
                assert (
                    conn.execute(
                        sa.text("SELECT id, xmin::text FROM prompt_templates ORDER BY id")
                    ).all()
                    == versions
                )
            else:  # total_changes() counts the rows written by triggers too
                assert conn.execute(sa.text("SELECT total_changes()")).scalar_one() == (
                    changes + 30
                )
        assert _templates(sink.engine) == before
        assert statistics_mismatches(sink.engine) == []

    def test_a_statement_level_trigger_on_postgresql(self, db_url: str) -> None:
        """PostgreSQL: statement-level triggers with transition tables; SQLite: row."""
        sink = SQLSink(db_url)
        sink.write_batch([make_record()])
        with sink.engine.connect() as conn:
            if sink.dialect == "postgresql":
                rows = conn.execute(
                    sa.text(
                        "SELECT tgname, tgtype & 1, tgoldtable, tgnewtable FROM pg_trigger "
                        "WHERE tgrelid = 'prompt_executions'::regclass AND NOT tgisinternal "
                        "ORDER BY tgname"
                    )
                ).all()
                assert [tuple(r) for r in rows] == [
                    # bit 0 unset: per statement
                    ("trg_prompt_executions_stats_delete", 0, "vividly_trace_old_executions", None),
                    ("trg_prompt_executions_stats_insert", 0, None, "vividly_trace_new_executions"),
                    (
                        "trg_prompt_executions_stats_update",
                        0,
                        "vividly_trace_old_executions",
                        "vividly_trace_new_executions",
                    ),
                ]
            else:
                rows = conn.execute(
                    sa.text(
                        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
                    )
                ).all()
                assert [r[0] for r in rows] == [
                    "trg_prompt_executions_delete_requests",  # the cascade to requests
                    "trg_prompt_executions_money_insert",  # no dollar amounts (0012)
                    "trg_prompt_executions_money_update",
                    "trg_prompt_executions_stats_delete",
                    "trg_prompt_executions_stats_insert",
                    "trg_prompt_executions_stats_update",
                    "trg_prompt_requests_money_insert",
                    "trg_prompt_requests_money_update",
                ]
                assert all("FOR EACH ROW" in r[1] for r in rows)


class TestMetadataLimits:
    def test_ten_megabyte_metadata_through_the_api(self, db_url: str) -> None:
        """10 MB of metadata is stored by the documented rule: long strings cut at 8192
        characters, a result above 64 KiB replaced by a summary."""
        sink = SQLSink(db_url)
        vividly_trace.configure(sinks=[sink], sync=True, spool_dir=False)
        one_big = {"blob": "x" * 10_000_000, "tier": "pro"}
        many = {f"key{i:04d}": "y" * 8000 for i in range(1250)}  # 10 MB in 8000-char strings
        id_big = log_prompt_execution("meta", True, 1.0, metadata=one_big)
        id_many = log_prompt_execution("meta", True, 1.0, metadata=many)
        rows = {r.id: r.metadata for r in _executions(sink.engine)}
        big = rows[id_big]
        assert big["tier"] == "pro"
        assert big["blob"] == "x" * MAX_STRING_CHARS + "...[truncated 9991808 chars]"
        summary = rows[id_many]
        assert summary["_truncated"] is True
        assert summary["_original_bytes"] > 64 * 1024
        assert summary["_keys"] == [f"key{i:04d}" for i in range(50)]
        assert big == sanitize_metadata(one_big)
        assert summary == sanitize_metadata(many)

    def test_the_sink_stores_a_ten_megabyte_document_whole(self, db_url: str) -> None:
        """A record built elsewhere (past the sanitiser) keeps its 10 MB metadata intact."""
        sink = SQLSink(db_url)
        doc = {"blob": "z" * 10_000_000, "n": 1}
        record = make_record(metadata=doc)
        assert sink.write_batch([record]) is None
        (row,) = _executions(sink.engine)
        assert row.metadata == doc


class TestConfiguration:
    def test_bad_urls_are_configuration_errors_without_password(self) -> None:
        """Unparseable or unsupported URLs fail at construction; the password is hidden."""
        for url in (
            "not a url",
            "mysql://me:hunter2pw@db/x",
            "postgresql+psycopg://me:hunter2pw@db:notaport/x",
            "postgresql+psycopg://me:hunter2pw@db/",
            "",
        ):
            with pytest.raises(ConfigurationError) as info:
                SQLSink(url)
            assert "hunter2pw" not in str(info.value)
        with pytest.raises(ConfigurationError):
            SQLSink("sqlite://", engine=sa.create_engine("sqlite://"))
        with pytest.raises(ConfigurationError):
            SQLSink("sqlite://", max_batch_size=0)

    def test_missing_psycopg_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A PostgreSQL URL without psycopg raises MissingExtraError naming the extra."""
        import importlib.util

        real = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *a: None if name == "psycopg" else real(name, *a),
        )
        with pytest.raises(MissingExtraError) as info:
            SQLSink("postgresql+psycopg://u:pw@localhost/db")
        assert "pip install 'vividly-trace[postgres]'" in str(info.value)
        assert isinstance(info.value, ImportError)

    def test_constructing_never_connects(self) -> None:
        """Building the sink (and configure()) is instant while the database is down."""
        url = f"postgresql://u:pw@127.0.0.1:{closed_port()}/db"
        started = time.monotonic()
        sink = SQLSink(url)
        vividly_trace.configure(sinks=[sink], spool_dir=False)
        assert time.monotonic() - started < 1.0
        assert sink.engine.url.drivername == "postgresql+psycopg"
        vividly_trace.reset()

    def test_password_never_in_logs_errors_or_spool(
        self, tmp_path: Path, internal_errors: pytest.LogCaptureFixture
    ) -> None:
        """An unreachable database with a password in its URL: the password appears
        nowhere (log records, raised errors, repr, spool, stats)."""
        secret = "Zq8-very-S3cret-pw"
        url = f"postgresql+psycopg://vt_user:{secret}@127.0.0.1:{closed_port()}/app"
        sink = SQLSink(url)
        assert secret not in repr(sink) and secret not in sink.url and "***" in sink.url
        with pytest.raises(SQLSinkError) as info:
            sink.write_batch([make_record()])
        assert secret not in str(info.value) and "***" in str(info.value)
        assert info.value.__suppress_context__  # the driver's exception is not chained
        vividly_trace.configure(
            sinks=[sink], max_retries=1, retry_backoff=0.01, spool_dir=tmp_path / "spool"
        )
        for i in range(5):
            log_prompt_execution("k", True, 1.0, metadata={"i": i})
        assert vividly_trace.flush(timeout=30)
        stats = vividly_trace.stats()
        assert stats["sinks"]["sql"]["spooled"] == 5
        assert "failed a batch" in internal_errors.text
        assert secret not in internal_errors.text
        for record in internal_errors.records:
            assert secret not in record.getMessage()
            assert record.exc_info is None or secret not in str(record.exc_info[1])
        for path in (tmp_path / "spool").rglob("*"):
            if path.is_file():
                assert secret not in path.read_text()
        assert secret not in json.dumps(stats)

    @pytest.mark.postgres
    def test_password_url_on_a_live_server(
        self, postgres_url: str, internal_errors: pytest.LogCaptureFixture
    ) -> None:
        """With a password (trust auth ignores it) writes work and nothing logs it."""
        pytest.importorskip("psycopg")
        secret = "An0ther-S3cret"
        url = postgres_url.replace("postgres@", f"postgres:{secret}@")
        sink = SQLSink(url)
        sink.write_batch([make_record(metadata={"db": sink.url})])
        assert count_rows(sink.engine) == 1
        assert secret not in internal_errors.text
        (row,) = _executions(sink.engine)
        assert secret not in json.dumps(row.metadata)


class TestSchema:
    def test_sqlite_file_is_created_in_wal_mode(self, tmp_path: Path) -> None:
        """The SQLite file (and its directory) is created on first write, in WAL mode."""
        path = tmp_path / "nested" / "dir" / "traces.db"
        sink = SQLSink(f"sqlite:///{path}")
        assert not path.exists()
        sink.write_batch([make_record()])
        sink.close()
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT count(*) FROM prompt_executions").fetchone()[0] == 1

    def test_default_configure_writes_vividly_trace_db_in_cwd(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """configure() with no sinks writes ./vividly_trace.db (SQLite)."""
        monkeypatch.chdir(tmp_path)
        vividly_trace.configure()
        assert log_prompt_execution("default_store", True, 42.0, 10, 5) is not None
        assert vividly_trace.flush(timeout=30)
        vividly_trace.shutdown()
        path = tmp_path / "vividly_trace.db"
        assert path.exists()
        with sqlite3.connect(path) as conn:
            rows = conn.execute(
                "SELECT template_name, response_time_ms, total_token_count FROM prompt_executions"
            ).fetchall()
        assert rows == [("default_store", 42.0, 15)]

    def test_relative_sqlite_path_resolves_at_construction(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A relative SQLite path means the directory current when the sink was built."""
        monkeypatch.chdir(tmp_path)
        sink = SQLSink("sqlite:///rel.db")
        monkeypatch.chdir(tmp_path.parent)
        sink.write_batch([make_record()])
        assert (tmp_path / "rel.db").exists()

    def test_auto_migrate_off_requires_db_upgrade(self, db_url: str) -> None:
        """Without auto_migrate a missing schema fails the batch with the fix in the text."""
        sink = SQLSink(db_url, auto_migrate=False)
        with pytest.raises(SQLSinkError, match="vividly-trace db upgrade"):
            sink.write_batch([make_record()])
        SQLSink(db_url).write_batch([make_record()])
        assert sink.write_batch([make_record()]) is None
        assert count_rows(sink.engine) == 2

    def test_tables_made_by_create_all_are_adopted(self, db_url: str) -> None:
        """Tables created from schema.metadata (no triggers) get triggers and statistics."""
        engine = sa.create_engine(db_url)
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(prompt_templates).values(name="pre"))
            tid = conn.execute(sa.select(prompt_templates.c.id)).scalar_one()
            conn.execute(
                sa.insert(prompt_executions).values(
                    id="pre-1",
                    template_id=tid,
                    template_name="pre",
                    success=True,
                    response_time_ms=5.0,
                    executed_at=dt.datetime(2025, 1, 1, tzinfo=UTC),
                )
            )
        engine.dispose()
        sink = SQLSink(db_url)
        sink.write_batch([make_record("pre", response_time_ms=7.0)])
        assert statistics_mismatches(sink.engine) == []
        (template,) = _templates(sink.engine)
        assert (template.total_executions, template.avg_response_time_ms) == (2, 6.0)
        with sink.engine.begin() as conn:  # the UPDATE trigger is there too
            conn.execute(sa.update(prompt_executions).values(response_time_ms=9.0))
        (template,) = _templates(sink.engine)
        assert (template.total_executions, template.avg_response_time_ms) == (2, 9.0)

    def test_schema_revision_is_the_alembic_head(self) -> None:
        """SCHEMA_REVISION (the sink's fast check) equals the shipped migrations' head."""
        from alembic.script import ScriptDirectory

        from vividly_trace.sinks.sql import migrate

        script = ScriptDirectory(str(migrate.MIGRATIONS_DIR))
        assert script.get_heads() == [migrate.SCHEMA_REVISION]
        assert {r.revision for r in script.walk_revisions()} == set(migrate.KNOWN_REVISIONS)

    def test_an_existing_engine_can_be_used(self, db_url: str) -> None:
        """SQLSink(engine=...) writes through the application's engine and leaves it open."""
        engine = sa.create_engine(db_url)
        sink = SQLSink(engine=engine)
        sink.write_batch([make_record()])
        sink.close()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM prompt_executions")).scalar() == 1
        engine.dispose()

    def test_recreated_database_is_found_again(self, sqlite_url: str) -> None:
        """After the database disappears, the sink fails, then recreates schema and ids."""
        sink = SQLSink(sqlite_url)
        sink.write_batch([make_record("a")])
        sink.close()
        path = Path(sqlite_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{path}{suffix}"):
                os.unlink(f"{path}{suffix}")
        with sqlite3.connect(path) as conn:  # a different store now lives there
            conn.execute("CREATE TABLE unrelated (x)")
        for _ in range(2):
            try:
                sink.write_batch([make_record("a")])
                break
            except SQLSinkError:
                continue
        assert count_rows(sink.engine) == 1
        assert statistics_mismatches(sink.engine) == []


class TestHostileRecords:
    def test_records_with_unusable_keys_are_left_out(self, db_url: str) -> None:
        """A record whose key is not a string (built by hand) costs only itself."""
        sink = SQLSink(db_url)
        good = make_record("fine")
        bad = [
            dataclasses.replace(make_record("x"), template_key=None),  # type: ignore[arg-type]
            dataclasses.replace(make_record("y"), template_key=""),
            dataclasses.replace(make_record("z"), template_version=3),  # type: ignore[arg-type]
        ]
        assert sink.write_batch([bad[0], good, bad[1], bad[2]]) == {"invalid_record": 3}
        assert [r.id for r in _executions(sink.engine)] == [good.execution_id]

    def test_values_of_the_wrong_type_cost_only_their_record(self, db_url: str) -> None:
        """A hand-built record holding a dict where text belongs is left out, counted."""
        sink = SQLSink(db_url)
        good = [make_record(), make_record()]
        bad = dataclasses.replace(make_record(), provider={"not": "text"})  # type: ignore[arg-type]
        assert sink.write_batch([good[0], bad, good[1]]) == {"invalid_record": 1}
        assert {r.id for r in _executions(sink.engine)} == {r.execution_id for r in good}
