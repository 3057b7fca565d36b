"""Structured logging to standard output, in the JSON format Google's logging agents read.

On Cloud Run, GKE and Cloud Functions, every line a container writes to stdout is sent to
Cloud Logging; a line that is a JSON object becomes a structured entry, and a few special
keys are lifted out of it (``severity``, ``message``, ``time``,
``logging.googleapis.com/labels``, ``logging.googleapis.com/trace``,
``logging.googleapis.com/spanId``, ``logging.googleapis.com/trace_sampled``,
``logging.googleapis.com/insertId``); the other keys become the entry's ``jsonPayload``.

This module needs only the standard library (no ``google-cloud-logging``). It also holds
the pieces :class:`~vividly_trace.sinks.CloudLoggingSink` shares with it: the summary
message, the labels and the trace-context rule.

Trace context
-------------
A record is built off the caller's thread, after the call, so the active span of the
caller cannot be read at that point: the trace context travels in the record's
``metadata``, under one of these keys (first match wins):

* ``traceparent``: a W3C header value, ``00-<32 hex trace id>-<16 hex span id>-<2 hex
  flags>``; bit 0 of the flags is "sampled";
* ``trace_id`` (32 hex digits), optionally with ``span_id`` (16 hex digits) and
  ``trace_sampled`` (bool).

Anything else (a malformed or all-zero id, a non-string) is ignored: the record is written
without trace correlation. Inside a call, ``call.metadata.update(trace_metadata())`` (from
:mod:`vividly_trace.sinks.otel`) copies the active OpenTelemetry span in that form.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any, NamedTuple

from .._record import PromptExecution, format_timestamp
from ..exceptions import ConfigurationError
from ._fit import entry_size, fit_payload

__all__ = [
    "StructuredStdoutSink",
    "TraceContext",
    "format_message",
    "record_labels",
    "structured_line",
    "trace_context",
    "validate_labels",
]

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_LABEL_KEY = re.compile(r"[A-Za-z0-9_./-]{1,63}")
#: A line becomes one Cloud Logging entry (256 KB at most): lines are kept under this.
MAX_LINE_BYTES = 250_000

#: The metadata keys read by :func:`trace_context`.
TRACE_METADATA_KEYS = frozenset({"traceparent", "trace_id", "span_id", "trace_sampled"})


class TraceContext(NamedTuple):
    """The trace a record belongs to, as read from its metadata by :func:`trace_context`.

    ``trace_id`` is 32 lower-case hex digits; ``span_id`` is 16 lower-case hex digits or
    ``None``; ``sampled`` is ``None`` when the metadata did not say.

    .. versionadded:: 0.1.0
    """

    trace_id: str
    span_id: str | None
    sampled: bool | None


def _hex_id(value: Any, pattern: re.Pattern[str]) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not pattern.fullmatch(text) or not text.strip("0"):
        return None
    return text


def trace_context(record: PromptExecution) -> TraceContext | None:
    """Return the trace context carried in ``record.metadata``, or ``None``.

    The rule is described in this module's docstring: ``traceparent`` first, then
    ``trace_id`` / ``span_id`` / ``trace_sampled``.

    .. versionadded:: 0.1.0
    """
    metadata = record.metadata
    if not metadata:
        return None
    header = metadata.get("traceparent")
    if isinstance(header, str):
        match = _TRACEPARENT.fullmatch(header.strip().lower())
        if match is not None and match.group(1) != "ff":
            trace_id = _hex_id(match.group(2), _TRACE_ID)
            span_id = _hex_id(match.group(3), _SPAN_ID)
            if trace_id is not None and span_id is not None:
                return TraceContext(trace_id, span_id, bool(int(match.group(4), 16) & 1))
    trace_id = _hex_id(metadata.get("trace_id"), _TRACE_ID)
    if trace_id is None:
        return None
    sampled = metadata.get("trace_sampled")
    return TraceContext(
        trace_id,
        _hex_id(metadata.get("span_id"), _SPAN_ID),
        sampled if isinstance(sampled, bool) else None,
    )


def format_message(record: PromptExecution) -> str:
    """The one-line summary of a record shown in log viewers.

    ``"nlu_extraction ok 123.4 ms"`` for a success; for a failure
    ``"nlu_extraction error 88.0 ms: ServerError: 503 UNAVAILABLE"`` (the error type and
    message are left out when the record has none).

    .. versionadded:: 0.1.0
    """
    ms = f"{record.response_time_ms:.1f} ms"
    if record.success:
        return f"{record.template_key} ok {ms}"
    detail = ": ".join(p for p in (record.error_type, record.error_message) if p)
    if detail:
        return f"{record.template_key} error {ms}: {detail}"
    return f"{record.template_key} error {ms}"


def validate_labels(owner: str, labels: Mapping[str, Any] | None) -> dict[str, str]:
    """Check user labels (string keys of 1-63 characters ``[A-Za-z0-9_./-]``, string values).

    Raises:
        ConfigurationError: a label key or value of the wrong kind.
    """
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise ConfigurationError(f"{owner}: labels must be a mapping of str to str")
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise ConfigurationError(
                f"{owner}: label key {key!r} must be 1-63 characters of [A-Za-z0-9_./-]"
            )
        if not isinstance(value, str):
            raise ConfigurationError(f"{owner}: label {key!r} must be a str, got {value!r}")
        out[key] = value
    return out


def record_labels(record: PromptExecution, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus ``template_key``, ``template_version`` and ``ab_test_group``.

    The last two only when set and non-empty; the record's values win over ``base``.

    .. versionadded:: 0.1.0
    """
    labels = dict(base)
    labels["template_key"] = record.template_key
    if record.template_version:
        labels["template_version"] = record.template_version
    if record.ab_test_group:
        labels["ab_test_group"] = record.ab_test_group
    return labels


def resolve_project(project: str | None, owner: str) -> str | None:
    """``project``, else ``$GOOGLE_CLOUD_PROJECT``; validated (no ``/``, no spaces)."""
    if project is None:
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or None
    if project is None:
        return None
    if not isinstance(project, str) or not project or re.search(r"[\s/]", project):
        raise ConfigurationError(
            f"{owner}: project must be a Google Cloud project id, got {project!r}"
        )
    return project


def structured_line(
    record: PromptExecution, *, project: str | None, labels: Mapping[str, str]
) -> dict[str, Any]:
    """The JSON object written for ``record`` (see :class:`StructuredStdoutSink`).

    .. versionadded:: 0.1.0
    """
    out: dict[str, Any] = {
        "severity": "INFO" if record.success else "ERROR",
        "message": format_message(record),
        "time": format_timestamp(record.started_at),
        "logging.googleapis.com/insertId": record.execution_id,
        "logging.googleapis.com/labels": record_labels(record, labels),
    }
    ctx = trace_context(record)
    if ctx is not None and project is not None:
        out["logging.googleapis.com/trace"] = f"projects/{project}/traces/{ctx.trace_id}"
        if ctx.span_id is not None:
            out["logging.googleapis.com/spanId"] = ctx.span_id
        if ctx.sampled is not None:
            out["logging.googleapis.com/trace_sampled"] = ctx.sampled
    out.update(record.to_dict())
    return out


class StructuredStdoutSink:
    """One JSON line per record on standard output, in the format Cloud Logging's agents read.

    For Cloud Run, GKE and Cloud Functions, where whatever a container prints goes to Cloud
    Logging. Each line is one JSON object::

        {"severity": "INFO",                      # "ERROR" when the call failed
         "message": "nlu_extraction ok 123.4 ms", # see format_message()
         "time": "2026-03-30T12:00:00.123456Z",   # the record's started_at
         "logging.googleapis.com/insertId": "<execution_id>",
         "logging.googleapis.com/labels": {"template_key": "nlu_extraction",
                                           "template_version": "v3", "ab_test_group": "B"},
         "logging.googleapis.com/trace": "projects/P/traces/<trace id>",  # if known
         "logging.googleapis.com/spanId": "<span id>",                    # if known
         "logging.googleapis.com/trace_sampled": true,                    # if known
         "execution_id": "...", "template_key": "...", ...}               # record.to_dict()

    Every field of the record (:meth:`PromptExecution.to_dict`) is at the top level, so it
    lands in ``jsonPayload`` exactly as with the API mode of
    :class:`~vividly_trace.sinks.CloudLoggingSink` (which also adds ``message`` to it).
    The three trace keys are written only when the record's metadata carries a trace
    context (see the module docstring) *and* a project is known: ``project=`` or
    ``$GOOGLE_CLOUD_PROJECT`` read at construction. ``template_version`` and
    ``ab_test_group`` labels are left out when empty.

    A line never exceeds the 256 KB limit of a Cloud Logging entry: one that would has
    its longest texts cut (``prompt_text``, ``response_text``, ``error_message``, metadata
    strings), each ending with ``...[truncated N chars]``, as
    :class:`~vividly_trace.sinks.CloudLoggingSink` cuts its entries (counted by
    :meth:`counters`).

    This is not :class:`~vividly_trace.sinks.JSONLinesSink` with ``"-"``, which prints the
    bare record without the agent's special keys.

    Args:
        stream: a text stream; ``None`` means ``sys.stdout`` as it is at write time.
        name: the sink's name in :func:`vividly_trace.stats`.
        project: the Google Cloud project, used for the trace key.
        labels: extra labels (str to str) added to every line.

    Raises:
        ConfigurationError: a bad argument.

    .. versionadded:: 0.1.0
    """

    wants_trace_context = True
    """The span active at each call is recorded (``traceparent``), to join its trace."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        name: str = "structured_stdout",
        project: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("StructuredStdoutSink: name must be a non-empty str")
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise ConfigurationError("StructuredStdoutSink: stream must have a write() method")
        self.name = name
        self.project = resolve_project(project, "StructuredStdoutSink")
        self.labels = validate_labels("StructuredStdoutSink", labels)
        self._stream = stream
        self._lock = threading.Lock()
        self.truncated_entries = 0
        self.truncated_fields = 0

    def encode(self, records: Sequence[PromptExecution]) -> str:
        """The text written for ``records``: one JSON object per line."""
        return "".join(self._line(r) + "\n" for r in records)

    def _line(self, record: PromptExecution) -> str:
        line = structured_line(record, project=self.project, labels=self.labels)
        text = json.dumps(line, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        if len(text) * 4 > MAX_LINE_BYTES and entry_size(line) > MAX_LINE_BYTES:
            fitted = fit_payload(line, line, MAX_LINE_BYTES)
            self.truncated_entries += 1
            self.truncated_fields += fitted.cut + len(fitted.replaced)
            text = json.dumps(line, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text

    def counters(self) -> dict[str, int]:
        """``truncated_entries`` (lines cut to fit 256 KB) and ``truncated_fields`` (texts
        cut in them); shown in :func:`vividly_trace.stats` under this sink."""
        return {
            "truncated_entries": self.truncated_entries,
            "truncated_fields": self.truncated_fields,
        }

    def after_fork(self) -> None:
        """In a forked child: a parent thread may have held the lock at the fork."""
        self._lock = threading.Lock()

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        """Write one line per record and flush; raises ``OSError`` if the stream fails."""
        data = self.encode(records)
        with self._lock:
            stream = self._stream if self._stream is not None else sys.stdout
            stream.write(data)
            stream.flush()

    def close(self) -> None:
        """Flush the stream (it is not closed: it belongs to the caller or to ``sys``)."""
        stream = self._stream if self._stream is not None else sys.stdout
        flush = getattr(stream, "flush", None)
        if callable(flush):
            with contextlib.suppress(OSError, ValueError):  # closed at interpreter exit
                flush()
