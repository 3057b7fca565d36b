"""Sinks: where records go.

``MemorySink`` and ``JSONLinesSink`` load eagerly (standard library only); the others are
resolved on first access (PEP 562), so importing this package loads neither SQLAlchemy nor
any Google or OpenTelemetry package.
"""

from __future__ import annotations

import os
from typing import Any

from .._lazy import lazy_names
from ..exceptions import ConfigurationError
from ._base import Sink
from .jsonl import JSONLinesSink
from .memory import MemorySink
from .spend_guard import SpendAlert, SpendGuard

__all__ = [
    "CloudLoggingSink",
    "JSONLinesSink",
    "MemorySink",
    "OpenTelemetryMetricsSink",
    "OpenTelemetrySink",
    "SQLSink",
    "Sink",
    "SpendAlert",
    "SpendGuard",
    "StructuredStdoutSink",
    "sink_from_spec",
]

_LAZY = {
    "SQLSink": ".sql",
    "CloudLoggingSink": ".cloud_logging",
    "StructuredStdoutSink": ".structured_stdout",
    "OpenTelemetrySink": ".otel",
    "OpenTelemetryMetricsSink": ".otel_metrics",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())


def sink_from_spec(spec: str) -> Any:
    """Build a sink from a ``VIVIDLY_TRACE_SINKS`` entry.

    ``sql`` (``$VIVIDLY_TRACE_DATABASE_URL`` or ``sqlite:///vividly_trace.db``),
    ``sql:URL``, ``jsonl:PATH``, ``stdout`` (structured, for Cloud Run / GKE),
    ``cloud_logging`` or ``cloud_logging:PROJECT``, ``otel``, ``otel_metrics``, ``memory``.
    """
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "sql":
        url = arg or os.environ.get("VIVIDLY_TRACE_DATABASE_URL") or "sqlite:///vividly_trace.db"
        return __getattr__("SQLSink")(url)
    if kind == "jsonl":
        return JSONLinesSink(arg or "vividly_trace.jsonl")
    if kind in ("stdout", "structured_stdout"):
        return __getattr__("StructuredStdoutSink")()
    if kind == "cloud_logging":
        return __getattr__("CloudLoggingSink")(project=arg or None)
    if kind == "otel":
        return __getattr__("OpenTelemetrySink")()
    if kind == "otel_metrics":
        return __getattr__("OpenTelemetryMetricsSink")()
    if kind == "memory":
        return MemorySink()
    raise ConfigurationError(
        f"unknown sink {spec!r} (known: sql, sql:URL, jsonl:PATH, stdout, cloud_logging, otel, "
        "otel_metrics, memory)"
    )
