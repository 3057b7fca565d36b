"""Dual logging: SQL + Cloud Logging + OpenTelemetry at once, each sink on its own worker.

A failing or hanging Cloud Logging endpoint must neither delay nor lose the other sinks'
records, and its failures are counted against it alone in ``stats()``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.cloud.logging")
pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("sqlalchemy")

from google.auth.credentials import AnonymousCredentials as _Anonymous
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import vividly_trace
from vividly_trace.sinks import CloudLoggingSink, OpenTelemetrySink, SQLSink
from vividly_trace.testing.fake_logging import FakeLoggingServer

#: google.auth is untyped; a typed alias keeps mypy --strict quiet.
AnonymousCredentials: Callable[[], Any] = _Anonymous

PROJECT = "vividly-dual"
TRACE_ID = "5b8aa5a2d2c872e8321cf37308d69df2"
SPAN_ID = "051581bf3cb55c13"


class Witness:
    """Reads what the SQL store and the in-memory span exporter hold, by execution id."""

    def __init__(self, db: Path, spans: InMemorySpanExporter) -> None:
        self.db = db
        self.spans = spans

    def sql_ids(self) -> set[str]:
        """Execution ids in ``prompt_executions`` (empty before the table exists)."""
        if not self.db.exists():
            return set()
        conn = sqlite3.connect(self.db, timeout=5)
        try:
            return {row[0] for row in conn.execute("SELECT id FROM prompt_executions")}
        except sqlite3.OperationalError:  # the schema is not created yet
            return set()
        finally:
            conn.close()

    def span_ids(self) -> set[str]:
        """Execution ids of the spans exported so far."""
        return {
            str((s.attributes or {})["vividly_trace.execution_id"])
            for s in self.spans.get_finished_spans()
        }


def log(*args: Any, **kwargs: Any) -> str:
    """log_prompt_execution, asserting that it returned an execution id."""
    execution_id = vividly_trace.log_prompt_execution(*args, **kwargs)
    assert execution_id is not None
    return execution_id


def wait_until(predicate: Any, timeout: float, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@pytest.fixture(name="otel_memory")
def _otel_memory() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider exporting synchronously to memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def three_sinks(
    tmp_path: Path,
    fake: FakeLoggingServer,
    otel: tuple[TracerProvider, InMemorySpanExporter],
    timeout: float = 10.0,
) -> tuple[list[Any], Witness]:
    """SQLSink on a SQLite file, CloudLoggingSink on ``fake``, OpenTelemetrySink in memory."""
    db = tmp_path / "t.db"
    provider, exporter = otel
    sinks = [
        SQLSink(f"sqlite:///{db}"),
        CloudLoggingSink(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": fake.url},
            timeout=timeout,
        ),
        OpenTelemetrySink(provider),
    ]
    return sinks, Witness(db, exporter)


class TestDualLogging:
    """All three sinks configured together."""

    def test_every_sink_gets_every_record(
        self,
        tmp_path: Path,
        fake_logging: FakeLoggingServer,
        otel_memory: tuple[TracerProvider, InMemorySpanExporter],
    ) -> None:
        """Two 503s from Cloud Logging: retried there, counted there, invisible elsewhere."""
        sinks, witness = three_sinks(tmp_path, fake_logging, otel_memory)
        fake_logging.fail_next(2, status=503)
        vividly_trace.configure(sinks=sinks, max_retries=3, retry_backoff=0.01, flush_interval=0.05)
        ids: list[str] = []
        for i in range(20):
            ids.append(
                log(
                    "nlu_extraction",
                    i % 4 != 0,
                    10.0 + i,
                    input_token_count=100,
                    output_token_count=20,
                    error_message=None if i % 4 else "500 INTERNAL",
                    metadata={"trace_id": TRACE_ID, "span_id": SPAN_ID},
                    template_version="v3",
                    ab_test_group="A" if i % 2 else "B",
                    model="gemini-2.5-flash",
                )
            )
        assert vividly_trace.flush(timeout=30)
        assert witness.sql_ids() == set(ids)
        assert witness.span_ids() == set(ids)
        assert sorted(fake_logging.insert_ids(accepted=True)) == sorted(ids)
        assert set(fake_logging.insert_ids()) == set(ids)
        stats = vividly_trace.stats()["sinks"]
        assert stats["cloud_logging"]["failed_batches"] == 2
        assert stats["cloud_logging"]["written"] == 20
        for name in ("sql", "otel"):
            assert stats[name]["failed_batches"] == 0, name
            assert stats[name]["written"] == 20, name
        # The same trace context reaches Cloud Logging and OpenTelemetry.
        entry = fake_logging.entries(accepted=True)[0]
        assert entry["trace"] == f"projects/{PROJECT}/traces/{TRACE_ID}"
        assert entry["spanId"] == SPAN_ID
        span = otel_memory[1].get_finished_spans()[0]
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        assert f"{span.parent.span_id:016x}" == SPAN_ID  # type: ignore[union-attr]

    @pytest.mark.reliability
    @pytest.mark.timeout(240)
    def test_hanging_logging_endpoint_does_not_delay_the_others(
        self,
        tmp_path: Path,
        fake_logging: FakeLoggingServer,
        otel_memory: tuple[TracerProvider, InMemorySpanExporter],
    ) -> None:
        """Cloud Logging hangs for 30 s: SQL rows and spans keep arriving on time meanwhile,
        the hang is counted against cloud_logging only, and afterwards every entry lands
        exactly once (by insertId)."""
        on_time = 2.0  # seconds; the sinks' workers wake every 0.05 s
        sinks, witness = three_sinks(tmp_path, fake_logging, otel_memory, timeout=5.0)
        vividly_trace.configure(sinks=sinks, max_retries=1, retry_backoff=0.1, flush_interval=0.05)
        # Warm up (schema creation, first connection) before the outage starts.
        ids = [log("warmup", True, 1.0)]
        assert vividly_trace.flush(timeout=30)
        assert fake_logging.insert_ids(accepted=True) == ids

        outage = fake_logging.hang_for(30.0)
        late: list[tuple[str, str]] = []
        during = checked_during = 0
        while outage.active:
            execution_id = log("clarification", True, 42.0, metadata={"i": during})
            ids.append(execution_id)
            during += 1
            if not wait_until(lambda e=execution_id: e in witness.sql_ids(), on_time):
                late.append(("sql", execution_id))
            if not wait_until(lambda e=execution_id: e in witness.span_ids(), on_time):
                late.append(("otel", execution_id))
            cloud_written = vividly_trace.stats()["sinks"]["cloud_logging"]["written"]
            if outage.active:  # read during the outage: nothing but the warm-up got through
                assert cloud_written == 1
                checked_during += 1
            time.sleep(0.5)
        assert late == []
        assert during >= 20
        assert checked_during >= 20
        assert outage.held >= 2  # the endpoint really hung the Cloud Logging worker
        stats = vividly_trace.stats()["sinks"]
        assert stats["cloud_logging"]["failed_batches"] >= 2
        assert stats["sql"]["failed_batches"] == 0
        assert stats["otel"]["failed_batches"] == 0
        assert stats["sql"]["written"] == len(ids)
        assert stats["otel"]["written"] == len(ids)

        # After the outage: everything reaches Cloud Logging, each insertId at least once
        # accepted, and nothing but our ids.
        ids.append(log("after", True, 1.0))
        assert vividly_trace.flush(timeout=60)
        assert fake_logging.wait_for(
            lambda: set(fake_logging.insert_ids(accepted=True)) == set(ids), timeout=30
        ), set(ids) - set(fake_logging.insert_ids(accepted=True))
        assert set(fake_logging.insert_ids()) == set(ids)
        stats = vividly_trace.stats()["sinks"]
        assert stats["cloud_logging"]["written"] == len(ids)
        assert stats["cloud_logging"]["dropped"] == {}
        assert witness.sql_ids() == set(ids)
        assert witness.span_ids() == set(ids)
