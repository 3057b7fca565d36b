"""OpenTelemetrySink: spans checked with the SDK's in-memory exporter and over OTLP/HTTP."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

import opentelemetry.trace as trace_api
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import vividly_trace
from tests.factories import full_record
from vividly_trace import ConfigurationError, MissingExtraError
from vividly_trace.sinks import OpenTelemetrySink
from vividly_trace.sinks.otel import SpanExportError, trace_metadata
from vividly_trace.testing.otlp_collector import OTLPCollector

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
START_NS = 1_774_872_000_123_456_000  # 2026-03-30T12:00:00.123456Z


@pytest.fixture(name="memory")
def _memory() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider exporting synchronously to an in-memory exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def attrs(span: ReadableSpan) -> dict[str, Any]:
    """The span's attributes as a plain dict."""
    return dict(span.attributes or {})


def by_execution(spans: Any) -> dict[str, ReadableSpan]:
    """Spans keyed by their ``vividly_trace.execution_id`` attribute."""
    return {attrs(s)["vividly_trace.execution_id"]: s for s in spans}


def log(*args: Any, **kwargs: Any) -> str:
    """log_prompt_execution, asserting that it returned an execution id."""
    execution_id = vividly_trace.log_prompt_execution(*args, **kwargs)
    assert execution_id is not None
    return execution_id


class TestSpans:
    """One record, one span: name, kind, times, attributes, status."""

    def test_success_span(
        self,
        memory: tuple[TracerProvider, InMemorySpanExporter],
    ) -> None:
        """Every attribute of a successful call, with the call's real start and end."""
        provider, exporter = memory
        record = full_record(
            metadata={
                "user_tier": "pro",
                "attempt": 2,
                "ratio": 0.5,
                "tags": ["x"],
                "huge": 2**70,
                "nested": {"a": 1},
            }
        )
        OpenTelemetrySink(provider).write_batch([record])
        (span,) = exporter.get_finished_spans()
        assert span.name == "generate_content gemini-2.5-flash"
        assert span.kind is SpanKind.CLIENT
        assert span.start_time == START_NS
        assert span.end_time == START_NS + 123_400_000
        assert span.status.status_code is StatusCode.UNSET
        assert span.parent is None
        assert span.instrumentation_scope is not None
        assert span.instrumentation_scope.name == "vividly_trace"
        assert attrs(span) == {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": "gcp.gemini",
            "gen_ai.request.model": "gemini-2.5-flash",
            "gen_ai.response.model": "gemini-2.5-flash-001",
            "gen_ai.response.finish_reasons": ("STOP",),
            "gen_ai.usage.input_tokens": 14,
            "gen_ai.usage.output_tokens": 25,
            "gen_ai.usage.cache_read.input_tokens": 4,
            "gen_ai.usage.reasoning.output_tokens": 12,
            "gen_ai.usage.cost.amount": 0.0000661,
            "gen_ai.usage.cost.currency": "USD",
            "vividly_trace.execution_id": record.execution_id,
            "vividly_trace.parent_execution_id": "0195f3a0-0000-7000-8000-999999999999",
            "vividly_trace.template.key": "nlu_extraction",
            "vividly_trace.template.version": "v3",
            "vividly_trace.ab_test_group": "B",
            "vividly_trace.success": True,
            "vividly_trace.cost_usd": "0.0000661",
            "vividly_trace.pricing_version": "2026-03-30",
            "vividly_trace.usage.total_tokens": 39,
            "vividly_trace.usage.tool_use_tokens": 5,
            "vividly_trace.usage.audio_input_tokens": 2,
            "vividly_trace.usage.cached_audio_tokens": 1,
            "vividly_trace.streamed": True,
            "vividly_trace.time_to_first_chunk_ms": 45.5,
            "vividly_trace.metadata.user_tier": "pro",
            "vividly_trace.metadata.attempt": 2,
            "vividly_trace.metadata.ratio": 0.5,
        }

    def test_failure_span(
        self,
        memory: tuple[TracerProvider, InMemorySpanExporter],
    ) -> None:
        """A failure: error.type, status ERROR with the message; missing values left out."""
        provider, exporter = memory
        record = full_record(
            success=False,
            error_type="ServerError",
            error_message="503 UNAVAILABLE",
            http_status=503,
            output_token_count=None,
            cached_audio_token_count=None,
            cost_usd=None,
            response_model=None,
            template_version=None,
            parent_execution_id=None,
            streamed=False,
            time_to_first_chunk_ms=None,
            finish_reason=None,
        )
        OpenTelemetrySink(provider).write_batch([record])
        (span,) = exporter.get_finished_spans()
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "503 UNAVAILABLE"
        found = attrs(span)
        assert found["error.type"] == "ServerError"
        assert found["http.response.status_code"] == 503
        assert found["vividly_trace.success"] is False
        assert found["vividly_trace.streamed"] is False
        for missing in (
            "gen_ai.usage.output_tokens",
            "vividly_trace.usage.cached_audio_tokens",
            "gen_ai.usage.cost.amount",
            "gen_ai.usage.cost.currency",
            "vividly_trace.cost_usd",
            "gen_ai.response.model",
            "vividly_trace.template.version",
            "vividly_trace.parent_execution_id",
            "vividly_trace.time_to_first_chunk_ms",
            "gen_ai.response.finish_reasons",
        ):
            assert missing not in found, missing

    def test_unknown_error_type_and_model(
        self,
        memory: tuple[TracerProvider, InMemorySpanExporter],
    ) -> None:
        """No error type gives error.type "_OTHER"; no model gives the bare operation name."""
        provider, exporter = memory
        record = full_record(
            success=False,
            error_type=None,
            error_message=None,
            model=None,
            response_model=None,
            provider="vertex_ai",
        )
        OpenTelemetrySink(provider).write_batch([record])
        (span,) = exporter.get_finished_spans()
        assert span.name == "generate_content"
        assert attrs(span)["error.type"] == "_OTHER"
        assert attrs(span)["gen_ai.provider.name"] == "gcp.vertex_ai"
        assert span.status.status_code is StatusCode.ERROR

    def test_through_configure(self, memory: tuple[TracerProvider, InMemorySpanExporter]) -> None:
        """log_prompt_execution -> dispatcher -> sink -> span."""
        provider, exporter = memory
        vividly_trace.configure(sinks=[OpenTelemetrySink(provider)], sync=True)
        execution_id = log(
            "script_generation",
            True,
            250.0,
            input_token_count=100,
            output_token_count=50,
            model="gemini-2.5-flash",
            template_version="v1",
            ab_test_group="A",
        )
        (span,) = exporter.get_finished_spans()
        assert attrs(span)["vividly_trace.execution_id"] == execution_id
        assert attrs(span)["vividly_trace.template.key"] == "script_generation"
        assert attrs(span)["gen_ai.usage.input_tokens"] == 100
        assert attrs(span)["gen_ai.usage.cost.amount"] > 0
        assert span.end_time is not None and span.start_time is not None
        assert span.end_time - span.start_time == 250_000_000


class TestParents:
    """Trace context from metadata, and links between parent and child executions."""

    def test_remote_parent_from_metadata(
        self,
        memory: tuple[TracerProvider, InMemorySpanExporter],
    ) -> None:
        """A traceparent in the metadata makes the span a child of that remote span."""
        provider, exporter = memory
        record = full_record(metadata={"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"})
        OpenTelemetrySink(provider).write_batch([record])
        (span,) = exporter.get_finished_spans()
        assert span.parent is not None
        assert span.parent.is_remote
        assert f"{span.parent.trace_id:032x}" == TRACE_ID
        assert f"{span.parent.span_id:016x}" == SPAN_ID
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        assert "vividly_trace.metadata.traceparent" not in attrs(span)

    def test_unsampled_parent_is_not_exported(
        self,
        memory: tuple[TracerProvider, InMemorySpanExporter],
    ) -> None:
        """With the default parent-based sampler, an unsampled parent drops the span."""
        provider, exporter = memory
        records = [
            full_record(
                metadata={"trace_id": TRACE_ID, "span_id": SPAN_ID, "trace_sampled": False}
            ),
            full_record(metadata={"trace_id": TRACE_ID, "span_id": SPAN_ID}),
        ]
        OpenTelemetrySink(provider).write_batch(records)
        (span,) = exporter.get_finished_spans()
        assert attrs(span)["vividly_trace.execution_id"] == records[1].execution_id

    def test_child_before_parent_links_parent_to_child(
        self,
        memory: tuple[TracerProvider, InMemorySpanExporter],
    ) -> None:
        """A nested call ends first: its parent's span links to it."""
        provider, exporter = memory
        parent = full_record(parent_execution_id=None)
        child = full_record(parent_execution_id=parent.execution_id)
        OpenTelemetrySink(provider).write_batch([child, parent])
        spans = by_execution(exporter.get_finished_spans())
        child_span, parent_span = spans[child.execution_id], spans[parent.execution_id]
        assert attrs(child_span)["vividly_trace.parent_execution_id"] == parent.execution_id
        assert child_span.links == ()
        (link,) = parent_span.links
        assert link.context.span_id == child_span.context.span_id
        assert link.context.trace_id == child_span.context.trace_id
        assert dict(link.attributes or {})["vividly_trace.link.type"] == "child_execution"

    def test_parent_before_child_links_child_to_parent(
        self,
        memory: tuple[TracerProvider, InMemorySpanExporter],
    ) -> None:
        """When the parent's span was emitted first (another batch), the child links to it."""
        provider, exporter = memory
        sink = OpenTelemetrySink(provider)
        parent = full_record(parent_execution_id=None)
        child = full_record(parent_execution_id=parent.execution_id)
        sink.write_batch([parent])
        sink.write_batch([child])
        spans = by_execution(exporter.get_finished_spans())
        (link,) = spans[child.execution_id].links
        assert link.context.span_id == spans[parent.execution_id].context.span_id
        assert dict(link.attributes or {})["vividly_trace.link.type"] == "parent_execution"
        assert spans[parent.execution_id].links == ()


class TestProviders:
    """Which provider the sink uses, flushing and closing."""

    def test_default_is_the_global_provider(
        self,
        memory: tuple[TracerProvider, InMemorySpanExporter],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """OpenTelemetrySink() takes its tracer from the global tracer provider."""
        provider, exporter = memory
        monkeypatch.setattr(trace_api, "get_tracer_provider", lambda: provider)
        sink = OpenTelemetrySink()
        sink.write_batch([full_record()])
        assert len(exporter.get_finished_spans()) == 1

    def test_close_force_flushes_a_given_provider(self, collector: OTLPCollector) -> None:
        """With the application's BatchSpanProcessor, close() pushes the last spans out."""
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=collector.url + "/v1/traces"),
                schedule_delay_millis=3_600_000,
            )
        )
        sink = OpenTelemetrySink(provider)
        records = [full_record() for _ in range(3)]
        sink.write_batch(records)
        assert collector.spans() == []
        sink.close()
        assert sorted(s.attributes["vividly_trace.execution_id"] for s in collector.spans()) == (
            sorted(r.execution_id for r in records)
        )
        provider.shutdown()

    def test_bad_arguments(self, memory: tuple[TracerProvider, InMemorySpanExporter]) -> None:
        """Conflicting or malformed arguments raise ConfigurationError."""
        provider, exporter = memory
        with pytest.raises(ConfigurationError):
            OpenTelemetrySink(provider, exporter=exporter)
        with pytest.raises(ConfigurationError):
            OpenTelemetrySink(provider, service_name="x")
        with pytest.raises(ConfigurationError):
            OpenTelemetrySink(object())
        with pytest.raises(ConfigurationError):
            OpenTelemetrySink(exporter=object())
        with pytest.raises(ConfigurationError):
            OpenTelemetrySink(provider, name="")
        with pytest.raises(ConfigurationError):
            OpenTelemetrySink(provider, max_batch_size=0)

    def test_missing_api(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without opentelemetry-api the sink names the extra to install."""
        monkeypatch.setitem(sys.modules, "opentelemetry", None)
        with pytest.raises(MissingExtraError, match=r"vividly-trace\[otel\]") as info:
            OpenTelemetrySink()
        assert "opentelemetry-api" in str(info.value)

    def test_missing_sdk_with_exporter(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """exporter= needs the SDK (to own a provider)."""
        monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
        with pytest.raises(MissingExtraError, match="opentelemetry-sdk"):
            OpenTelemetrySink(exporter=InMemorySpanExporter())

    def test_trace_metadata(self, memory: tuple[TracerProvider, InMemorySpanExporter]) -> None:
        """trace_metadata() copies the current span, in the keys the sinks read."""
        provider, _ = memory
        assert trace_metadata() == {}
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("request") as span:
            ctx = span.get_span_context()
            assert trace_metadata() == {
                "trace_id": f"{ctx.trace_id:032x}",
                "span_id": f"{ctx.span_id:016x}",
                "trace_sampled": True,
            }

    def test_lazy_name_and_spec(self) -> None:
        """``vividly_trace.sinks.OpenTelemetrySink`` and the ``otel`` spec resolve."""
        from vividly_trace.sinks import sink_from_spec

        assert isinstance(sink_from_spec("otel"), OpenTelemetrySink)


class _FlakyExporter(SpanExporter):
    """Fails the first ``failures`` exports, keeps the span ids of every call."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[list[int]] = []
        self.shut = False

    def export(self, spans: Any) -> SpanExportResult:
        self.calls.append([s.context.span_id for s in spans])
        if len(self.calls) <= self.failures:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shut = True


class TestOwnedExporter:
    """exporter=: the sink owns its provider and exports each batch itself."""

    def test_otlp_http_to_the_collector(self, collector: OTLPCollector) -> None:
        """Spans reach the OTLP/HTTP collector stub, one request per batch, decoded."""
        sink = OpenTelemetrySink(
            exporter=OTLPSpanExporter(endpoint=collector.url + "/v1/traces"),
            service_name="nlu-service",
        )
        parent = full_record(
            parent_execution_id=None, metadata={"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}
        )
        child = full_record(
            parent_execution_id=parent.execution_id,
            success=False,
            error_type="ClientError",
            error_message="429",
        )
        sink.write_batch([child, parent])
        (request,) = collector.requests
        assert request.path == "/v1/traces"
        assert request.headers["content-type"] == "application/x-protobuf"
        spans = {s.attributes["vividly_trace.execution_id"]: s for s in collector.spans()}
        c, p = spans[child.execution_id], spans[parent.execution_id]
        assert p.name == "generate_content gemini-2.5-flash"
        assert p.kind == "SPAN_KIND_CLIENT"
        assert p.start_time_unix_nano == START_NS
        assert p.end_time_unix_nano == START_NS + 123_400_000
        assert p.trace_id == TRACE_ID
        assert p.parent_span_id == SPAN_ID
        assert p.resource["service.name"] == "nlu-service"
        assert p.scope_name == "vividly_trace"
        assert p.attributes["gen_ai.usage.input_tokens"] == 14
        assert p.attributes["gen_ai.usage.cost.amount"] == pytest.approx(0.0000661)
        assert p.attributes["gen_ai.response.finish_reasons"] == ["STOP"]
        assert p.links == [(c.trace_id, c.span_id, {"vividly_trace.link.type": "child_execution"})]
        assert c.parent_span_id is None
        assert c.status_code == "STATUS_CODE_ERROR"
        assert c.status_message == "429"
        assert c.attributes["error.type"] == "ClientError"
        assert c.attributes["vividly_trace.parent_execution_id"] == parent.execution_id
        sink.close()

    def test_failed_export_raises_and_retry_resends_the_same_spans(self) -> None:
        """A failed export raises SpanExportError; the retry sends the same span ids."""
        exporter = _FlakyExporter(failures=1)
        sink = OpenTelemetrySink(exporter=exporter)
        records = [full_record() for _ in range(3)]
        with pytest.raises(SpanExportError):
            sink.write_batch(records)
        sink.write_batch(records)
        first, second = exporter.calls
        assert first == second
        assert len(set(first)) == 3
        sink.write_batch(records)  # after a success, a new write is a new emission
        assert set(exporter.calls[2]).isdisjoint(first)
        sink.close()
        assert exporter.shut

    def test_dispatcher_counts_export_failures(self, collector: OTLPCollector) -> None:
        """A collector answering 400 counts as a failed batch; the retry lands every span once."""
        sink = OpenTelemetrySink(exporter=OTLPSpanExporter(endpoint=collector.url + "/v1/traces"))
        collector.fail_next(1, status=400)
        vividly_trace.configure(
            sinks=[sink], max_retries=2, retry_backoff=0.01, flush_interval=3600, spool_dir=False
        )
        ids = [log("otel", True, 3.0) for _ in range(4)]
        assert vividly_trace.flush(timeout=20)
        assert [r.status for r in collector.requests] == [400, 200]
        refused = collector.spans(accepted=False)[:4]
        accepted = collector.spans()
        assert sorted(s.attributes["vividly_trace.execution_id"] for s in accepted) == sorted(ids)
        assert [s.span_id for s in refused] == [s.span_id for s in accepted]
        counters = vividly_trace.stats()["sinks"]["otel"]
        assert counters["failed_batches"] == 1
        assert counters["written"] == 4

    def test_cost_attribute_is_exact(self) -> None:
        """vividly_trace.cost_usd keeps the exact decimal; the GenAI amount is a float."""
        exporter = InMemorySpanExporter()
        sink = OpenTelemetrySink(exporter=exporter)
        sink.write_batch([full_record(cost_usd=Decimal("0.10000000000000000001"))])
        (span,) = exporter.get_finished_spans()
        assert attrs(span)["vividly_trace.cost_usd"] == "0.10000000000000000001"
        assert attrs(span)["gen_ai.usage.cost.amount"] == 0.1


class TestAutomaticTraceContext:
    """The caller's active span is captured without any code in the call."""

    def test_decorated_call_joins_the_active_trace(self) -> None:
        """With an OpenTelemetrySink configured, the record's span is a child of the
        span active at the call, and the record's metadata carries its traceparent."""
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        memory = vividly_trace.sinks.MemorySink()
        vividly_trace.configure(
            sinks=[OpenTelemetrySink(provider), memory], sync=True, spool_dir=False
        )
        tracer = provider.get_tracer("app")
        with tracer.start_as_current_span("handler") as handler:
            vividly_trace.logged_prompt("k")(lambda: None)()
            with vividly_trace.logged_prompt("block"):
                pass
        ctx = handler.get_span_context()
        assert len(exporter.get_finished_spans()) == 3  # the handler's and the two calls'
        spans = {s.name: s for s in exporter.get_finished_spans()}
        assert all(
            s.context.trace_id == ctx.trace_id for s in spans.values() if s.name != "handler"
        )
        [rec, block] = memory.records
        flags = int(ctx.trace_flags)
        assert rec.metadata["traceparent"] == (
            f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags:02x}"
        )
        assert block.metadata["traceparent"] == rec.metadata["traceparent"]

    def test_off_without_a_tracing_sink(self) -> None:
        """With only a memory sink nothing is captured (no per-call cost)."""
        memory = vividly_trace.sinks.MemorySink()
        vividly_trace.configure(sinks=[memory], sync=True, spool_dir=False)
        from opentelemetry.sdk.trace import TracerProvider

        tracer = TracerProvider().get_tracer("app")
        with tracer.start_as_current_span("handler"):
            vividly_trace.logged_prompt("k")(lambda: None)()
        assert "traceparent" not in memory.records[0].metadata
