"""Fixtures of the sink tests: local fake servers and records.

(The loopback-only network guard, ``_loopback_only``, is in ``tests/conftest.py``.)
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from vividly_trace import PromptExecution


@pytest.fixture(name="fake_logging")
def _fake_logging() -> Iterator[Any]:
    """A fresh fake Cloud Logging endpoint on 127.0.0.1."""
    from vividly_trace.testing.fake_logging import FakeLoggingServer

    with FakeLoggingServer() as server:
        yield server


@pytest.fixture(name="collector")
def _collector() -> Iterator[Any]:
    """A fresh OTLP/HTTP collector stub on 127.0.0.1."""
    pytest.importorskip("opentelemetry.proto")
    from vividly_trace.testing.otlp_collector import OTLPCollector

    with OTLPCollector() as server:
        yield server


STARTED = _dt.datetime(2026, 3, 30, 12, 0, 0, 123456, tzinfo=_dt.timezone.utc)


@pytest.fixture(name="make_record")
def _make_record() -> Callable[..., PromptExecution]:
    """Build a record with every field set; keyword arguments override fields."""
    counter = iter(range(1_000_000))

    def make(**overrides: Any) -> PromptExecution:
        n = next(counter)
        fields: dict[str, Any] = {
            "execution_id": f"0195f3a0-0000-7000-8000-{n:012d}",
            "template_key": "nlu_extraction",
            "success": True,
            "response_time_ms": 123.4,
            "started_at": STARTED,
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
        fields.update(overrides)
        return PromptExecution(**fields)

    return make
