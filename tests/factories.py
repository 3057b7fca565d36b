"""The one factory of hand-built records: :func:`make_record` (and :func:`full_record`).

Tests that hand records to a sink, a spool or a store directly (not through a logged call)
build them here, and so do the seeded data sets (``tests/analytics/analytics_data.py``,
``tests/cli/cli_helpers.py``): a new field or a changed default is then one edit. For the
records of logged calls, use :func:`vividly_trace.testing.capture_records`.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

from vividly_trace import PromptExecution, RequestRecord
from vividly_trace._ids import new_execution_id

__all__ = [
    "ALL_FIELDS",
    "STARTED",
    "UTC",
    "full_record",
    "make_record",
    "record_id",
    "record_with_requests",
]

UTC = dt.timezone.utc

#: ``started_at`` of a record that does not set it (with microseconds, to check they survive).
STARTED = dt.datetime(2026, 3, 30, 12, 0, 0, 123456, tzinfo=UTC)

#: A value for every optional field (see :func:`full_record`).
ALL_FIELDS: dict[str, Any] = {
    "template_key": "nlu_extraction",
    "response_time_ms": 123.4,
    "template_version": "v3",
    "ab_test_group": "B",
    "provider": "gemini",
    "model": "gemini-2.5-flash",
    "response_model": "gemini-2.5-flash-001",
    "input_token_count": 14,
    "output_token_count": 25,
    "total_token_count": 39,
    "cached_token_count": 4,
    "thinking_token_count": 12,
    "tool_use_token_count": 5,
    "audio_input_token_count": 2,
    "cached_audio_token_count": 1,
    "cost_usd": Decimal("0.0000661"),
    "pricing_version": "2026-03-30",
    "finish_reason": "STOP",
    "streamed": True,
    "time_to_first_chunk_ms": 45.5,
    "parent_execution_id": "0195f3a0-0000-7000-8000-999999999999",
    "metadata": {"user_tier": "pro", "attempt": 2, "tags": ["a", "b"]},
}


def record_id(n: int, prefix: str = "0195f3a0") -> str:
    """A UUID-shaped execution id numbered ``n``: the same ``n`` gives the same id, and the
    ids of one prefix sort by ``n``."""
    return f"{prefix}-0000-7000-8000-{n:012d}"


def make_record(
    template_key: str = "tmpl", *, n: int | None = None, **fields: Any
) -> PromptExecution:
    """A record of ``template_key``; keyword arguments set any other field.

    Defaults: a successful call of 100 ms started at :data:`STARTED`, with a fresh
    execution id (a real UUIDv7, so unique across processes too), or ``record_id(n)`` when
    ``n`` is given. ``total_token_count`` defaults to input + output when both are given.
    """
    if "execution_id" not in fields:
        fields["execution_id"] = new_execution_id() if n is None else record_id(n)
    fields.setdefault("success", True)
    fields.setdefault("response_time_ms", 100.0)
    fields.setdefault("started_at", STARTED)
    tokens_in = fields.get("input_token_count")
    tokens_out = fields.get("output_token_count")
    if "total_token_count" not in fields and tokens_in is not None and tokens_out is not None:
        fields["total_token_count"] = tokens_in + tokens_out
    return PromptExecution(template_key=template_key, **fields)


def full_record(**fields: Any) -> PromptExecution:
    """A record with every field set (:data:`ALL_FIELDS`, copied: the record's metadata is
    its own); keyword arguments override."""
    return make_record(**{**copy.deepcopy(ALL_FIELDS), **fields})


def record_with_requests(
    template_key: str, n: int, *, model: str = "gemini-2.5-flash", **fields: Any
) -> PromptExecution:
    """A record whose client capture saw ``n`` requests to ``model``: request ``i`` has
    ``i + 1`` input tokens, no output, costs ``i + 1`` micro-USD and started ``20 * i`` ms
    into the call; the record's counts and cost are their sums."""
    requests = tuple(
        RequestRecord(
            "generate_content",
            True,
            10.0 + i,
            offset_ms=20.0 * i,
            model=model,
            response_model=model,
            input_token_count=i + 1,
            output_token_count=0,
            total_token_count=i + 1,
            cost_usd=Decimal(i + 1) / 1_000_000,
            finish_reason="STOP",
        )
        for i in range(n)
    )
    fields.setdefault("model", model)
    fields.setdefault("input_token_count", sum(i + 1 for i in range(n)))
    fields.setdefault("output_token_count", 0)
    fields.setdefault("cost_usd", sum((r.cost_usd or Decimal(0) for r in requests), Decimal(0)))
    return make_record(template_key, requests=requests, **fields)


def usd(*terms: tuple[int, str]) -> Decimal:
    """Sum of tokens x USD-per-1M price, exactly (expected costs computed by hand)."""
    return sum((Decimal(n) * Decimal(p) for n, p in terms), Decimal(0)) / Decimal(1_000_000)
