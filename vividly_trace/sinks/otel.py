"""OpenTelemetry: each record becomes a span with the GenAI semantic-convention attributes.

The GenAI conventions are still "development" (incubating), so the attribute names are
mirrored here rather than imported from ``opentelemetry-semantic-conventions``.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from .._record import PromptExecution
from ..exceptions import ConfigurationError, MissingExtraError
from .structured_stdout import TRACE_METADATA_KEYS, trace_context

__all__ = [
    "OpenTelemetrySink",
    "SpanExportError",
    "content_attributes",
    "span_attributes",
    "span_name",
    "span_times",
    "trace_metadata",
]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_LINK_CACHE = 4096
_MAX_CHILD_LINKS = 32
_UNSENT_CACHE = 10_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_VERTEX = frozenset({"vertex", "vertexai", "vertex_ai", "gcp.vertex_ai", "google-vertex"})
_GEMINI = frozenset({"gemini", "google", "google-genai", "gcp.gemini", "genai", "gemini_api"})
# Gemini finish reasons -> the GenAI conventions' (others are kept, lowercased).
_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
}


class SpanExportError(RuntimeError):
    """The exporter given to :class:`OpenTelemetrySink` reported a failed export.

    .. versionadded:: 0.1.0
    """


def _import_api() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        raise MissingExtraError("OpenTelemetrySink", "otel", "opentelemetry-api") from None
    return trace


def trace_metadata() -> dict[str, Any]:
    """The active OpenTelemetry span as record metadata (``{}`` when there is none).

    Call it inside the instrumented call, where the caller's span is current::

        with logged_prompt("clarification") as call:
            call.metadata.update(trace_metadata())

    It returns ``{"trace_id": <32 hex>, "span_id": <16 hex>, "trace_sampled": bool}``,
    the keys :class:`~vividly_trace.sinks.CloudLoggingSink`,
    :class:`~vividly_trace.sinks.StructuredStdoutSink` and :class:`OpenTelemetrySink`
    read (records are built off-thread, so the context has to travel in the metadata).
    Without ``opentelemetry-api`` installed it returns ``{}``.

    .. versionadded:: 0.1.0
    """
    try:
        from opentelemetry import trace
    except ImportError:
        return {}
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "trace_sampled": bool(ctx.trace_flags.sampled),
    }


def _provider_name(provider: str | None) -> str:
    if provider is None:
        return "gcp.gemini"
    low = provider.strip().lower()
    if low in _VERTEX:
        return "gcp.vertex_ai"
    if low in _GEMINI or not low:
        return "gcp.gemini"
    return provider


def span_name(record: PromptExecution) -> str:
    """``"generate_content {model}"`` (requested model, else the one that answered)."""
    model = record.model or record.response_model
    return f"generate_content {model}" if model else "generate_content"


def span_times(record: PromptExecution) -> tuple[int, int]:
    """Start and end of the call in nanoseconds since the epoch (exact, no float rounding)."""
    started = record.started_at
    if started.tzinfo is None:
        started = started.replace(tzinfo=_dt.timezone.utc)
    start = (started - _EPOCH) // _dt.timedelta(microseconds=1) * 1000
    return start, start + max(0, round(record.response_time_ms * 1_000_000))


def span_attributes(record: PromptExecution) -> dict[str, Any]:
    """The attributes of the span of ``record`` (only those with a value).

    GenAI conventions: ``gen_ai.operation.name`` (``"generate_content"``),
    ``gen_ai.provider.name`` (``"gcp.gemini"``; ``"gcp.vertex_ai"`` for a Vertex
    provider), ``gen_ai.request.model``, ``gen_ai.response.model``,
    ``gen_ai.response.finish_reasons``, ``gen_ai.usage.input_tokens``,
    ``gen_ai.usage.output_tokens``, ``gen_ai.usage.cache_read.input_tokens``,
    ``gen_ai.usage.reasoning.output_tokens``, ``error.type`` (failures only; ``"_OTHER"``
    when the type is unknown), ``http.response.status_code``; proposed cost attributes
    ``gen_ai.usage.cost.amount`` (float) and ``gen_ai.usage.cost.currency`` (``"USD"``).
    Ours: ``vividly_trace.execution_id``, ``.parent_execution_id``, ``.template.key``,
    ``.template.version``, ``.ab_test_group``, ``.success``, ``.cost_usd`` (exact decimal
    string), ``.pricing_version``, ``.usage.total_tokens``, ``.usage.tool_use_tokens``,
    ``.usage.audio_input_tokens``, ``.usage.cached_audio_tokens``, ``.streamed``,
    ``.stream_closed_early``, ``.time_to_first_chunk_ms``, and
    ``vividly_trace.metadata.<key>`` for each top-level metadata value that is a str, bool,
    float or int64 (trace-context keys excepted; nested values are left out). With
    content capture on, the opt-in content attributes of :func:`content_attributes`.

    .. versionadded:: 0.1.0
    """
    candidates: dict[str, Any] = {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": _provider_name(record.provider),
        "gen_ai.request.model": record.model,
        "gen_ai.response.model": record.response_model,
        "gen_ai.response.finish_reasons": [record.finish_reason] if record.finish_reason else None,
        "gen_ai.usage.input_tokens": record.input_token_count,
        "gen_ai.usage.output_tokens": record.output_token_count,
        "gen_ai.usage.cache_read.input_tokens": record.cached_token_count,
        "gen_ai.usage.reasoning.output_tokens": record.thinking_token_count,
        "error.type": None if record.success else (record.error_type or "_OTHER"),
        "http.response.status_code": record.http_status,
        "gen_ai.usage.cost.amount": float(record.cost_usd) if record.cost_usd is not None else None,
        "gen_ai.usage.cost.currency": "USD" if record.cost_usd is not None else None,
        "vividly_trace.execution_id": record.execution_id,
        "vividly_trace.parent_execution_id": record.parent_execution_id,
        "vividly_trace.template.key": record.template_key,
        "vividly_trace.template.version": record.template_version,
        "vividly_trace.ab_test_group": record.ab_test_group,
        "vividly_trace.success": record.success,
        "vividly_trace.cost_usd": str(record.cost_usd) if record.cost_usd is not None else None,
        "vividly_trace.pricing_version": record.pricing_version,
        "vividly_trace.usage.total_tokens": record.total_token_count,
        "vividly_trace.usage.tool_use_tokens": record.tool_use_token_count,
        "vividly_trace.usage.audio_input_tokens": record.audio_input_token_count,
        "vividly_trace.usage.cached_audio_tokens": record.cached_audio_token_count,
        "vividly_trace.streamed": record.streamed,
        "vividly_trace.stream_closed_early": record.stream_closed_early or None,
        "vividly_trace.time_to_first_chunk_ms": record.time_to_first_chunk_ms,
    }
    attrs = {k: v for k, v in candidates.items() if v is not None}
    attrs.update(content_attributes(record))
    for key, value in record.metadata.items():
        if key in TRACE_METADATA_KEYS or not isinstance(key, str):
            continue
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not (_INT64_MIN <= value <= _INT64_MAX)
        ):
            continue  # OTLP attributes are int64: a bigger int would fail the whole export
        if isinstance(value, (str, bool, int, float)):
            attrs[f"vividly_trace.metadata.{key}"] = value
    return attrs


def _text_message(role: str, text: str, finish_reason: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return message


def content_attributes(record: PromptExecution) -> dict[str, str]:
    """The GenAI conventions' opt-in content attributes of ``record``: present only when
    the record carries text (``configure(capture_content=True)``, after ``redact``).

    ``gen_ai.input.messages``: ``[{"role": "user", "parts": [{"type": "text", "content":
    prompt_text}]}]``; ``gen_ai.output.messages``: ``[{"role": "assistant", "parts":
    [{"type": "text", "content": response_text}], "finish_reason": "stop"}]`` (Gemini's
    reasons mapped: ``MAX_TOKENS`` -> ``length``, ``SAFETY`` and the other filters ->
    ``content_filter``; others lowercased). Both are JSON strings, as the conventions ask
    where an attribute cannot hold structured values. The record keeps the prompt as one
    text (a system instruction and chat turns inside it as ``role: ...`` blocks), so it
    is one user message here.

    .. versionadded:: 0.3.0
    """
    out: dict[str, str] = {}
    if record.prompt_text is not None:
        out["gen_ai.input.messages"] = json.dumps(
            [_text_message("user", record.prompt_text)], ensure_ascii=False
        )
    if record.response_text is not None:
        reason = record.finish_reason
        finish = _FINISH_REASONS.get(reason, reason.lower()) if reason else "stop"
        out["gen_ai.output.messages"] = json.dumps(
            [_text_message("assistant", record.response_text, finish)], ensure_ascii=False
        )
    return out


class _Collector:
    """A span processor that keeps the spans ended on a provider owned by the sink."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self._lock = threading.Lock()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        """Nothing to do when a span starts."""

    def _on_ending(self, span: Any) -> None:
        """Nothing to do before a span ends (newer SDKs call this)."""

    def on_end(self, span: Any) -> None:
        """Keep the ended span for the sink's next export."""
        with self._lock:
            self.spans.append(span)

    def take(self) -> list[Any]:
        """The spans ended since the last call."""
        with self._lock:
            spans, self.spans = self.spans, []
        return spans

    def shutdown(self) -> None:
        """Nothing held."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered."""
        return True


class OpenTelemetrySink:
    """Turn each record into an OpenTelemetry span, for any OTel exporter or collector.

    Every record becomes one span of kind ``CLIENT`` named ``"generate_content {model}"``
    (see :func:`span_name`), started at the record's ``started_at`` and ended
    ``response_time_ms`` later (real times, not the time of the write), with the attributes
    of :func:`span_attributes`; a failed call gets ``error.type`` and status ``ERROR``
    (description: the error message, else the error type).

    Where the spans go:

    * ``OpenTelemetrySink()`` uses the global tracer provider
      (``opentelemetry.trace.get_tracer_provider()``), i.e. whatever the application set
      up with its processors and exporters;
    * ``OpenTelemetrySink(provider)`` uses that ``TracerProvider``;
    * ``OpenTelemetrySink(exporter=OTLPSpanExporter(...))`` builds its own SDK
      ``TracerProvider`` (resource ``service_name`` or the SDK default) and exports each
      batch itself, synchronously, in one ``exporter.export(spans)`` call: a failed export
      raises :class:`SpanExportError`, so the dispatcher retries, spools and counts it like
      any sink, and a retried record is sent as the *same* span (same span id; the last
      10 000 unsent spans are kept for this, in memory: a record replayed from the spool
      after a restart becomes a new span). The provider is flushed by every
      ``write_batch`` and shut down by :meth:`close`. The exporter's own retry (e.g.
      ``OTLPSpanExporter`` retries 429/502/503/504 within its ``timeout``) runs first.

    With a provider of the application's, export failures stay with that provider's
    processor (which logs them); :meth:`close` force-flushes it so the last spans leave
    before exit.

    Parents and links: records are spans of their own trace unless the record's metadata
    carries a trace context (``traceparent`` or ``trace_id``/``span_id``, see
    :func:`trace_metadata`), in which case the span is a child of that (remote) span, so
    it joins the application's trace; an unsampled parent means an unsampled span.
    ``parent_execution_id`` is always kept as the attribute
    ``vividly_trace.parent_execution_id``; in addition, when the parent's span was already
    emitted by this sink the child gets a link to it (``vividly_trace.link.type`` =
    ``"parent_execution"``), and when the parent is emitted after its children (the usual
    order: a nested call ends first) the parent gets links to them (``"child_execution"``).
    Only the last 4096 spans are remembered for this.

    The sink runs in its own worker thread (never the caller's), so spans are created
    and, with ``exporter=``, exported there.

    Args:
        tracer_provider: the ``TracerProvider`` to use (default: the global one).
        name: the sink's name in :func:`vividly_trace.stats`.
        exporter: a ``SpanExporter``; the sink then owns its provider (see above).
        service_name: ``service.name`` of the owned provider's resource.
        tracer_name: the instrumentation scope name.
        max_batch_size: records per batch, read by the dispatcher (default: the
            ``batch_size`` of :func:`vividly_trace.configure`).

    Raises:
        ConfigurationError: a bad argument.
        MissingExtraError: ``opentelemetry-api`` (or, with ``exporter=``,
            ``opentelemetry-sdk``) is not installed.

    .. versionadded:: 0.1.0
    """

    wants_trace_context = True
    """The span active at each call is recorded (``traceparent``), to join its trace."""

    def __init__(
        self,
        tracer_provider: Any = None,
        *,
        name: str = "otel",
        exporter: Any = None,
        service_name: str | None = None,
        tracer_name: str = "vividly_trace",
        max_batch_size: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("OpenTelemetrySink: name must be a non-empty str")
        if not isinstance(tracer_name, str) or not tracer_name:
            raise ConfigurationError("OpenTelemetrySink: tracer_name must be a non-empty str")
        if max_batch_size is not None and (
            isinstance(max_batch_size, bool)
            or not isinstance(max_batch_size, int)
            or max_batch_size < 1
        ):
            raise ConfigurationError(
                f"OpenTelemetrySink: max_batch_size must be a positive int, got {max_batch_size!r}"
            )
        if tracer_provider is not None and exporter is not None:
            raise ConfigurationError(
                "OpenTelemetrySink: pass a tracer_provider or an exporter, not both"
            )
        if service_name is not None and exporter is None:
            raise ConfigurationError(
                "OpenTelemetrySink: service_name only applies with exporter= (an application's "
                "provider has its own resource)"
            )
        if tracer_provider is not None and not callable(
            getattr(tracer_provider, "get_tracer", None)
        ):
            raise ConfigurationError("OpenTelemetrySink: tracer_provider has no get_tracer()")
        if exporter is not None and not callable(getattr(exporter, "export", None)):
            raise ConfigurationError("OpenTelemetrySink: exporter has no export(spans) method")
        self._trace = _import_api()
        from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
        from opentelemetry.trace.status import Status, StatusCode

        self._Link = Link
        self._NonRecordingSpan = NonRecordingSpan
        self._SpanContext = SpanContext
        self._TraceFlags = TraceFlags
        self._Status = Status
        self._StatusCode = StatusCode
        self._client_kind = SpanKind.CLIENT
        self.name = name
        self.max_batch_size = max_batch_size
        self._exporter = exporter
        self._collector: _Collector | None = None
        self._owned = exporter is not None
        if exporter is not None:
            try:
                from opentelemetry.sdk.resources import Resource
                from opentelemetry.sdk.trace import TracerProvider
            except ImportError:
                raise MissingExtraError("OpenTelemetrySink", "otel", "opentelemetry-sdk") from None
            resource = Resource.create(
                {"service.name": service_name} if service_name is not None else {}
            )
            tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
            self._collector = _Collector()
            tracer_provider.add_span_processor(self._collector)
        self._provider = tracer_provider
        from .._version import __version__

        source = tracer_provider if tracer_provider is not None else self._trace
        # With the global provider this is a ProxyTracer until the application sets one.
        self._tracer = source.get_tracer(tracer_name, __version__)
        self._lock = threading.Lock()
        self._emitted: OrderedDict[str, Any] = OrderedDict()
        self._children: OrderedDict[str, list[Any]] = OrderedDict()
        self._unsent: OrderedDict[str, Any] = OrderedDict()
        self._closed = False

    def after_fork(self) -> None:
        """In a forked child: a parent thread may have held the locks at the fork."""
        self._lock = threading.Lock()
        collector = getattr(self, "_collector", None)
        if collector is not None:
            collector._lock = threading.Lock()

    # -- spans -------------------------------------------------------------------------
    def _parent_context(self, record: PromptExecution) -> Any:
        from opentelemetry.context import Context
        from opentelemetry.trace import set_span_in_context

        ctx = trace_context(record)
        if ctx is None or ctx.span_id is None:
            return Context()  # a root span: never the worker thread's current context
        flags = self._TraceFlags(
            self._TraceFlags.DEFAULT if ctx.sampled is False else self._TraceFlags.SAMPLED
        )
        parent = self._SpanContext(
            trace_id=int(ctx.trace_id, 16),
            span_id=int(ctx.span_id, 16),
            is_remote=True,
            trace_flags=flags,
        )
        return set_span_in_context(self._NonRecordingSpan(parent), Context())

    def _links(self, record: PromptExecution) -> list[Any]:
        links = []
        parent_id = record.parent_execution_id
        if parent_id is not None and parent_id in self._emitted:
            links.append(
                self._Link(
                    self._emitted[parent_id], {"vividly_trace.link.type": "parent_execution"}
                )
            )
        for child in self._children.pop(record.execution_id, ()):
            links.append(self._Link(child, {"vividly_trace.link.type": "child_execution"}))
        return links

    def _remember(self, record: PromptExecution, span_context: Any) -> None:
        if not span_context.is_valid:
            return
        self._emitted[record.execution_id] = span_context
        self._emitted.move_to_end(record.execution_id)
        while len(self._emitted) > _LINK_CACHE:
            self._emitted.popitem(last=False)
        parent_id = record.parent_execution_id
        if parent_id is not None and parent_id not in self._emitted:
            children = self._children.setdefault(parent_id, [])
            if len(children) < _MAX_CHILD_LINKS:
                children.append(span_context)
            while len(self._children) > _LINK_CACHE:
                self._children.popitem(last=False)

    def _emit(self, record: PromptExecution) -> None:
        start, end = span_times(record)
        span = self._tracer.start_span(
            span_name(record),
            context=self._parent_context(record),
            kind=self._client_kind,
            attributes=span_attributes(record),
            links=self._links(record),
            start_time=start,
        )
        if not record.success:
            description = record.error_message or record.error_type or "failed"
            span.set_status(self._Status(self._StatusCode.ERROR, description))
        span.end(end_time=end)
        self._remember(record, span.get_span_context())

    # -- Sink protocol ------------------------------------------------------------------
    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        """Emit one span per record; with ``exporter=``, export them before returning.

        Raises:
            SpanExportError: the owned exporter reported a failure (the spans are kept and
                re-sent, unchanged, when the dispatcher retries these records).
        """
        with self._lock:
            if self._collector is None:
                for record in records:
                    self._emit(record)
                return
            self._export(records)

    def _export(self, records: Sequence[PromptExecution]) -> None:
        assert self._collector is not None
        spans = []
        for record in records:
            kept = self._unsent.pop(record.execution_id, None)
            if kept is not None:
                spans.append(kept)
                continue
            self._emit(record)
            spans.extend(self._collector.take())
        if not spans:  # all unsampled
            return
        try:
            result = self._exporter.export(spans)
        except Exception:
            self._keep_unsent(spans)
            raise
        if getattr(result, "name", result) != "SUCCESS":
            self._keep_unsent(spans)
            raise SpanExportError(
                f"{type(self._exporter).__name__}.export failed for {len(spans)} spans"
            )

    def _keep_unsent(self, spans: Sequence[Any]) -> None:
        for span in spans:
            attributes: Mapping[str, Any] = span.attributes or {}
            key = attributes.get("vividly_trace.execution_id")
            if isinstance(key, str):
                self._unsent[key] = span
        while len(self._unsent) > _UNSENT_CACHE:
            self._unsent.popitem(last=False)

    def close(self) -> None:
        """Flush: shut down the owned provider and exporter, or force-flush the given one."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._owned:
            self._provider.shutdown()
            shutdown = getattr(self._exporter, "shutdown", None)
            if callable(shutdown):
                shutdown()
            return
        provider = (
            self._provider if self._provider is not None else (self._trace.get_tracer_provider())
        )
        force_flush = getattr(provider, "force_flush", None)
        if callable(force_flush):
            force_flush()
