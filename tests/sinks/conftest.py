"""Fixtures of the sink tests: local fake servers, records, and a loopback-only network."""

from __future__ import annotations

import datetime as _dt
import socket
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from vividly_trace import PromptExecution

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse (and remember) any connection or name lookup beyond 127.0.0.1.

    A metadata-server probe or a real Google endpoint would show up here; the test then
    fails at teardown even if the library swallowed the refusal.
    """
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(address: Any) -> bool:
        if isinstance(address, (str, bytes)):  # AF_UNIX
            return True
        return isinstance(address, tuple) and str(address[0]) in _LOOPBACK

    def connect(self: socket.socket, address: Any) -> None:
        if not allowed(address):
            attempts.append(f"connect {address!r}")
            raise OSError(f"network disabled in tests: connect to {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not allowed(address):
            attempts.append(f"connect_ex {address!r}")
            raise OSError(f"network disabled in tests: connect to {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and str(host) not in _LOOPBACK:
            attempts.append(f"getaddrinfo {host!r}")
            raise socket.gaierror(f"network disabled in tests: lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert attempts == [], f"a test tried to reach the network: {attempts}"


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
