"""Trace correlation: the OpenTelemetry span context active when a call starts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["trace_context_getter"]


def trace_context_getter(capture: bool | None, sinks: Sequence[Any]) -> Callable[[], Any] | None:
    """A function returning the active span context (or ``None``), or ``None`` when not
    capturing: ``capture=None`` means "when a sink declares ``wants_trace_context = True``
    and ``opentelemetry-api`` is installed"."""
    if capture is None:
        capture = any(getattr(s, "wants_trace_context", False) is True for s in sinks)
    if not capture:
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    get_current_span = trace.get_current_span

    def current_span_context() -> Any:
        try:  # runs on the caller's thread: must never raise
            ctx = get_current_span().get_span_context()
            return ctx if ctx.is_valid else None
        except Exception:
            return None

    return current_span_context
