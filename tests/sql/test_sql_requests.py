"""The per-request breakdown in the SQL store: one ``prompt_requests`` row per Gemini
request, written in the same transaction as its execution, idempotent on replay, on SQLite
and PostgreSQL; with the real google-genai client against the fake Gemini.

Expected costs are computed by hand from the official price list (pricing-sources.md), USD
per 1M tokens: gemini-2.5-flash input 0.30, output 2.50; gemini-2.5-pro input 1.25, output
10.00 (prompts up to 200k tokens).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import vividly_trace
from tests.factories import make_record, record_with_requests
from tests.sql.sql_helpers import count_rows, statistics_mismatches
from vividly_trace import PromptExecution, RequestRecord, log_prompt_execution, logged_prompt
from vividly_trace._spool import Spool, destination_key
from vividly_trace.sinks import MemorySink
from vividly_trace.sinks.sql import SQLSink
from vividly_trace.sinks.sql.schema import prompt_executions, prompt_requests
from vividly_trace.testing.fake_gemini import Scenario

genai = pytest.importorskip("google.genai")
from google.genai import errors as genai_errors  # noqa: E402

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"
UTC = dt.timezone.utc

# By hand: flash 1000 in x 0.30 + 300 out x 2.50 = 300 + 750 = 1050 micro-USD;
# pro 400 in x 1.25 + 50 out x 10.00 = 500 + 500 = 1000 micro-USD.
FLASH_COST = Decimal("0.00105")
PRO_COST = Decimal("0.001")


def stored_requests(engine: sa.Engine) -> list[Any]:
    """Every ``prompt_requests`` row, by execution and position."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(prompt_requests).order_by(
                    prompt_requests.c.execution_id, prompt_requests.c.seq
                )
            )
        )


def stored_execution(engine: sa.Engine, execution_id: str) -> Any:
    """The ``prompt_executions`` row of ``execution_id``."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(prompt_executions).where(prompt_executions.c.id == execution_id)
        ).one()


def utc(value: dt.datetime) -> dt.datetime:
    """An aware UTC datetime (SQLite gives naive UTC back)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def two_model_service(client: Any) -> Any:
    """A decorated service that drafts with flash and finishes with pro, returning text."""

    @logged_prompt("script_generation", version="v2")
    def write_script(topic: str) -> str:
        draft = client.models.generate_content(model=FLASH, contents=topic).text
        return str(client.models.generate_content(model=PRO, contents=draft).text)

    return write_script


def configure_store(db_url: str) -> tuple[SQLSink, MemorySink]:
    """The SQL sink under test and a memory sink beside it (to see the records too)."""
    sink, memory = SQLSink(db_url), MemorySink()
    vividly_trace.configure(sinks=[sink, memory])
    return sink, memory


class TestWrittenThroughConfigure:
    def test_two_models_give_two_request_rows(self, db_url: str, gemini: Any, client: Any) -> None:
        """A function calling flash then pro is one execution with two request rows, each
        with its own model, tokens and cost; the execution holds their sums."""
        gemini.enqueue(
            Scenario(text="draft", prompt_tokens=1000, candidates_tokens=300),
            Scenario(text="final", prompt_tokens=400, candidates_tokens=50),
        )
        sink, memory = configure_store(db_url)
        assert two_model_service(client)("rain") == "final"
        assert vividly_trace.flush(timeout=30)
        (record,) = memory.records
        rows = stored_requests(sink.engine)
        assert [
            (
                r.execution_id,
                r.seq,
                r.operation,
                r.model,
                r.response_model,
                r.input_token_count,
                r.output_token_count,
                r.total_token_count,
                r.cost_usd,
                r.success,
                r.error_type,
                r.http_status,
                r.finish_reason,
                r.streamed,
            )
            for r in rows
        ] == [
            (
                record.execution_id,
                0,
                "generate_content",
                FLASH,
                FLASH,
                1000,
                300,
                1300,
                FLASH_COST,
                True,
                None,
                None,
                "STOP",
                False,
            ),
            (
                record.execution_id,
                1,
                "generate_content",
                PRO,
                PRO,
                400,
                50,
                450,
                PRO_COST,
                True,
                None,
                None,
                "STOP",
                False,
            ),
        ]
        execution = stored_execution(sink.engine, record.execution_id)
        assert (execution.model, execution.input_token_count, execution.output_token_count) == (
            FLASH,
            1400,
            350,
        )
        assert execution.cost_usd == Decimal("0.00205") == FLASH_COST + PRO_COST
        # Each request's own start (for day bucketing) and latency, as the record has them.
        started = utc(execution.executed_at)
        flash, pro = record.requests
        assert utc(rows[0].started_at) - started == dt.timedelta(milliseconds=flash.offset_ms)
        assert utc(rows[1].started_at) - started == dt.timedelta(milliseconds=pro.offset_ms)
        assert started <= utc(rows[0].started_at) < utc(rows[1].started_at)
        assert utc(rows[1].started_at) < started + dt.timedelta(
            milliseconds=execution.response_time_ms
        )
        assert [r.response_time_ms for r in rows] == [flash.response_time_ms, pro.response_time_ms]
        assert statistics_mismatches(sink.engine) == []

    def test_a_failed_request_is_a_row(self, db_url: str, gemini: Any, client: Any) -> None:
        """The fake answers 429 to the second request, which the service swallows: the
        request is a row with success false, status 429, no tokens and no cost."""
        gemini.enqueue(
            Scenario(text="draft", prompt_tokens=1000, candidates_tokens=300),
            Scenario(error_status=429, error_message="quota exhausted"),
        )

        @logged_prompt("script_generation")
        def write_script(topic: str) -> str:
            draft = str(client.models.generate_content(model=FLASH, contents=topic).text)
            try:
                return str(client.models.generate_content(model=PRO, contents=draft).text)
            except genai_errors.APIError:
                return draft

        sink, memory = configure_store(db_url)
        assert write_script("rain") == "draft"
        assert vividly_trace.flush(timeout=30)
        (record,) = memory.records
        ok, failed = stored_requests(sink.engine)
        assert (ok.success, ok.http_status, ok.cost_usd) == (True, None, FLASH_COST)
        assert (
            failed.seq,
            failed.model,
            failed.success,
            failed.http_status,
            failed.error_type,
            failed.input_token_count,
            failed.output_token_count,
            failed.cost_usd,
        ) == (1, PRO, False, 429, "ClientError", None, None, None)
        execution = stored_execution(sink.engine, record.execution_id)
        # The failed request bills nothing: the execution costs the flash request.
        assert execution.cost_usd == FLASH_COST
        assert (execution.success, execution.http_status) == (record.success, 429)

    def test_records_without_requests_write_no_request_rows(self, db_url: str, gemini: Any) -> None:
        """log_prompt_execution and a with-block given its usage by hand have no requests."""
        sink, memory = configure_store(db_url)
        assert log_prompt_execution("legacy", True, 12.5, 100, 10, model=FLASH) is not None
        with logged_prompt("manual", model=FLASH) as call:
            call.set_usage(input_tokens=7, output_tokens=3)
        assert vividly_trace.flush(timeout=30)
        assert [r.requests for r in memory.records] == [(), ()]
        assert count_rows(sink.engine) == 2
        assert count_rows(sink.engine, "prompt_requests") == 0
        assert gemini.requests == []


class TestReplay:
    def test_replaying_the_spool_writes_no_duplicates(
        self, db_url: str, gemini: Any, client: Any, tmp_path: Path
    ) -> None:
        """The records written once and then replayed from the spool (JSON lines, as after
        an outage), twice in one batch, and through PostgreSQL's INSERT path too, leave the
        same rows: one execution, two requests, the statistics unchanged."""
        gemini.enqueue(
            Scenario(text="draft", prompt_tokens=1000, candidates_tokens=300),
            Scenario(text="final", prompt_tokens=400, candidates_tokens=50),
        )
        sink, memory = configure_store(db_url)
        two_model_service(client)("rain")
        assert vividly_trace.flush(timeout=30)
        records = memory.records
        before = (stored_requests(sink.engine), count_rows(sink.engine))

        spool = Spool(tmp_path / "replay", "sql", 1 << 30, key=destination_key(sink))
        assert spool.append(records) and spool.append(records)
        assert spool.replay(sink.write_batch, batch_size=100) == (2, 0)
        assert not spool.pending()
        assert sink.write_batch(records + records) is None
        if sink.dialect == "postgresql":
            insert_sink = SQLSink(db_url, use_copy=False)
            assert insert_sink.write_batch(records) is None
            insert_sink.close()

        assert (stored_requests(sink.engine), count_rows(sink.engine)) == before
        assert len(before[0]) == 2
        assert statistics_mismatches(sink.engine) == []

    @pytest.mark.parametrize("use_copy", [True, False])
    def test_a_batch_mixing_a_replay_and_new_records(self, db_url: str, use_copy: bool) -> None:
        """A batch holding a stored record and a new one (PostgreSQL's COPY fails on the
        stored id and goes through the staging table) writes the new record's requests."""
        if use_copy and not db_url.startswith("postgresql"):
            pytest.skip("COPY is PostgreSQL's")
        sink = SQLSink(db_url, use_copy=use_copy)
        old = record_with_requests("old", 2)
        assert sink.write_batch([old]) is None
        new = record_with_requests("new", 3)
        assert sink.write_batch([old, new, new]) is None
        rows = stored_requests(sink.engine)
        assert sorted((r.execution_id, r.seq) for r in rows) == sorted(
            [(old.execution_id, 0), (old.execution_id, 1)]
            + [(new.execution_id, i) for i in range(3)]
        )
        assert {r.cost_usd for r in rows if r.execution_id == new.execution_id} == {
            Decimal("0.000001"),
            Decimal("0.000002"),
            Decimal("0.000003"),
        }
        assert count_rows(sink.engine) == 2
        sink.close()


class TestRows:
    def test_a_refused_request_value_refuses_only_its_record(self, db_url: str) -> None:
        """A request count beyond BIGINT is refused with its execution (one transaction);
        the other records of the batch are written with their requests."""
        sink = SQLSink(db_url)
        good = record_with_requests("good", 2)
        bad_request = RequestRecord("generate_content", True, 1.0, input_token_count=2**70)
        bad = make_record("bad", requests=(bad_request,))
        assert sink.write_batch([good, bad]) == {"invalid_record": 1}
        assert [(r.execution_id, r.seq) for r in stored_requests(sink.engine)] == [
            (good.execution_id, 0),
            (good.execution_id, 1),
        ]
        assert count_rows(sink.engine) == 1
        assert statistics_mismatches(sink.engine) == []

    def test_every_request_field_round_trips(self, db_url: str) -> None:
        """Each RequestRecord field has its column (an embedding, a cached and thinking
        request, a stream); text with NUL is cleaned on PostgreSQL only; a request's start
        is its execution's plus its offset, across midnight too."""
        requests = (
            RequestRecord(
                "embed_content",
                True,
                3.25,
                offset_ms=0.0,
                model="gemini-embedding-001",
                input_token_count=12,
                output_token_count=0,
                total_token_count=12,
                cost_usd=Decimal("0.0000018"),
            ),
            RequestRecord(
                "generate_content_stream",
                True,
                250.5,
                offset_ms=15.125,
                model=FLASH,
                response_model="gemini-2.5-flash-001",
                input_token_count=100,
                output_token_count=40,
                total_token_count=140,
                cached_token_count=60,
                thinking_token_count=10,
                tool_use_token_count=5,
                audio_input_token_count=8,
                cached_audio_token_count=4,
                cost_usd=Decimal("0.0001234"),
                finish_reason="MAX\x00TOKENS",
                streamed=True,
                image_input_token_count=20,
                video_input_token_count=30,
                image_output_token_count=16,
                audio_output_token_count=12,
                grounded_prompt_count=1,
                search_query_count=3,
            ),
        )
        started = dt.datetime(2026, 3, 30, 23, 59, 59, 990000, tzinfo=UTC)
        record = make_record(
            "embed_then_stream",
            started_at=started,
            requests=requests,
            prompt_text="what is\x00 rain?",
            response_text="water",
        )
        sink = SQLSink(db_url)
        assert sink.write_batch([record]) is None
        embed, stream = stored_requests(sink.engine)
        assert (embed.operation, embed.model, embed.input_token_count, embed.cost_usd) == (
            "embed_content",
            "gemini-embedding-001",
            12,
            Decimal("0.0000018"),
        )
        assert (embed.response_time_ms, embed.streamed, embed.response_model) == (3.25, False, None)
        assert utc(embed.started_at) == started
        # 15.125 ms after 23:59:59.990: the next day.
        assert utc(stream.started_at) == dt.datetime(2026, 3, 31, 0, 0, 0, 5125, tzinfo=UTC)
        nul = "\ufffd" if sink.dialect == "postgresql" else "\x00"
        assert {
            name: getattr(stream, name)
            for name in RequestRecord.__dataclass_fields__
            if name != "offset_ms"
        } == {
            "operation": "generate_content_stream",
            "success": True,
            "response_time_ms": 250.5,
            "model": FLASH,
            "response_model": "gemini-2.5-flash-001",
            "input_token_count": 100,
            "output_token_count": 40,
            "total_token_count": 140,
            "cached_token_count": 60,
            "thinking_token_count": 10,
            "tool_use_token_count": 5,
            "audio_input_token_count": 8,
            "cached_audio_token_count": 4,
            "cost_usd": Decimal("0.0001234"),
            "error_type": None,
            "http_status": None,
            "finish_reason": f"MAX{nul}TOKENS",
            "streamed": True,
            "image_input_token_count": 20,
            "video_input_token_count": 30,
            "image_output_token_count": 16,
            "audio_output_token_count": 12,
            "grounded_prompt_count": 1,
            "search_query_count": 3,
        }
        execution = stored_execution(sink.engine, record.execution_id)
        assert (execution.prompt_text, execution.response_text) == (f"what is{nul} rain?", "water")

    def test_deleting_an_execution_deletes_its_requests(self, db_url: str) -> None:
        """ON DELETE CASCADE on PostgreSQL; on SQLite (no foreign keys enforced on a plain
        connection) the trigger does it, with the statistics triggers still right."""
        sink = SQLSink(db_url)
        gone, kept = record_with_requests("a", 2), record_with_requests("a", 1)
        assert sink.write_batch([gone, kept]) is None
        with sink.engine.begin() as conn:
            conn.execute(
                sa.delete(prompt_executions).where(prompt_executions.c.id == gone.execution_id)
            )
        assert [(r.execution_id, r.seq) for r in stored_requests(sink.engine)] == [
            (kept.execution_id, 0)
        ]
        assert statistics_mismatches(sink.engine) == []

    def test_the_spool_line_keeps_the_requests(self) -> None:
        """The JSON-lines form the spool writes carries the requests with exact costs."""
        record = record_with_requests("spooled", 2)
        line = json.loads(json.dumps(record.to_exact_dict()))
        assert [r["cost_usd"] for r in line["requests"]] == ["0.000001", "0.000002"]
        assert PromptExecution.from_dict(line) == record
