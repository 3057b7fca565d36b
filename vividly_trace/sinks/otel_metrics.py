"""OpenTelemetry metrics with the GenAI semantic conventions, through the application's
``MeterProvider`` (extra ``otel``).

One data point per Gemini request (each of a record's ``requests``; a record without any,
from ``log_prompt_execution`` or a call capture did not see, counts as one operation):

- ``gen_ai.client.token.usage`` (histogram, ``{token}``), ``gen_ai.token.type`` ``input`` /
  ``output``;
- ``gen_ai.client.operation.duration`` (histogram, ``s``);
- ``gen_ai.client.operation.time_to_first_chunk`` (histogram, ``s``; streamed calls);
- ``gen_ai.client.operation.cost`` (histogram, unit ``USD``): not in the conventions yet. The
  open proposal (semantic-conventions-genai#443) names the cost attributes
  ``gen_ai.usage.cost.amount`` / ``.currency`` / ``.source``; the metric takes the name
  already read by dashboards (an operation-level ``gen_ai.client.operation.*`` histogram)
  and carries ``gen_ai.usage.cost.currency`` = ``USD`` and ``gen_ai.usage.cost.source`` =
  ``local`` (priced here). An unknown cost records no point (never $0).

Attributes: ``gen_ai.operation.name``, ``gen_ai.provider.name`` (``gcp.gemini`` /
``gcp.vertex_ai``), ``gen_ai.request.model``, ``gen_ai.response.model``, ``error.type`` on
failures, and ``vividly.template_key`` (low cardinality by design: one per template).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._record import PromptExecution, RequestRecord
from ..exceptions import MissingExtraError
from .otel import _provider_name

__all__ = ["OpenTelemetryMetricsSink"]

# Bucket boundaries advised by the GenAI conventions for the two specified instruments.
_TOKEN_BUCKETS: list[float] = [
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
]
_DURATION_BUCKETS = [
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
]
_COST_BUCKETS = [0.00001, 0.0001, 0.001, 0.01, 0.1, 1.0, 10.0]


class OpenTelemetryMetricsSink:
    """Record GenAI metrics for every call, through ``meter_provider`` (default: the global
    one the application set up, e.g. with a Cloud Monitoring or Prometheus exporter)::

        configure(sinks=[SQLSink(url), OpenTelemetryMetricsSink()])

    Raises:
        MissingExtraError: ``opentelemetry-api`` is not installed (extra ``otel``).

    .. versionadded:: 0.3.0
    """

    spool = False  # metrics of the past are not replayed into today's aggregates

    def __init__(self, meter_provider: Any = None, *, name: str = "otel_metrics") -> None:
        try:
            from opentelemetry import metrics
        except ImportError:
            raise MissingExtraError(
                "OpenTelemetryMetricsSink", "otel", "opentelemetry-api"
            ) from None
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        from .._version import __version__

        meter = provider.get_meter("vividly_trace", __version__)
        self.name = name
        self._tokens = _histogram(
            meter,
            "gen_ai.client.token.usage",
            "{token}",
            "Number of input and output tokens used.",
            _TOKEN_BUCKETS,
        )
        self._duration = _histogram(
            meter,
            "gen_ai.client.operation.duration",
            "s",
            "GenAI operation duration.",
            _DURATION_BUCKETS,
        )
        self._first_chunk = _histogram(
            meter,
            "gen_ai.client.operation.time_to_first_chunk",
            "s",
            "Time to receive the first chunk of a streamed response.",
            _DURATION_BUCKETS,
        )
        self._cost = _histogram(
            meter,
            "gen_ai.client.operation.cost",
            "USD",
            "Cost of GenAI operations in USD, priced from a dated catalogue.",
            _COST_BUCKETS,
        )

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        """Record each record's operations."""
        for record in records:
            base = {
                "gen_ai.provider.name": _provider_name(record.provider),
                "vividly.template_key": record.template_key,
            }
            first_chunk = record.time_to_first_chunk_ms
            if record.requests:
                for request in record.requests:
                    attributes = self._operation(base, request, record)
                    if first_chunk is not None and request.streamed:
                        self._first_chunk.record(first_chunk / 1000, attributes)
                        first_chunk = None  # the call's first chunk: its first stream's
            else:
                attributes = self._operation(base, None, record)
                if first_chunk is not None:
                    self._first_chunk.record(first_chunk / 1000, attributes)

    def _operation(
        self, base: dict[str, Any], request: RequestRecord | None, record: PromptExecution
    ) -> dict[str, Any]:
        source: Any = request if request is not None else record
        attributes = {
            **base,
            "gen_ai.operation.name": request.operation
            if request is not None
            else "generate_content",
        }
        for key, value in (
            ("gen_ai.request.model", source.model),
            ("gen_ai.response.model", source.response_model),
            ("error.type", None if source.success else (source.error_type or "_OTHER")),
        ):
            if value is not None:
                attributes[key] = value
        self._duration.record(source.response_time_ms / 1000, attributes)
        for kind, count in (
            ("input", source.input_token_count),
            ("output", source.output_token_count),
        ):
            if count is not None:
                self._tokens.record(count, {**attributes, "gen_ai.token.type": kind})
        if source.cost_usd is not None:
            self._cost.record(
                float(source.cost_usd),
                {
                    **attributes,
                    "gen_ai.usage.cost.currency": "USD",
                    "gen_ai.usage.cost.source": "local",
                },
            )
        return attributes

    def close(self) -> None:
        """Nothing to release: the application owns its MeterProvider (and flushes it)."""


def _histogram(meter: Any, name: str, unit: str, description: str, buckets: list[float]) -> Any:
    try:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
        )
    except TypeError:  # an opentelemetry-api older than 1.23: no bucket advice
        return meter.create_histogram(name, unit=unit, description=description)
