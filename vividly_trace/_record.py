"""The record: one execution of a prompt template."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = [
    "TWINS",
    "PromptExecution",
    "RequestRecord",
    "format_timestamp",
    "new_record",
    "parse_timestamp",
    "twin_of",
]

_FIELD_NAMES: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class RequestRecord:
    """One Gemini request made during an execution, as client capture saw it.

    An execution's tokens and cost are the sums over its requests, each priced at its own
    model; these keep the breakdown (the SQL store writes one ``prompt_requests`` row
    each, failed requests included) so that reports by model are right.
    ``offset_ms`` is when the request started, from the start of its execution.
    ``operation`` names the client method: ``generate_content``, ``embed_content``,
    ``interactions.create``, ``caches.create``...

    .. versionadded:: 0.3.0
    """

    operation: str
    success: bool
    response_time_ms: float
    offset_ms: float = 0.0
    model: str | None = None
    response_model: str | None = None
    input_token_count: int | None = None
    output_token_count: int | None = None
    total_token_count: int | None = None
    cached_token_count: int | None = None
    thinking_token_count: int | None = None
    tool_use_token_count: int | None = None
    audio_input_token_count: int | None = None
    cached_audio_token_count: int | None = None
    cost_usd: Decimal | None = None
    error_type: str | None = None
    http_status: int | None = None
    finish_reason: str | None = None
    streamed: bool = False
    image_input_token_count: int | None = None
    video_input_token_count: int | None = None
    image_output_token_count: int | None = None
    audio_output_token_count: int | None = None
    grounded_prompt_count: int | None = None
    search_query_count: int | None = None

    def to_exact_dict(self) -> dict[str, Any]:
        """The request as a JSON-ready dict, ``cost_usd`` an exact decimal string."""
        out = {name: getattr(self, name) for name in _REQUEST_FIELDS}
        if self.cost_usd is not None:
            out["cost_usd"] = str(self.cost_usd)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestRecord:
        """Rebuild a request from :meth:`to_exact_dict` output (unknown keys ignored)."""
        kwargs = {k: v for k, v in data.items() if k in _REQUEST_SET}
        cost = kwargs.get("cost_usd")
        if cost is not None and not isinstance(cost, Decimal):
            kwargs["cost_usd"] = Decimal(str(cost))
        return cls(**kwargs)


_REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(RequestRecord))
_REQUEST_SET = frozenset(_REQUEST_FIELDS)


@dataclass(slots=True, frozen=True)
class PromptExecution:
    """One execution of a prompt template, as every sink receives it.

    Token semantics follow the OpenTelemetry GenAI conventions, so totals add up:
    ``input_token_count`` is all billed input (the prompt, its cached part included, plus
    tool-use prompt tokens); ``output_token_count`` is all billed output (candidates plus
    thinking); ``total_token_count`` is input + output. ``cached_token_count``,
    ``thinking_token_count``, ``tool_use_token_count`` and ``audio_input_token_count`` say
    how much of those were cached / thinking / tool-use / audio;
    ``cached_audio_token_count`` says how much of the cached input was audio (a part of
    both ``cached_token_count`` and ``audio_input_token_count``, billed at the cached-audio
    rate).

    With the older ``google-generativeai`` client, which does not report thinking and
    tool-use counts, the hidden part ``total - prompt - candidates`` is counted as thinking
    (billed as output).

    ``metadata`` is always a JSON-safe dict (see :func:`vividly_trace.json_safe`).
    ``requests`` holds the Gemini requests client capture saw during the execution (see
    :class:`RequestRecord`); the counts above are their sums. ``prompt_text`` and
    ``response_text`` are filled only with ``configure(capture_content=True)``: what the
    first Gemini request of the execution sent and what the last one answered (a
    stream's chunks joined), cut to ``content_max_chars`` with a ``...[truncated N
    chars]`` marker and masked like metadata; ``None`` when unknown.
    ``user_id``, ``session_id`` and ``request_id`` are those bound by
    :func:`vividly_trace.context` (or the web middleware) when the call started.
    ``service_tier`` is the tier that priced the call: ``standard``, ``flex``,
    ``priority`` (the request's ``service_tier``, or the tier the answer says served it),
    ``batch`` (:meth:`CallHandle.set_service_tier`, for Batch API results) or
    ``provisioned`` (Vertex AI provisioned throughput: no per-token price); ``None`` when
    nothing said (priced as standard). ``image_input_token_count``,
    ``video_input_token_count`` (parts of the input, cached ones included),
    ``image_output_token_count``, ``audio_output_token_count`` (parts of the output) are
    the modality counts the answer's token details give; ``grounded_prompt_count`` (requests
    whose answer ran Google searches) and ``search_query_count`` (the queries they ran)
    are what Grounding with Google Search bills. ``pricing_version`` names the price table and,
    for a model whose prices change on a date, the period that applied
    (``VERSION/until-DATE`` or ``VERSION/from-DATE``; the record's ``started_at`` day, UTC).

    Frozen: every sink's worker shares one instance. To change a record (in a ``redact``
    hook), return ``dataclasses.replace(record, ...)``.

    .. versionadded:: 0.1.0
    """

    execution_id: str
    template_key: str
    success: bool
    response_time_ms: float
    started_at: _dt.datetime
    template_version: str | None = None
    ab_test_group: str | None = None
    provider: str | None = None
    model: str | None = None
    response_model: str | None = None
    input_token_count: int | None = None
    output_token_count: int | None = None
    total_token_count: int | None = None
    cached_token_count: int | None = None
    thinking_token_count: int | None = None
    tool_use_token_count: int | None = None
    audio_input_token_count: int | None = None
    cached_audio_token_count: int | None = None
    cost_usd: Decimal | None = None
    pricing_version: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    finish_reason: str | None = None
    streamed: bool = False
    stream_closed_early: bool = False
    time_to_first_chunk_ms: float | None = None
    parent_execution_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    requests: tuple[RequestRecord, ...] = ()
    prompt_text: str | None = None
    response_text: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    service_tier: str | None = None
    image_input_token_count: int | None = None
    video_input_token_count: int | None = None
    image_output_token_count: int | None = None
    audio_output_token_count: int | None = None
    grounded_prompt_count: int | None = None
    search_query_count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a dict of plain JSON types.

        ``started_at`` becomes an ISO 8601 string (UTC, ``Z`` suffix) and ``cost_usd`` a
        float; use :meth:`to_exact_dict` where the exact decimal matters.
        """
        out = self.to_exact_dict()
        if self.cost_usd is not None:
            out["cost_usd"] = float(self.cost_usd)
        for request in out["requests"]:
            if request["cost_usd"] is not None:
                request["cost_usd"] = float(request["cost_usd"])
        return out

    def to_exact_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict with ``cost_usd`` as an exact decimal string."""
        out = {name: getattr(self, name) for name in _FIELD_NAMES}
        out["started_at"] = format_timestamp(self.started_at)
        if self.cost_usd is not None:
            out["cost_usd"] = str(self.cost_usd)
        out["metadata"] = dict(self.metadata)
        out["requests"] = [request.to_exact_dict() for request in self.requests]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptExecution:
        """Rebuild a record from :meth:`to_dict` or :meth:`to_exact_dict` output.

        Unknown keys are ignored so that records written by a newer version still load;
        missing ones take their defaults, so records written by an older version load too.
        """
        kwargs = {k: v for k, v in data.items() if k in _FIELD_SET}
        started = kwargs.get("started_at")
        if isinstance(started, str):
            kwargs["started_at"] = parse_timestamp(started)
        cost = kwargs.get("cost_usd")
        if cost is not None and not isinstance(cost, Decimal):
            kwargs["cost_usd"] = Decimal(str(cost))
        if kwargs.get("metadata") is None:
            kwargs["metadata"] = {}
        kwargs["requests"] = tuple(
            r if isinstance(r, RequestRecord) else RequestRecord.from_dict(r)
            for r in kwargs.get("requests") or ()
        )
        return cls(**kwargs)


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(PromptExecution))
_FIELD_SET = frozenset(_FIELD_NAMES)


# A frozen dataclass sets each of its fields through object.__setattr__ (about 3 µs a
# record here, more than the rest of building it). The worker builds records through a twin
# of the same slot layout, whose plain __init__ is seven times cheaper, and then makes each
# one the frozen class (``__class__`` may change between identical slot layouts).
def _unfrozen_twin(cls: type) -> Any:
    return dataclasses.make_dataclass(
        f"_Unfrozen{cls.__name__}",
        [(f.name, f.type, f) for f in dataclasses.fields(cls)],
        slots=True,
        # Only its __init__ ever runs: the record takes the frozen class's other methods.
        repr=False,
        eq=False,
        match_args=False,
    )


TWINS: dict[type, Any] = {}
"""Frozen record class -> its twin, made on first use (:func:`twin_of`): making one costs
about a millisecond, which ``import vividly_trace`` need not pay."""


def twin_of(cls: type) -> Any:
    """The unfrozen twin of ``cls`` (``PromptExecution`` or ``RequestRecord``); the record
    builder reads :data:`TWINS` first and makes each record it builds the frozen class
    (``record.__class__ = PromptExecution``). Two threads may both make it: either works."""
    twin = TWINS.get(cls)
    if twin is None:
        twin = TWINS[cls] = _unfrozen_twin(cls)
    return twin


def new_record(*values: Any, **fields: Any) -> PromptExecution:
    """``PromptExecution(*values, **fields)``, built the cheap way (for the record builder
    and ``log_prompt_execution``, where every record passes)."""
    record: Any = (TWINS.get(PromptExecution) or twin_of(PromptExecution))(*values, **fields)
    record.__class__ = PromptExecution
    return record  # type: ignore[no-any-return]


def format_timestamp(value: _dt.datetime) -> str:
    """Format an aware UTC datetime as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> _dt.datetime:
    """Parse :func:`format_timestamp` output (or any ISO 8601 string) into an aware UTC datetime."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    value = _dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc)
